"""NeuSight's measured training steps as operator graphs, and the calibration fitted on them.

:func:`neusight_step_graph` builds the graph of one measured step as NeuSight ran it
(FP32, no optimizer step, no loss); :func:`calibrate_on_measured_steps` fits a GPU's
:class:`~powerfit.steps.calibration.Calibration` on its measured steps
(:func:`powerfit.datasets.neusight2025.neusight_training_steps`) and uses it only where
it beats the uncalibrated sum out of sample.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from powerfit.datasets.neusight2025 import neusight_training_steps
from powerfit.steps.calibration import Calibration, fit_calibration
from powerfit.steps.graph import training_step_graph
from powerfit.steps.latency import operator_latency

__all__ = ["calibrate_on_measured_steps", "neusight_step_graph"]


def neusight_step_graph(step: Any) -> pd.DataFrame:
    """The graph of one of :func:`neusight_training_steps`' rows, as NeuSight ran it.

    FP32, no optimizer step, no loss (the traced steps end at the logits); BERT with
    its pooler and next-sentence head (NeuSight traced ``BertForPreTraining``).
    """
    from dataclasses import replace

    from powerfit.architectures.hf import from_hf_config

    cfg = from_hf_config(step.config)
    if cfg.family == "bert":
        cfg = replace(cfg, pooler=True)
    return training_step_graph(
        cfg, int(step.batch_size), int(step.seq_len), "fp32", optimizer="none", loss=False
    )


def calibrate_on_measured_steps(
    gpu: str,
    operator_model: Any = None,
    specs_only: bool = False,
    data_home: Any = None,
) -> Calibration | None:
    """The per-GPU :class:`Calibration` fitted on NeuSight's measured steps of a GPU.

    Returns None when that GPU has no measured training step (or the data are absent).
    The calibration is used only when its leave-one-step-out error beats the
    uncalibrated sum (``used``); otherwise it is the identity, reported as fitted.
    """
    from powerfit.hardware.gpus import get_gpu

    name = get_gpu(gpu).name
    steps = neusight_training_steps(data_home)
    steps = steps[steps.gpu == name]
    if steps.empty:
        return None
    summed, n_ops = [], []
    for step in steps.itertuples(index=False):
        graph = neusight_step_graph(step)
        lat = operator_latency(graph, name, operator_model, specs_only)
        summed.append(float(np.sum(lat * graph["count"].to_numpy())))
        n_ops.append(float(graph["count"].sum()))
    s, n, y = np.array(summed), np.array(n_ops), steps.measured_s.to_numpy()
    cal = fit_calibration(name, s, n, y)
    if len(y) < 3:  # too few steps to check it out of sample: report, do not use
        return replace(cal, scale=1.0, launch_s=0.0, used=False)
    loo = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        other = fit_calibration(name, s[keep], n[keep], y[keep])
        loo.append(abs(other.apply(s[i], n[i]) - y[i]) / y[i])
    mape_loo = float(np.mean(loo) * 100)
    if mape_loo >= cal.mape_before:
        return replace(cal, scale=1.0, launch_s=0.0, mape_loo=mape_loo, used=False)
    return replace(cal, mape_loo=mape_loo)
