"""Latency laws of generic GPU operators (matrix products, softmax, LayerNorm, element-wise).

Conventions
-----------
* One row is one call of an operator on one GPU: columns :data:`OPERATOR_COLUMNS`
  (``gpu`` NVML name, ``op`` NeuSight's operator name, ``precision``, the shape
  ``B, M, N, K`` of a matrix product or ``B, H`` of a B×H tensor). Latencies are in
  seconds [s]; efficiencies are fractions of the peak **of that precision** (FP32
  for NeuSight's data: TF32 was off) or of the memory bandwidth [B/s].
* Matrix-product layout. NeuSight's ``bmm`` multiplies (M×N)·(N×K): the reduction
  runs over N and the output is M×K. This was established from the launch grids
  NeuSight recorded: for the 128×128-tile SGEMM kernels, 97 % of the ``bmm`` rows
  have ``grid = (ceil(K/128), ceil(M/128), B)`` and only 28 % fit the (M×K)·(K×N)
  reading of the dataset README (the remaining 3 % are other tile shapes); for
  ``linear`` (input M×N, weight N×K), 75 % vs 2 %. ``matmul_layout='neusight'``
  (default) reads rows that way; ``matmul_layout='mkn'`` reads (M×K)·(K×N) (reduction
  over K, output M×N). FLOPs (2·B·M·N·K) and bytes do not depend on the layout; the
  tile and wave terms do.

The laws
--------
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

Other precisions
----------------
Only FP32 laws are measured (NeuSight's data). A memory-bound operator's latency
depends on its precision only through the bytes it moves: the law above is keyed on
``bytes`` (the size term, bytes/(BW·τ), and t = bytes/(BW·η)) and on the row length
``H`` in *elements* (the reduction term H/(H + h0)), and
:meth:`OperatorTimeModel.predict_memory_bound` evaluates the FP32 law of a (GPU,
operator) on the bytes of each row's own element width (4 B for FP32 and TF32, whose
memory-bound kernels are the FP32 ones, so their latencies are identical; 2 B for
FP16/BF16, half the bytes for the same shape) and the same ``H``. That the fitted
efficiency ``η(bytes, H)`` of a kernel carries over to 2-byte elements (same
saturation in bytes, same row-length term in elements, same ``η_max``) is an
**assumption**, not a fitted fact: half-precision kernels load more elements per
vector access, which can make short rows cheaper than the law says; no half-precision
operator was measured to check it. Matrix products have no such carry-over (other
kernels, other units): :func:`powerfit.graph.operator_latency` times them by the
roofline at their precision's peak, plus the FP32 law's fixed cost ``t0`` per call.

Every coefficient is bounded in the fit (bounded least squares on log latency,
robust ``soft_l1`` loss, several starts); the bounds are :data:`MATMUL_BOUNDS` and
:data:`MEMORY_BOUNDS`.

Transfer to a GPU without measurements
--------------------------------------
Its laws are built from its catalogue specs (peak of the precision, bandwidth, SM
count, TDP) and the laws of the *other* measured GPUs (a measured GPU predicted
``specs_only`` never sees its own laws): the shape coefficients (``γ, n0, t0,
t_split, η_mem`` and ``k, α, h0, η_max`` of memory-bound operators, with sizes
normalised by the GPU's bandwidth) are the medians over those GPUs. The level of the
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

import json
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from powerfit.flops import OPERATOR_KINDS, operator_bytes, operator_flops, operator_kind

__all__ = [
    "MATMUL_BOUNDS",
    "MEMORY_BOUNDS",
    "NEUSIGHT_EXCLUDED",
    "OPERATOR_COLUMNS",
    "REFERENCE_PRODUCTS",
    "OperatorTimeModel",
    "coefficient_table",
    "evaluate_operators",
    "format_operator_table",
    "gpu_specs",
    "load_operator_model",
    "neusight_operator_frame",
    "roofline_latency",
]

#: model -> (its laws, GPU -> transfer coefficients without that GPU's laws).
_TRANSFER_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

#: Columns of an operator table (see the module notes for the matmul layout).
OPERATOR_COLUMNS = ("gpu", "op", "precision", "B", "M", "N", "K", "H")

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


# --------------------------------------------------------------------------- specs
def gpu_specs(gpu: str, precision: str = "fp32", overrides: dict | None = None) -> dict:
    """Specs the operator laws use: peak, bandwidth, SM count, TDP.

    Parameters
    ----------
    gpu : str
        NVML name or alias (:func:`powerfit.hardware.get_gpu`).
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
        from powerfit.hardware import get_gpu

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


# ------------------------------------------------------------------------ features
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


# ---------------------------------------------------------------------------- fits
def _pack(p: dict, names: tuple[str, ...], logged: set[str]) -> np.ndarray:
    return np.array([np.log(p[n]) if n in logged else p[n] for n in names])


def _unpack(x: np.ndarray, names: tuple[str, ...], logged: set[str]) -> dict:
    pairs = zip(names, x, strict=True)
    return {n: float(np.exp(v)) if n in logged else float(v) for n, v in pairs}


_MATMUL_LOG = {"t0", "eta_max", "n0", "eta_mem", "t_split"}
_MEMORY_LOG = {"eta_max", "k", "h0"}


def _least_squares(residual, starts, names, bounds, logged):
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


# --------------------------------------------------------------------------- model
def _catalogue_name(gpu: str) -> str:
    """The catalogue's name of ``gpu`` (an NVML name or alias), else ``gpu`` itself."""
    from powerfit.hardware import get_gpu

    try:
        return get_gpu(gpu).name
    except (KeyError, ValueError):
        return gpu


def _groups(X: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """(GPU, canonical op) -> row positions."""
    out: dict[tuple[str, str], list[np.ndarray]] = {}
    for (gpu, op), idx in X.groupby(["gpu", "op"], sort=False).indices.items():
        out.setdefault((str(gpu), operator_kind(str(op))), []).append(np.asarray(idx))
    return {k: np.sort(np.concatenate(v)) for k, v in out.items()}


def _frame(X: Any, columns: tuple[str, ...] = OPERATOR_COLUMNS) -> pd.DataFrame:
    """``X`` itself, once checked to be a DataFrame holding ``columns``."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"X must be a pandas DataFrame with columns {columns}")
    missing = [c for c in columns if c not in X.columns]
    if missing:
        raise ValueError(f"X lacks column(s) {missing}; expected {columns}")
    return X


class OperatorTimeModel(RegressorMixin, BaseEstimator):
    """Latency of generic GPU operators from their shape, per (GPU, operator).

    Fits the laws of the module notes to measured latencies, one per (GPU,
    operator) seen in ``fit``; predicts the other GPUs by transfer from their specs.

    Parameters
    ----------
    precision : str, default 'fp32'
        The one precision of the rows (mixing precisions is refused); peaks are
        those of this precision.
    specs_only : bool, default False
        Predict every row by transfer, as if its GPU had never been measured.
    matmul_layout : {'neusight', 'mkn'}, default 'neusight'
        How ``B, M, N, K`` describe a matrix product: ``'neusight'`` (M×N)·(N×K), as in
        NeuSight's data; ``'mkn'`` (M×K)·(K×N). May be changed after ``fit``: the
        fitted coefficients do not depend on it.
    max_rows : int, default 1500
        At most this many rows per (GPU, operator) are used by ``fit`` (a
        deterministic, weight-preserving subsample); 0: all.
    gpu_specs : dict of str to dict, optional
        Specs of GPUs outside the catalogue (see :func:`gpu_specs`).
    random_state : int, default 0
        Seed of the subsample.

    Attributes
    ----------
    laws_ : dict of (str, str) to dict
        (GPU, op) -> fitted coefficients.
    transfer_ : dict of str to dict
        op -> coefficients shared for transfer (medians; for matrix products also
        ``power_intercept``, ``power_slope`` and ``efficiency_cap`` of the efficiency
        relation). A GPU predicted ``specs_only`` uses the same computed without it.
    specs_ : dict of str to dict
        Specs of the fitted GPUs.
    n_rows_ : dict of (str, str) to int
        Rows used per (GPU, op).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from powerfit.operators import OperatorTimeModel
    >>> H = np.logspace(2, 7, 40)
    >>> X = pd.DataFrame({"gpu": "Tesla T4", "op": "relu", "precision": "fp32",
    ...                   "B": 1.0, "M": np.nan, "N": np.nan, "K": np.nan, "H": H})
    >>> y = 8 * H / (0.8 * 320e9) + 5e-6  # [s]: 80 % of the bandwidth, 5 µs of launch
    >>> model = OperatorTimeModel().fit(X, y)
    >>> bool(np.mean(np.abs(model.predict(X) / y - 1)) < 0.05)  # MAPE below 5 %
    True
    """

    def __init__(
        self,
        precision: str = "fp32",
        specs_only: bool = False,
        matmul_layout: str = "neusight",
        max_rows: int = 1500,
        gpu_specs: dict | None = None,
        random_state: int = 0,
    ) -> None:
        self.precision = precision
        self.specs_only = specs_only
        self.matmul_layout = matmul_layout
        self.max_rows = max_rows
        self.gpu_specs = gpu_specs
        self.random_state = random_state

    # ----------------------------------------------------------------- helpers
    def _check(self, X: Any) -> pd.DataFrame:
        X = _frame(X)
        if self.matmul_layout not in ("neusight", "mkn"):
            raise ValueError(
                f"matmul_layout must be 'neusight' or 'mkn', got {self.matmul_layout!r}"
            )
        precisions = set(X["precision"].astype(str).unique())
        if precisions - {self.precision}:
            raise ValueError(
                f"rows of precision {sorted(precisions - {self.precision})} given to a "
                f"{self.precision} model; fit one model per precision"
            )
        return X

    def _spec(self, gpu: str) -> dict:
        specs = getattr(self, "specs_", {})
        if self.gpu_specs and gpu in self.gpu_specs:
            return gpu_specs(gpu, self.precision, self.gpu_specs)
        if gpu in specs:
            return specs[gpu]
        return gpu_specs(gpu, self.precision)

    def _shape(self, d: pd.DataFrame, kind: str):
        bpe = _BYTES.get(self.precision, 4.0)
        if OPERATOR_KINDS[kind] == "matmul":
            B, M, N, K = (d[c].to_numpy(float) for c in ("B", "M", "N", "K"))
            if self.matmul_layout == "mkn":  # (M×K)·(K×N): reduction over K
                N, K = K, N
            for name, v in zip("BMNK", (B, M, N, K), strict=True):
                if not np.all(np.isfinite(v) & (v > 0)):
                    raise ValueError(f"op {kind!r}: column {name!r} must be finite and > 0")
            return B, M, N, K, bpe
        B, H = d["B"].to_numpy(float), d["H"].to_numpy(float)
        for name, v in (("B", B), ("H", H)):
            if not np.all(np.isfinite(v) & (v > 0)):
                raise ValueError(f"op {kind!r}: column {name!r} must be finite and > 0")
        return B, H, bpe

    def _latency(self, kind: str, p: dict, d: pd.DataFrame, spec: dict) -> np.ndarray:
        if OPERATOR_KINDS[kind] == "matmul":
            B, M, N, K, bpe = self._shape(d, kind)
            return _matmul_latency(p, _matmul_features(B, M, N, K, spec, bpe))
        B, H, bpe = self._shape(d, kind)
        moved = operator_bytes(kind, B, H=H, bytes_per_element=bpe)
        return _memory_latency(p, moved, H, float(spec["memory_bandwidth"]))

    # --------------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> OperatorTimeModel:
        """Fit one law per (GPU, operator) in X, and the transfer coefficients.

        Parameters
        ----------
        X : DataFrame with :data:`OPERATOR_COLUMNS`
        y : array-like of shape (n_samples,)
            Measured latency [s], > 0.
        sample_weight : array-like, optional
            Weights of the rows (e.g. to count a collection of model-like shapes as
            much as a larger random sweep).

        Returns
        -------
        self
        """
        X = self._check(X)
        y = np.asarray(y, dtype=float)
        if y.shape != (len(X),) or not np.all(np.isfinite(y) & (y > 0)):
            raise ValueError("y must hold one finite latency > 0 [s] per row of X")
        w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, float)
        if w.shape != y.shape or not np.all(np.isfinite(w) & (w >= 0)):
            raise ValueError("sample_weight must be finite, >= 0 and of shape (n_samples,)")
        groups = _groups(X)
        rng = np.random.default_rng(self.random_state)
        self.laws_, self.n_rows_, self.specs_ = {}, {}, {}
        for gpu in sorted({g for g, _k in groups}):
            self.specs_[gpu] = self._spec(gpu)
        for (gpu, kind), idx in sorted(groups.items()):
            cap = int(self.max_rows)
            if OPERATOR_KINDS[kind] != "matmul":
                cap //= 3  # a 4-coefficient law in one variable needs fewer rows
            if cap and len(idx) > cap:
                p = w[idx] / w[idx].sum()
                idx = np.sort(rng.choice(idx, size=cap, replace=False, p=p))
                wi = np.ones(len(idx))  # drawn with probability ∝ weight
            else:
                wi = w[idx]
            d, spec = X.iloc[idx], self.specs_[gpu]
            if OPERATOR_KINDS[kind] == "matmul":
                B, M, N, K, bpe = self._shape(d, kind)
                feats = _matmul_features(B, M, N, K, spec, bpe)
                law = _fit_matmul(feats, y[idx], wi)
            else:
                B, H, bpe = self._shape(d, kind)
                moved = operator_bytes(kind, B, H=H, bytes_per_element=bpe)
                law = _fit_memory(moved, H, float(spec["memory_bandwidth"]), y[idx], wi)
            self.laws_[(gpu, kind)] = law
            self.n_rows_[(gpu, kind)] = len(idx)
        self.transfer_ = _transfer_coefficients(
            self.laws_, self.specs_, _BYTES.get(self.precision, 4.0)
        )
        self.n_features_in_ = len(OPERATOR_COLUMNS)
        return self

    # ----------------------------------------------------------------- predict
    def transferred_law(self, gpu: str, op: str) -> dict:
        """Coefficients predicted for a GPU from its specs and the other GPUs' laws.

        The laws of ``gpu`` itself, if it was fitted, are left out of the transfer
        (the GPU is predicted as if it had never been measured).

        Parameters
        ----------
        gpu : str
            GPU name (catalogue, or ``gpu_specs``).
        op : str
            Operator.

        Returns
        -------
        dict
            Coefficients of the law of ``op`` on ``gpu``.
        """
        check_is_fitted(self)
        kind = operator_kind(op)
        transfer = self._transfer_for(gpu)
        if kind not in transfer:
            raise ValueError(f"no other GPU was measured on op {kind!r}; cannot transfer it")
        shared = transfer[kind]
        if OPERATOR_KINDS[kind] != "matmul":
            return {n: shared[n] for n in _MEMORY_NAMES}
        law = {n: shared[n] for n in _MATMUL_NAMES}
        spec = self._spec(gpu)
        x = np.log(_power_density(spec))
        target = np.exp(shared["power_intercept"] + shared["power_slope"] * x)
        target = float(min(shared["efficiency_cap"], target))
        law["eta_max"] = _eta_for_efficiency(law, spec, target, _BYTES.get(self.precision, 4.0))
        return law

    def _transfer_for(self, gpu: str) -> dict:
        """Transfer coefficients from the fitted GPUs other than ``gpu``.

        A GPU predicted from its specs must not see its own laws: when ``gpu`` was
        fitted, the medians and the η_max relation are recomputed without it (cached).
        """
        if not any(g == gpu for g, _k in self.laws_):
            return self.transfer_
        # cached per model outside its attributes (which are its serialised state),
        # and dropped when the laws are replaced (a new fit)
        laws, cache = _TRANSFER_CACHE.get(self, (None, {}))
        if laws is not self.laws_:
            cache = {}
            _TRANSFER_CACHE[self] = (self.laws_, cache)
        if gpu not in cache:
            others = {key: c for key, c in self.laws_.items() if key[0] != gpu}
            specs = {g: s for g, s in self.specs_.items() if g != gpu}
            cache[gpu] = _transfer_coefficients(others, specs, _BYTES.get(self.precision, 4.0))
        return cache[gpu]

    def without_gpus(self, gpus: Any) -> OperatorTimeModel:
        """A copy that never measured ``gpus``: their laws dropped, the transfer redone.

        Parameters
        ----------
        gpus : iterable of str
            GPU names (as fitted).

        Returns
        -------
        OperatorTimeModel
            Predicts ``gpus`` by transfer from the other GPUs' laws only.
        """
        import copy

        check_is_fitted(self)
        drop = set(gpus)
        twin = copy.copy(self)
        twin.laws_ = {k: c for k, c in self.laws_.items() if k[0] not in drop}
        twin.n_rows_ = {k: n for k, n in self.n_rows_.items() if k[0] not in drop}
        twin.transfer_ = _transfer_coefficients(
            twin.laws_, twin.specs_, _BYTES.get(self.precision, 4.0)
        )
        return twin

    def law(self, gpu: str, op: str) -> tuple[dict, str]:
        """The law used for ``op`` on ``gpu``, and its origin (``'fit'``/``'transfer'``)."""
        check_is_fitted(self)
        kind = operator_kind(op)
        if (gpu, kind) not in self.laws_:
            gpu = _catalogue_name(gpu)  # an alias ('h100') of a GPU with fitted laws
        if not self.specs_only and (gpu, kind) in self.laws_:
            return self.laws_[(gpu, kind)], "fit"
        return self.transferred_law(gpu, kind), "transfer"

    def predict(self, X: Any) -> np.ndarray:
        """Predicted latency [s] of each row of X.

        Parameters
        ----------
        X : DataFrame with :data:`OPERATOR_COLUMNS`

        Returns
        -------
        numpy.ndarray
            Latency [s].
        """
        check_is_fitted(self)
        X = self._check(X)
        out = np.full(len(X), np.nan)
        for (gpu, kind), idx in _groups(X).items():
            law, _origin = self.law(gpu, kind)
            out[idx] = self._latency(kind, law, X.iloc[idx], self._spec(gpu))
        return out

    def predict_memory_bound(self, X: Any) -> np.ndarray:
        """Latency [s] of memory-bound rows of any precision, on their own bytes.

        Each row is timed by this model's law of its (GPU, operator) (fitted or
        transferred, as :meth:`predict`) on the bytes it moves at the element width of
        *its* precision (``precision`` column: 4 B for FP32/TF32, 2 B for FP16/BF16)
        and its row length ``H`` [elements]: the law's inputs are bytes and ``H``, not
        the model's precision (see "Other precisions" in the module notes for the
        assumption this makes). Rows of the model's own precision get exactly
        :meth:`predict`'s latencies.

        Parameters
        ----------
        X : DataFrame with :data:`OPERATOR_COLUMNS`
            Memory-bound rows only (no ``bmm``/``linear``).

        Returns
        -------
        numpy.ndarray
            Latency [s].

        Raises
        ------
        ValueError
            A matrix product, a precision of unknown element width, or a bad shape.
        """
        check_is_fitted(self)
        X = _frame(X)
        out = np.full(len(X), np.nan)
        precision = X["precision"].astype(str).to_numpy()
        unknown = sorted(set(precision) - set(_BYTES))
        if unknown:
            raise ValueError(
                f"column 'precision': unknown element width of {unknown}; "
                f"expected one of {sorted(_BYTES)}"
            )
        width = np.array([_BYTES[p] for p in precision])
        for (gpu, kind), idx in _groups(X).items():
            if OPERATOR_KINDS[kind] == "matmul":
                raise ValueError(
                    f"row {int(idx[0])}: op {kind!r} is a matrix product, not memory-bound"
                )
            law, _origin = self.law(gpu, kind)
            B, H, _bpe = self._shape(X.iloc[idx], kind)
            moved = operator_bytes(kind, B, H=H, bytes_per_element=width[idx])
            bandwidth = float(self._spec(gpu)["memory_bandwidth"])
            out[idx] = _memory_latency(law, moved, H, bandwidth)
        return out

    # --------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict:
        """The fitted model as plain JSON-able data (see :meth:`from_dict`)."""
        check_is_fitted(self)
        return {
            "format": "powerfit-operator-model/1",
            "precision": self.precision,
            "matmul_layout": "neusight",
            "specs": self.specs_,
            "laws": [
                {"gpu": g, "op": o, "coefficients": c, "n_rows": self.n_rows_.get((g, o))}
                for (g, o), c in sorted(self.laws_.items())
            ],
            "transfer": self.transfer_,
        }

    @classmethod
    def from_dict(cls, data: dict, **params: Any) -> OperatorTimeModel:
        """Rebuild a fitted model from :meth:`to_dict`'s output (JSON only, no pickle)."""
        if data.get("format") != "powerfit-operator-model/1":
            raise ValueError(f"not a powerfit operator model: format {data.get('format')!r}")
        model = cls(precision=data["precision"], **params)
        model.specs_ = {g: dict(s) for g, s in data["specs"].items()}
        model.laws_ = {(e["gpu"], e["op"]): dict(e["coefficients"]) for e in data["laws"]}
        model.n_rows_ = {(e["gpu"], e["op"]): e.get("n_rows") for e in data["laws"]}
        # the transfer is recomputed from the laws (the stored copy is for reading)
        model.transfer_ = _transfer_coefficients(
            model.laws_, model.specs_, _BYTES.get(model.precision, 4.0)
        )
        model.n_features_in_ = len(OPERATOR_COLUMNS)
        return model


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


# ---------------------------------------------------------------------- baselines
def roofline_latency(X: pd.DataFrame, precision: str = "fp32", specs: dict | None = None):
    """Roofline latency max(FLOP/peak, bytes/bandwidth) [s] of each row.

    Parameters
    ----------
    X : DataFrame with :data:`OPERATOR_COLUMNS`
    precision : str, default 'fp32'
    specs : dict, optional
        GPU specs overriding the catalogue (see :func:`gpu_specs`).

    Returns
    -------
    numpy.ndarray
        Latency [s].
    """
    X = _frame(X)
    out = np.full(len(X), np.nan)
    bpe = _BYTES.get(precision, 4.0)
    for (gpu, op), idx in X.groupby(["gpu", "op"], sort=False).indices.items():
        spec = gpu_specs(str(gpu), precision, specs)
        d = X.iloc[idx]
        shape = {c: d[c].to_numpy(float) for c in ("B", "M", "N", "K", "H")}
        if OPERATOR_KINDS[operator_kind(str(op))] != "matmul":
            shape = {"B": shape["B"], "H": shape["H"]}
        flops = operator_flops(str(op), **shape)
        moved = operator_bytes(str(op), **shape, bytes_per_element=bpe)
        out[idx] = np.maximum(flops / spec["peak_flops"], moved / spec["memory_bandwidth"])
    return out


# ------------------------------------------------------------------ bundled model
def load_operator_model(precision: str = "fp32", **params: Any) -> OperatorTimeModel:
    """The bundled model fitted on NeuSight's data (``powerfit/data/operators/``).

    Parameters
    ----------
    precision : str, default 'fp32'
        Only FP32 measurements are bundled.
    **params
        Hyper-parameters of :class:`OperatorTimeModel` (e.g. ``matmul_layout='mkn'``,
        ``specs_only=True``, ``gpu_specs=...``).

    Returns
    -------
    OperatorTimeModel

    Examples
    --------
    >>> import pandas as pd
    >>> model = load_operator_model()
    >>> X = pd.DataFrame([{"gpu": "NVIDIA A100 80GB PCIe", "op": "bmm", "precision": "fp32",
    ...                    "B": 16, "M": 1024, "N": 1024, "K": 1024, "H": None}])
    >>> 1e-3 < float(model.predict(X)[0]) < 3e-3  # ≈ 17 TFLOP/s on 34 GFLOP
    True
    """
    name = f"{precision}.json"
    try:
        text = resources.files("powerfit").joinpath("data", "operators", name).read_text()
    except FileNotFoundError:
        raise ValueError(
            f"no bundled operator model for precision {precision!r}; "
            "build one with experiments/build_operator_profiles.py"
        ) from None
    return OperatorTimeModel.from_dict(json.loads(text), **params)


# --------------------------------------------------------------------- evaluation
#: (GPU, op, collection) of NeuSight's data left out of fits and evaluation, and why.
NEUSIGHT_EXCLUDED: dict[tuple[str, str, str], str] = {
    ("Tesla P4", "linear", "train"): (
        "throttled: the training sweep's throughput falls with size (median 2.1 "
        "TFLOP/s at 1e9-1e10 FLOP, 0.84 at > 1e12) while the test collection "
        "reaches 4.2-4.6 TFLOP/s on the same FLOP range (75 W passively cooled board)"
    ),
}


def neusight_operator_frame(data_home: Any = None, exclude: bool = True) -> pd.DataFrame:
    """NeuSight's operator rows: :data:`OPERATOR_COLUMNS`, ``latency_s``, ``collection``.

    Parameters
    ----------
    data_home : path, optional
        See :func:`powerfit.datasets.get_data_home`.
    exclude : bool, default True
        Leave out the groups of :data:`NEUSIGHT_EXCLUDED`.

    Returns
    -------
    pandas.DataFrame
    """
    from powerfit.datasets import fetch_neusight2025

    ops = fetch_neusight2025(data_home).operators
    frame = ops[[*OPERATOR_COLUMNS, "latency_s", "collection"]].copy()
    for col in ("gpu", "op", "precision", "collection"):
        frame[col] = frame[col].astype(object)
    if exclude:
        for gpu, op, collection in NEUSIGHT_EXCLUDED:
            drop = (
                (frame["gpu"] == gpu) & (frame["op"] == op) & (frame["collection"] == collection)
            )
            frame = frame[~drop]
    return frame.reset_index(drop=True)


def _held_out(frame: pd.DataFrame, fraction: int = 4) -> np.ndarray:
    """Deterministic shape split: 1 in ``fraction`` test-collection shapes held out."""
    shape = frame[["op", "B", "M", "N", "K", "H"]].copy()
    shape["op"] = shape["op"].astype(object)
    hashes = pd.util.hash_pandas_object(shape.fillna(-1.0), index=False).to_numpy()
    return (frame["collection"].to_numpy() == "test") & (hashes % fraction == 0)


def _weights(frame: pd.DataFrame) -> np.ndarray:
    """Test-collection rows weigh as much, in total, as the training sweep's rows."""
    w = np.ones(len(frame))
    groups = frame.groupby(["gpu", "op"], sort=False).indices
    is_test = frame["collection"].to_numpy() == "test"
    for idx in groups.values():
        test, train = idx[is_test[idx]], idx[~is_test[idx]]
        if len(test) and len(train):
            w[test] = max(1.0, len(train) / len(test))
    return w


def _mape(pred: np.ndarray, y: np.ndarray) -> float:
    return float(100 * np.mean(np.abs(pred / y - 1))) if len(y) else float("nan")


def _r2(pred: np.ndarray, y: np.ndarray) -> float:
    if len(y) < 2:
        return float("nan")
    ss = float(np.sum((y - y.mean()) ** 2))
    return 1 - float(np.sum((y - pred) ** 2)) / ss if ss > 0 else float("nan")


#: The stages of :func:`evaluate_operators`, as its ``progress`` callback names them.
EVALUATION_STAGES = (
    "fitting every GPU on all rows",
    "fitting every GPU without its held-out shapes",
    "transferring to each GPU left out",
    "fitting the FLOPs-only law",
)


def evaluate_operators(
    frame: pd.DataFrame | None = None,
    max_rows: int = 1000,
    random_state: int = 0,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Per GPU and operator family: in-GPU, leave-one-GPU-out and roofline errors.

    Protocol. For every GPU, 1 in 4 shapes of NeuSight's *test* collection
    (model-like shapes; a deterministic hash of the shape) is held out; the laws are
    fitted on everything else of that GPU (its training sweep, if any, and the other
    test-collection shapes, the two weighted equally). The same held-out rows are
    predicted (a) by that fit ("in-GPU"), (b) by transfer from the specs and the
    laws of the *other* GPUs fitted on all their rows ("leave-one-GPU-out"), and
    (c) by the roofline max(FLOP/peak, bytes/bandwidth).

    Parameters
    ----------
    frame : DataFrame, optional
        Rows with :data:`OPERATOR_COLUMNS`, ``latency_s`` [s] and ``collection``;
        default NeuSight's (:func:`neusight_operator_frame`).
    max_rows : int, default 1000
        Rows per (GPU, op) used by each fit (see :class:`OperatorTimeModel`).
    random_state : int, default 0
    progress : callable, optional
        Called with the name of each stage (:data:`EVALUATION_STAGES`) as it starts.

    Returns
    -------
    pandas.DataFrame
        One row per (GPU, family) (``matmul``: bmm + linear; ``memory``: softmax,
        LayerNorm, element-wise): rows held out, ``eta_max`` (median over the
        family's ops), R² of the efficiency on the held-out rows (and of the paper's
        FLOPs-only law fitted on the same rows), MAPE [%] in-GPU,
        leave-one-GPU-out, roofline, the targets' verdicts, and ``seconds``.
    """
    start = time.perf_counter()
    if frame is None:
        frame = neusight_operator_frame()
    frame = frame.reset_index(drop=True)
    frame["op"] = frame["op"].astype(str).map(operator_kind)
    y = frame["latency_s"].to_numpy(float)
    w = _weights(frame)
    held = _held_out(frame)
    params = {"max_rows": max_rows, "random_state": random_state}
    stage = progress or (lambda name: None)
    stage(EVALUATION_STAGES[0])
    full = OperatorTimeModel(**params).fit(frame, y, w)
    stage(EVALUATION_STAGES[1])
    in_gpu = OperatorTimeModel(**params).fit(frame[~held], y[~held], w[~held])
    pred_in = in_gpu.predict(frame[held])
    roof = roofline_latency(frame[held].reset_index(drop=True))
    test = frame[held].reset_index(drop=True).assign(pred_in=pred_in, roof=roof)
    test["pred_logo"] = np.nan
    gpus = sorted(frame["gpu"].unique())
    stage(EVALUATION_STAGES[2])
    for gpu in gpus:
        mask = test["gpu"] == gpu
        if mask.any():
            test.loc[mask, "pred_logo"] = full.without_gpus([gpu]).predict(test[mask])
    stage(EVALUATION_STAGES[3])
    test["flops_law"] = _flops_law_predictions(frame[~held], w[~held], test, full.specs_)
    test["family"] = np.where(test["op"].map(OPERATOR_KINDS) == "matmul", "matmul", "memory")
    rows = []
    for (gpu, family), d in test.groupby(["gpu", "family"]):
        yy = d["latency_s"].to_numpy()
        spec = full.specs_[gpu]
        if family == "matmul":
            work = 2 * d["B"] * d["M"] * d["N"] * d["K"] / spec["peak_flops"]
        else:
            work = np.array(
                [
                    operator_bytes(o, b, H=h) / spec["memory_bandwidth"]
                    for o, b, h in zip(d["op"], d["B"], d["H"], strict=True)
                ]
            )
        work = np.asarray(work, float)
        etas = [
            c["eta_max"]
            for (g, o), c in full.laws_.items()
            if g == gpu and (OPERATOR_KINDS[o] == "matmul") == (family == "matmul")
        ]
        flops_law = d["flops_law"].to_numpy()
        r2_flops = _r2(work / flops_law, work / yy) if np.isfinite(flops_law).all() else np.nan
        mape_in = _mape(d["pred_in"].to_numpy(), yy)
        mape_logo = _mape(d["pred_logo"].to_numpy(), yy)
        mape_roof = _mape(d["roof"].to_numpy(), yy)
        rows.append(
            {
                "gpu": gpu,
                "family": family,
                "ops": ",".join(sorted(d["op"].unique())),
                "n_test": len(d),
                "eta_max": float(np.median(etas)),
                "r2_eta": _r2(work / d["pred_in"].to_numpy(), work / yy),
                "r2_eta_flops_law": r2_flops,
                "mape_in_gpu": mape_in,
                "mape_logo": mape_logo,
                "mape_roofline": mape_roof,
                "in_gpu_target_met": mape_in <= 10.0,
                "logo_beats_roofline": mape_logo < mape_roof,
            }
        )
    table = pd.DataFrame(rows)
    table.attrs["seconds"] = time.perf_counter() - start
    table.attrs["full_model"] = full
    return table


def _flops_law_predictions(train, weights, test, specs) -> np.ndarray:
    """Held-out latencies [s] of the paper's FLOPs-only law, per (GPU, matmul op)."""
    from powerfit.laws import PowerLawEfficiency

    out = np.full(len(test), np.nan)
    rng = np.random.default_rng(0)
    test_groups = _groups(test)
    for (gpu, kind), idx in _groups(train).items():
        if OPERATOR_KINDS[kind] != "matmul" or (gpu, kind) not in test_groups:
            continue
        if len(idx) > 1000:
            p = weights[idx] / weights[idx].sum()
            idx = rng.choice(idx, size=1000, replace=False, p=p)
        d = train.iloc[idx]
        peak = float(specs[gpu]["peak_flops"])
        flops = 2.0 * d["B"] * d["M"] * d["N"] * d["K"]
        eta = (flops / (d["latency_s"] * peak)).to_numpy()
        law = PowerLawEfficiency(on_failure="warn").fit(flops.to_numpy()[:, None], eta)
        t_idx = test_groups[(gpu, kind)]
        dt = test.iloc[t_idx]
        out[t_idx] = law.predict_duration(
            (2.0 * dt["B"] * dt["M"] * dt["N"] * dt["K"]).to_numpy()[:, None], peak
        )
    return out


def coefficient_table(model: OperatorTimeModel, ops: tuple[str, ...] | None = None):
    """The fitted laws as a table: one row per (GPU, op), coefficients in SI units.

    Parameters
    ----------
    model : OperatorTimeModel
        A fitted model.
    ops : tuple of str, optional
        Only these operators.

    Returns
    -------
    pandas.DataFrame
        ``gpu``, ``op``, ``n_rows`` and the coefficients (NaN where a coefficient
        belongs to the other family's law).
    """
    check_is_fitted(model)
    rows = []
    for (gpu, kind), law in sorted(model.laws_.items()):
        if ops is None or kind in ops:
            rows.append({"gpu": gpu, "op": kind, "n_rows": model.n_rows_.get((gpu, kind)), **law})
    return pd.DataFrame(rows)


def format_operator_table(table: pd.DataFrame) -> str:
    """The evaluation table as text, with the misses spelt out."""
    shown = table.drop(columns=["ops"]).copy()
    text = shown.to_string(index=False, float_format=lambda x: f"{x:.3g}")
    misses = []
    for _, r in table.iterrows():
        if not r["in_gpu_target_met"]:
            misses.append(
                f"  {r['gpu']} {r['family']}: in-GPU MAPE {r['mape_in_gpu']:.1f} % "
                f"misses the 10 % target by {r['mape_in_gpu'] - 10:.1f} points"
            )
        if not r["logo_beats_roofline"]:
            misses.append(
                f"  {r['gpu']} {r['family']}: leave-one-GPU-out {r['mape_logo']:.1f} % "
                f"is not ahead of the roofline ({r['mape_roofline']:.1f} %)"
            )
    note = (
        "\nin-GPU: fit on the GPU's training sweep + 3/4 of its test-collection shapes, "
        "tested on the other 1/4 (hash of the shape); leave-one-GPU-out: the same rows "
        "predicted from the GPU's specs and the other GPUs' laws; roofline: "
        "max(FLOP/peak, bytes/bandwidth). MAPE of latency [%]; r2_eta: R² of the "
        "efficiency on the held-out rows; r2_eta_flops_law: the same for the paper's "
        "FLOPs-only law η(c) fitted on the same rows (matrix products)."
    )
    if misses:
        note += "\nmissed targets:\n" + "\n".join(misses)
    seconds = table.attrs.get("seconds")
    if seconds is not None:
        note += f"\n({seconds:.1f} s)"
    return text + note
