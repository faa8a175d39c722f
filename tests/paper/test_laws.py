"""Tests of powerfit.paper.laws: synthetic recovery and every published (GPU, operation) group."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from powerfit import PowerLawEfficiency
from powerfit.exceptions import ConvergenceError
from powerfit.paper.laws import efficiency, rolling_outlier_mask

# Published operation names -> ours (the store's readers use the same mapping).
TRANSFORMER_OPS = {
    "QKV Projections": "qkv_projections",
    "Attention Scores": "attention_scores",
    "Attention Output": "attention_output",
    "Final Projection": "final_projection",
}
# Table 1 of the paper, (eta_max [%], k, alpha); QKV and final rows as printed.
TABLE1 = {
    ("NVIDIA A100 80GB PCIe", "attention_output"): (66.83, 8.65, 0.80),
    ("NVIDIA A100 80GB PCIe", "attention_scores"): (56.47, 8.09, 0.80),
    ("NVIDIA A100 80GB PCIe", "qkv_projections"): (69.38, 10.37, 0.78),
    ("NVIDIA A100 80GB PCIe", "final_projection"): (70.43, 6.24, 0.77),
}


def _synthetic(eta_max=0.7, k=8.0, alpha=0.8, n=60, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    c = np.logspace(8, 13, n)
    eta = efficiency(c, eta_max, k, alpha) * (1 + noise * rng.standard_normal(n))
    return pd.DataFrame({"flops": c}), eta


def test_recovers_known_parameters_with_standard_errors():
    X, y = _synthetic(noise=0.01)
    law = PowerLawEfficiency().fit(X, y)
    assert law.converged_
    assert law.eta_max_ == pytest.approx(0.7, rel=0.02)
    assert law.k_ == pytest.approx(8.0, rel=0.1)
    assert law.alpha_ == pytest.approx(0.8, rel=0.05)
    for name, value in law.coefficients_.items():
        assert 0 < law.stderr_[name] < 0.2 * value
    assert law.correlation_.shape == (3, 3)
    assert law.r2_ > 0.99


def test_integer_weights_equal_repeated_points():
    # What sklearn's check_sample_weight_equivalence asks, on law-shaped data (the
    # check's own random data leave a flat valley; see test_estimator_checks.py).
    X, y = _synthetic(noise=0.03, seed=2)
    weights = np.random.default_rng(3).integers(0, 3, len(y))
    weighted = PowerLawEfficiency().fit(X, y, sample_weight=weights)
    keep = np.repeat(np.arange(len(y)), weights)
    repeated = PowerLawEfficiency().fit(X.iloc[keep], y[keep])
    for name, value in weighted.coefficients_.items():
        assert value == pytest.approx(repeated.coefficients_[name], rel=1e-5)


def test_flops_column_by_name_or_first_column():
    X, y = _synthetic()
    X2 = X.assign(other=np.arange(len(X)))[["other", "flops"]]
    a = PowerLawEfficiency().fit(X, y)
    b = PowerLawEfficiency().fit(X2, y)
    assert b.k_ == pytest.approx(a.k_)
    np.testing.assert_allclose(b.predict(X2), a.predict(X))
    c = PowerLawEfficiency().fit(X.to_numpy(), y)  # no names: first column
    assert c.k_ == pytest.approx(a.k_)


def test_predict_duration_si():
    X, y = _synthetic()
    law = PowerLawEfficiency().fit(X, y)
    t = law.predict_duration(X, peak_flops=156e12)
    np.testing.assert_allclose(t, X["flops"] / (156e12 * law.predict(X)))
    with pytest.raises(ValueError, match="peak_flops"):
        law.predict_duration(X, peak_flops=-1)


def test_outlier_filter_reproduces_two_sigma_rule():
    X, y = _synthetic(n=100, noise=0.005)
    y = y.copy()
    y[[20, 50, 80]] *= 3  # three gross outliers
    keep = rolling_outlier_mask(X["flops"], y, window=10)
    assert not keep[[20, 50, 80]].any()
    assert keep.sum() >= 90
    law = PowerLawEfficiency(outlier_filter=True).fit(X, y)
    assert law.n_samples_fit_ == keep.sum()
    assert law.alpha_ == pytest.approx(0.8, rel=0.05)
    assert PowerLawEfficiency().fit(X, y).n_samples_fit_ == 100  # off by default


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.array([[1e9], [-1e9], [2e9]]), [0.1, 0.2, 0.3], "FLOPs"),
        (np.array([[1e9], [np.nan], [2e9]]), [0.1, 0.2, 0.3], "NaN"),
        (np.array([[1e9], [2e9], [3e9]]), [0.1, 0.0, 0.3], "> 0"),
        (np.array([[1e9], [2e9]]), [0.1, 0.2], ">= 3 points"),
    ],
)
def test_bad_input(X, y, match):
    with pytest.raises(ValueError, match=match):
        PowerLawEfficiency().fit(X, y)


def test_non_convergence_raises_or_warns():
    X, y = _synthetic()
    with pytest.raises(ConvergenceError, match="did not converge"):
        PowerLawEfficiency(max_nfev=1, n_starts=1).fit(X, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        law = PowerLawEfficiency(max_nfev=1, n_starts=1, on_failure="warn").fit(X, y)
    assert not law.converged_
    assert any(issubclass(w.category, ConvergenceWarning) for w in caught)


def _groups(mayaki):
    t = mayaki.transformer_operations
    t = t[t["operation"].isin(list(TRANSFORMER_OPS))]
    for (gpu, op), g in t.groupby(["source", "operation"]):
        yield "transformer", gpu, TRANSFORMER_OPS[op], g
    for (gpu, op), g in mayaki.lstm_operations.groupby(["source", "component"]):
        yield "lstm", gpu, op, g


def test_converges_on_every_published_group(mayaki):
    rows = []
    for arch, gpu, op, g in _groups(mayaki):
        y = g["FLOPs"] / g["elapsed_time_sec"] / g["peak"]  # HEF unrounded, as a fraction
        law = PowerLawEfficiency().fit(g[["FLOPs"]].rename(columns={"FLOPs": "flops"}), y)
        assert law.converged_, (gpu, op)
        rows.append((arch, gpu, op, law.eta_max_, law.k_, law.alpha_, law.r2_))
    table = pd.DataFrame(rows, columns=["arch", "gpu", "op", "eta_max", "k", "alpha", "r2"])
    assert len(table) == 8 + 10
    transformer = table[table["arch"] == "transformer"].set_index(["gpu", "op"])
    a100 = transformer.loc["NVIDIA A100 80GB PCIe"]
    assert (a100["r2"] >= 0.94).all()
    # Two RTX groups stay below 0.94: a brute-force grid over (k, alpha) with the
    # optimal eta_max finds the same optimum, so it is the law, not the optimiser.
    rtx = transformer.loc["NVIDIA GeForce RTX 2080 Ti"]["r2"]
    assert rtx["attention_output"] >= 0.94 and rtx["final_projection"] >= 0.94
    assert rtx["attention_scores"] == pytest.approx(0.894, abs=0.005)
    assert rtx["qkv_projections"] == pytest.approx(0.915, abs=0.005)
    # The refit lands on Table 1 with its QKV and final-projection rows swapped.
    qkv, final = a100.loc["qkv_projections"], a100.loc["final_projection"]
    assert 100 * qkv["eta_max"] == pytest.approx(69.6, abs=0.2)
    assert qkv["k"] == pytest.approx(6.1, abs=0.1)
    assert 100 * final["eta_max"] == pytest.approx(68.8, abs=0.2)
    assert final["k"] == pytest.approx(11.4, abs=0.1)
    for op in ("attention_output", "attention_scores"):
        eta_pct, _, alpha = TABLE1[("NVIDIA A100 80GB PCIe", op)]
        assert 100 * a100.loc[op, "eta_max"] == pytest.approx(eta_pct, abs=2.0)
        assert a100.loc[op, "alpha"] == pytest.approx(alpha, abs=0.03)
    lstm = table[(table["arch"] == "lstm")].set_index(["gpu", "op"]).loc["NVIDIA A100 80GB PCIe"]
    assert 100 * lstm.loc["Activations", "eta_max"] == pytest.approx(0.0965, abs=0.001)
    assert lstm.loc["Activations", "k"] == pytest.approx(17544, rel=0.01)
    assert (table["r2"] > 0.87).all()
