"""Tests of powerfit.steps.calibration: the bounded per-GPU calibration of step times."""

from __future__ import annotations

import numpy as np
import pytest

from powerfit.steps.calibration import Calibration, fit_calibration


def test_calibration_is_bounded():
    rng = np.random.default_rng(0)
    s = rng.uniform(0.1, 2.0, 8)
    n = rng.integers(1000, 5000, 8).astype(float)
    y = 1.1 * s + 5e-6 * n
    cal = fit_calibration("a100", s, n, y)
    assert cal.scale == pytest.approx(1.1, rel=1e-3) and cal.launch_s == pytest.approx(
        5e-6, rel=1e-2
    )
    assert cal.mape_after < 0.1 < cal.mape_before
    few = fit_calibration("a100", s[:3], n[:3], y[:3])  # too few steps for the launch term
    assert few.launch_s == pytest.approx(0.0, abs=1e-11) and few.scale > 1.1
    wild = fit_calibration("a100", s, n, 3 * s)  # a 3x bias is not calibrated away
    lo, hi = Calibration.BOUNDS["scale"]
    low, high = Calibration.BOUNDS["launch_s"]
    assert lo <= wild.scale <= hi and low <= wild.launch_s <= high
    tiny = fit_calibration("a100", s, n, 0.01 * s)  # nor a 100x one, either way
    assert tiny.scale == pytest.approx(lo) and tiny.launch_s == pytest.approx(low, abs=1e-11)
