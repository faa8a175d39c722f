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
    assert out["config"]["n_layers"] == 6 and isinstance(out["config"]["n_layers"], int)
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
        (["--profile", "nope", *MODEL_A], "operators-fp32: operator laws, used by --hf-config"),
        (["--model", "my-model", *MODEL_A], "--model expects models:/NAME@ALIAS"),
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


@pytest.mark.parametrize("profile", ["mayaki2025-a100", "mayaki2025-rtx2080ti"])
def test_one_configuration_in_plain_python_matches_the_profile(profile):
    from powerfit.cli.estimate import _estimate_one
    from powerfit.paper.profiles import load_profile

    loaded = load_profile(profile)
    config = {"n_layers": 7.0, "d_model": 500.0, "n_heads": 7.0, "batch_size": 60.0}
    config["seq_len"] = 333.0
    operations, energy = _estimate_one(loaded, config)
    table, expected = loaded.estimate(pd.DataFrame({k: [v] for k, v in config.items()}))
    assert energy == pytest.approx(float(expected.iloc[0]), rel=1e-12)
    records = table.drop(columns="config").to_dict(orient="records")
    assert [o["op"] for o in operations] == [r["op"] for r in records]
    for got, want in zip(operations, records, strict=True):
        assert set(got) == set(want)
        for key in set(got) - {"op"}:
            assert got[key] == pytest.approx(want[key], rel=1e-12)


def test_one_configuration_imports_no_numerical_library():
    # A cold `powerfit estimate` of one configuration is the interpreter's start
    # plus powerfit's own modules: no NumPy, pandas, SciPy or scikit-learn.
    code = (
        "import sys, contextlib, io\n"
        "from powerfit.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['estimate', *{MODEL_A!r}, '--json']) == 0\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stdout.replace("'", '"')))
    assert not loaded & {"numpy", "pandas", "scipy", "sklearn", "mlflow", "sqlalchemy"}


def _configs_file(path, rows=23, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "batch_size": rng.integers(8, 512, rows),
            "seq_len": rng.integers(64, 2048, rows),
            "d_model": rng.choice([256, 512, 768], rows),
            "n_heads": rng.choice([4, 8], rows),
            "n_layers": rng.integers(2, 25, rows),
        }
    )
    frame.to_csv(path, index=False)
    return frame


def test_input_is_streamed_in_blocks(tmp_path, monkeypatch, capsys):
    from powerfit.cli import estimate
    from powerfit.paper.profiles import load_profile

    monkeypatch.setattr(estimate, "CHUNK_ROWS", 5)  # 23 rows: 5 blocks
    src, dst = tmp_path / "configs.csv", tmp_path / "out.csv"
    frame = _configs_file(src)
    assert main(["estimate", "--input", str(src), "--output", str(dst)]) == 0
    out = pd.read_csv(dst)
    table, energy = load_profile("mayaki2025-a100").estimate(frame)
    assert len(out) == len(frame)
    pd.testing.assert_frame_equal(out[list(frame.columns)], frame)
    assert out["energy_j"].to_numpy() == pytest.approx(energy.to_numpy(), rel=1e-12)
    wide = table.pivot(index="config", columns="op")
    for op in table["op"].unique():
        for value in ("flops", "efficiency", "duration_s"):
            got = out[f"{op}_{value}"].to_numpy()
            assert got == pytest.approx(wide[(value, op)].to_numpy(), rel=1e-12)
    assert "wrote 23 estimates" in capsys.readouterr().err
    # The same blocks as one JSON list on stdout.
    assert main(["estimate", "--input", str(src), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["energy_j"] for r in records] == pytest.approx(list(out["energy_j"]), rel=1e-12)


def test_bad_row_in_a_later_block_is_named_and_no_partial_output(tmp_path, monkeypatch, capsys):
    from powerfit.cli import estimate

    monkeypatch.setattr(estimate, "CHUNK_ROWS", 4)
    src, dst = tmp_path / "configs.csv", tmp_path / "out.csv"
    frame = _configs_file(src, rows=12)
    frame.loc[9, "n_heads"] = -2  # data row 10, in the third block
    frame.to_csv(src, index=False)
    assert main(["estimate", "--input", str(src), "--output", str(dst)]) == 1
    err = capsys.readouterr().err
    assert str(src) in err and "row 10" in err and "'n_heads'" in err
    assert not dst.exists()


def test_light_tables_match_the_library():
    # The single-configuration path keeps its own copies to avoid importing the
    # library's numerical modules; they must say the same.
    import numpy as np

    from powerfit.cli.estimate import _REQUIRED, _TRANSFORMER_FLOPS
    from powerfit.paper import flops
    from powerfit.paper.durations import REQUIRED_COLUMNS

    assert _REQUIRED == {k: tuple(v) for k, v in REQUIRED_COLUMNS.items()}
    b, s, d, h = 48.0, 333.0, 500.0, 7.0
    for op, count in _TRANSFORMER_FLOPS.items():
        counter = getattr(flops, op)
        args = {"attention_softmax": (b, s, h)}.get(op)
        if args is None:
            args = (b, s, d, h) if "attention" in op else (b, s, d)
        assert count(b, s, d, h) == pytest.approx(float(np.asarray(counter(*args))), rel=1e-15)


def test_list_profiles_lists_the_bundled_operator_laws(capsys):
    from powerfit.kernels.model import load_operator_model
    from powerfit.paper.profiles import available_profiles, load_profile

    assert main(["estimate", "--list-profiles"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = available_profiles()
    assert lines[: len(names)] == [f"{n}: {load_profile(n).description}" for n in names]
    (operators,) = [line for line in lines if line.startswith("operators-fp32: fp32 ")]
    fitted = operators.split("fitted on: ")[1].split(";")[0].split(", ")
    assert fitted == sorted(load_operator_model("fp32").specs_)
    # Read with json alone: listing the operator profiles imports no numerical library.
    code = (
        "import sys\n"
        "from powerfit.cli.estimate import _operator_profiles\n"
        "assert 'operators-fp32' in [p['name'] for p in _operator_profiles()]\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'pandas', 'sklearn'}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_estimate_with_a_registered_model_uses_the_verified_loader(recorded_fits, capsys):
    from powerfit.tracking import load_model

    uri, _, second = recorded_fits
    model_uri = f"models:/{second.model_name}@champion"
    args = ["estimate", "--model", model_uri, "--tracking-uri", uri, *MODEL_A, "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    (estimate,) = out["estimates"]
    assert estimate["config"] == {
        "n_layers": 6, "batch_size": 64, "seq_len": 320, "d_model": 512, "n_heads": 8
    }  # fmt: skip
    expected = load_model(model_uri, uri).predict(pd.DataFrame([estimate["config"]]))[0]
    assert estimate["energy_j"] == pytest.approx(float(expected))
    assert main(["estimate", "--model", model_uri, "--tracking-uri", uri, *MODEL_A]) == 0
    assert "J per training step" in capsys.readouterr().out


def test_top_level_help_says_what_estimate_and_measure_do(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--hf-config" in text and "registered model (--model)" in text
    assert "GPU (or its CPU)" in text and "env" in text
