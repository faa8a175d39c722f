"""The models the paper suite compares: the paper's, powerfit's step model and a black box.

:func:`make_models` builds them for a training split: ``paper`` (the published laws
and ridge protocol), ``powerfit``
(:func:`powerfit.paper.step_energy.make_step_energy_pipeline`) and ``gbm`` (gradient
boosting on the raw configuration columns, :data:`GBM_DEFAULTS`); see
:mod:`powerfit.evaluation.paper`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from powerfit.evaluation.paper_protocols import A100, RTX

__all__ = ["make_models"]

#: Published per-operation data → our operation names whose laws we fit.
_LAW_OPERATIONS = {
    "transformer": ("qkv_projections", "final_projection", "attention_scores", "attention_output"),
    "lstm": ("input_gates", "hidden_gates"),
}
#: Peaks of the paper's energy features [FLOP/s] (the energy file's own values).
_PAPER_PEAKS = {A100: 156e12, RTX: 11.34e12}
_PAPER_PROFILES = {A100: "mayaki2025-a100", RTX: "mayaki2025-rtx2080ti"}


class _PaperModel:
    """The paper's energy model (Table 3/8): forward durations → ridge, bootstrap median."""

    def __init__(self, n_bootstrap: int = 100, random_state: int = 0) -> None:
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state

    def _features(self, X: pd.DataFrame) -> pd.DataFrame:
        from powerfit.paper.profiles import load_profile

        if not hasattr(self, "durations_"):
            from powerfit.paper.durations import OperationDurations

            laws = {g: load_profile(p).laws for g, p in _PAPER_PROFILES.items()}
            self.durations_ = OperationDurations(
                laws=laws, operations=_LAW_OPERATIONS["transformer"], peak_flops=_PAPER_PEAKS
            ).fit(X)
        return self.durations_.transform(X) * 1e4  # the paper's "µs" (method.md §4)

    def fit(self, X: pd.DataFrame, y: Any) -> _PaperModel:
        from powerfit.paper.energy import EnergyRegressor

        self.model_ = EnergyRegressor(
            solver="ridge",
            alpha=5.0,
            n_bootstrap=self.n_bootstrap,
            estimate="bootstrap-median",
            random_state=self.random_state,
        ).fit(self._features(X), y)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict(self._features(X))


#: Settings of the black-box baseline by architecture: the best of the same grid as
#: powerfit's correction by the same rule (mean MAPE on splits of the rows and of the
#: configurations that the evaluation does not use; ``experiments/tune_models.py``),
#: fitted on log energy.
GBM_DEFAULTS: dict[str, dict[str, Any]] = {
    "transformer": {
        "learning_rate": 0.1,
        "max_iter": 1000,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 5,
    },
    "lstm": {
        "learning_rate": 0.05,
        "max_iter": 100,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 5,
    },
}


class _GradientBoosting:
    """Gradient boosting of log energy on the raw configuration columns (black box)."""

    COLUMNS: ClassVar[dict[str, tuple[str, ...]]] = {
        "transformer": ("n_layers", "batch_size", "seq_len", "d_model", "n_heads", "n_params"),
        "lstm": ("n_layers", "batch_size", "seq_len", "input_size", "hidden_size"),
    }

    def __init__(self, arch: str = "transformer", random_state: int = 0) -> None:
        self.arch = arch
        self.random_state = random_state

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        from powerfit.hardware.gpus import peak_flops

        if not hasattr(self, "columns_"):
            self.columns_ = [
                c
                for c in self.COLUMNS[self.arch]
                if c in X.columns and pd.to_numeric(X[c], errors="coerce").notna().any()
            ]
        cols = [pd.to_numeric(X[c], errors="coerce") for c in self.columns_]
        family = X["model"].astype(str) if "model" in X.columns else pd.Series("", index=X.index)
        cols.append((family == "gpt2").astype(float))
        cols.append(X["gpu"].map(lambda g: peak_flops(g)).astype(float))
        return np.column_stack([c.to_numpy(dtype=float) for c in cols])

    def fit(self, X: pd.DataFrame, y: Any) -> _GradientBoosting:
        from sklearn.ensemble import HistGradientBoostingRegressor

        self.model_ = HistGradientBoostingRegressor(
            early_stopping=False, random_state=self.random_state, **GBM_DEFAULTS[self.arch]
        )
        self.model_.fit(self._matrix(X), np.log(np.asarray(y, dtype=float)))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.exp(self.model_.predict(self._matrix(X)))


class _Powerfit:
    """powerfit's step-energy pipeline with prediction intervals."""

    def __init__(self, laws, arch, n_bootstrap, confidence, random_state) -> None:
        self.laws, self.arch = laws, arch
        self.n_bootstrap, self.confidence = n_bootstrap, confidence
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: Any) -> _Powerfit:
        from powerfit.paper.step_energy import StepEnergyRegressor, make_step_energy_pipeline

        regressor = StepEnergyRegressor(
            n_bootstrap=self.n_bootstrap,
            confidence=self.confidence,
            random_state=self.random_state,
        )
        self.pipeline_ = make_step_energy_pipeline(self.laws, arch=self.arch, regressor=regressor)
        self.pipeline_.fit(X, y)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.predict(X.drop(columns=["duration_s"], errors="ignore"))

    def predict_interval(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        from powerfit.paper.step_energy import predict_interval

        return predict_interval(self.pipeline_, X.drop(columns=["duration_s"], errors="ignore"))


def make_models(
    laws: Mapping[str, Mapping[str, Any]],
    arch: str = "transformer",
    *,
    n_bootstrap: int = 20,
    confidence: float = 0.9,
    paper_bootstrap: int = 100,
    random_state: int = 0,
) -> dict[str, Callable[[], Any]]:
    """Factories of the models the harness compares, by name.

    Parameters
    ----------
    laws : dict
        GPU → operation → law, for powerfit's model (:func:`~powerfit.evaluation.paper.fit_laws`).
    arch : {'transformer', 'lstm'}
        The paper's model exists for Transformers only.
    n_bootstrap : int, default 20
        Bootstrap refits of powerfit's model (prediction intervals; 0: none).
    confidence : float, default 0.9
        Nominal level of the intervals.
    paper_bootstrap : int, default 100
        Bootstrap fits whose median is the paper's estimate.
    random_state : int, default 0

    Returns
    -------
    dict of str to callable
        ``paper`` (Transformer only), ``powerfit``, ``gbm``: each returns a fresh
        model with ``fit(X, y)`` and ``predict(X)``.
    """
    models: dict[str, Callable[[], Any]] = {}
    if arch == "transformer":
        models["paper"] = lambda: _PaperModel(paper_bootstrap, random_state)
    models["powerfit"] = lambda: _Powerfit(laws, arch, n_bootstrap, confidence, random_state)
    models["gbm"] = lambda: _GradientBoosting(arch, random_state)
    return models
