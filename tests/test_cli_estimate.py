"""Tests of ``powerfit estimate`` through the real entry point."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from powerfit.cli import main

MODEL_A = [
    "--n-layers",
    "6",
    "--d-model",
    "512",
    "--n-heads",
    "8",
    "--batch-size",
    "64",
    "--seq-len",
    "320",
]


def test_json_output_reproduces_model_a(capsys):
    assert (
        main(
            [
                "estimate",
                "--profile",
                "mayaki2025-a100",
                "--arch",
                "transformer",
                *MODEL_A,
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert round(out["energy_j"], 2) == 36.06
    ops = {o["op"]: o for o in out["operations"]}
    assert set(ops) == {
        "qkv_projections",
        "attention_scores",
        "attention_output",
        "final_projection",
    }
    assert round(ops["qkv_projections"]["efficiency"], 4) == 0.3531
    assert round(ops["qkv_projections"]["duration_paper"], 2) == 35.08
    assert ops["qkv_projections"]["duration_s"] == pytest.approx(35.08e-4, rel=1e-3)


def test_table_output(capsys):
    assert main(["estimate", *MODEL_A]) == 0
    assert "36.06 J" in capsys.readouterr().out


def test_many_configurations(tmp_path):
    src = tmp_path / "configs.csv"
    pd.DataFrame(
        {
            "batch_size": [64, 64],
            "seq_len": [320, 320],
            "d_model": [512, 768],
            "n_heads": [8, 12],
            "n_layers": [6, 12],
        }
    ).to_csv(src, index=False)
    dst = tmp_path / "out.csv"
    assert main(["estimate", "--input", str(src), "--output", str(dst)]) == 0
    out = pd.read_csv(dst)
    assert list(out["energy_j"].round(2)) == [36.06, 78.96]
    assert "qkv_projections_duration_s" in out.columns


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [
                "--n-layers",
                "6",
                "--d-model",
                "512",
                "--n-heads",
                "1024",
                "--batch-size",
                "64",
                "--seq-len",
                "320",
            ],
            "--n-heads",
        ),
        (
            ["--n-layers", "6", "--d-model", "512", "--batch-size", "64", "--seq-len", "320"],
            "--n-heads",
        ),
        (
            [
                "--n-layers",
                "-6",
                "--d-model",
                "512",
                "--n-heads",
                "8",
                "--batch-size",
                "64",
                "--seq-len",
                "320",
            ],
            "--n-layers",
        ),
        (["--profile", "nope", *MODEL_A], "unknown profile"),
        (["--arch", "lstm", *MODEL_A], "transformer models, not lstm"),
    ],
)
def test_errors_exit_non_zero_without_traceback(args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "powerfit", "estimate", *args], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_file_names_row_and_column(tmp_path, capsys):
    src = tmp_path / "configs.csv"
    src.write_text("batch_size,seq_len,d_model,n_heads,n_layers\n64,320,512,8,6\n64,abc,512,8,6\n")
    assert main(["estimate", "--input", str(src)]) == 1
    err = capsys.readouterr().err
    assert str(src) in err and "row 2" in err and "'seq_len'" in err
