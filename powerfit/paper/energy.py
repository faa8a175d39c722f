"""Energy as a linear function of per-operation durations: E = h + Σ h_i·t_i.

Conventions
-----------
* Features are per-operation durations [s] (e.g. from
  :class:`powerfit.OperationDurations`), the target is energy [J]; the intercept
  ``h`` is in J and each coefficient ``h_i`` in J/s = W, the power drawn while
  operation i runs.
* Three solvers: ordinary least squares (``'ols'``), ridge (``'ridge'``, penalty on
  standardised features when ``standardize=True``, as in the paper) and
  non-negative least squares (``'nnls'``: every h_i ≥ 0, and by default h ≥ 0
  too, ``positive_intercept=True``: a constant overhead and the power of an
  operation are energy and power, never negative, so the model cannot predict a
  negative energy for non-negative durations).
* Optional bootstrap (``n_bootstrap`` resamples with replacement, seeded by
  ``random_state``) gives percentile confidence intervals of every coefficient,
  and the paper's point estimate (the median of the bootstrap fits) with
  ``estimate='bootstrap-median'``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import nnls
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from powerfit.paper.laws import plain

__all__ = ["EnergyRegressor"]

_SOLVERS = ("ols", "ridge", "nnls")


def _solve(
    X: np.ndarray,
    y: np.ndarray,
    solver: str,
    alpha: float,
    standardize: bool,
    positive_intercept: bool = False,
):
    """Return (intercept, coef) of one linear fit, in the units of X and y."""
    mean = X.mean(axis=0)
    scale = X.std(axis=0) if standardize else np.ones(X.shape[1])
    scale = np.where(scale > 0, scale, 1.0)
    if solver == "nnls" and positive_intercept:
        # Uncentred: the intercept is one more non-negative unknown (a column of ones,
        # scaled like the features so that the problem stays well conditioned).
        ones = float(np.mean(np.abs(X / scale))) if X.size else 1.0
        ones = ones if ones > 0 else 1.0
        w, _ = nnls(np.column_stack([X / scale, np.full(len(y), ones)]), y)
        return float(w[-1] * ones), w[:-1] / scale
    Z = (X - mean) / scale
    yc = y - y.mean()
    if solver == "nnls":
        # Non-negativity applies to the original coefficients; scale > 0 keeps the sign.
        w, _ = nnls(Z, yc)
    elif solver == "ridge":
        gram = Z.T @ Z + alpha * np.eye(Z.shape[1])
        w = np.linalg.solve(gram, Z.T @ yc)
    else:
        w, *_ = np.linalg.lstsq(Z, yc, rcond=None)
    coef = w / scale
    return float(y.mean() - mean @ coef), coef


class EnergyRegressor(RegressorMixin, BaseEstimator):
    """Linear energy model on per-operation durations: E = h + Σ h_i·t_i.

    Parameters
    ----------
    solver : {'ols', 'ridge', 'nnls'}, default 'nnls'
        Ordinary least squares, ridge, or non-negative least squares (h_i ≥ 0:
        no operation can save energy by running longer).
    alpha : float, default 1.0
        Ridge penalty (``solver='ridge'`` only) [-].
    standardize : bool, default True
        Standardise the features before solving (what the ridge penalty sees);
        coefficients are always reported in the original units.
    n_bootstrap : int, default 0
        Bootstrap resamples for confidence intervals; 0 turns the bootstrap off.
    confidence : float, default 0.95
        Level of the percentile confidence intervals.
    estimate : {'full', 'bootstrap-median'}, default 'full'
        Point estimate: the fit on all the data, or the median of the bootstrap
        fits (the paper's choice; needs ``n_bootstrap > 0``).
    random_state : int, RandomState or None, default None
        Seed of the bootstrap.
    positive_intercept : bool, default True
        With ``solver='nnls'``, constrain the intercept h ≥ 0 as well (a constant
        overhead cannot be negative energy); the predictions are then ≥ 0 for every
        non-negative duration. False leaves h free (the published method's
        intercept is unconstrained). Ignored by the other solvers.

    Attributes
    ----------
    intercept_ : float
        h, the constant overhead [J].
    coef_ : numpy.ndarray of shape (n_features,)
        h_i, the power attributed to each operation [W].
    coefficients_ : pandas.Series
        ``intercept`` then one entry per feature name (``feature_names_in_`` or
        ``x0``, ``x1``...), same values as ``intercept_`` and ``coef_``.
    intercept_ci_ : tuple of float
        Bootstrap confidence interval of h (only with ``n_bootstrap > 0``).
    coef_ci_ : numpy.ndarray of shape (n_features, 2)
        Bootstrap confidence intervals of h_i (only with ``n_bootstrap > 0``).
    bootstrap_coefficients_ : pandas.DataFrame of shape (n_bootstrap, n_features + 1)
        Every bootstrap fit (only with ``n_bootstrap > 0``).
    n_features_in_ : int
    feature_names_in_ : numpy.ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from powerfit import EnergyRegressor
    >>> t = np.array([[1.0, 0.5], [2.0, 0.1], [3.0, 2.0], [0.5, 0.5]])  # [s]
    >>> e = 5.0 + t @ np.array([250.0, 100.0])  # [J]
    >>> model = EnergyRegressor(solver="ols").fit(t, e)
    >>> model.coefficients_.round(6).to_dict()
    {'intercept': 5.0, 'x0': 250.0, 'x1': 100.0}
    """

    def __init__(
        self,
        solver: str = "nnls",
        alpha: float = 1.0,
        standardize: bool = True,
        n_bootstrap: int = 0,
        confidence: float = 0.95,
        estimate: str = "full",
        random_state: Any = None,
        positive_intercept: bool = True,
    ) -> None:
        self.solver = solver
        self.positive_intercept = positive_intercept
        self.alpha = alpha
        self.standardize = standardize
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.estimate = estimate
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver must be one of {_SOLVERS}, got {self.solver!r}")
        if not np.isfinite(self.alpha) or self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {plain(self.alpha)!r}")
        if int(self.n_bootstrap) < 0:
            raise ValueError(f"n_bootstrap must be >= 0, got {plain(self.n_bootstrap)!r}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {plain(self.confidence)!r}")
        if self.estimate not in ("full", "bootstrap-median"):
            raise ValueError(
                f"estimate must be 'full' or 'bootstrap-median', got {self.estimate!r}"
            )
        if self.estimate == "bootstrap-median" and int(self.n_bootstrap) == 0:
            raise ValueError("estimate='bootstrap-median' needs n_bootstrap > 0")

    def fit(self, X: Any, y: Any) -> EnergyRegressor:
        """Fit the energy model.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_operations)
            Per-operation durations [s].
        y : array-like of shape (n_samples,)
            Measured energy [J].

        Returns
        -------
        self
        """
        self._check_params()
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        y = np.asarray(y, dtype=float)
        args = (
            self.solver,
            float(self.alpha),
            bool(self.standardize),
            bool(self.positive_intercept),
        )
        intercept, coef = _solve(X, y, *args)
        names = self._names()
        if int(self.n_bootstrap) > 0:
            rng = check_random_state(self.random_state)
            n = len(y)
            draws = np.empty((int(self.n_bootstrap), X.shape[1] + 1))
            for b in range(int(self.n_bootstrap)):
                idx = rng.randint(0, n, n)
                bi, bc = _solve(X[idx], y[idx], *args)
                draws[b, 0], draws[b, 1:] = bi, bc
            tail = 100 * (1 - self.confidence) / 2
            low, high = np.percentile(draws, [tail, 100 - tail], axis=0)
            self.bootstrap_coefficients_ = pd.DataFrame(draws, columns=["intercept", *names])
            self.intercept_ci_ = (float(low[0]), float(high[0]))
            self.coef_ci_ = np.column_stack([low[1:], high[1:]])
            if self.estimate == "bootstrap-median":
                med = np.median(draws, axis=0)
                intercept, coef = float(med[0]), med[1:]
        self.intercept_ = float(intercept)
        self.coef_ = np.asarray(coef, dtype=float)
        return self

    def _names(self) -> list[str]:
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            return [str(n) for n in names]
        return [f"x{i}" for i in range(self.n_features_in_)]

    @property
    def coefficients_(self) -> pd.Series:
        """Intercept [J] and per-operation coefficients [W], by name."""
        check_is_fitted(self)
        return pd.Series([self.intercept_, *self.coef_], index=["intercept", *self._names()])

    def predict(self, X: Any) -> np.ndarray:
        """Predicted energy [J] for per-operation durations X [s]."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.intercept_ + X @ self.coef_
