"""A training-step energy model that extrapolates: time from physics, energy = power × time.

The paper's model regresses energy on per-operation *forward* durations with free
(and partly negative) coefficients. This module keeps its ingredients — analytic
FLOPs, per-(GPU, operation) efficiency laws, a linear energy model — but arranges
them so that the fitted numbers mean something physical and carry over to
configurations and GPUs nobody measured:

1. :class:`StepFeatures` turns configurations into the reference times of one
   **training step** (forward + backward, 3× the forward FLOPs) of every dense
   operation, each from the efficiency law of its GPU,
   ``t_ref = 3 · n · c / (peak · η(c))`` [s] (n = layers, 1 for the output head),
   together with the FLOPs ``c`` of one call, and the times the memory-bound work
   would take at the GPU's memory bandwidth [s]: the attention probabilities
   (softmax, dropout, masking: batch·heads·seq_len² elements per layer), the
   activations (batch·seq_len·(d_model + d_ff) per layer) and the parameters
   (gradients and the optimiser's update, ∝ parameter count).
2. :class:`StepEnergyRegressor` fits the step time

       t = Σ_g a_g · Σ_{i∈g} t_ref,i · (c_i / (v_max · 10 ms))^β_g
           + Σ_k m_k · t_mem,k + t_0 + t_L · n_layers                [s]

   with a_g, m_k, t_0, t_L ≥ 0 (non-negative by construction, fitted in log space)
   and |β_g| ≤ 1 (c_i / v_max read as at least 1 µs: see ``_SMALLEST_SIZE``), by
   least squares on log time — relative errors, as measured steps span two
   orders of magnitude. Groups g are the dense matrix products (projections,
   feed-forward network, output head) and the attention products;
   a_g and β_g correct the isolated-operation laws for what a whole training step
   does differently (backward kernels, fusion, caches). The size that β_g acts on
   is c_i / v_max, the time the call would take at the GPU's peak v_max [FLOP/s],
   not the FLOPs: a correction in seconds carries over to another GPU, one in
   FLOPs does not (held-out RTX 2080 Ti: MAPE 7.5 % against 9.4 %). Then
   energy = P · t with
   P the mean power of the GPU [W], measured as energy ÷ measured step time.
3. For a GPU absent from the training data, the times come from *that GPU's* laws,
   peak throughput and memory bandwidth, and its power is the fitted fraction of
   board power (P / TDP) of the training GPUs times its own TDP
   (:attr:`powerfit.hardware.gpus.GPU.power_limit_w`).
4. What the physical model misses on a measured GPU — kernel choices, tiles left
   partly empty by widths that are not multiples of 128 or 256, a head dimension
   off a multiple of 32 — is learned as a multiplicative correction: gradient
   boosting of log(measured / physical energy) over the configuration and
   alignment descriptors (``correction='boosting'``), constrained never to
   decrease with the descriptors that grow with the work of a step (layers,
   sequence length, batch), so that the corrected energy, like the
   physical one, never decreases with more layers, tokens or batch (issue 16).
   It applies to the GPUs of the training data only, so an unseen GPU gets the
   physical model alone. The trees are kept as plain arrays.

Prediction intervals come from a bootstrap of the whole fit combined with the
training residuals: out-of-fold residuals of the corrected model for
configurations whose values were measured on that GPU, residuals of the physical
model for any other (:meth:`StepEnergyRegressor.predict_interval`).

Conventions: SI units inside (FLOP, s, J, W, B/s, FLOP/s; η as a fraction);
every learned attribute is a plain NumPy array, float or list of str, so that a
fitted pipeline serialises with skops (trusted types: this module's and
:mod:`powerfit.paper.step_features`' classes). The features are
:mod:`powerfit.paper.step_features`, the compiled trees of the correction
:mod:`powerfit.paper.trees`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from powerfit.paper.step_features import StepFeatures
from powerfit.paper.trees import _flatten_trees, _predict_trees

__all__ = [
    "CORRECTION_DEFAULTS",
    "StepEnergyRegressor",
    "make_step_energy_pipeline",
    "predict_interval",
]

_REFERENCE_TIME = 1e-2  # [s] unit of c / v_max in the step-time corrections
#: Smallest c / (v_max · 10 ms) [-] the corrections (c / v_max)^β read: smaller calls
#: (under 1 µs at peak; the published runs' smallest is 3.4 µs) keep the correction
#: of that size. With β < 0, t_ref · (c / v_max)^β ∝ c^(1+β) / η(c) would grow
#: without bound as c → 0 (η ∝ c^α there), so that one token or one sample would
#: cost more than many; kept constant below this size, t_ref (∝ c / η(c), α ≤ 1)
#: never decreases there.
_SMALLEST_SIZE = 1e-4


class _Layout:
    """Where each parameter of the step-time model sits, from the feature names."""

    def __init__(self, columns: list[str]) -> None:
        self.groups = sorted({c.split(":")[1] for c in columns if c.startswith("time:")})
        self.ops = {
            g: [c.split(":", 2)[2] for c in columns if c.startswith(f"time:{g}:")]
            for g in self.groups
        }
        self.memory = [c for c in columns if c.startswith("memory:")]
        self.names = [f"log_scale:{g}" for g in self.groups]
        self.names += [f"exponent:{g}" for g in self.groups]
        self.names += [f"log_coef:{m}" for m in self.memory]
        self.names += ["log_overhead_s", "log_overhead_per_layer_s"]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        k, m = len(self.groups), len(self.memory)
        lower = np.r_[np.full(k, -10.0), np.full(k, -1.0), np.full(m, -25.0), -25.0, -25.0]
        upper = np.r_[np.full(k, 10.0), np.full(k, 1.0), np.full(m, 10.0), 5.0, 5.0]
        return lower, upper

    def start(self, shift: float) -> np.ndarray:
        k, m = len(self.groups), len(self.memory)
        return np.r_[np.zeros(k), np.zeros(k), np.full(m, shift), -7.0 + shift, -9.0 + shift]


def _arrays(F: pd.DataFrame, layout: _Layout) -> dict[str, Any]:
    """What :func:`_step_time` reads: per group, (times [s], log size [-]) of each op.

    An operation whose FLOPs and times are all zero (no output head) adds nothing
    and is left out; one with the FLOPs of the one before it (the two attention
    products) shares its log size.
    """
    reference = F["peak_flops"].to_numpy(dtype=float) * _REFERENCE_TIME
    data: dict[str, Any] = {
        "n_layers": F["n_layers"].to_numpy(dtype=float),
        "memory": F[layout.memory].to_numpy(dtype=float),
    }
    for g in layout.groups:
        terms, previous = [], None
        for op in layout.ops[g]:
            times = F[f"time:{g}:{op}"].to_numpy(dtype=float)
            c = F[f"flops:{g}:{op}"].to_numpy(dtype=float)
            if not (times.any() or c.any()):
                continue
            if previous is None or not np.array_equal(c, previous[0]):
                size = c / reference
                previous = c, np.log(np.maximum(size, _SMALLEST_SIZE, out=size), out=size)
            terms.append((times, previous[1]))
        data[f"terms:{g}"] = terms
    return data


def _step_time(theta: np.ndarray, data: dict[str, Any], layout: _Layout) -> np.ndarray:
    k, m = len(layout.groups), len(layout.memory)
    t = np.exp(theta[2 * k + m]) + np.exp(theta[2 * k + m + 1]) * data["n_layers"]
    for j, g in enumerate(layout.groups):
        total, previous, factor = None, None, None
        with np.errstate(over="ignore"):
            for times, logc in data[f"terms:{g}"]:
                if logc is not previous:
                    factor = np.exp(theta[k + j] * logc)
                    previous = logc
                # Summed in the order of the operations, as a row sum would.
                scaled = times * factor
                total = scaled if total is None else np.add(total, scaled, out=total)
        if total is not None:
            t += np.multiply(total, np.exp(theta[j]), out=total)
    if m:
        t += data["memory"] @ np.exp(theta[2 * k : 2 * k + m])
    return t


#: Settings of the boosted correction (:class:`~sklearn.ensemble.HistGradientBoostingRegressor`)
#: by architecture, chosen on splits of the rows and of the configurations that the
#: evaluation does not use, by the mean MAPE of the two (``experiments/tune_models.py``):
#: the best of the grid, except that the Transformer gets 300 iterations instead of
#: 1000, which gain only on the row split (where most test rows have an exact twin
#: in the training rows), lose 0.05 point on the configuration split and cost 3× the
#: fit time and the size of the fitted model.
CORRECTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "transformer": {
        "learning_rate": 0.1,
        "max_iter": 300,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 5,
    },
    "lstm": {
        "learning_rate": 0.05,
        "max_iter": 100,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 5,
    },
}


#: Correction features along which the boosted trees never decrease: those that grow
#: with the work of a step (more layers, tokens or batch never cost less).
_MONOTONE_FEATURES = ("n_layers", "batch_size", "seq_len")

#: Descriptors the correction does not read. The parameter count grows with the
#: layers and the sequence length (position embeddings) but also with d_model: left
#: free it would let the correction fall with more layers or tokens, constrained
#: it would bind d_model too (``powerfit evaluate``: MAPE 6.7 % against 5.2 % on
#: dmodel-1024, 4.9 % against 4.2 % on layers-12); the trees read n_layers,
#: d_model and seq_len instead.
_UNCORRECTED_FEATURES = ("n_params",)

#: Configuration columns whose measured values define the correction's domain.
_GRID_FEATURES = ("n_layers", "batch_size", "seq_len", "d_model", "n_heads", "input_size",
                  "hidden_size")  # fmt: skip


class StepEnergyRegressor(RegressorMixin, BaseEstimator):
    """Energy [J] of a training step as power × a physically grounded step time.

    Works on the output of :class:`StepFeatures`; see the module notes for the
    time model. Measured step times (``duration_s``), when every training row has
    one, are what the time model is fitted to, and each GPU's power is then
    Σ energy / Σ measured time [W]; without them, energy is fitted directly with
    the power fixed to ``power_fraction`` × TDP.

    Parameters
    ----------
    power_fraction : float, optional
        Mean power as a fraction of the board power limit [-], for GPUs absent from
        the training data (and for every GPU when no durations are given). Default:
        learned from the training GPUs (1/3 when no durations are given).
    n_starts : int, default 3
        Starting points of the nonlinear fit (different overhead scales).
    n_bootstrap : int, default 0
        Bootstrap refits for prediction intervals (0: no intervals).
    confidence : float, default 0.9
        Nominal level of the prediction intervals.
    random_state : int, RandomState or None, default None
        Seed of the bootstrap.
    max_nfev : int, default 3000
        Function evaluations allowed per start.
    correction : {'boosting', None}, default 'boosting'
        Learn what the physical model misses on the GPUs of the training data:
        gradient boosting of log(measured / physical energy) over the
        configuration and alignment descriptors of :class:`StepFeatures`
        (``shape:*`` columns). It multiplies the physical prediction on those GPUs
        only; a GPU without training rows gets the physical model alone, since
        what the correction learns (kernel choices, tile effects) belongs to the
        hardware it was measured on. The trees never decrease with
        ``n_layers``, ``batch_size`` or ``seq_len`` (``monotonic_cst``; they do
        not read ``n_params``), so the corrected energy never decreases with more
        layers, tokens or batch. None: the physical model alone.
    correction_params : dict, optional
        Settings of :class:`~sklearn.ensemble.HistGradientBoostingRegressor` for
        the correction, over those of :data:`CORRECTION_DEFAULTS` for the
        architecture of the features (a ``monotonic_cst`` given here replaces
        the monotone one and gives up that guarantee; the losses
        ``absolute_error`` and ``quantile`` are refused, as they break it).

    Attributes
    ----------
    params_ : numpy.ndarray
        Fitted parameters, named by ``param_names_``: log scales and exponents
        β of each group, log coefficients of the memory terms, log overheads.
    param_names_ : list of str
    power_w_ : numpy.ndarray
        Mean power of each GPU of :class:`StepFeatures`'s ``gpus_`` order [W]; NaN for
        GPUs without training rows.
    power_fraction_ : float
        Power / TDP used for GPUs without training rows [-].
    fit_target_ : {'duration', 'energy'}
        What the time model was fitted to.
    residuals_ : numpy.ndarray
        log(measured / predicted energy) on the training rows; with a correction,
        out-of-fold (3 folds of configurations, so that repeated measurements of
        one configuration stay in one fold), so that intervals are not narrowed
        by the correction's fit to its own rows.
    physical_residuals_ : numpy.ndarray
        log(measured / physical energy) on the training rows (no correction): the
        spread of the intervals of configurations outside the correction's domain.
    correction_grid_ : dict of str to numpy.ndarray
        The measured values of each configuration column (``shape:n_layers``,
        ``shape:batch_size``, …). A configuration whose values are all among them,
        on a GPU with training rows, is inside the correction's domain; its
        interval uses ``residuals_``, any other configuration's
        ``physical_residuals_``.
    correction_ : dict of str to numpy.ndarray or None
        The correction's trees as arrays (node features, thresholds, children,
        leaf values) and its baseline [log ratio].
    correction_features_ : list of str
        The ``shape:*`` columns the correction reads.
    correction_gpus_ : numpy.ndarray
        Indices of the GPUs the correction applies to (those with training rows).
    bootstrap_params_ : numpy.ndarray of shape (n_bootstrap, n_params)
    bootstrap_power_w_ : numpy.ndarray of shape (n_bootstrap, n_gpus)
    bootstrap_power_fraction_ : numpy.ndarray of shape (n_bootstrap,)

    Examples
    --------
    See :func:`make_step_energy_pipeline`.
    """

    def __init__(
        self,
        power_fraction: float | None = None,
        n_starts: int = 3,
        n_bootstrap: int = 0,
        confidence: float = 0.9,
        random_state: Any = None,
        max_nfev: int = 3000,
        correction: str | None = "boosting",
        correction_params: Mapping[str, Any] | None = None,
    ) -> None:
        self.power_fraction = power_fraction
        self.n_starts = n_starts
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.random_state = random_state
        self.max_nfev = max_nfev
        self.correction = correction
        self.correction_params = correction_params

    # ----------------------------------------------------------------- fitting
    def _check(self, X: Any) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame) or "gpu_index" not in X.columns:
            raise ValueError(
                "StepEnergyRegressor needs the DataFrame of StepFeatures "
                "(use make_step_energy_pipeline)"
            )
        return X

    def _solve(self, data, target, layout, start=None) -> np.ndarray:
        lower, upper = layout.bounds()
        log_target = np.log(target)

        def residuals(theta: np.ndarray) -> np.ndarray:
            return np.log(_step_time(theta, data, layout)) - log_target

        starts = (
            [start]
            if start is not None
            else [
                layout.start(shift) for shift in np.linspace(-4.0, 4.0, max(1, int(self.n_starts)))
            ]
        )
        best = None
        for theta0 in starts:
            theta0 = np.clip(theta0, lower + 1e-6, upper - 1e-6)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                result = least_squares(
                    residuals,
                    theta0,
                    bounds=(lower, upper),
                    method="trf",
                    x_scale="jac",
                    # a warm start (bootstrap refit) needs far fewer evaluations
                    max_nfev=int(self.max_nfev) if start is None else min(int(self.max_nfev), 300),
                )
            if np.all(np.isfinite(result.fun)) and (best is None or result.cost < best.cost):
                best = result
        if best is None:
            raise ValueError("the step-time model could not be fitted (non-finite residuals)")
        return best.x

    def _fit_once(self, F: pd.DataFrame, energy: np.ndarray, layout: _Layout, start=None):
        data = _arrays(F, layout)
        gpu = F["gpu_index"].to_numpy(dtype=int)
        tdp = F["tdp_w"].to_numpy(dtype=float)
        duration = F["duration_s"].to_numpy(dtype=float)
        n_gpus = int(gpu.max()) + 1 if len(gpu) else 1
        n_gpus = max(n_gpus, getattr(self, "_n_gpus", n_gpus))
        power = np.full(n_gpus, np.nan)
        if self.fit_target_ == "duration":
            theta = self._solve(data, duration, layout, start)
            for index in np.unique(gpu):
                rows = gpu == index
                power[index] = energy[rows].sum() / duration[rows].sum()
            seen = np.isfinite(power)
            tdp_of = np.array([tdp[gpu == i][0] for i in np.flatnonzero(seen)])
            fraction = (
                float(np.mean(power[seen] / tdp_of))
                if self.power_fraction is None
                else float(self.power_fraction)
            )
        else:
            fraction = 1.0 / 3.0 if self.power_fraction is None else float(self.power_fraction)
            theta = self._solve(data, energy / (fraction * tdp), layout, start)
        return theta, power, fraction

    def fit(self, X: pd.DataFrame, y: Any) -> StepEnergyRegressor:
        """Fit the step-time model and the power of each GPU.

        Parameters
        ----------
        X : pandas.DataFrame
            Output of :class:`StepFeatures` (with ``duration_s`` [s] where measured).
        y : array-like of shape (n_samples,)
            Energy of one training step [J], > 0.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Bad parameters, energies that are not finite and > 0, fewer rows than
            parameters.
        """
        F = self._check(X)
        energy = np.asarray(y, dtype=float).ravel()
        if energy.shape != (len(F),) or not np.all(np.isfinite(energy) & (energy > 0)):
            raise ValueError("y must hold one finite energy > 0 [J] per row of X")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence!r}")
        if int(self.n_bootstrap) < 0:
            raise ValueError(f"n_bootstrap must be >= 0, got {self.n_bootstrap!r}")
        if self.power_fraction is not None and not 0 < self.power_fraction <= 2:
            raise ValueError(f"power_fraction must be in (0, 2], got {self.power_fraction!r}")
        if self.correction not in ("boosting", None):
            raise ValueError(f"correction must be 'boosting' or None, got {self.correction!r}")
        layout = _Layout(list(F.columns))
        if len(F) <= len(layout.names):
            raise ValueError(
                f"fitting needs more rows than the {len(layout.names)} parameters, got {len(F)}"
            )
        duration = F["duration_s"].to_numpy(dtype=float)
        measured = np.all(np.isfinite(duration) & (duration > 0))
        self.fit_target_ = "duration" if measured else "energy"
        self._n_gpus = int(F["gpu_index"].max()) + 1
        theta, power, fraction = self._fit_once(F, energy, layout)
        self.params_, self.power_w_, self.power_fraction_ = theta, power, fraction
        self.param_names_ = list(layout.names)
        self.feature_names_in_ = np.asarray(F.columns, dtype=object)
        self.n_features_in_ = F.shape[1]
        rng = check_random_state(self.random_state)
        log_ratio = np.log(energy / self._energy(F, theta, power, fraction))
        # Descriptors the training rows know (e.g. no 'causal' without a model column).
        self.correction_features_ = [
            c
            for c in F.columns
            if str(c).startswith("shape:")
            and str(c).split(":", 1)[1] not in _UNCORRECTED_FEATURES
            and np.isfinite(F[c].to_numpy(dtype=float)).any()
        ]
        self.correction_gpus_ = np.unique(F["gpu_index"].to_numpy(dtype=int))
        self.correction_ = None
        self.residuals_ = self.physical_residuals_ = log_ratio
        self.correction_grid_ = {
            c: np.unique(F[c].to_numpy(dtype=float))
            for c in self.correction_features_
            if c.split(":", 1)[1] in _GRID_FEATURES
        }
        if self.correction == "boosting" and self.correction_features_:
            shape = F[self.correction_features_].to_numpy(dtype=float)
            gpu = F["gpu_index"].to_numpy(dtype=float)
            self.correction_, out_of_fold = self._fit_correction(shape, gpu, log_ratio, rng)
            self.residuals_ = log_ratio - out_of_fold
        draws, powers, fractions = [], [], []
        for _ in range(int(self.n_bootstrap)):
            rows = rng.randint(0, len(F), len(F))
            t, p, f = self._fit_once(F.iloc[rows], energy[rows], layout, start=theta)
            draws.append(t)
            powers.append(np.resize(p, power.shape) if p.shape != power.shape else p)
            fractions.append(f)
        n = len(theta)
        self.bootstrap_params_ = np.asarray(draws, dtype=float).reshape(-1, n)
        self.bootstrap_power_w_ = np.asarray(powers, dtype=float).reshape(-1, len(power))
        self.bootstrap_power_fraction_ = np.asarray(fractions, dtype=float)
        del self._n_gpus
        return self

    def _fit_correction(self, shape: np.ndarray, gpu: np.ndarray, log_ratio: np.ndarray, rng: Any):
        """Boosted trees of the log ratio, and its out-of-fold predictions.

        The trees never decrease along :data:`_MONOTONE_FEATURES` (``monotonic_cst``),
        the only correction features that change with the layers, sequence length
        or batch: energy = P · t · exp(correction) is then a product of positive
        factors none of which decreases with more layers, tokens or batch.
        """
        from sklearn.ensemble import HistGradientBoostingRegressor
        from sklearn.model_selection import GroupKFold

        arch = "lstm" if "shape:hidden_size" in self.correction_features_ else "transformer"
        settings = {**CORRECTION_DEFAULTS[arch], **dict(self.correction_params or {})}
        if settings.get("loss") in ("absolute_error", "quantile"):
            # Their leaf values are re-fitted after each tree is grown, which
            # ignores monotonic_cst (the corrected energy could fall again).
            raise ValueError(
                f"correction_params loss={settings['loss']!r} would break the monotone "
                "correction; use 'squared_error'"
            )
        settings.setdefault(
            "monotonic_cst",
            [
                1 if str(c).split(":", 1)[1] in _MONOTONE_FEATURES else 0
                for c in self.correction_features_
            ],
        )
        seed = int(rng.randint(np.iinfo(np.int32).max))

        def booster() -> HistGradientBoostingRegressor:
            return HistGradientBoostingRegressor(
                early_stopping=False, random_state=seed, **settings
            )

        # Folds of configurations, not rows: a repeated measurement of a
        # configuration in another fold would make the residuals look like noise.
        key = np.nan_to_num(np.c_[gpu, shape], nan=-np.inf)  # NaN rows compare equal
        configurations, configuration = np.unique(key, axis=0, return_inverse=True)
        configuration = configuration.ravel()
        out_of_fold = np.zeros(len(log_ratio))
        folds = min(3, len(configurations))
        if folds >= 2:
            # Shuffle the configurations, then let GroupKFold balance the folds.
            order = rng.permutation(len(configurations))
            for train, test in GroupKFold(folds).split(shape, groups=order[configuration]):
                model = booster().fit(shape[train], log_ratio[train])
                out_of_fold[test] = model.predict(shape[test])
        return _flatten_trees(booster().fit(shape, log_ratio)), out_of_fold

    def _seen(self, F: pd.DataFrame) -> np.ndarray:
        """Rows on a GPU of the training data (where the correction applies)."""
        gpu = F["gpu_index"].to_numpy(dtype=int)
        seen = np.zeros(len(gpu), dtype=bool)
        for index in self.correction_gpus_:  # a few GPUs: faster than np.isin's table
            seen |= gpu == index
        return seen

    def _inside(self, F: pd.DataFrame) -> np.ndarray:
        """Rows inside the correction's domain (see ``correction_grid_``)."""
        inside = self._seen(F)
        for column, values in self.correction_grid_.items():
            x = F[column].to_numpy(dtype=float)
            position = np.clip(np.searchsorted(values, x), 0, len(values) - 1)
            inside &= np.isclose(values[position], x, rtol=1e-9, atol=0.0)
        return inside

    def _correction(self, F: pd.DataFrame) -> np.ndarray:
        """Log correction of each row: the trees on seen GPUs, 0 elsewhere."""
        if self.correction_ is None:
            return np.zeros(len(F))
        missing = [c for c in self.correction_features_ if c not in F.columns]
        if missing:
            raise ValueError(f"the features lack the correction's columns {missing}")
        shape = [F[c].to_numpy(dtype=float) for c in self.correction_features_]
        return np.where(self._seen(F), _predict_trees(self.correction_, shape), 0.0)

    # --------------------------------------------------------------- predicting
    def _power(self, F: pd.DataFrame, power: np.ndarray, fraction: float) -> np.ndarray:
        gpu = F["gpu_index"].to_numpy(dtype=int)
        tdp = F["tdp_w"].to_numpy(dtype=float)
        known = np.full(len(F), np.nan)
        inside = gpu < len(power)
        known[inside] = power[gpu[inside]]
        if self.fit_target_ == "energy":
            known[:] = np.nan
        return np.where(np.isfinite(known), known, fraction * tdp)

    def _energy(self, F, theta, power, fraction, correction=None) -> np.ndarray:
        layout = _Layout(list(F.columns))
        energy = self._power(F, power, fraction) * _step_time(theta, _arrays(F, layout), layout)
        return energy if correction is None else energy * np.exp(correction)

    def predict_time(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted duration of one training step [s] (pseudo-time [J/W] when the
        model was fitted without durations)."""
        check_is_fitted(self, "params_")
        F = self._check(X)
        layout = _Layout(list(F.columns))
        return _step_time(self.params_, _arrays(F, layout), layout)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted energy of one training step [J]."""
        check_is_fitted(self, "params_")
        F = self._check(X)
        return self._energy(
            F, self.params_, self.power_w_, self.power_fraction_, self._correction(F)
        )

    def predict_interval(
        self, X: pd.DataFrame, confidence: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Prediction interval of the energy [J]: bootstrap fits × training residuals.

        Each bootstrap fit's prediction is multiplied by every training residual
        (exp of the log residual); the interval is the central ``confidence``
        quantile range of those draws. Configurations inside the correction's
        domain (values measured on that GPU, see ``correction_grid_``) take the
        out-of-fold residuals of the corrected model, all others the residuals of
        the physical model: the correction is trusted where it was measured.

        Parameters
        ----------
        X : pandas.DataFrame
            Output of :class:`StepFeatures`.
        confidence : float, optional
            Nominal level; default the estimator's ``confidence``.

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            Lower and upper bounds [J].

        Raises
        ------
        ValueError
            The model was fitted with ``n_bootstrap=0``.
        """
        check_is_fitted(self, "params_")
        level = self.confidence if confidence is None else confidence
        if not 0 < level < 1:
            raise ValueError(f"confidence must be in (0, 1), got {level!r}")
        if len(self.bootstrap_params_) == 0:
            raise ValueError("prediction intervals need n_bootstrap > 0")
        F = self._check(X)
        correction = self._correction(F)
        preds = np.stack(
            [
                self._energy(F, theta, power, fraction, correction)
                for theta, power, fraction in zip(
                    self.bootstrap_params_,
                    self.bootstrap_power_w_,
                    self.bootstrap_power_fraction_,
                    strict=True,
                )
            ]
        )
        tail = (1 - level) / 2
        low, high = np.empty(len(F)), np.empty(len(F))
        inside = self._inside(F)  # without a correction both residual sets are the same
        for rows, residuals in ((inside, self.residuals_), (~inside, self.physical_residuals_)):
            if not rows.any():
                continue
            # Quantiles of the product of a bootstrap prediction and a residual factor.
            draws = preds[:, rows, None] * np.exp(residuals)[None, None, :]
            draws = draws.transpose(1, 0, 2).reshape(int(rows.sum()), -1)
            low[rows], high[rows] = np.quantile(draws, [tail, 1 - tail], axis=1)
        return low, high

    @property
    def coefficients_(self) -> pd.Series:
        """Fitted parameters by name, with the power of each GPU [W]."""
        check_is_fitted(self, "params_")
        values = dict(zip(self.param_names_, self.params_, strict=True))
        for index, power in enumerate(self.power_w_):
            values[f"power_w:{index}"] = power
        values["power_fraction"] = self.power_fraction_
        return pd.Series(values, dtype=float)


def make_step_energy_pipeline(
    laws: Mapping[str, Mapping[str, Any]],
    *,
    arch: str = "transformer",
    peak_flops: Mapping[str, float] | None = None,
    memory_bandwidth: Mapping[str, float] | None = None,
    power_limit: Mapping[str, float] | None = None,
    regressor: StepEnergyRegressor | None = None,
) -> Pipeline:
    """A pipeline from configurations to the energy of a training step [J].

    Parameters
    ----------
    laws, arch, peak_flops, memory_bandwidth, power_limit
        See :class:`StepFeatures`.
    regressor : StepEnergyRegressor, optional
        Default ``StepEnergyRegressor()``.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``features`` and ``energy``. Fit it on configurations (with
        ``duration_s`` where measured) and energies [J].

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> laws = {"NVIDIA A100 80GB PCIe": {
    ...     op: (0.68, 8.0, 0.78) for op in ("qkv_projections", "final_projection",
    ...                                      "attention_scores", "attention_output")}}
    >>> rng = np.random.default_rng(0)
    >>> configs = pd.DataFrame({"n_layers": rng.choice([4, 6, 12], 60),
    ...     "batch_size": rng.choice([64, 128], 60), "seq_len": rng.choice([256, 512], 60),
    ...     "d_model": rng.choice([256, 512, 768], 60), "n_heads": 8})
    >>> pipe = make_step_energy_pipeline(laws)
    >>> features = pipe[0].fit_transform(configs)
    >>> configs["duration_s"] = 1.2 * features.filter(like="time:").sum(axis=1) + 0.01
    >>> energy = 95.0 * configs["duration_s"]
    >>> pipe = pipe.fit(configs, energy)
    >>> round(float(pipe[-1].power_w_[0]), 1)
    95.0
    >>> bool(np.allclose(pipe.predict(configs), energy, rtol=0.02))
    True
    """
    features = StepFeatures(
        laws=laws,
        arch=arch,
        peak_flops=peak_flops,
        memory_bandwidth=memory_bandwidth,
        power_limit=power_limit,
    )
    return Pipeline([("features", features), ("energy", regressor or StepEnergyRegressor())])


def predict_interval(
    pipeline: Pipeline, X: pd.DataFrame, confidence: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Prediction interval [J] of a fitted :func:`make_step_energy_pipeline` pipeline.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        Fitted, with a :class:`StepEnergyRegressor` fitted with ``n_bootstrap > 0``.
    X : pandas.DataFrame
        Configurations.
    confidence : float, optional
        Nominal level; default the regressor's.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Lower and upper bounds [J].
    """
    return pipeline[-1].predict_interval(pipeline[:-1].transform(X), confidence)
