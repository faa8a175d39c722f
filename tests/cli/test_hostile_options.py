"""Non-finite and oversized options, FIFOs as input: one line, never NaN (issue 26, 5–7)."""

from __future__ import annotations

import json
import os
import threading

import pytest

from powerfit.cli import main

GPT2 = {"model_type": "gpt2", "n_layer": 2, "n_embd": 48, "n_head": 4, "vocab_size": 97}
PROFILE = ["estimate", "--profile", "mayaki2025-a100", "--seq-len", "320", "--d-model", "512"]
PROFILE += ["--n-heads", "8", "--n-layers", "6"]


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(GPT2))
    return path


def _hf(config, *extra):
    return ["estimate", "--hf-config", str(config), "--gpu", "a100", "--batch-size", "4",
            "--seq-len", "32", *extra]  # fmt: skip


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--pue", "nan", "--steps", "10"], "--pue: nan is not a finite number"),
        (["--grid-intensity", "inf", "--steps", "10"], "--grid-intensity: inf is not a finite"),
        (["--tokens", "1e400"], "--tokens: inf is not a finite number"),
        (["--batch-size", "inf"], "--batch-size: inf is not a finite number"),
        (["--batch-size", "1e308"], "--batch-size must be a positive integer ≤ 2,147,483,647"),
        (["--seq-len=-inf"], "--seq-len: -inf is not a finite number"),
        (["--pue", "1e308", "--steps", "10", "--grid-intensity", "1e308"], "co2_kg is inf"),
    ],
)
@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_hf_estimate_refuses_non_finite(config, capsys, extra, message, json_flag):
    assert main([*_hf(config, *extra), *json_flag]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "NaN" not in captured.out
    assert captured.err.count("\n") == 1 and message in captured.err, captured.err


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_profile_estimate_never_prints_nan(capsys, json_flag):
    assert main([*PROFILE, "--batch-size", "1e308", *json_flag]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "energy_j is nan" in captured.err, captured


def test_hf_estimate_json_is_strict_json(config, capsys):
    assert main([*_hf(config, "--steps", "10", "--grid-intensity", "350"), "--json"]) == 0
    out = capsys.readouterr().out
    json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))


def _returns(call, seconds=20.0):
    box = {}
    worker = threading.Thread(target=lambda: box.setdefault("rc", call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s"
    return box["rc"]


@pytest.mark.parametrize("flag", ["--hf-config", "--input"])
def test_a_fifo_as_input_is_refused(tmp_path, capsys, flag):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    if flag == "--hf-config":
        argv = ["estimate", "--hf-config", str(fifo), "--gpu", "a100", "--batch-size", "4",
                "--seq-len", "32"]  # fmt: skip
    else:
        argv = ["estimate", "--profile", "mayaki2025-a100", "--input", str(fifo)]
    assert _returns(lambda: main(argv)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a regular file (a FIFO" in err, err


@pytest.mark.parametrize("output", ["--json", "--output"])
def test_input_rows_that_overflow_are_refused_by_row(tmp_path, capsys, output):
    path = tmp_path / "configs.csv"
    path.write_text(
        "batch_size,seq_len,d_model,n_heads,n_layers\n64,320,512,8,6\n1e308,320,512,8,6\n"
    )
    out = tmp_path / "estimates.csv"
    extra = ["--json"] if output == "--json" else ["--output", str(out)]
    argv = ["estimate", "--profile", "mayaki2025-a100", "--input", str(path), *extra]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "NaN" not in captured.out and "null" not in captured.out
    assert captured.err.count("\n") == 1, captured.err
    assert f"{path}, row 2: the estimate overflows" in captured.err
    assert not out.exists()
