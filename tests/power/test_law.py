"""Tests of powerfit.power.law: the bounded power law, its fit, its interval and the prior."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from powerfit.architectures.hf import from_hf_config
from powerfit.training import estimate_step


def test_prior_power_law_is_bounded_by_idle_and_tdp(tiny_gpt2, constant_operator_model):
    from powerfit.power.law import prior_power

    pm = prior_power("NVIDIA A100 80GB PCIe", 300.0)
    assert pm.power(0.0) == pytest.approx(60.0)
    assert pm.power(1.0) == pytest.approx(300.0)
    assert pm.power(5.0) == pytest.approx(300.0)
    lo, hi = pm.interval(0.4)
    assert 0.0 <= lo <= 60.0 < pm.power(0.4) < hi <= 300.0  # idle to TDP, nothing known
    assert not pm.fitted and pm.prior and pm.outside(0.4)
    c = from_hf_config(tiny_gpt2)
    est = estimate_step(c, "a100", 2, 16, operator_model=constant_operator_model, power_model=pm)
    assert est.power_source == "prior" and est.power_outside
    assert est.energy_j == pytest.approx(est.step_time_s * pm.power(est.utilisation))


def test_fit_power_recovers_a_law_and_respects_bounds():
    from powerfit.power.law import POWER_BOUNDS, fit_power, power_law

    rng = np.random.default_rng(0)
    u = rng.uniform(0.05, 0.9, 200)
    truth = power_law(u, 60.0, 280.0, 0.8)
    fit = fit_power("x", u, truth * np.exp(rng.normal(0, 0.02, u.size)), 300.0)
    assert fit.p_idle_w == pytest.approx(60.0, rel=0.1)
    assert fit.p_max_w == pytest.approx(280.0, rel=0.1)
    assert fit.gamma == pytest.approx(0.8, rel=0.15)
    # power above TDP and below any idle: the fit stays inside its physical bounds
    wild = fit_power("x", u, 5.0 * truth, 300.0)
    wild.check_bounds()
    assert 0 < wild.p_idle_w < wild.p_max_w <= 300.0
    lo, hi = POWER_BOUNDS["gamma"]
    assert lo <= wild.gamma <= hi
    with pytest.raises(ValueError, match="positive"):
        fit_power("x", u, -truth, 300.0)


def test_power_fit_interval_widens_outside_measured_utilisation():
    from powerfit.power.law import PowerFit

    fit = PowerFit("x", 300.0, 80.0, 200.0, 1.0, 0.05, True, (0.1, 0.4))
    u = np.array([0.2, 0.4, 0.7, 1.0])
    p = fit.power(u)
    lo, hi = fit.interval(u)
    assert np.all((lo <= p) & (p <= hi) & (hi <= 300.0))
    assert hi[-1] == pytest.approx(300.0)  # above the measured range: up to TDP
    assert (hi[2] - lo[2]) / p[2] > (hi[0] - lo[0]) / p[0]
    assert not fit.outside(0.2) and fit.outside(0.7)
    assert replace(fit, fitted=False).outside(0.2)
