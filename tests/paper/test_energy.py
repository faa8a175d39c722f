"""Tests of powerfit.paper.energy and the paper's energy model refitted with its protocol."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split

from powerfit import EnergyRegressor

PAPER_DURATIONS = [
    "duration_QKV Projections",
    "duration_Attention Scores",
    "duration_Attention Output",
    "duration_Final Projection",
]


@pytest.fixture
def linear_data():
    rng = np.random.default_rng(1)
    t = pd.DataFrame(rng.uniform(0.01, 1.0, size=(200, 3)), columns=["qkv", "scores", "ffn"])
    e = 12.0 + t.to_numpy() @ np.array([300.0, 50.0, 120.0]) + rng.normal(0, 0.5, 200)
    return t, e


@pytest.mark.parametrize("solver", ["ols", "ridge", "nnls"])
def test_recovers_coefficients_by_name(linear_data, solver):
    t, e = linear_data
    model = EnergyRegressor(solver=solver, alpha=1e-6).fit(t, e)
    coefs = model.coefficients_
    assert list(coefs.index) == ["intercept", "qkv", "scores", "ffn"]
    assert coefs["qkv"] == pytest.approx(300, rel=0.01)
    assert coefs["intercept"] == pytest.approx(12, abs=0.5)
    assert model.score(t, e) > 0.99


def test_nnls_keeps_coefficients_non_negative():
    rng = np.random.default_rng(2)
    t = rng.uniform(0, 1, size=(100, 2))
    e = 5 + 10 * t[:, 0] - 8 * t[:, 1]  # a negative "power" the physics forbids
    assert EnergyRegressor(solver="ols").fit(t, e).coef_[1] < 0
    assert (EnergyRegressor(solver="nnls").fit(t, e).coef_ >= 0).all()


def test_nnls_cannot_predict_negative_energy():
    # issue 16, finding 2: a free intercept gave -7.65 J for a small configuration.
    rng = np.random.default_rng(3)
    t = rng.uniform(0.2, 1.0, size=(80, 2))  # [s], no small durations measured
    e = -40 + t @ np.array([200.0, 90.0]) + rng.normal(0, 1, 80)  # [J]
    free = EnergyRegressor(solver="nnls", positive_intercept=False).fit(t, e)
    assert free.intercept_ < 0 and free.predict(np.zeros((1, 2)))[0] < 0
    model = EnergyRegressor(solver="nnls").fit(t, e)
    assert model.intercept_ >= 0 and (model.coef_ >= 0).all()
    small = rng.uniform(0, 0.2, size=(50, 2))
    assert (model.predict(np.vstack([np.zeros((1, 2)), small])) >= 0).all()
    boot = EnergyRegressor(n_bootstrap=20, random_state=0).fit(t, e)
    assert (boot.bootstrap_coefficients_ >= 0).all(axis=None)


def test_ridge_shrinks_with_alpha(linear_data):
    t, e = linear_data
    small = EnergyRegressor(solver="ridge", alpha=0.01).fit(t, e).coef_
    large = EnergyRegressor(solver="ridge", alpha=1e4).fit(t, e).coef_
    assert np.linalg.norm(large) < np.linalg.norm(small)


def test_bootstrap_is_seeded_and_covers_truth(linear_data):
    t, e = linear_data
    a = EnergyRegressor(solver="ols", n_bootstrap=200, random_state=0).fit(t, e)
    b = EnergyRegressor(solver="ols", n_bootstrap=200, random_state=0).fit(t, e)
    np.testing.assert_array_equal(a.coef_ci_, b.coef_ci_)
    assert a.bootstrap_coefficients_.shape == (200, 4)
    low, high = a.coef_ci_[0]
    assert low < 300 < high
    med = EnergyRegressor(
        solver="ols", n_bootstrap=200, random_state=0, estimate="bootstrap-median"
    ).fit(t, e)
    np.testing.assert_allclose(med.coef_, a.bootstrap_coefficients_.median().to_numpy()[1:])


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"solver": "lasso"}, "solver"),
        ({"alpha": -1.0}, "alpha"),
        ({"n_bootstrap": -5}, "n_bootstrap"),
        ({"confidence": 1.5}, "confidence"),
        ({"estimate": "bootstrap-median"}, "n_bootstrap > 0"),
    ],
)
def test_bad_parameters(linear_data, params, match):
    t, e = linear_data
    with pytest.raises(ValueError, match=match):
        EnergyRegressor(**params).fit(t, e)


def test_paper_energy_model_reproduces_published_accuracy(mayaki):
    """Table 3/8 protocol: ridge(5) on standardised paper durations, median of bootstraps."""
    data = mayaki.transformer_energy
    strata = data["model"].astype(str) + "-" + data["num_layers"].astype(str)
    r2s, maes = [], []
    for seed in range(3):
        train, test = train_test_split(data, test_size=0.33, stratify=strata, random_state=seed)
        model = EnergyRegressor(
            solver="ridge",
            alpha=5.0,
            n_bootstrap=100,
            estimate="bootstrap-median",
            random_state=seed,
        ).fit(train[PAPER_DURATIONS], train["energy_joules"])
        pred = model.predict(test[PAPER_DURATIONS])
        r2s.append(r2_score(test["energy_joules"], pred))
        maes.append(mean_absolute_error(test["energy_joules"], pred))
    assert np.mean(r2s) == pytest.approx(0.9584, abs=0.015)  # published R2 0.9584
    assert np.mean(maes) == pytest.approx(6.30, abs=0.5)  # published MAE 6.30 J
