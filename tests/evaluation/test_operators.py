"""Tests of powerfit.evaluation.operators: the operator suite on NeuSight's data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from powerfit.evaluation.operators import (
    EVALUATION_STAGES,
    evaluate_operators,
    format_operator_table,
    neusight_operator_frame,
)
from powerfit.kernels.model import (
    OperatorTimeModel,
)
from powerfit.kernels.roofline import roofline_latency


@pytest.fixture(scope="module")
def neusight_sample(data_home):
    if not (data_home / "neusight2025").is_dir():
        pytest.skip(
            pytest.skip(
                "needs the neusight2025 data set (github.com/sitar-lab/NeuSight, see "
                "powerfit/datasets/neusight2025.py): set POWERFIT_DATA_HOME to a folder "
                "holding neusight2025/"
            )
        )
    frame = neusight_operator_frame(data_home)
    gpus = ["NVIDIA A100 80GB PCIe", "Tesla T4", "Tesla V100-PCIE-32GB"]
    ops = ["bmm", "ln", "add"]
    sub = frame[frame["gpu"].isin(gpus) & frame["op"].isin(ops)]
    return (
        sub.groupby(["gpu", "op", "collection"])
        .sample(frac=1.0, random_state=0)
        .groupby(["gpu", "op", "collection"])
        .head(150)
        .reset_index(drop=True)
    )


def test_evaluation_on_a_neusight_subsample(neusight_sample):
    seen = []
    table = evaluate_operators(neusight_sample, max_rows=300, progress=seen.append)
    assert seen == list(EVALUATION_STAGES)  # each stage announced once, in order
    assert set(table["gpu"]) == set(neusight_sample["gpu"])
    assert set(table["family"]) == {"matmul", "memory"}
    assert (table["n_test"] > 0).all()
    for col in ("mape_in_gpu", "mape_logo", "mape_roofline"):
        assert np.isfinite(table[col]).all() and (table[col] >= 0).all()
    text = format_operator_table(table)
    assert "leave-one-GPU-out" in text
    assert table.attrs["seconds"] < 30


def test_real_fit_beats_roofline_in_gpu(neusight_sample):
    frame = neusight_sample
    y = frame["latency_s"].to_numpy()
    model = OperatorTimeModel(max_rows=300).fit(frame, y)
    mape = np.mean(np.abs(model.predict(frame) / y - 1))
    roof = np.mean(np.abs(roofline_latency(frame) / y - 1))
    assert mape < 0.25 < roof


@pytest.mark.slow
def test_cli_operator_suite(data_home, monkeypatch, capsys):
    from powerfit.cli import main

    if not (data_home / "neusight2025").is_dir():
        pytest.skip(
            pytest.skip(
                "needs the neusight2025 data set (github.com/sitar-lab/NeuSight, see "
                "powerfit/datasets/neusight2025.py): set POWERFIT_DATA_HOME to a folder "
                "holding neusight2025/"
            )
        )
    monkeypatch.setenv("POWERFIT_DATA_HOME", str(data_home))
    assert main(["evaluate", "--suite", "operators", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = pd.DataFrame(result["table"])
    assert len(rows) == 15  # 8 GPUs × 2 families; NeuSight has no H100 memory-bound rows
    assert (rows["mape_logo"] < rows["mape_roofline"]).sum() >= 12
    assert result["seconds"] < 60
