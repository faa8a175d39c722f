"""The per-(GPU, operator) latency laws as one scikit-learn estimator, and the bundled laws.

:class:`OperatorTimeModel` fits the laws of :mod:`powerfit.kernels.laws` per (GPU, operator)
and predicts from them, or, for a GPU it never measured, from laws transferred from its
specs (:mod:`powerfit.kernels.transfer`); :func:`load_operator_model` loads the laws
bundled with the package. Predicting and (de)serialising live in
:class:`powerfit.kernels.operator_laws.OperatorLaws`, its base class, which imports
neither scikit-learn nor SciPy: a step timed with the bundled laws
(:func:`powerfit.steps.latency.bundled_operator_model`) uses it alone.

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

Other precisions
----------------
FP32 laws are measured on NeuSight's data; FP16 laws (matrix products and memory-bound
operators, tensor cores) on Vidur's (:mod:`powerfit.kernels.half`), bundled as
``fp16.json`` and used for BF16 too (:data:`BUNDLED_LAWS_OF`). For TF32, and for a
precision whose bundle does not apply (e.g. BF16 on a GPU without a BF16 peak), the FP32
laws stand in. A memory-bound operator's latency
depends on its precision only through the bytes it moves: its law
(:mod:`powerfit.kernels.laws`) is keyed on
``bytes`` (the size term, bytes/(BW·τ), and t = bytes/(BW·η)) and on the row length
``H`` in *elements* (the reduction term H/(H + h0)), and
:meth:`OperatorTimeModel.predict_memory_bound` evaluates the FP32 law of a (GPU,
operator) on the bytes of each row's own element width (4 B for FP32 and TF32, whose
memory-bound kernels are the FP32 ones, so their latencies are identical; 2 B for
FP16/BF16, half the bytes for the same shape) and the same ``H``. That the fitted
efficiency ``η(bytes, H)`` of a kernel carries over to 2-byte elements (same
saturation in bytes, same row-length term in elements, same ``η_max``) is an
**assumption**, not a fitted fact: half-precision kernels load more elements per
vector access, which can make short rows cheaper than the law says (where the FP16
laws apply they are used instead). Matrix products have no such carry-over (other
kernels, other units): :func:`powerfit.steps.latency.operator_latency` times them by the
roofline at their precision's peak, plus the fixed cost of a call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from powerfit.kernels.counts import OPERATOR_KINDS, operator_bytes
from powerfit.kernels.laws import _BYTES, _fit_matmul, _fit_memory, _matmul_features
from powerfit.kernels.operator_laws import (
    BUNDLED_LAWS_OF,
    OPERATOR_COLUMNS,
    STAND_INS,
    OperatorLaws,
    _groups,
    bundled_laws,
)
from powerfit.kernels.transfer import _transfer_coefficients

__all__ = [
    "BUNDLED_LAWS_OF",
    "OPERATOR_COLUMNS",
    "STAND_INS",
    "OperatorTimeModel",
    "load_operator_model",
]


class OperatorTimeModel(RegressorMixin, BaseEstimator, OperatorLaws):
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
    call_timing : {'queued', 'isolated'}, default 'queued'
        How the latencies fitted were timed: ``'queued'`` (calls back to back, a mean
        over a block, as ``powerfit measure ops`` times them; or kernel durations) or
        ``'isolated'`` (each call timed on its own, synchronised, as NeuSight's
        benchmarks: the bundled FP32 laws). A step's time replaces an isolated call's
        fixed cost (:meth:`call_overhead`) by that of a queued one
        (:func:`powerfit.steps.latency.operator_latency`); ``predict`` gives the
        latency as measured either way.

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
    >>> from powerfit.kernels.model import OperatorTimeModel
    >>> H = np.logspace(2, 7, 40)
    >>> X = pd.DataFrame({"gpu": "Tesla T4", "op": "relu", "precision": "fp32",
    ...                   "B": 1.0, "M": np.nan, "N": np.nan, "K": np.nan, "H": H})
    >>> y = 8 * H / (0.8 * 320e9) + 5e-6  # [s]: 80 % of the bandwidth, 5 µs of launch
    >>> model = OperatorTimeModel().fit(X, y)
    >>> bool(np.mean(np.abs(model.predict(X) / y - 1)) < 0.05)  # MAPE below 5 %
    True
    """

    def _check_fitted(self) -> None:
        check_is_fitted(self)

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


def load_operator_model(precision: str = "fp32", **params: Any) -> OperatorTimeModel:
    """The bundled model fitted on NeuSight's data (``powerfit/data/operators/``).

    Parameters
    ----------
    precision : str, default 'fp32'
        ``fp32`` (NeuSight's operators), ``fp16`` and ``bf16`` (Vidur's FP16 operators,
        :data:`BUNDLED_LAWS_OF`).
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
    return OperatorTimeModel.from_dict(bundled_laws(precision), **params)
