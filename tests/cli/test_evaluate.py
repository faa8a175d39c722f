"""Tests of ``powerfit evaluate``."""

import json

import pandas as pd
import pytest

from powerfit.cli import main


@pytest.fixture
def env(data_home, monkeypatch):
    monkeypatch.setenv("POWERFIT_DATA_HOME", str(data_home))
    return data_home / "mayaki2025" / "processed"


def test_help_shows_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    out = capsys.readouterr().out
    assert "powerfit evaluate --train" in out and "gpu-rtx" in out


def test_one_protocol_as_json(env, capsys):
    code = main(["evaluate", "--protocol", "gpu-rtx", "--bootstrap", "2", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    rows = {row["model"]: row for row in result["table"]}
    assert set(rows) == {"paper", "powerfit", "gbm"}
    assert all(row["protocol"] == "gpu-rtx" and row["n_test"] == 149 for row in rows.values())
    assert rows["powerfit"]["mape"] < rows["gbm"]["mape"]
    assert rows["powerfit"]["coverage"] is not None and rows["gbm"]["coverage"] is None


def test_table_names_targets(env, capsys):
    assert main(["evaluate", "--protocol", "layers-12", "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert "MAPE [%]" in out and "worst APE" in out and "≤5%" in out


def test_train_test_files_write_predictions(env, tmp_path, capsys):
    raw = pd.read_csv(env / "SubsetDataForTransformer_energyModel.csv", index_col=0)
    train, test = raw[raw.num_layers < 12], raw[raw.num_layers == 12]
    train.to_csv(tmp_path / "train.csv")
    test.to_csv(tmp_path / "test.csv")
    out = tmp_path / "pred.csv"
    args = [
        "evaluate",
        "--train",
        str(tmp_path / "train.csv"),
        "--test",
        str(tmp_path / "test.csv"),
    ]
    assert main([*args, "--predictions", str(out), "--bootstrap", "0"]) == 0
    predictions = pd.read_csv(out)
    assert len(predictions) == len(test)
    assert {"energy_j_paper", "energy_j_powerfit", "energy_j_gbm"} <= set(predictions)
    assert "powerfit" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--test", "x.csv"], "--train"),
        (["--protocol", "nope"], "unknown protocol"),
        (["--confidence", "2"], "confidence"),
    ],
)
def test_bad_command_lines(env, argv, message, capsys):
    assert main(["evaluate", *argv]) == 1
    assert message in capsys.readouterr().err


def test_steps_suite_reports_every_gpu_with_training_labels(data_home, monkeypatch, capsys):
    monkeypatch.setenv("POWERFIT_DATA_HOME", str(data_home))
    if not (data_home / "neusight2025").is_dir():
        pytest.skip(
            pytest.skip(
                "needs the neusight2025 data set (github.com/sitar-lab/NeuSight, see "
                "powerfit/datasets/neusight2025.py): set POWERFIT_DATA_HOME to a folder "
                "holding neusight2025/"
            )
        )
    assert main(["evaluate", "--suite", "steps", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = {row["gpu"]: row for row in result["table"]}
    assert set(rows) == {"NVIDIA A100 80GB PCIe", "Tesla V100-PCIE-32GB"}
    a100 = rows["NVIDIA A100 80GB PCIe"]
    assert a100["steps"] == 10 and a100["neusight_published"] == 7.6
    # the operator graph timed by the A100's own laws beats the roofline
    assert 0 < a100["in-gpu"] < a100["roofline"]
    # the half-precision and fused rows, each saying what it compares
    extra = result["half_precision_and_fused"]
    assert {"fp16 layer", "fused attention", "fused fp32 forward"} <= {r["row"] for r in extra}
    assert all(r["what"] and r["n"] > 0 for r in extra)


@pytest.mark.slow
def test_progress_on_a_terminal_only(env, tmp_path, cli_on_terminal):
    args = ["evaluate", "--protocol", "random", "--seeds", "2", "--bootstrap", "0", "--jobs", "1"]
    code, out, terminal = cli_on_terminal(args, tmp_path)
    assert code == 0, terminal
    assert "protocol splits" in terminal and "2/2" in terminal
    assert "MAPE [%]" in out
    code, out, terminal = cli_on_terminal([*args, "--json"], tmp_path)
    assert code == 0, terminal
    assert json.loads(out)["table"]  # stdout is pure JSON
    assert "protocol splits" not in terminal
    # not a terminal: nothing but the table
    assert main(args) == 0


def test_parallel_suite_reports_neusight_4_gpu_steps(data_home, monkeypatch, capsys):
    monkeypatch.setenv("POWERFIT_DATA_HOME", str(data_home))
    if not (data_home / "neusight2025" / "parallel").is_dir():
        pytest.skip(
            "needs the neusight2025 data set (github.com/sitar-lab/NeuSight): "
            "set POWERFIT_DATA_HOME to a folder holding neusight2025/"
        )
    assert main(["evaluate", "--suite", "parallel", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    options = {row["option"]: row for row in result["table"]}
    assert set(options) == {"dp4", "tp4", "pp4_1"}
    assert options["tp4"]["neusight_published_pct"] == 8.4
    assert result["mean"][0]["steps"] == 3
