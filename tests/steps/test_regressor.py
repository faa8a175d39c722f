"""Tests of powerfit.steps.regressor: the step-time estimator, the GPU a column."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from powerfit.steps.calibration import Calibration


def test_step_time_regressor_gpu_is_a_column(tmp_path, tiny_gpt2):
    from sklearn.base import clone

    from powerfit.steps.regressor import StepTimeRegressor

    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_gpt2))
    X = pd.DataFrame(
        {
            "gpu": ["NVIDIA A100 80GB PCIe", "NVIDIA A100 80GB PCIe", "Tesla V100-PCIE-32GB"],
            "config": [str(path), json.dumps(tiny_gpt2), str(path)],
            "batch_size": [2, 4, 2],
            "seq_len": [16, 32, 16],
        }
    )
    raw = StepTimeRegressor(calibrate=False).fit(X, np.ones(3))
    t = raw.predict(X)
    assert raw.calibrations_ == {} and (t > 0).all() and t[1] > t[0]
    model = clone(StepTimeRegressor()).fit(X, 1.1 * t)
    assert set(model.calibrations_) == {"NVIDIA A100 80GB PCIe", "Tesla V100-PCIE-32GB"}
    for scale, launch in model.calibrations_.values():
        assert Calibration.BOUNDS["scale"][0] <= scale <= Calibration.BOUNDS["scale"][1]
        assert Calibration.BOUNDS["launch_s"][0] <= launch <= Calibration.BOUNDS["launch_s"][1]
    assert np.allclose(model.predict(X), 1.1 * t, rtol=0.02)
    with pytest.raises(ValueError, match="config"):
        model.predict(X.drop(columns="config"))
