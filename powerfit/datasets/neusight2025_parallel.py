"""NeuSight's training steps on 4 GPUs (``neusight2025/parallel/``): data, tensor, pipeline.

:func:`neusight_parallel_steps` lists
``parallel/<GPU>/<model>-train-<seq>-<batch>-<option>.json``
(FP32 with TF32 off, forward + backward, no optimizer step, one step of the whole 4-GPU
job; see the dataset README), each file checked against ``SHA256SUMS``. Every GPU folder
present is read, so a data home holding other GPUs' parallel steps is evaluated the
same way.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd

from powerfit.datasets.home import checked_file, get_data_home, read_sha256sums
from powerfit.exceptions import DataError

__all__ = ["PARALLEL_OPTIONS", "neusight_parallel_steps"]

#: NeuSight's option names -> (data, tensor, pipeline degree, micro-batches) over 4 GPUs.
PARALLEL_OPTIONS = {"dp4": (4, 1, 1, 1), "tp4": (1, 4, 1, 1), "pp4_1": (1, 1, 4, 1)}

_NAME = re.compile(r"^(?P<model>.+)-train-(?P<seq>\d+)-(?P<batch>\d+)-(?P<option>\w+)\.json$")


def neusight_parallel_steps(data_home: Any = None) -> pd.DataFrame:
    """NeuSight's measured 4-GPU training steps, one row per file.

    Returns
    -------
    pandas.DataFrame
        ``gpu`` (NVML name), ``model``, ``config`` (its ``config.json`` as a dict),
        ``seq_len``, ``batch_size`` (global) [-], ``option`` (``dp4``, ``tp4``,
        ``pp4_1``), ``dp``, ``tp``, ``pp``, ``micro_batches`` [-], ``measured_s`` [s]
        (``e2e_latency``, ms in the file), ``source``.

    Raises
    ------
    powerfit.exceptions.DataError
        A file name or option not understood, a damaged file or a missing latency.
    """
    folder = get_data_home(data_home) / "neusight2025"
    sums = read_sha256sums(folder)
    rows = []
    for relative in sorted(r for r in sums if r.startswith("parallel/") and r.endswith(".json")):
        match = _NAME.match(relative.split("/")[-1])
        if match is None or match["option"] not in PARALLEL_OPTIONS:
            raise DataError(
                f"not <model>-train-<seq>-<batch>-<{'|'.join(PARALLEL_OPTIONS)}>.json",
                source=str(folder / relative),
            )
        path = checked_file(folder, relative, sums)
        label = json.loads(path.read_text())
        latency = label.get("e2e_latency")
        if not isinstance(latency, (int, float)) or latency <= 0:
            raise DataError("missing or non-positive", source=str(path), column="e2e_latency")
        model_file = f"models/{match['model']}.json"
        config = json.loads(checked_file(folder, model_file, sums).read_text())
        dp, tp, pp, m = PARALLEL_OPTIONS[match["option"]]
        rows.append(
            {
                "gpu": relative.split("/")[1].replace("_", " "),
                "model": match["model"],
                "config": config,
                "seq_len": int(match["seq"]),
                "batch_size": int(match["batch"]),
                "option": match["option"],
                "dp": dp,
                "tp": tp,
                "pp": pp,
                "micro_batches": m,
                "measured_s": float(latency) * 1e-3,
                "source": relative,
            }
        )
    return pd.DataFrame(rows)
