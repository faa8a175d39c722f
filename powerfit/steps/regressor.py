"""A scikit-learn estimator of training-step time, the GPU an input column.

:class:`StepTimeRegressor` predicts the step time of (GPU, Hugging Face config, batch,
sequence) rows from the step graph and the bundled operator laws, calibrated per GPU
in ``fit`` on measured step times; MLflow records it
(:func:`powerfit.tracking.recording.log_step_time_model`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from powerfit.architectures.model import ModelConfig
from powerfit.kernels.operator_laws import _frame as _checked_frame
from powerfit.steps.calibration import fit_calibration
from powerfit.steps.graph import training_step_graph
from powerfit.steps.latency import _gpu, operator_latency

__all__ = ["STEP_COLUMNS", "StepTimeRegressor"]

#: Columns :class:`StepTimeRegressor` reads (``precision`` optional, default fp32).
STEP_COLUMNS = ("gpu", "config", "batch_size", "seq_len")


def _config_of(value: Any) -> ModelConfig:
    import json

    from powerfit.architectures.hf import from_hf_config

    if isinstance(value, ModelConfig):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        return from_hf_config(json.loads(value))
    return from_hf_config(value)


def _step_sums(X: pd.DataFrame, optimizer: str, loss: bool, specs_only: bool):
    summed, n_ops = [], []
    for row in X.itertuples(index=False):
        precision = getattr(row, "precision", "fp32") if "precision" in X else "fp32"
        graph = training_step_graph(
            _config_of(row.config),
            int(row.batch_size),
            int(row.seq_len),
            precision,
            optimizer=optimizer,
            loss=loss,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lat = operator_latency(graph, _gpu(row.gpu).name, None, specs_only)
        summed.append(float(np.sum(lat * graph["count"].to_numpy())))
        n_ops.append(float(graph["count"].sum()))
    return np.array(summed), np.array(n_ops)


def _step_frame(X: Any) -> pd.DataFrame:
    return _checked_frame(X, STEP_COLUMNS)


class StepTimeRegressor(RegressorMixin, BaseEstimator):
    """Time of a training step [s] from (GPU, Hugging Face config, batch, sequence).

    The sum of the graph's operator latencies (:func:`~powerfit.steps.latency.step_time`, bundled
    operator laws), corrected per GPU by a :class:`~powerfit.steps.calibration.Calibration` fitted
    in :meth:`fit` on measured steps of that GPU (GPUs without measured steps are predicted
    uncalibrated). One fitted estimator serves every GPU: the GPU is a column.

    Parameters
    ----------
    specs_only : bool, default False
        Predict as if no GPU had been measured (operator laws transferred from specs;
        no calibration).
    calibrate : bool, default True
        Fit the per-GPU calibration in :meth:`fit` (``fit`` does nothing else).
    optimizer : {"adamw", "sgd", "none"}, default "none"
        The step's optimizer (NeuSight's measured steps have none).
    loss : bool, default False
        Include the loss (NeuSight's measured steps end at the logits).

    Attributes
    ----------
    calibrations_ : dict of str to (float, float)
        GPU -> (scale, launch [s]).

    Notes
    -----
    ``X`` columns: ``gpu`` (name), ``config`` (a ``config.json`` path, its JSON text,
    or a :class:`~powerfit.architectures.model.ModelConfig`), ``batch_size``, ``seq_len`` and
    optionally ``precision``.
    """

    def __init__(
        self,
        specs_only: bool = False,
        calibrate: bool = True,
        optimizer: str = "none",
        loss: bool = False,
    ) -> None:
        self.specs_only = specs_only
        self.calibrate = calibrate
        self.optimizer = optimizer
        self.loss = loss

    def fit(self, X: Any, y: Any) -> StepTimeRegressor:
        """Fit the per-GPU calibration on measured step times ``y`` [s]."""
        X = _step_frame(X)
        y = np.asarray(y, dtype=float)
        if y.shape != (len(X),) or not np.all(np.isfinite(y) & (y > 0)):
            raise ValueError("y must be one positive, finite step time [s] per row of X")
        self.calibrations_: dict[str, tuple[float, float]] = {}
        if self.calibrate and not self.specs_only:
            s, n = _step_sums(X, self.optimizer, self.loss, self.specs_only)
            gpus = np.array([_gpu(g).name for g in X["gpu"]])
            for gpu in sorted(set(gpus)):
                m = gpus == gpu
                cal = fit_calibration(gpu, s[m], n[m], y[m])
                self.calibrations_[gpu] = (cal.scale, cal.launch_s)
        self.n_features_in_ = len(STEP_COLUMNS)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Step time [s] of each row of X."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "calibrations_")
        X = _step_frame(X)
        s, n = _step_sums(X, self.optimizer, self.loss, self.specs_only)
        out = s.copy()
        for i, g in enumerate(X["gpu"]):
            scale, launch = self.calibrations_.get(_gpu(g).name, (1.0, 0.0))
            out[i] = scale * s[i] + launch * n[i]
        return out
