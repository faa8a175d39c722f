"""Operator latency laws of a GPU without measurements, from its specs and the measured GPUs.

Its laws are built from its catalogue specs (peak of the precision, bandwidth, SM
count, TDP) and the laws of the *other* measured GPUs (a measured GPU predicted
``specs_only`` never sees its own laws): the shape coefficients (``γ, n0, t0,
t_split, η_mem`` and ``k, α, h0`` of memory-bound operators, with sizes
normalised by the GPU's bandwidth) are the medians over those GPUs. A memory-bound
operator's ``η_max`` (the fraction of the data-sheet bandwidth it sustains) is the
median over the measured GPUs of the same memory type (HBM or GDDR,
:func:`~powerfit.hardware.gpus.memory_type`) where two or more were measured, else over
all: HBM boards sustain a larger fraction (0.82–0.87 on the A100s and the V100; the
P100's first HBM2, 0.71, is the exception) than GDDR ones (0.71–0.78). The level of the
matrix products follows the board power per unit of peak, ``x = TDP/peak``
[W/(TFLOP/s)]: each measured GPU's efficiency FLOP/(t·peak) on
:data:`REFERENCE_PRODUCTS` (model-like projections), pooled over ``linear`` and
``bmm`` (both run the same SGEMM kernels, so how close a board gets to its peak is a
property of the board, and pooling halves the noise of one operator's sweep), gives
``e = min(e_cap, exp(a + b·log x))`` with ``b ≥ 0``, ``a`` by least squares and
``e_cap`` the highest measured efficiency (low-power boards such as the L4, 2.4
W/(TFLOP/s), and the T4, 8.6, cannot sustain their FP32 peak; the A100, 13-15, nearly
can); the transferred law's ``η_max`` is the one at which it reaches ``e`` on the same
products. Leave-one-GPU-out over NeuSight's eight GPUs, this puts the summed matrix
products of the measured models within 14 % (mean |log ratio|) of the GPU's own laws,
against 18 % when ``η_max`` itself was regressed per operator.
"""

from __future__ import annotations

import numpy as np

from powerfit.hardware.gpus import memory_type
from powerfit.kernels.counts import OPERATOR_KINDS
from powerfit.kernels.laws import (
    _MATMUL_NAMES,
    _MEMORY_NAMES,
    MATMUL_BOUNDS,
    _matmul_features,
    _matmul_latency,
)

__all__ = ["REFERENCE_PRODUCTS", "gpu_specs"]


def gpu_specs(gpu: str, precision: str = "fp32", overrides: dict | None = None) -> dict:
    """Specs the operator laws use: peak, bandwidth, SM count, TDP.

    Parameters
    ----------
    gpu : str
        NVML name or alias (:func:`powerfit.hardware.gpus.get_gpu`).
    precision : str, default 'fp32'
        Precision of the peak.
    overrides : dict of str to dict, optional
        GPU name -> specs (``peak_flops`` [FLOP/s], ``memory_bandwidth`` [B/s],
        ``sm_count``, ``power_limit_w`` [W]) for GPUs outside the catalogue, or to
        replace catalogue values.

    Returns
    -------
    dict
        ``name``, ``peak_flops`` [FLOP/s], ``memory_bandwidth`` [B/s], ``sm_count``,
        ``power_limit_w`` [W].

    Raises
    ------
    ValueError
        Unknown GPU without overrides, or a spec missing.
    """
    if overrides and gpu in overrides:
        spec = dict(overrides[gpu])
        spec.setdefault("name", gpu)
    else:
        from powerfit.hardware.gpus import get_gpu

        entry = get_gpu(gpu)
        if precision not in entry.peak_flops:
            raise ValueError(f"{entry.name} has no {precision} peak in the catalogue")
        spec = {
            "name": entry.name,
            "peak_flops": entry.peak_flops[precision],
            "memory_bandwidth": entry.memory_bandwidth,
            "sm_count": entry.sm_count,
            "power_limit_w": entry.power_limit_w,
        }
    for key in ("peak_flops", "memory_bandwidth", "sm_count", "power_limit_w"):
        value = spec.get(key)
        if value is None or not np.isfinite(float(value)) or float(value) <= 0:
            raise ValueError(f"GPU {gpu!r}: spec {key!r} is missing or not > 0 ({value!r})")
    return spec


#: Model-like matrix products (NeuSight layout: M tokens, reduction N, output width K)
#: over which a GPU's SGEMM efficiency is compared for transfer; shape [-].
REFERENCE_PRODUCTS = np.array(
    [(1, m, n, k) for m in (1024, 4096, 16384) for n in (1024, 2560, 4096) for k in (1024, 4096)],
    dtype=float,
)


def _efficiencies(law: dict, spec: dict, products: np.ndarray, bytes_per_element: float):
    """Efficiency FLOP/(t·peak) [-] of a matmul law on each of ``products`` (B, M, N, K)."""
    B, M, N, K = products.T
    t = _matmul_latency(law, _matmul_features(B, M, N, K, spec, bytes_per_element))
    return 2.0 * B * M * N * K / (t * spec["peak_flops"])


def _reference_efficiency(law: dict, spec: dict, bytes_per_element: float = 4.0) -> float:
    """Geometric-mean efficiency FLOP/(t·peak) [-] of a matmul law on the reference products."""
    eff = _efficiencies(law, spec, REFERENCE_PRODUCTS, bytes_per_element)
    return float(np.exp(np.mean(np.log(eff))))


def _eta_for_efficiency(law: dict, spec: dict, target: float, bytes_per_element: float) -> float:
    """The η_max [-] in its bounds at which a matmul law reaches ``target`` on the references."""
    from scipy.optimize import brentq

    low, high = MATMUL_BOUNDS["eta_max"]

    def gap(log_eta: float) -> float:
        p = {**law, "eta_max": float(np.exp(log_eta))}
        return np.log(_reference_efficiency(p, spec, bytes_per_element)) - np.log(target)

    if gap(np.log(high)) <= 0:
        return float(high)
    if gap(np.log(low)) >= 0:
        return float(low)
    return float(np.exp(brentq(gap, np.log(low), np.log(high), xtol=1e-6)))


def _transfer_coefficients(laws: dict, specs: dict, bytes_per_element: float = 4.0) -> dict:
    """Per op: median coefficients over the fitted GPUs; and the SGEMM efficiency relation.

    Memory-bound operators also get the median ``η_max`` per memory type
    (``eta_max_by_memory``: HBM or GDDR, :func:`~powerfit.hardware.gpus.memory_type`)
    over the types with two fitted GPUs or more.

    Matrix products: each fitted GPU's efficiency on :data:`REFERENCE_PRODUCTS`, pooled
    (geometric mean) over its matmul ops (``linear`` and ``bmm`` run the same SGEMM
    kernels, so how close a board gets to its peak is a property of the board), is
    regressed on its power density: ``log e = a + b·log(TDP/peak)``, ``b ≥ 0``, capped
    at the highest fitted efficiency (``efficiency_cap``).
    """
    out: dict[str, dict] = {}
    for kind in sorted({k for _g, k in laws}):
        fitted = [c for (g, k), c in laws.items() if k == kind]
        names = _MATMUL_NAMES if OPERATOR_KINDS[kind] == "matmul" else _MEMORY_NAMES
        out[kind] = {n: float(np.median([c[n] for c in fitted])) for n in names}
        if OPERATOR_KINDS[kind] != "matmul":
            by_type: dict[str, list[float]] = {}
            for (g, k), c in laws.items():
                if k == kind:
                    by_type.setdefault(memory_type(specs[g].get("name", g)), []).append(
                        c["eta_max"]
                    )
            out[kind]["eta_max_by_memory"] = {
                t: float(np.median(v)) for t, v in sorted(by_type.items()) if len(v) >= 2
            }
    per_gpu: dict[str, list[float]] = {}
    for (g, k), c in laws.items():
        if OPERATOR_KINDS[k] == "matmul":
            eff = _reference_efficiency(c, specs[g], bytes_per_element)
            per_gpu.setdefault(g, []).append(np.log(eff))
    if per_gpu:
        gpus = sorted(per_gpu)
        x = np.log([_power_density(specs[g]) for g in gpus])
        e = np.array([np.mean(per_gpu[g]) for g in gpus])
        slope = 0.0
        if len(gpus) >= 2 and np.ptp(x) > 0:
            slope = float(max(0.0, np.polyfit(x, e, 1)[0]))
        relation = {
            "power_slope": slope,
            "power_intercept": float(np.mean(e - slope * x)),
            "efficiency_cap": float(np.exp(e.max())),
        }
        for kind in [k for k in out if OPERATOR_KINDS[k] == "matmul"]:
            out[kind].update(relation)
    return out


def _power_density(spec: dict) -> float:
    """Board power per unit of peak throughput [W/(TFLOP/s)]."""
    return float(spec["power_limit_w"]) / (float(spec["peak_flops"]) / 1e12)
