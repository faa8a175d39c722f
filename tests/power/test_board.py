"""Tests of powerfit.power.board: the board power law, its fit, transfer and power limit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from powerfit.power.board import (
    BOARD_BOUNDS,
    BoardPowerLaw,
    LimitLaw,
    board_power,
    fit_board_power,
    fit_limit_law,
    fit_transfer_shape,
    prior_board_power,
    transfer_board_power,
)


def _synthetic(n=150, seed=0, noise=0.02):
    rng = np.random.default_rng(seed)
    uc, um = rng.uniform(0, 0.8, n), rng.uniform(0, 0.8, n)
    uc[:10], um[:10] = 0.0, 0.0  # a few idle steps
    p = board_power(uc, um, 40.0, 230.0, 4.0, 2.0, 1.3) * np.exp(rng.normal(0, noise, n))
    return uc, um, p, rng.integers(0, 6, n)


def test_fit_recovers_a_law_with_uncertainties_and_bounds():
    uc, um, p, groups = _synthetic()
    law = fit_board_power("x", uc, um, p, 250.0, groups=groups, precision="fp32",
                          idle_prior=False)  # fmt: skip
    assert law.p_idle_w == pytest.approx(40.0, rel=0.1)
    assert law.p_max_w == pytest.approx(230.0, rel=0.1)
    assert set(law.std) == {"p_idle_w", "p_max_w", "k_c", "k_m", "gamma"}
    assert all(v >= 0 and np.isfinite(v) for v in law.std.values())
    assert law.std["p_idle_w"] < 10.0
    assert law.log_q[0] < 0 < law.log_q[1]
    assert law.fitted and law.n == 150 and law.precision == "fp32"
    law.check_bounds()
    # the idle prior (GDDR: 0.25 TDP = 62.5 W) pulls the floor up a little, not far
    pulled = fit_board_power("x", uc, um, p, 250.0, groups=groups)
    assert 40.0 < pulled.p_idle_w < 62.5
    assert law.metrics["idle_measured"]


def test_fit_stays_physical_on_impossible_measurements():
    uc, um, _, _ = _synthetic()
    law = fit_board_power("x", uc, um, np.full(uc.size, 900.0), 250.0)  # above TDP
    assert 0 <= law.p_idle_w <= law.p_max_w <= law.tdp_w
    lo, hi = BOARD_BOUNDS["gamma"]
    assert lo <= law.gamma <= hi


def test_power_is_between_idle_and_limit_and_non_decreasing():
    law = BoardPowerLaw("NVIDIA H100 80GB HBM3", 700.0, 90.0, 650.0, 3.0, 2.0, 1.2)
    grid = np.linspace(0, 1, 41)
    for um in (0.0, 0.5, 1.0):
        p = law.power(grid, um)
        assert np.all(np.diff(p) >= -1e-9)
        assert np.all((p >= law.p_idle_w - 1e-9) & (p <= law.tdp_w))
    lo, hi = law.interval(0.5, 0.5)
    assert 0 <= lo <= law.power(0.5, 0.5) <= hi <= law.tdp_w
    assert law.power(5.0, 5.0) <= law.tdp_w  # out-of-range fractions are clipped


def test_power_limit_caps_power_slows_the_step_and_is_refused_outside_the_range():
    law = BoardPowerLaw(
        "NVIDIA H100 80GB HBM3",
        700.0,
        90.0,
        680.0,
        5.0,
        2.0,
        1.0,
        limit_law=LimitLaw(eta=0.5, rho=0.97),
    )
    p0 = float(law.power(0.8, 0.3))
    p = float(law.power(0.8, 0.3, 400.0))
    assert p <= 400.0 < p0
    assert float(law.slowdown(0.8, 0.3, 400.0)) > 1.0
    assert float(law.slowdown(0.0, 0.0, 400.0)) == 1.0  # an idle step is not limited
    assert float(law.interval(0.8, 0.3, 400.0)[1]) <= 400.0
    with pytest.raises(ValueError, match=r"200–700 W"):
        law.power(0.5, 0.5, 150.0)
    with pytest.raises(ValueError, match="outside the range"):
        law.power(0.5, 0.5, 800.0)


def test_limit_law_fit_recovers_its_exponent():
    rng = np.random.default_rng(1)
    p0 = rng.uniform(150, 250, 80)
    lim = rng.uniform(100, 200, 80)
    true = LimitLaw(eta=0.6, rho=0.95)
    pw, slow = zip(*(true.apply(a, 40.0, b) for a, b in zip(p0, lim, strict=True)), strict=True)
    law = fit_limit_law(p0, np.full(80, 40.0), lim, np.array(slow, float), np.array(pw, float))
    assert law.eta == pytest.approx(0.6, rel=0.05)
    assert law.rho == pytest.approx(0.95, rel=0.02)


def test_transfer_uses_memory_type_and_widens_the_interval():
    uc, um, p, g = _synthetic()
    a = fit_board_power("Tesla V100-PCIE-32GB", uc, um, p, 250.0, groups=g)
    b = fit_board_power("NVIDIA A40", uc, um, p * 1.2, 300.0, groups=g)
    t = transfer_board_power([a, b], "NVIDIA H100 80GB HBM3", 700.0)
    assert t.source == "transferred" and not t.fitted
    assert t.p_idle_w / 700.0 == pytest.approx(a.p_idle_w / 250.0)  # HBM like the V100
    assert t.log_q[1] - t.log_q[0] > max(a.log_q[1] - a.log_q[0], b.log_q[1] - b.log_q[0])
    gd = transfer_board_power([a], "NVIDIA L4", 72.0)  # no GDDR board measured
    assert gd.p_idle_w == pytest.approx(0.25 * 72.0)


def test_round_trip_and_prior():
    uc, um, p, g = _synthetic()
    law = fit_board_power("Tesla V100-PCIE-32GB", uc, um, p, 250.0, groups=g)
    again = BoardPowerLaw.from_dict(law.to_dict())
    assert float(again.power(0.3, 0.2)) == pytest.approx(float(law.power(0.3, 0.2)))
    bad = {**law.to_dict(), "p_max_w": 400.0}
    with pytest.raises(ValueError, match="P_max"):
        BoardPowerLaw.from_dict(bad)
    prior = prior_board_power("NVIDIA L4", 72.0)
    assert prior.prior and float(prior.power(0, 0)) == pytest.approx(18.0)


def test_log_half_width_holds_ninety_percent_of_the_residuals():
    from powerfit.power.board import log_half_width

    r = np.log(np.linspace(0.8, 1.25, 101))
    q = log_half_width(r)
    assert np.mean(np.abs(r) <= q) >= 0.9
    assert q < np.max(np.abs(r))
    # weights: the rows of a heavily weighted group dominate
    assert log_half_width([0.01, 0.5], [9.0, 1.0]) == pytest.approx(0.01)
    assert log_half_width([]) == 0.0


def _board(gpu, tdp, idle, n, seed, shape=(0.9, 4.0, 2.0, 1.3)):
    rng = np.random.default_rng(seed)
    uc, um = rng.uniform(0, 0.8, n), rng.uniform(0, 0.8, n)
    b, kc, km, g = shape
    p = board_power(uc, um, idle, idle + b * (tdp - idle), kc, km, g)
    law = BoardPowerLaw(gpu, tdp, idle, idle + b * (tdp - idle), kc, km, g)
    return uc, um, p * np.exp(rng.normal(0, 0.01, n)), law


def test_transfer_shape_is_shared_on_each_boards_span_and_weighs_each_gpu_the_same():
    # two boards with different floors and limits share one rise: it is recovered
    data = [_board("a", 250.0, 30.0, 40, 0), _board("b", 700.0, 200.0, 40, 1)]
    shape = fit_transfer_shape(data)
    assert shape["max_fraction"] == pytest.approx(0.9, abs=0.03)
    assert shape["gamma"] == pytest.approx(1.3, rel=0.2)
    # a board with 20× the rows but another rise does not outweigh two boards that agree
    odd = _board("c", 1000.0, 100.0, 1600, 2, shape=(0.6, 1.0, 1.0, 1.0))
    shape = fit_transfer_shape([*data, _board("d", 300.0, 60.0, 40, 3), odd])
    assert shape["max_fraction"] > 0.75


def test_the_limit_tradeoff_spends_time_to_save_energy_and_describe_is_json():
    law = prior_board_power("NVIDIA H100 80GB HBM3", 700.0)
    rows = law.tradeoff(0.6, 0.3, 0.2, n=6)
    limits = [r["power_limit_w"] for r in rows]
    assert limits[0] == law.limit_range()[0] and limits[-1] == 700.0
    times = [r["step_time_s"] for r in rows]
    assert times == sorted(times, reverse=True) and times[-1] == pytest.approx(0.2)
    assert all(r["power_w"] <= r["power_limit_w"] for r in rows)
    assert all(r["energy_j"] == pytest.approx(r["power_w"] * r["step_time_s"]) for r in rows)
    d = law.describe()
    assert json.loads(json.dumps(d)) == d
    assert (
        d["source"] == "prior" and not d["fitted"] and d["power_limit_range_w"] == [200.0, 700.0]
    )
