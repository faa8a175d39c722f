"""Tests of ``powerfit measure`` and of the GPU campaign script, run on the CPU."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from powerfit.cli import main
from powerfit.formats import OPERATION_COLUMNS, RUN_COLUMNS
from powerfit.store.readers.rows import DEVICE_SPEC_COLUMNS

torch = pytest.importorskip("torch")

CAMPAIGN = Path(__file__).resolve().parents[2] / "experiments" / "gpu_campaign.py"


@pytest.fixture(autouse=True, scope="module")
def restore_threads():
    """--quick runs set PyTorch to one thread; give other tests their setting back."""
    saved = torch.get_num_threads()
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Files written by ``powerfit measure ops/steps --quick`` on the CPU."""
    out = tmp_path_factory.mktemp("measure")
    ops, steps = out / "ops.csv", out / "steps.csv"
    common = ["--device", "cpu", "--quick", "--n-configs"]
    assert main(["measure", "ops", *common, "1", "--out", str(ops)]) == 0
    assert main(["measure", "steps", *common, "4", "--min-time", "0", "--out", str(steps)]) == 0
    return ops, steps


def test_ops_file_has_the_canonical_columns_and_valid_values(outputs):
    frame = pd.read_csv(outputs[0])
    assert tuple(frame.columns) == OPERATION_COLUMNS + DEVICE_SPEC_COLUMNS
    assert len(frame) == 16
    assert (frame["duration_s"] > 0).all() and (frame["flops"] > 0).all()
    assert frame["energy_j"].isna().all()
    assert frame["tool"].str.contains(r"\(none\)").all()


def test_steps_file_has_the_canonical_columns_and_valid_values(outputs):
    frame = pd.read_csv(outputs[1])
    assert tuple(frame.columns) == RUN_COLUMNS + DEVICE_SPEC_COLUMNS
    assert len(frame) == 4
    assert (frame["duration_s"] > 0).all() and (frame["n_layers"] >= 1).all()
    assert frame["energy_j"].isna().all()


def test_outputs_ingest_into_a_fresh_store(outputs, tmp_path):
    pytest.importorskip("sqlalchemy")
    from powerfit.exceptions import DataError
    from powerfit.store import open_store

    # The files name the device they measured (a CPU, stored as 'measured'); --set gpu
    # may not replace it.
    with open_store(tmp_path / "store.db") as store:
        for path in outputs:
            with pytest.raises(DataError, match=r"column 'gpu': --set gpu=.* would replace"):
                store.ingest(path, overrides={"gpu": "NVIDIA A100 80GB PCIe"})
            result = store.ingest(path)
            assert not result.duplicate
        counts = store.counts()
    assert counts["operation_measurements"] == 16
    assert counts["run_measurements"] == 4


def test_outputs_ingest_as_written_with_the_measured_cpu_peak(outputs, tmp_path, capsys):
    """The harness's own output ingests with no edit: the CPU carries its measured specs."""
    ops = pd.read_csv(outputs[0])
    peak = ops["device_peak_flops"].iloc[0]
    assert (ops["device_peak_flops"] == peak).all() and ops["device_power_limit_w"].isna().all()
    assert peak >= (ops["flops"] / ops["duration_s"]).max()  # no row above the peak
    assert ops["device_memory_bandwidth"].iloc[0] > 0
    db = str(tmp_path / "store.db")
    assert main(["ingest", *map(str, outputs), "--db", db]) == 0
    assert main(["ingest", str(outputs[0]), "--db", db]) == 0
    assert "already ingested" in capsys.readouterr().out
    from powerfit.store import open_store

    with open_store(db) as store:
        stored = store.operation_measurements()
        gpus = {g["name"]: g for g in store.gpus()}
    name = ops["gpu"].iloc[0]
    assert gpus[name]["origin"] == "measured"
    # Both files measured the peak: the store keeps the larger.
    steps_peak = pd.read_csv(outputs[1])["device_peak_flops"].iloc[0]
    assert gpus[name]["peak_flops"]["fp32"] == pytest.approx(max(peak, steps_peak))
    assert len(stored) == 16 and stored["efficiency"].max() <= 1.0


def test_configs_file_and_bad_arguments(tmp_path, capsys):
    configs = tmp_path / "configs.csv"
    pd.DataFrame(
        {
            "model": ["gru"],
            "n_layers": [1],
            "hidden_size": [8],
            "batch_size": [2],
            "seq_len": [3],
            "vocab_size": [20],
        }
    ).to_csv(configs, index=False)
    out = tmp_path / "steps.parquet" if importlib.util.find_spec("pyarrow") else None
    out = out or tmp_path / "steps.csv"
    args = ["measure", "steps", "--device", "cpu", "--threads", "1", "--min-time", "0"]
    assert main([*args, "--configs", str(configs), "--out", str(out)]) == 0
    frame = pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out)
    assert frame["hidden_size"].tolist() == [8] and frame["vocab_size"].tolist() == [20]

    assert main(["measure", "ops", "--device", "cpu", "--n-configs", "0", "--out", "x"]) == 1
    assert "--n-configs must be >= 1" in capsys.readouterr().err
    assert main(["measure", "ops", "--device", "tpu", "--out", "x"]) == 1
    assert "device" in capsys.readouterr().err
    code = main([*args, "--configs", str(tmp_path / "none.csv"), "--out", str(out)])
    assert code == 1 and "--configs" in capsys.readouterr().err


def test_meter_action_on_the_cpu(capsys):
    assert main(["measure", "meter", "--device", "cpu", "--duration", "0.01"]) == 0
    assert "time only" in capsys.readouterr().out


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["measure", "ops", "--help"])
    assert "powerfit measure ops --device cpu --quick --out ops.csv" in capsys.readouterr().out


def test_campaign_dry_run_on_the_cpu(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_campaign", CAMPAIGN)
    campaign = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(campaign)
    logger = logging.getLogger("powerfit")
    handlers = list(logger.handlers)
    try:
        code = campaign.main(["--out", str(tmp_path), "--quick", "--budget-s", "60"])
    finally:
        for handler in logger.handlers[len(handlers) :]:
            handler.close()
            logger.removeHandler(handler)
    assert code == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["campaign.log", "environment.json", "ops.csv", "steps.csv"]
    ops, steps = pd.read_csv(tmp_path / "ops.csv"), pd.read_csv(tmp_path / "steps.csv")
    assert tuple(ops.columns) == OPERATION_COLUMNS and len(ops) == 48
    assert tuple(steps.columns) == RUN_COLUMNS and len(steps) == 4
    env = json.loads((tmp_path / "environment.json").read_text())
    assert env["status"] == "complete" and env["precision"] == "fp32"
    for key in (
        "torch_version",
        "cuda_version",
        "date_utc",
        "counter",
        "idle_power_start_w",
        "allow_tf32_matmul",
        "gpu",
    ):
        assert key in env
    assert env["counter"]["moved_in_first_seconds"] is False
    assert "campaign complete" in (tmp_path / "campaign.log").read_text()


def test_campaign_stops_at_its_budget_and_still_writes_valid_files(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_campaign", CAMPAIGN)
    campaign = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(campaign)
    logger = logging.getLogger("powerfit")
    handlers = list(logger.handlers)
    try:
        # The budget counts from the module's import: a tiny one leaves no time to sweep.
        code = campaign.main(["--out", str(tmp_path), "--quick", "--budget-s", "0.5"])
    finally:
        for handler in logger.handlers[len(handlers) :]:
            handler.close()
            logger.removeHandler(handler)
    assert code == 0
    ops, steps = pd.read_csv(tmp_path / "ops.csv"), pd.read_csv(tmp_path / "steps.csv")
    assert tuple(ops.columns) == OPERATION_COLUMNS and tuple(steps.columns) == RUN_COLUMNS
    env = json.loads((tmp_path / "environment.json").read_text())
    assert env["ops"]["unfinished"] + env["ops"]["rows"] == 48
