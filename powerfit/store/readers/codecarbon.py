"""Reader of CodeCarbon's ``emissions.csv``: one tracked span a row, energies in kWh.

The model is not recorded by CodeCarbon: configuration columns come from extra columns
or overrides; the GPU and their count are parsed from ``gpu_model`` (see
:mod:`powerfit.store.readers`).
"""

from __future__ import annotations

import math
import re

from powerfit.formats import (
    RUN_COLUMNS,
)
from powerfit.store.readers.canonical import _canonical_columns
from powerfit.store.readers.rows import _PARTS, EXTRA_RUN_COLUMNS, KWH, Converted, _Ctx

_GPU_MODEL = re.compile(r"\s*(\d+)\s*x\s*(.+?)\s*")


def _gpu_from_codecarbon(value: object) -> object:
    """'4 x NVIDIA A100-SXM4-40GB' -> 'NVIDIA A100-SXM4-40GB'; None when ambiguous."""
    count, name = _split_gpu_count(value)
    return name if count is not None else None


def _split_gpu_count(value: object) -> tuple[float | None, object]:
    """'4 x NVIDIA A100-SXM4-40GB' -> (4.0, 'NVIDIA A100-SXM4-40GB'); (None, value) else.

    A list of several models ('1 x A, 1 x B') is ambiguous: (None, None). A count
    too large for a float is ``inf`` (refused with the other counts).
    """
    if not isinstance(value, str):
        return None, None
    match = _GPU_MODEL.fullmatch(value)
    if match is None:
        return None, value
    if re.search(r"\d+\s*x\s", match.group(2)):
        return None, None
    digits = match.group(1).lstrip("0") or "0"
    return (float(digits) if len(digits) < 300 else math.inf), match.group(2)


def _codecarbon(ctx: _Ctx) -> Converted:
    ctx.require("duration", "energy_consumed")
    raw = ctx.raw
    frame, origin = _canonical_columns(ctx, RUN_COLUMNS + EXTRA_RUN_COLUMNS)
    steps = ctx.number("steps", positive=True) if "steps" in raw.columns else 1.0
    frame["duration_s"] = ctx.number("duration", positive=True) / steps
    frame["energy_j"] = ctx.number("energy_consumed", positive=True) * KWH / steps
    origin.update(duration_s="duration", energy_j="energy_consumed")
    for part in _PARTS:
        column = f"{part}_energy"
        if column in raw.columns:
            frame[f"{part}_energy_j"] = ctx.number(column, required=False) * KWH / steps
            origin[f"{part}_energy_j"] = column
    frame["repeats"] = steps
    origin["repeats"] = "steps"
    if "gpu" not in frame and "gpu_model" in raw.columns:
        frame["gpu"] = raw["gpu_model"].map(_gpu_from_codecarbon)
        origin["gpu"] = "gpu_model"
    if "gpu_model" in raw.columns:
        counts = raw["gpu_model"].map(lambda v: _split_gpu_count(v)[0]).astype(float)
        if "gpu_count" in frame:  # CodeCarbon's own column, or --set gpu_count=
            given = ctx.number("gpu_count", required=False)
            frame["gpu_count"] = given.where(given.notna(), counts)
        else:
            frame["gpu_count"] = counts
            origin["gpu_count"] = "gpu_model"
    if "tool" not in frame:
        version = raw["codecarbon_version"] if "codecarbon_version" in raw.columns else None
        frame["tool"] = (
            "codecarbon" if version is None else ("codecarbon " + version.astype(str)).str.strip()
        )
    return frame, origin


#: Columns CodeCarbon writes to emissions.csv (versions 1 to 3), read or not.
CODECARBON_COLUMNS: tuple[str, ...] = (
    "timestamp", "project_name", "run_id", "experiment_id", "task_name", "duration",
    "emissions", "emissions_rate", "cpu_power", "gpu_power", "ram_power", "cpu_energy",
    "gpu_energy", "ram_energy", "energy_consumed", "water_consumed", "country_name",
    "country_iso_code", "region", "cloud_provider", "cloud_region", "os", "python_version",
    "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude",
    "latitude", "ram_total_size", "tracking_mode", "on_cloud", "pue", "wue",
    "cpu_utilization_percent", "gpu_utilization_percent", "ram_utilization_percent",
    "ram_used_gb",
)  # fmt: skip
