"""Tests of powerfit.kernels.operator_laws: the fitted laws without scikit-learn."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from powerfit.kernels.model import OperatorTimeModel, load_operator_model
from powerfit.kernels.operator_laws import OperatorLaws, bundled_laws, load_operator_laws


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"gpu": gpu, "op": op, "precision": "fp32", "B": 4, "M": m, "N": 768, "K": 3072}
            | {"H": np.nan}
            for gpu in ("NVIDIA A100 80GB PCIe", "NVIDIA H100 80GB HBM3")
            for op in ("linear", "bmm")
            for m in (128, 4096)
        ]
        + [
            {"gpu": gpu, "op": op, "precision": "fp32", "B": 4096, "H": h}
            | {"M": np.nan, "N": np.nan, "K": np.nan}
            for gpu in ("NVIDIA A100 80GB PCIe", "NVIDIA H100 80GB HBM3")
            for op in ("relu", "softmax", "add")
            for h in (768, 65536)
        ]
    )


def test_bundled_laws_predict_as_the_estimator():
    try:
        estimator = load_operator_model("fp32", matmul_layout="mkn")
    except ValueError:
        pytest.skip("no bundled fp32 operator laws")
    laws = load_operator_laws("fp32", matmul_layout="mkn")
    assert type(laws) is OperatorLaws and isinstance(estimator, OperatorLaws)
    X = _rows()
    expected = estimator.predict(X)
    assert np.all(np.isfinite(expected) & (expected > 0))
    np.testing.assert_array_equal(laws.predict(X), expected)
    mem = X[X.op.isin(["relu", "softmax", "add"])].assign(precision="bf16")
    np.testing.assert_array_equal(
        laws.predict_memory_bound(mem), estimator.predict_memory_bound(mem)
    )
    for gpu in ("NVIDIA A100 80GB PCIe", "h100", "Tesla T4"):
        assert laws.law(gpu, "bmm") == estimator.law(gpu, "bmm")
    assert laws.to_dict() == estimator.to_dict()
    blind = laws.without_gpus(["NVIDIA A100 80GB PCIe"])
    assert type(blind) is OperatorLaws
    assert blind.law("NVIDIA A100 80GB PCIe", "linear")[1] == "transfer"


def test_unfitted_laws_and_bad_input_are_refused():
    with pytest.raises(ValueError, match="not fitted"):
        OperatorLaws().predict(_rows())
    with pytest.raises(ValueError, match="not a powerfit operator model"):
        OperatorLaws.from_dict({"format": "other"})
    with pytest.raises(ValueError, match="no bundled operator model"):
        bundled_laws("fp8")
    with pytest.raises(TypeError, match="DataFrame"):
        OperatorLaws.from_dict(OperatorTimeModel().fit(*_fitted_rows()).to_dict()).predict([1])


def test_call_timing_is_kept_and_the_call_overhead_is_the_law_at_vanishing_size():
    from powerfit.kernels.laws import TAU

    try:
        laws = load_operator_laws("fp32")
    except ValueError:
        pytest.skip("no bundled fp32 operator laws")
    assert laws.call_timing == "isolated"  # NeuSight timed each call on its own
    assert load_operator_laws("fp32", call_timing="queued").call_timing == "queued"
    X = _rows()
    overhead = laws.call_overhead(X)
    assert np.all((overhead > 0) & (overhead < laws.predict(X)))
    for i, row in X.iterrows():
        law, _ = laws.law(row.gpu, row.op)
        if "t0" in law:
            assert overhead[i] == law["t0"]
        elif law["alpha"] == pytest.approx(1.0, abs=1e-6):
            assert overhead[i] == pytest.approx(TAU / (law["eta_max"] * law["k"]), rel=1e-3)
    model = OperatorTimeModel(call_timing="isolated").fit(*_fitted_rows())
    X1, y1 = _fitted_rows()
    once = model.call_overhead(X1)[0]
    assert 2e-6 < once < 8e-6  # the rows hold 5 µs of launch
    assert model.fit(X1, 2 * y1).call_overhead(X1)[0] == pytest.approx(2 * once, rel=0.1)
    data = model.to_dict()
    assert data["call_timing"] == "isolated"
    assert OperatorLaws.from_dict(data).call_timing == "isolated"
    assert OperatorTimeModel().fit(*_fitted_rows()).to_dict()["call_timing"] == "queued"
    with pytest.raises(ValueError, match="call_timing"):
        OperatorTimeModel(call_timing="sometimes").fit(*_fitted_rows())
    with pytest.raises(ValueError, match="call_timing"):
        OperatorLaws.from_dict(data | {"call_timing": "sometimes"})


def _fitted_rows() -> tuple[pd.DataFrame, np.ndarray]:
    H = np.logspace(2, 7, 40)
    X = pd.DataFrame(
        {"gpu": "Tesla T4", "op": "relu", "precision": "fp32", "B": 1.0}
        | {"M": np.nan, "N": np.nan, "K": np.nan, "H": H}
    )
    return X, 8 * H / (0.8 * 320e9) + 5e-6


def test_importing_and_predicting_needs_no_sklearn_nor_scipy():
    code = (
        "import sys\n"
        "from powerfit.kernels.operator_laws import load_operator_laws\n"
        "try:\n"
        "    load_operator_laws('fp32')\n"
        "except ValueError:\n"
        "    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}))\n"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "[]"


def test_memory_bound_eta_follows_the_memory_type_and_measured_says_whose_laws():
    from powerfit.hardware.gpus import memory_type

    laws = load_operator_laws()
    fitted = {g: c for (g, k), c in laws.laws_.items() if k == "add"}
    for target in ("NVIDIA H200", "NVIDIA GeForce RTX 4090"):  # HBM, GDDR; neither measured
        assert not laws.measured(target)
        same = [c["eta_max"] for g, c in fitted.items() if memory_type(g) == memory_type(target)]
        assert len(same) >= 2
        assert laws.transferred_law(target, "add")["eta_max"] == pytest.approx(np.median(same))
    # a measured GPU, by any of its names; its own η_max never enters its transfer
    assert laws.measured("Tesla V100-PCIE-32GB") and laws.measured("v100")
    hbm = [c["eta_max"] for g, c in fitted.items() if memory_type(g) == "HBM" and "V100" not in g]
    assert laws.transferred_law("v100", "add")["eta_max"] == pytest.approx(np.median(hbm))
