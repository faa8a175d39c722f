"""Tests of powerfit.kernels: operator laws, their transfer, the roofline, the bundled model."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from powerfit.kernels.counts import operator_bytes, operator_flops
from powerfit.kernels.laws import MATMUL_BOUNDS, MEMORY_BOUNDS, _memory_latency
from powerfit.kernels.model import (
    OPERATOR_COLUMNS,
    OperatorTimeModel,
    _groups,
    load_operator_model,
)
from powerfit.kernels.roofline import roofline_latency
from powerfit.kernels.transfer import gpu_specs

MATMUL_LAW = {
    "t0": 2e-5,
    "eta_max": 0.85,
    "gamma": 0.4,
    "n0": 16.0,
    "eta_mem": 0.8,
    "t_split": 3e-6,
}
MEMORY_LAW = {"eta_max": 0.75, "k": 0.4, "alpha": 0.9, "h0": 50.0}


def _matmul_rows(gpu: str, n: int, seed: int, op: str = "bmm") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dims = np.exp2(rng.uniform(5, 11, size=(n, 3))).round()
    return pd.DataFrame(
        {
            "gpu": gpu,
            "op": op,
            "precision": "fp32",
            "B": np.exp2(rng.integers(0, 7, n)).astype(float),
            "M": dims[:, 0],
            "N": dims[:, 1],
            "K": dims[:, 2],
            "H": np.nan,
        }
    )


def _memory_rows(gpu: str, n: int, seed: int, op: str = "softmax") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "gpu": gpu,
            "op": op,
            "precision": "fp32",
            "B": np.exp2(rng.uniform(3, 16, n)).round(),
            "M": np.nan,
            "N": np.nan,
            "K": np.nan,
            "H": np.exp2(rng.uniform(5, 13, n)).round(),
        }
    )


def _synthetic_latency(X: pd.DataFrame, matmul: dict, memory: dict) -> np.ndarray:
    model = OperatorTimeModel()
    out = np.empty(len(X))
    for (gpu, kind), idx in _groups(X).items():
        law = matmul if kind in ("bmm", "linear") else memory
        out[idx] = model._latency(kind, law, X.iloc[idx], gpu_specs(gpu))
    return out


def test_matmul_law_recovered_from_synthetic_data():
    X = _matmul_rows("Tesla T4", 600, seed=1)
    y = _synthetic_latency(X, MATMUL_LAW, MEMORY_LAW)
    model = OperatorTimeModel(max_rows=0).fit(X, y)
    law = model.laws_[("Tesla T4", "bmm")]
    assert law["eta_max"] == pytest.approx(MATMUL_LAW["eta_max"], rel=0.05)
    assert law["t0"] == pytest.approx(MATMUL_LAW["t0"], rel=0.1)
    pred = model.predict(X)
    assert np.mean(np.abs(pred / y - 1)) < 0.01


def test_memory_law_recovered_from_synthetic_data():
    X = _memory_rows("NVIDIA A100 80GB PCIe", 400, seed=2)
    y = _synthetic_latency(X, MATMUL_LAW, MEMORY_LAW)
    model = OperatorTimeModel(max_rows=0).fit(X, y)
    law = model.laws_[("NVIDIA A100 80GB PCIe", "softmax")]
    assert law["eta_max"] == pytest.approx(MEMORY_LAW["eta_max"], rel=0.05)
    assert law["alpha"] == pytest.approx(MEMORY_LAW["alpha"], abs=0.05)
    assert np.mean(np.abs(model.predict(X) / y - 1)) < 0.01


def test_coefficients_stay_within_bounds_on_hostile_data():
    X = _matmul_rows("Tesla T4", 200, seed=3)
    y = np.full(len(X), 1e-9)  # faster than any physical GPU: pushes η_max above 1
    model = OperatorTimeModel().fit(X, y)
    for name, value in model.laws_[("Tesla T4", "bmm")].items():
        low, high = MATMUL_BOUNDS[name]
        assert low * (1 - 1e-9) <= value <= high * (1 + 1e-9), name


def test_transfer_to_an_unseen_gpu_uses_its_specs():
    parts = [_matmul_rows(g, 200, seed=i) for i, g in enumerate(("Tesla T4", "Tesla P4"))]
    X = pd.concat(parts, ignore_index=True)
    y = _synthetic_latency(X, MATMUL_LAW, MEMORY_LAW)
    model = OperatorTimeModel().fit(X, y)
    target = _matmul_rows("NVIDIA A100 80GB PCIe", 50, seed=9)
    pred = model.predict(target)
    assert np.all(np.isfinite(pred) & (pred > 0))
    assert model.law("NVIDIA A100 80GB PCIe", "bmm")[1] == "transfer"
    assert model.law("Tesla T4", "bmm")[1] == "fit"
    # Same law on both GPUs: the transfer reproduces the shape coefficients.
    truth = _synthetic_latency(target, MATMUL_LAW, MEMORY_LAW)
    law = model.transferred_law("NVIDIA A100 80GB PCIe", "bmm")
    assert law["t0"] == pytest.approx(MATMUL_LAW["t0"], rel=0.1)
    assert np.median(np.abs(pred / truth - 1)) < 0.2
    # specs_only predicts a measured GPU by transfer too; with one law shared by every
    # GPU, the transfer gives back the fitted predictions.
    by_transfer = clone(model).set_params(specs_only=True)
    by_transfer.__dict__.update({k: v for k, v in vars(model).items() if k.endswith("_")})
    assert by_transfer.law("Tesla T4", "bmm")[1] == "transfer"
    np.testing.assert_allclose(by_transfer.predict(parts[0]), model.predict(parts[0]), rtol=0.1)


def test_specs_only_never_sees_the_gpus_own_laws():
    from powerfit.kernels.transfer import _power_density, _reference_efficiency

    gpus = ("Tesla T4", "Tesla P4", "Tesla V100-PCIE-32GB")
    parts = [_matmul_rows(g, 150, seed=i) for i, g in enumerate(gpus)]
    X = pd.concat(parts, ignore_index=True)
    y = _synthetic_latency(X, MATMUL_LAW, MEMORY_LAW)
    y[X.gpu.to_numpy() == gpus[2]] *= 3.0  # the V100 measured 3x slower than the others
    full = OperatorTimeModel().fit(X, y)
    others = OperatorTimeModel().fit(X[X.gpu != gpus[2]], y[X.gpu.to_numpy() != gpus[2]])
    specs_only = clone(full).set_params(specs_only=True)
    specs_only.__dict__.update({k: v for k, v in vars(full).items() if k.endswith("_")})
    # predicted as if never measured: the same as a model that never saw it
    np.testing.assert_allclose(specs_only.predict(parts[2]), others.predict(parts[2]), rtol=1e-6)
    assert not np.allclose(specs_only.predict(parts[2]), full.predict(parts[2]), rtol=0.5)
    blind = full.without_gpus([gpus[2]])
    assert blind.law(gpus[2], "bmm")[1] == "transfer" and ("Tesla T4", "bmm") in blind.laws_
    np.testing.assert_allclose(blind.predict(parts[2]), others.predict(parts[2]), rtol=1e-6)
    # the transferred law reaches the efficiency its power density predicts
    shared = others.transfer_["bmm"]
    spec = full.specs_[gpus[2]]
    x = np.log(_power_density(spec))
    target = min(
        shared["efficiency_cap"], np.exp(shared["power_intercept"] + shared["power_slope"] * x)
    )
    law = others.transferred_law(gpus[2], "bmm")
    assert MATMUL_BOUNDS["eta_max"][0] <= law["eta_max"] <= MATMUL_BOUNDS["eta_max"][1]
    if law["eta_max"] < MATMUL_BOUNDS["eta_max"][1]:
        assert _reference_efficiency(law, spec) == pytest.approx(target, rel=1e-4)


def test_gpu_outside_the_catalogue_through_gpu_specs():
    X = _memory_rows("Tesla T4", 100, seed=4)
    y = _synthetic_latency(X, MATMUL_LAW, MEMORY_LAW)
    specs = {
        "NVIDIA GeForce RTX 3090": {
            "peak_flops": 82.6e12,
            "memory_bandwidth": 1008e9,
            "sm_count": 128,
            "power_limit_w": 450.0,
        }
    }
    model = OperatorTimeModel(gpu_specs=specs).fit(X, y)
    target = _memory_rows("NVIDIA GeForce RTX 3090", 10, seed=5)
    assert np.all(model.predict(target) > 0)
    with pytest.raises(ValueError, match="unknown GPU 'NVIDIA Z9000'"):
        model.predict(target.assign(gpu="NVIDIA Z9000"))


def test_matmul_layouts_agree():
    X = _matmul_rows("Tesla T4", 100, seed=6)
    y = _synthetic_latency(X, MATMUL_LAW, MEMORY_LAW)
    model = OperatorTimeModel().fit(X, y)
    swapped = X.rename(columns={"N": "K", "K": "N"})[list(OPERATOR_COLUMNS)]
    mkn = clone(model).set_params(matmul_layout="mkn")
    mkn.__dict__.update({k: v for k, v in vars(model).items() if k.endswith("_")})
    np.testing.assert_allclose(mkn.predict(swapped), model.predict(X))


def test_input_errors():
    X = _memory_rows("Tesla T4", 20, seed=7)
    y = np.full(len(X), 1e-4)
    with pytest.raises(ValueError, match=r"precision \['bf16'\] given to a fp32 model"):
        OperatorTimeModel().fit(X.assign(precision="bf16"), y)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['H'\]"):
        OperatorTimeModel().fit(X.drop(columns="H"), y)
    with pytest.raises(TypeError, match="DataFrame"):
        OperatorTimeModel().fit(X.to_numpy(), y)
    with pytest.raises(ValueError, match="latency > 0"):
        OperatorTimeModel().fit(X, -y)
    with pytest.raises(ValueError, match="column 'H' must be finite"):
        OperatorTimeModel().fit(X.assign(H=np.nan), y)
    with pytest.raises(ValueError, match="unknown operator 'conv9d'"):
        OperatorTimeModel().fit(X.assign(op="conv9d"), y)


def test_roofline():
    X = pd.concat([_matmul_rows("Tesla T4", 3, 8), _memory_rows("Tesla T4", 3, 8)])
    X = X.reset_index(drop=True)
    t = roofline_latency(X)
    m = X.iloc[:3]
    flops = operator_flops("bmm", m["B"], m["M"], m["N"], m["K"])
    moved = operator_bytes("bmm", m["B"], m["M"], m["N"], m["K"])
    np.testing.assert_allclose(t[:3], np.maximum(flops / 8.1e12, moved / 320e9))
    d = X.iloc[3:]
    np.testing.assert_allclose(t[3:], 8 * d["B"] * d["H"] / 320e9)


def test_bundled_model_loads_with_json_only():
    text = resources.files("powerfit").joinpath("data", "operators", "fp32.json").read_text()
    data = json.loads(text)
    assert data["precision"] == "fp32"
    assert data["provenance"]["commit"] == "6945927d9afcca2b9daf021f8395e53edc5b4eef"
    gpus = {law["gpu"] for law in data["laws"]}
    assert len(gpus) == 8
    assert set(data["transferred"]) == {"NVIDIA GeForce RTX 2080 Ti", "NVIDIA A100-SXM4-40GB"}
    for law in data["laws"]:
        bounds = MATMUL_BOUNDS if law["op"] in ("bmm", "linear") else MEMORY_BOUNDS
        for name, value in law["coefficients"].items():
            assert bounds[name][0] * 0.999 <= value <= bounds[name][1] * 1.001
    model = load_operator_model()
    X = pd.DataFrame(
        [
            {
                "gpu": g,
                "op": "bmm",
                "precision": "fp32",
                "B": 16,
                "M": 1024,
                "N": 1024,
                "K": 1024,
                "H": np.nan,
            }
            for g in ("NVIDIA A100 80GB PCIe", "Tesla T4", "NVIDIA GeForce RTX 2080 Ti")
        ]
    )
    t = model.predict(X)
    achieved = 2 * 16 * 1024**3 / t
    assert 12e12 < achieved[0] < 19.5e12  # A100 FP32 SGEMM: 60-100 % of 19.5 TFLOP/s
    assert 2e12 < achieved[1] < 8.1e12
    assert 3e12 < achieved[2] < 13.45e12  # transferred: the RTX 2080 Ti was never measured
    with pytest.raises(ValueError, match="no bundled operator model for precision 'fp8'"):
        load_operator_model("fp8")


def test_an_alias_gets_the_gpus_fitted_laws_not_a_transfer():
    # 'h100' once fell through to the specs transfer (a different, unmeasured answer).
    model = load_operator_model()
    rows = {"op": "bmm", "precision": "fp32", "B": 8, "M": 2048, "N": 2048, "K": 2048}
    full, alias = (
        pd.DataFrame([{"gpu": g, **rows, "H": np.nan}]) for g in ("NVIDIA H100 80GB HBM3", "h100")
    )
    assert model.law("h100", "bmm") == model.law("NVIDIA H100 80GB HBM3", "bmm")
    assert model.law("h100", "bmm")[1] == "fit"
    np.testing.assert_array_equal(model.predict(alias), model.predict(full))


def test_memory_bound_law_of_another_precision_is_the_law_on_its_bytes():
    """A BF16 B×H row moves the bytes of an FP32 (B/2)×H row of the same row length."""
    model = load_operator_model()
    gpu = "NVIDIA H100 80GB HBM3"
    rows = []
    for op in ("softmax", "ln", "add", "mulu", "gelu"):
        part = _memory_rows(gpu, 12, seed=len(op), op=op)
        part["B"] = 2.0 * np.ceil(part["B"] / 2.0)  # even, for the FP32 twin
        rows.append(part)
    X = pd.concat(rows, ignore_index=True)
    fp32 = model.predict(X)
    assert model.predict_memory_bound(X) == pytest.approx(fp32, rel=0, abs=0)
    tf32 = model.predict_memory_bound(X.assign(precision="tf32"))
    assert np.array_equal(tf32, fp32)  # TF32 memory-bound kernels are the FP32 ones
    half = X.assign(precision="bf16")
    twin = X.assign(B=X["B"] / 2.0)  # FP32 rows moving the same bytes, same H
    assert model.predict_memory_bound(half) == pytest.approx(model.predict(twin), rel=1e-12)
    assert np.all(model.predict_memory_bound(half) < fp32)  # half the bytes, never slower
    # by the law's own formula, from the bytes of 2-byte elements
    law, _ = model.law(gpu, "softmax")
    soft = half[half["op"] == "softmax"]
    moved = operator_bytes("softmax", soft["B"], H=soft["H"], bytes_per_element=2.0)
    bandwidth = gpu_specs(gpu)["memory_bandwidth"]
    expected = _memory_latency(law, moved.to_numpy(), soft["H"].to_numpy(), bandwidth)
    got = model.predict_memory_bound(half)[soft.index.to_numpy()]
    assert got == pytest.approx(expected, rel=1e-12)


def test_memory_bound_prediction_refuses_products_and_unknown_widths():
    model = load_operator_model()
    X = _memory_rows("Tesla T4", 3, seed=1)
    with pytest.raises(ValueError, match="'bmm' is a matrix product"):
        model.predict_memory_bound(_matmul_rows("Tesla T4", 2, seed=1))
    with pytest.raises(ValueError, match=r"column 'precision'.*\['fp8'\]"):
        model.predict_memory_bound(X.assign(precision="fp8"))
