"""NeuSight's 4-GPU training steps against :mod:`powerfit.steps.parallel`.

:func:`evaluate_parallel` predicts every measured step of
:func:`powerfit.datasets.neusight2025_parallel.neusight_parallel_steps` (FP32, forward +
backward, no optimizer, no loss: as NeuSight ran them) from the model's step graph
(traced as ``estimate --hf-config`` traces one GPU: GPT-2 runs eager attention in FP32;
its tensor-parallel slice, whose head width would follow its head count, from the
hand-written graph), the operator laws and Vidur's collective laws, and reports the
error per step beside NeuSight's own published error on the same step kind (Lee et
al., ASPLOS 2025: data parallel 12.9 %, tensor parallel 8.4 %, pipeline 10.3 %). Two
modes: ``in-gpu`` (the
bundled laws, calibrated where the GPU has measured single-GPU steps) and
``specs-only`` (as if the GPU had never been measured). Nothing is fitted on the
parallel steps: the collective laws come from Vidur's measurements, the operator laws
from NeuSight's single-operator benchmarks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["NEUSIGHT_PUBLISHED_PCT", "evaluate_parallel"]

#: NeuSight's own error on its 4-GPU steps [%] (Lee et al., ASPLOS 2025).
NEUSIGHT_PUBLISHED_PCT = {"dp4": 12.9, "tp4": 8.4, "pp4_1": 10.3}


def evaluate_parallel(data_home: Any = None, attention: str = "auto") -> pd.DataFrame:
    """Predicted and measured time of each of NeuSight's 4-GPU steps.

    ``attention``: as ``estimate --hf-config --attention`` (default ``auto``).

    Returns
    -------
    pandas.DataFrame
        One row per step: ``gpu``, ``model``, ``option``, ``measured_s`` [s],
        ``predicted_s`` [s] and ``error_pct`` [%] (in-GPU mode),
        ``specs_only_s`` and ``specs_only_error_pct``, ``neusight_published_pct``,
        and the predicted parts ``compute_s``, ``tp_comm_s``, ``pp_p2p_s``,
        ``dp_comm_s``, ``dp_exposed_s`` [s]. ``attrs['mean']`` holds the mean
        absolute error per GPU and mode.
    """
    from powerfit.architectures.hf import from_hf_config
    from powerfit.datasets.neusight2025_parallel import neusight_parallel_steps
    from powerfit.hardware.gpus import get_gpu
    from powerfit.kernels.collectives import Network
    from powerfit.steps.latency import bundled_operator_model
    from powerfit.steps.measured import calibrate_on_measured_steps
    from powerfit.steps.parallel import make_split, parallel_step_time

    steps = neusight_parallel_steps(data_home)
    operator_model = bundled_operator_model("fp32")
    rows = []
    for step in steps.itertuples(index=False):
        gpu = get_gpu(step.gpu).name
        config = from_hf_config(step.config)
        n = step.dp * step.tp * step.pp
        split = make_split(
            config,
            n,
            step.batch_size,
            tp=step.tp,
            pp=step.pp,
            micro_batch=step.batch_size // (step.dp * step.micro_batches),
            gpus_per_node=max(n, 4),
        )
        net = Network(gpu, split.gpus_per_node)
        out: dict[str, Any] = {
            "gpu": gpu,
            "model": step.model,
            "option": step.option,
            "measured_s": step.measured_s,
        }
        for mode, specs_only in (("in-gpu", False), ("specs-only", True)):
            calibration = (
                None
                if specs_only
                else calibrate_on_measured_steps(gpu, operator_model, data_home=data_home)
            )
            pred = parallel_step_time(
                config,
                gpu,
                split,
                step.seq_len,
                precision="fp32",
                optimizer="none",
                network=net,
                operator_model=operator_model,
                specs_only=specs_only,
                calibration=calibration,
                loss=False,
                hf_config=step.config,
                attention=attention,
            )
            error = 100 * (pred.step_time_s - step.measured_s) / step.measured_s
            if mode == "in-gpu":
                out.update(predicted_s=pred.step_time_s, error_pct=error)
                out.update(
                    {
                        k: v
                        for k, v in pred.breakdown().items()
                        if k in ("compute_s", "tp_comm_s", "pp_p2p_s", "dp_comm_s", "dp_exposed_s")
                    }
                )
            else:
                out.update(specs_only_s=pred.step_time_s, specs_only_error_pct=error)
        out["neusight_published_pct"] = NEUSIGHT_PUBLISHED_PCT.get(step.option, np.nan)
        rows.append(out)
    table = pd.DataFrame(rows)
    if not table.empty:
        mean = table.groupby("gpu").agg(
            steps=("option", "size"),
            in_gpu_mape=("error_pct", lambda e: float(np.mean(np.abs(e)))),
            specs_only_mape=("specs_only_error_pct", lambda e: float(np.mean(np.abs(e)))),
            neusight_published=("neusight_published_pct", "mean"),
        )
        table.attrs["mean"] = mean.reset_index().to_dict(orient="records")
    return table
