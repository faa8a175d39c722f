"""Latency laws of generic GPU operators (matrix products, softmax, LayerNorm, element-wise).

**Matrix products** (``bmm``, ``linear``). cuBLAS splits the M×K output of each of
the B products into tiles T_m×T_k, runs them in waves over the SMs, and may split
the reduction in s parts; the library picks the fastest configuration. The law
takes the same decision over a fixed set of tile shapes and split factors::

    tiles  = ceil(M/T_m)·ceil(K/T_k)·B·s
    waves  = ceil(tiles / (SMs · max(1, 128²/(T_m·T_k))))
    t_wave = 2·128²·(ceil(N/s) + n0) / (peak/SMs · η_max · (T_m·T_k/128²)^γ)
    t      = t0 + max(min_{T,s} [waves·t_wave + t_split·s·(s > 1)],  bytes / (BW·η_mem))

``η_max`` ≤ 1 is the fraction of the peak a full wave of 128×128 tiles reaches,
``γ`` ≥ 0 how much less efficient smaller tiles are, ``n0`` ≥ 0 [elements] the
per-tile prologue/epilogue as extra reduction length (thin reductions run slower),
``t0`` ≥ 0 [s] the launch and fixed cost, ``t_split`` ≥ 0 [s] the cost of each
split of the reduction, ``η_mem`` ≤ 1 the fraction of the bandwidth on the memory
roof (arithmetic intensity below the ridge point). The efficiency
``η = FLOP/(t·peak)`` that follows has the paper's saturating shape in FLOPs
(``t0`` makes small calls inefficient) times the wave-quantisation factor
``tiles/(waves·SMs)`` and the thin-reduction factor ``N/(N + n0)``.

**Memory-bound operators** (softmax, LayerNorm, element-wise). The paper's saturating
law in bytes over the bandwidth, with a row-length term for the reductions::

    η = η_max · (1 − exp(−k · (bytes/(BW·τ))^α)) · H/(H + h0),   t = bytes/(BW·η)

with ``τ`` = 10 µs, ``η_max`` ≤ 1, ``0 < α ≤ 1`` (latency never decreases with
size), ``h0`` ≥ 0 [elements].

Every coefficient is bounded in the fit (bounded least squares on log latency,
robust ``soft_l1`` loss, several starts); the bounds are :data:`MATMUL_BOUNDS` and
:data:`MEMORY_BOUNDS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MATMUL_BOUNDS", "MEMORY_BOUNDS"]

#: Normalising time of the memory-bound law's size: bytes/(bandwidth·TAU) [s].
TAU = 1e-5

#: Output tile shapes (T_m, T_k) and reduction splits the matmul law chooses from.
TILES = np.array(
    [(128.0, 128.0), (128.0, 64.0), (64.0, 128.0), (64.0, 64.0), (128.0, 32.0), (32.0, 128.0)]
)
SPLITS = np.array([1.0, 4.0, 16.0])

#: Bounds of the matmul law's coefficients (lower, upper), SI units.
MATMUL_BOUNDS: dict[str, tuple[float, float]] = {
    "t0": (1e-7, 1e-4),  # [s]
    "eta_max": (0.01, 1.0),  # [fraction of peak]
    "gamma": (0.0, 2.0),  # [-]
    "n0": (0.01, 1e3),  # [elements of the reduction]
    "eta_mem": (0.01, 1.0),  # [fraction of bandwidth]
    "t_split": (1e-8, 1e-3),  # [s]
}
#: Bounds of the memory-bound law's coefficients (lower, upper).
MEMORY_BOUNDS: dict[str, tuple[float, float]] = {
    "eta_max": (0.01, 1.0),  # [fraction of bandwidth]
    "k": (1e-9, 1e9),  # [-]
    "alpha": (0.05, 1.0),  # [-]
    "h0": (0.01, 1e5),  # [elements of a row]
}
_MATMUL_NAMES = tuple(MATMUL_BOUNDS)
_MEMORY_NAMES = tuple(MEMORY_BOUNDS)
_BYTES = {"fp32": 4.0, "tf32": 4.0, "fp16": 2.0, "bf16": 2.0, "amp-fp16": 2.0, "amp-bf16": 2.0}


@dataclass
class _MatmulFeatures:
    waves: np.ndarray  # (n, tiles, splits)
    reduction: np.ndarray  # (n, 1, splits): ceil(N/s)
    area: np.ndarray  # (1, tiles, 1)
    split: np.ndarray  # (1, 1, splits)
    per_sm_peak: float
    flops: np.ndarray
    mem_time: np.ndarray  # bytes / bandwidth [s]


def _matmul_features(
    B: np.ndarray,
    M: np.ndarray,
    N: np.ndarray,
    K: np.ndarray,
    spec: dict,
    bytes_per_element: float,
) -> _MatmulFeatures:
    """Tile/wave features of matrix products in NeuSight's layout ((M×N)·(N×K))."""
    b, m, n, k = (np.asarray(v, float)[:, None, None] for v in (B, M, N, K))
    tm, tk = TILES[:, 0][None, :, None], TILES[:, 1][None, :, None]
    s = SPLITS[None, None, :]
    sms = float(spec["sm_count"])
    tiles = np.ceil(m / tm) * np.ceil(k / tk) * b * s
    concurrency = np.maximum(1.0, 128.0**2 / (tm * tk))
    waves = np.ceil(tiles / (sms * concurrency))
    flops = 2.0 * B * M * N * K
    moved = bytes_per_element * B * (M * N + N * K + M * K)
    return _MatmulFeatures(
        waves=waves,
        reduction=np.ceil(n / s),
        area=tm * tk / 128.0**2,
        split=s,
        per_sm_peak=float(spec["peak_flops"]) / sms,
        flops=np.asarray(flops, float),
        mem_time=np.asarray(moved, float) / float(spec["memory_bandwidth"]),
    )


def _matmul_latency(p: dict, f: _MatmulFeatures) -> np.ndarray:
    eta = p["eta_max"] * f.area ** p["gamma"]
    t_wave = 2.0 * 128.0**2 * (f.reduction + p["n0"]) / (f.per_sm_peak * eta)
    t = f.waves * t_wave + np.where(f.split > 1, p["t_split"] * f.split, 0.0)
    t_compute = t.min(axis=(1, 2))
    return p["t0"] + np.maximum(t_compute, f.mem_time / p["eta_mem"])


def _memory_latency(p: dict, moved: np.ndarray, H: np.ndarray, bandwidth: float) -> np.ndarray:
    size = moved / (bandwidth * TAU)
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        sat = -np.expm1(-p["k"] * size ** p["alpha"])
    eta = p["eta_max"] * np.maximum(sat, 1e-300) * H / (H + p["h0"])
    return moved / (bandwidth * eta)


def _pack(p: dict, names: tuple[str, ...], logged: set[str]) -> np.ndarray:
    return np.array([np.log(p[n]) if n in logged else p[n] for n in names])


def _unpack(x: np.ndarray, names: tuple[str, ...], logged: set[str]) -> dict:
    pairs = zip(names, x, strict=True)
    return {n: float(np.exp(v)) if n in logged else float(v) for n, v in pairs}


_MATMUL_LOG = {"t0", "eta_max", "n0", "eta_mem", "t_split"}
_MEMORY_LOG = {"eta_max", "k", "h0"}


def _least_squares(residual, starts, names, bounds, logged):
    from scipy.optimize import least_squares  # here: predicting needs no SciPy

    lower = _pack({n: bounds[n][0] for n in names}, names, logged)
    upper = _pack({n: bounds[n][1] for n in names}, names, logged)
    best = None
    for start in starts:
        x0 = np.clip(_pack(start, names, logged), lower + 1e-9, upper - 1e-9)
        try:
            res = least_squares(
                residual,
                x0,
                bounds=(lower, upper),
                loss="soft_l1",
                f_scale=0.1,
                diff_step=1e-4,
                max_nfev=200,
            )
        except (ValueError, FloatingPointError):  # pragma: no cover - defensive
            continue
        if np.all(np.isfinite(res.fun)) and (best is None or res.cost < best.cost):
            best = res
    if best is None:
        raise ValueError("the operator law could not be evaluated at any start")
    return _unpack(best.x, names, logged)


def _fit_matmul(f: _MatmulFeatures, y: np.ndarray, w: np.ndarray) -> dict:
    logy, sw = np.log(y), np.sqrt(w)

    def residual(x):
        p = _unpack(x, _MATMUL_NAMES, _MATMUL_LOG)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return sw * (np.log(_matmul_latency(p, f)) - logy)

    starts = [
        {"t0": 1e-5, "eta_max": 0.8, "gamma": 0.3, "n0": 16.0, "eta_mem": 0.7, "t_split": 2e-6},
        {"t0": 3e-6, "eta_max": 0.5, "gamma": 0.05, "n0": 1.0, "eta_mem": 0.9, "t_split": 1e-5},
    ]
    return _least_squares(residual, starts, _MATMUL_NAMES, MATMUL_BOUNDS, _MATMUL_LOG)


def _fit_memory(moved, H, bandwidth, y, w) -> dict:
    logy, sw = np.log(y), np.sqrt(w)

    def residual(x):
        p = _unpack(x, _MEMORY_NAMES, _MEMORY_LOG)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return sw * (np.log(_memory_latency(p, moved, H, bandwidth)) - logy)

    starts = [{"eta_max": 0.7, "k": 0.5, "alpha": 0.9, "h0": 1.0}]
    return _least_squares(residual, starts, _MEMORY_NAMES, MEMORY_BOUNDS, _MEMORY_LOG)
