"""A scikit-learn estimator of average board power, the GPU an input column.

:class:`BoardPowerRegressor` fits one board power law per GPU
(:func:`powerfit.power.board.fit_board_power`) on measurements ``(gpu, u_c, u_m,
workload, power_limit_w) → power [W]`` and predicts any GPU (transferred by specs
when it was not measured, :func:`powerfit.power.board.transfer_board_power`). Its
fitted state is plain data (the laws as dicts), so MLflow records it with
powerfit's JSON specification and loads it with the allowlisted loader
(:mod:`powerfit.tracking.flavor`; :func:`powerfit.tracking.power.fit_power_laws`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from powerfit.power.board import BoardPowerLaw, fit_board_power, transfer_board_power

__all__ = ["POWER_COLUMNS", "BoardPowerRegressor"]

#: Columns :class:`BoardPowerRegressor` reads (``workload`` and ``power_limit_w``
#: optional: the groups of the interval's residuals, the board's limit [W]).
POWER_COLUMNS = ("gpu", "u_c", "u_m")


def _frame(X: Any) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"X must be a pandas DataFrame with columns {POWER_COLUMNS}")
    missing = [c for c in POWER_COLUMNS if c not in X.columns]
    if missing:
        raise ValueError(f"X lacks column(s) {missing}; expected {POWER_COLUMNS}")
    return X


class BoardPowerRegressor(RegressorMixin, BaseEstimator):
    """Average board power of one GPU [W] from what its step sustains.

    Parameters
    ----------
    min_rows : int, default 5
        Measurements a GPU needs to get its own law (fewer: transferred).

    Attributes
    ----------
    laws_ : dict of str to dict
        GPU -> its fitted law (:meth:`powerfit.power.board.BoardPowerLaw.to_dict`).
    n_features_in_ : int

    Notes
    -----
    ``X`` columns: ``gpu`` (name), ``u_c``, ``u_m`` (fractions of compute peak and
    DRAM bandwidth [-]); optional ``workload`` (residual groups) and
    ``power_limit_w`` [W] (rows below the board's TDP are predicted capped; ``fit``
    uses only rows at the default limit).
    """

    def __init__(self, min_rows: int = 5) -> None:
        self.min_rows = min_rows

    def fit(self, X: Any, y: Any) -> BoardPowerRegressor:
        """Fit one law per GPU on measured average power ``y`` [W] (per GPU)."""
        from powerfit.hardware.gpus import get_gpu

        X = _frame(X)
        y = np.asarray(y, dtype=float)
        if y.shape != (len(X),) or not np.all(np.isfinite(y) & (y > 0)):
            raise ValueError("y must be one positive, finite power [W] per row of X")
        names = np.array([get_gpu(g).name for g in X["gpu"]])
        self.laws_: dict[str, dict[str, Any]] = {}
        for gpu in sorted(set(names)):
            tdp = float(get_gpu(gpu).power_limit_w)
            m = names == gpu
            if "power_limit_w" in X:
                limit = X["power_limit_w"].to_numpy(float)
                m &= ~(limit < tdp)  # NaN: the default limit
            if m.sum() < self.min_rows:
                continue
            groups = X["workload"].to_numpy()[m] if "workload" in X else None
            law = fit_board_power(
                gpu, X["u_c"].to_numpy(float)[m], X["u_m"].to_numpy(float)[m], y[m], tdp, groups
            )
            self.laws_[gpu] = law.to_dict()
        if not self.laws_:
            raise ValueError(f"no GPU has {self.min_rows} measurements at its default limit")
        self.n_features_in_ = len(POWER_COLUMNS)
        return self

    def law_for(self, gpu: str) -> BoardPowerLaw:
        """The law of a GPU: fitted, else transferred from the fitted ones."""
        from sklearn.utils.validation import check_is_fitted

        from powerfit.hardware.gpus import get_gpu

        check_is_fitted(self, "laws_")
        spec = get_gpu(gpu)
        if spec.name in self.laws_:
            return BoardPowerLaw.from_dict(self.laws_[spec.name])
        laws = [BoardPowerLaw.from_dict(d) for d in self.laws_.values()]
        return transfer_board_power(laws, spec.name, float(spec.power_limit_w))

    def predict(self, X: Any) -> np.ndarray:
        """Average board power [W] of each row of X."""
        X = _frame(X)
        limits = X["power_limit_w"] if "power_limit_w" in X else [None] * len(X)
        out = np.empty(len(X))
        laws: dict[str, BoardPowerLaw] = {}
        for i, (g, uc, um, lim) in enumerate(
            zip(X["gpu"], X["u_c"], X["u_m"], limits, strict=True)
        ):
            law = laws.setdefault(g, self.law_for(g))
            limit = None if lim is None or lim != lim else float(lim)
            out[i] = float(law.power(float(uc), float(um), limit))
        return out
