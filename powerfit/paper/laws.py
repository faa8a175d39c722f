"""The hardware-efficiency law η(c) = η_max·(1 − exp(−k·c^α)) as a scikit-learn regressor.

Conventions
-----------
* ``c`` is the FLOPs of one call of an elementary operation [FLOP]; inside the law
  it is scaled to TFLOP (1e12 FLOP) so that ``k_`` and ``alpha_`` compare with the
  published coefficients (Mayaki & Charpenay, 2025, Tables 1 and 2).
* η is the hardware efficiency as a **fraction** of the GPU's peak throughput
  (the published tables print it in percent: divide by 100).
* The duration of a call follows as ``t = c / (peak_flops · η(c))`` [s]
  (:meth:`PowerLawEfficiency.predict_duration`).

The fit is a bounded nonlinear least-squares problem (:func:`scipy.optimize.least_squares`,
trust-region reflective) in the parameters (log η_max, log k, α), started from
several points derived from the data; the best converged start wins. Standard
errors come from the Jacobian at the optimum (Gauss–Newton covariance scaled by
the residual variance), as lmfit reports them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from powerfit.exceptions import ConvergenceError

__all__ = ["PowerLawEfficiency", "efficiency", "plain", "rolling_outlier_mask"]

TFLOP = 1e12


def plain(value: Any) -> Any:
    """A NumPy scalar as the Python number or string it holds (for messages).

    NumPy 2 shows its scalars as ``np.float64(-512.0)``; messages show ``-512.0``.
    Containers are converted element by element; anything else is returned as is.

    Examples
    --------
    >>> import numpy as np
    >>> f"got {plain(np.float64(-512.0))!r}", plain([np.int64(3), np.str_("a")])
    ('got -512.0', [3, 'a'])
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    return value


def efficiency(flops: Any, eta_max: float, k: float, alpha: float) -> Any:
    """Evaluate the efficiency law.

    Parameters
    ----------
    flops : numeric
        FLOPs of one call [FLOP].
    eta_max : float
        Saturation efficiency [fraction of peak].
    k : float
        Rate [TFLOP^-alpha].
    alpha : float
        Shape [-].

    Returns
    -------
    numeric
        η(c) = η_max·(1 − exp(−k·(c/1e12)^α)) [fraction of peak].

    Examples
    --------
    >>> round(efficiency(0.0322e12, 0.6938, 10.37, 0.78), 4)  # QKV of the paper's model A
    0.3531
    """
    c = np.asarray(flops, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.power(c / TFLOP, alpha)
        out *= -k
        out = np.expm1(out, out=out) if out.ndim else np.expm1(out)
        out *= -eta_max
    if isinstance(flops, pd.Series):
        return pd.Series(out, index=flops.index)
    return float(out) if np.ndim(out) == 0 else out


def rolling_outlier_mask(flops: Any, eta: Any, window: int = 10, n_sigma: float = 2.0) -> Any:
    """Inliers by the paper's rule: within ``n_sigma`` rolling std of the rolling mean.

    Points are sorted by FLOPs; a centred rolling window of ``window`` points gives
    the local mean and standard deviation of η; a point more than ``n_sigma``
    standard deviations from its local mean is an outlier.

    Parameters
    ----------
    flops : array-like
        FLOPs [FLOP].
    eta : array-like
        Measured efficiency [fraction].
    window : int, default 10
        Points in the rolling window.
    n_sigma : float, default 2.0
        Threshold in rolling standard deviations.

    Returns
    -------
    numpy.ndarray of bool
        True for the points to keep, in the input order.
    """
    flops = np.asarray(flops, dtype=float)
    eta = pd.Series(np.asarray(eta, dtype=float))
    order = np.argsort(flops, kind="stable")
    sorted_eta = eta.iloc[order].reset_index(drop=True)
    roll = sorted_eta.rolling(window, center=True, min_periods=1)
    mean, std = roll.mean(), roll.std().fillna(0.0)
    keep_sorted = (sorted_eta - mean).abs() <= n_sigma * std + 1e-15
    keep = np.empty(len(eta), dtype=bool)
    keep[order] = keep_sorted.to_numpy()
    return keep


class PowerLawEfficiency(RegressorMixin, BaseEstimator):
    """Hardware efficiency of an elementary operation as a function of its FLOPs.

    η(c) = η_max·(1 − exp(−k·c^α)), with c in TFLOP, fitted by bounded nonlinear
    least squares from several data-derived starting points.

    Parameters
    ----------
    flops_column : str or int, default 'flops'
        Column of X holding the FLOPs [FLOP]: a column name when X is a DataFrame
        with that column, else the first column is used.
    n_starts : int, default 8
        Starting points tried; the converged one with the smallest residual wins.
    outlier_filter : bool, default False
        Drop outliers by the paper's 2σ rolling-mean rule before fitting
        (:func:`rolling_outlier_mask`).
    outlier_window : int, default 10
        Rolling window [points] of the outlier filter.
    on_failure : {'raise', 'warn'}, default 'raise'
        What to do when no start converges: raise
        :class:`~powerfit.exceptions.ConvergenceError`, or emit a
        :class:`~sklearn.exceptions.ConvergenceWarning` and keep the best attempt
        (``converged_`` is then False).
    max_nfev : int, default 2000
        Function evaluations allowed per start.

    Attributes
    ----------
    eta_max_ : float
        Saturation efficiency [fraction of peak].
    k_ : float
        Rate [TFLOP^-alpha].
    alpha_ : float
        Shape [-].
    stderr_ : dict of str to float
        Standard errors of ``eta_max``, ``k`` and ``alpha``.
    correlation_ : numpy.ndarray of shape (3, 3)
        Correlation of the parameters (eta_max, k, alpha).
    r2_ : float
        Coefficient of determination on the fitted (inlier) points.
    rmse_ : float
        Root-mean-square residual [fraction].
    n_samples_fit_ : int
        Points used in the fit (after the outlier filter).
    inlier_mask_ : numpy.ndarray of bool
        Points kept by the outlier filter (all True when it is off).
    converged_ : bool
        Whether the optimiser reported convergence.
    n_features_in_ : int
        Columns seen in fit.
    feature_names_in_ : numpy.ndarray
        Column names seen in fit, when X had them.

    Examples
    --------
    >>> import numpy as np
    >>> from powerfit import PowerLawEfficiency
    >>> c = np.logspace(9, 13, 40)  # [FLOP]
    >>> eta = 0.7 * (1 - np.exp(-8.0 * (c / 1e12) ** 0.8))
    >>> law = PowerLawEfficiency().fit(c.reshape(-1, 1), eta)
    >>> round(law.eta_max_, 3), round(law.k_, 2), round(law.alpha_, 2)
    (0.7, 8.0, 0.8)
    """

    def __init__(
        self,
        flops_column: str | int = "flops",
        n_starts: int = 8,
        outlier_filter: bool = False,
        outlier_window: int = 10,
        on_failure: str = "raise",
        max_nfev: int = 2000,
    ) -> None:
        self.flops_column = flops_column
        self.n_starts = n_starts
        self.outlier_filter = outlier_filter
        self.outlier_window = outlier_window
        self.on_failure = on_failure
        self.max_nfev = max_nfev

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.target_tags.positive_only = True
        return tags

    # ------------------------------------------------------------------ helpers
    def _column_index(self, X: Any) -> int:
        names = getattr(self, "feature_names_in_", None)
        if isinstance(X, pd.DataFrame) and isinstance(self.flops_column, str):
            if self.flops_column in X.columns:
                return list(X.columns).index(self.flops_column)
        if names is not None and isinstance(self.flops_column, str):
            hits = np.flatnonzero(names == self.flops_column)
            if hits.size:
                return int(hits[0])
        if isinstance(self.flops_column, (int, np.integer)):
            return int(self.flops_column)
        return 0

    def _flops(self, X: Any, *, reset: bool, y: Any = None) -> tuple[np.ndarray, Any]:
        col = self._column_index(X)
        if reset:
            X, y = validate_data(self, X, y, reset=True, y_numeric=True)
        else:
            X = validate_data(self, X, reset=False)
        if not 0 <= col < X.shape[1]:
            raise ValueError(f"flops_column {self.flops_column!r} is not a column of X")
        c = np.asarray(X[:, col], dtype=float)
        if np.any(X < 0):
            raise ValueError(
                "Negative values in data: X holds FLOPs and sizes, which must be >= 0"
            )
        return c, y

    # ---------------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> PowerLawEfficiency:
        """Fit the law to measured efficiencies.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Holds the FLOPs of one call [FLOP] (see ``flops_column``).
        y : array-like of shape (n_samples,)
            Measured efficiency [fraction of peak], > 0.
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the squared residuals.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Non-finite or negative FLOPs, non-finite or non-positive efficiencies,
            fewer than 3 points.
        ConvergenceError
            No start converged and ``on_failure='raise'``.
        """
        if self.on_failure not in ("raise", "warn"):
            raise ValueError(f"on_failure must be 'raise' or 'warn', got {self.on_failure!r}")
        if int(self.n_starts) < 1:
            raise ValueError(f"n_starts must be >= 1, got {plain(self.n_starts)!r}")
        c, y = self._flops(X, reset=True, y=y)
        y = np.asarray(y, dtype=float)
        if np.any(y <= 0):
            raise ValueError("efficiencies (y) must be > 0 (a fraction of peak throughput)")
        w = np.ones_like(y) if sample_weight is None else np.asarray(sample_weight, float)
        if w.shape != y.shape or np.any(~np.isfinite(w)) or np.any(w < 0):
            raise ValueError("sample_weight must be finite, >= 0 and of shape (n_samples,)")
        if not np.any(w > 0):
            raise ValueError("sample_weight must not be all zero")
        mask = np.ones(len(y), dtype=bool)
        if self.outlier_filter:
            mask = rolling_outlier_mask(c, y, window=int(self.outlier_window))
        mask &= c > 0
        if mask.sum() < 3:
            raise ValueError(
                f"fitting the law needs >= 3 points with FLOPs > 0, got n_samples={mask.sum()}"
            )
        self.inlier_mask_ = mask
        ct, yt, wt = c[mask] / TFLOP, y[mask], np.sqrt(w[mask])
        result, converged = self._solve(ct, yt, wt)
        log_eta, log_k, alpha = result.x
        self.eta_max_, self.k_, self.alpha_ = float(np.exp(log_eta)), float(np.exp(log_k)), alpha
        self.alpha_ = float(alpha)
        self.converged_ = bool(converged)
        self.n_samples_fit_ = int(mask.sum())
        resid = result.fun / np.where(wt > 0, wt, 1.0)
        ss_res = float(np.sum(wt**2 * resid**2))
        ybar = np.average(yt, weights=wt**2) if wt.sum() > 0 else yt.mean()
        ss_tot = float(np.sum(wt**2 * (yt - ybar) ** 2))
        self.r2_ = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
        self.rmse_ = float(np.sqrt(np.mean(resid**2)))
        self._set_uncertainty(result, ss_res)
        if not converged:
            msg = (
                f"the efficiency law did not converge on {self.n_samples_fit_} points "
                f"(best of {self.n_starts} starts: {result.message}); "
                "check that y is a fraction of peak and X holds FLOPs"
            )
            if self.on_failure == "raise":
                raise ConvergenceError(msg)
            warnings.warn(msg, ConvergenceWarning, stacklevel=2)
        return self

    def _starts(self, c: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        eta0 = max(float(np.quantile(y, 0.95)), float(y.max()) * 0.9, 1e-12)
        cmed = float(np.median(c))
        starts = []
        alphas = np.linspace(0.4, 1.2, max(1, int(self.n_starts) // 2))
        for scale in (1.05, 1.5):
            eta_max = eta0 * scale
            frac = np.clip(
                np.median(y[c <= cmed]) / eta_max if np.any(c <= cmed) else 0.5, 1e-6, 0.99
            )
            for alpha in alphas:
                k = -np.log1p(-frac) / max(cmed, 1e-300) ** alpha
                starts.append(np.array([np.log(eta_max), np.log(np.clip(k, 1e-10, 1e10)), alpha]))
        return starts[: int(self.n_starts)]

    def _solve(self, c: np.ndarray, y: np.ndarray, w: np.ndarray):
        ymax = float(y.max())
        lower = np.array([np.log(ymax * 1e-3), np.log(1e-12), 0.05])
        upper = np.array([np.log(ymax * 1e3), np.log(1e12), 3.0])
        logc = np.log(np.maximum(c, 1e-300))

        def residuals(p: np.ndarray) -> np.ndarray:
            eta_max, log_k, alpha = np.exp(p[0]), p[1], p[2]
            with np.errstate(over="ignore", under="ignore", invalid="ignore"):
                pred = eta_max * -np.expm1(-np.exp(log_k + alpha * logc))
            return w * (pred - y)

        best, best_ok = None, False
        for start in self._starts(c, y):
            start = np.clip(start, lower + 1e-9, upper - 1e-9)
            try:
                res = least_squares(
                    residuals,
                    start,
                    bounds=(lower, upper),
                    method="trf",
                    x_scale="jac",
                    max_nfev=int(self.max_nfev),
                )
            except (ValueError, FloatingPointError):
                continue
            if not np.all(np.isfinite(res.fun)):
                continue
            ok = res.status > 0
            if best is None or (ok and not best_ok) or (ok == best_ok and res.cost < best.cost):
                best, best_ok = res, ok
        if best is None:
            raise ConvergenceError("the efficiency law could not be evaluated at any start")
        return best, best_ok

    def _set_uncertainty(self, result: Any, ss_res: float) -> None:
        names = ("eta_max", "k", "alpha")
        n, p = result.fun.size, 3
        jac = result.jac
        try:
            cov_log = np.linalg.pinv(jac.T @ jac) * (ss_res / max(n - p, 1))
        except np.linalg.LinAlgError:  # pragma: no cover - pinv rarely fails
            cov_log = np.full((3, 3), np.nan)
        # Delta method from (log eta_max, log k, alpha) to (eta_max, k, alpha).
        scale = np.array([self.eta_max_, self.k_, 1.0])
        cov = cov_log * np.outer(scale, scale)
        sd = np.sqrt(np.clip(np.diag(cov), 0, None))
        self.stderr_ = dict(zip(names, (float(s) for s in sd), strict=True))
        with np.errstate(invalid="ignore", divide="ignore"):
            self.correlation_ = cov / np.outer(sd, sd)

    # ------------------------------------------------------------------ predict
    def predict(self, X: Any) -> np.ndarray:
        """Predicted efficiency [fraction of peak] for the FLOPs in X."""
        check_is_fitted(self)
        c, _ = self._flops(X, reset=False)
        return efficiency(c, self.eta_max_, self.k_, self.alpha_)

    def predict_duration(self, X: Any, peak_flops: float) -> np.ndarray:
        """Predicted duration of one call [s]: c / (peak_flops · η(c)).

        Parameters
        ----------
        X : array-like or DataFrame
            As in :meth:`fit`.
        peak_flops : float
            The GPU's peak throughput [FLOP/s].

        Returns
        -------
        numpy.ndarray
            Duration [s]; 0 for 0 FLOPs.
        """
        check_is_fitted(self)
        if not np.isfinite(peak_flops) or peak_flops <= 0:
            raise ValueError(f"peak_flops must be > 0 [FLOP/s], got {plain(peak_flops)!r}")
        c, _ = self._flops(X, reset=False)
        eta = efficiency(c, self.eta_max_, self.k_, self.alpha_)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(c > 0, c / (peak_flops * eta), 0.0)

    @property
    def coefficients_(self) -> dict[str, float]:
        """Fitted (eta_max, k, alpha) as a dict."""
        check_is_fitted(self)
        return {"eta_max": self.eta_max_, "k": self.k_, "alpha": self.alpha_}
