"""Tests of powerfit.datasets.neusight2025: NeuSight's operators in SI units, checksums."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="module")
def neusight_home(data_home):
    if not (data_home / "neusight2025").is_dir():
        pytest.skip(
            pytest.skip(
                "needs the neusight2025 data set (github.com/sitar-lab/NeuSight, see "
                "powerfit/datasets/neusight2025.py): set POWERFIT_DATA_HOME to a folder "
                "holding neusight2025/"
            )
        )
    return data_home


def test_neusight_operators_in_si_units(neusight_home):
    from powerfit.datasets.neusight2025 import (
        NEUSIGHT2025_COLUMNS,
        NEUSIGHT2025_COMMIT,
        fetch_neusight2025,
    )

    data = fetch_neusight2025(neusight_home, ops=("ln", "bmm"))
    ops = data.operators
    assert tuple(ops.columns) == NEUSIGHT2025_COLUMNS
    assert set(ops["op"]) == {"ln", "bmm"}
    assert set(ops["precision"]) == {"fp32"}
    assert set(ops["collection"]) == {"train", "test"}
    assert data.commit == NEUSIGHT2025_COMMIT
    # The first row of test/bmm.csv.gz: 0.2386 ms on the L4, shape 192·(96×196)·(196×196).
    first = ops[(ops["source"] == "ops/test/bmm.csv.gz")].iloc[0]
    assert first["gpu"] == "NVIDIA L4"
    assert first["latency_s"] == pytest.approx(0.2385919988155365e-3)
    assert (first["B"], first["M"], first["N"], first["K"]) == (192, 96, 196, 196)
    bmm = ops[ops["op"] == "bmm"]
    assert bmm["H"].isna().all() and ln_rows_have_h(ops)
    assert len(data.devices) == 9
    assert data.devices["NVIDIA L4"]["Mem_Bw"] == 300
    assert {"bert_large", "gpt2_large", "opt_13"} <= set(data.models)
    train = data.steps[data.steps["mode"] == "train"]
    assert set(train["gpu"]) == {"NVIDIA A100 80GB PCIe", "Tesla V100-PCIE-32GB"}
    assert (data.steps["e2e_latency_s"] > 0).all()


def ln_rows_have_h(ops):
    ln = ops[ops["op"] == "ln"]
    return bool(ln["H"].notna().all() and ln["M"].isna().all())


def test_neusight_checksums_and_missing_folder(neusight_home, tmp_path):
    from powerfit.datasets.neusight2025 import fetch_neusight2025

    with pytest.raises(FileNotFoundError, match="POWERFIT_DATA_HOME"):
        fetch_neusight2025(tmp_path)
    copy = tmp_path / "neusight2025"
    shutil.copytree(neusight_home / "neusight2025", copy)
    device = copy / "devices" / "Tesla_T4.json"
    device.chmod(0o644)
    device.write_text(device.read_text().replace("320", "321"))
    with pytest.raises(ValueError, match=r"Tesla_T4\.json: SHA-256"):
        fetch_neusight2025(tmp_path, collections=("test",), ops=("ln",))


def test_neusight_forward_steps_beside_training_steps(neusight_home, tmp_path):
    from powerfit.datasets.neusight2025 import neusight_forward_steps, neusight_training_steps

    forward = neusight_forward_steps(neusight_home)
    train = neusight_training_steps(neusight_home)
    assert list(forward.columns) == list(train.columns)
    assert forward.groupby("gpu").size().to_dict() == {
        "NVIDIA A100-PCIE-40GB": 14,
        "Tesla P100-PCIE-16GB": 5,
        "Tesla P4": 3,
        "Tesla T4": 5,
        "Tesla V100-PCIE-32GB": 10,
    }
    assert len(train) == 13 and not set(forward.gpu) & {"NVIDIA A100 80GB PCIe"}
    assert (forward.measured_s > 0).all() and all(c.exists() for c in forward.config)
    # labels/Tesla_T4/bert_large-inf-512-8.json: e2e_latency in ms -> s
    t4 = forward.set_index(["gpu", "model", "seq_len", "batch_size"])
    step = t4.loc[("Tesla T4", "bert_large", 512, 8)]
    assert step.measured_s == pytest.approx(0.6945, rel=1e-3)
    assert step.trace is not None and step.trace.name == "bert_large-inf-512-8.csv.gz"
    # Switch's steps have no trace in this copy
    assert forward[forward.model == "switchxl4"].trace.isna().all()
    assert neusight_forward_steps(tmp_path).empty
