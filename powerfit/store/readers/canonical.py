"""Readers of powerfit's own canonical files (``powerfit-operations``, ``powerfit-runs``).

The columns are :mod:`powerfit.formats`'; a device the catalogue lacks may be described
by the file itself (:data:`~powerfit.store.readers.rows.DEVICE_SPEC_COLUMNS`, as
``powerfit measure`` writes them).
"""

from __future__ import annotations

import pandas as pd

from powerfit.hardware.gpus import GPU
from powerfit.store.readers.rows import (
    _OPERATION_ORDER,
    _RUN_ORDER,
    DEVICE_SPEC_COLUMNS,
    Converted,
    _Ctx,
    _gpu_key,
)
from powerfit.store.validation import (
    PRECISIONS,
    peak_precision,
)


def _canonical_columns(ctx: _Ctx, columns: tuple[str, ...]) -> Converted:
    frame = {c: ctx.raw[c] for c in columns if c in ctx.raw.columns}
    return frame, {c: c for c in frame}


def _device_specs(ctx: _Ctx) -> None:
    """GPUs described by the file itself (:data:`DEVICE_SPEC_COLUMNS`), in ctx.file_gpus.

    Per device: its peak at each precision of its rows (the largest value given),
    bandwidth and power limit (the largest given), the most common precision as its
    default.
    """
    raw = ctx.raw
    if "device_peak_flops" not in raw.columns or "gpu" not in raw.columns:
        return
    peak = ctx.number("device_peak_flops", required=False, positive=True)
    other = {
        c: ctx.number(c, required=False, positive=True)
        for c in DEVICE_SPEC_COLUMNS[1:]
        if c in raw.columns
    }
    names = raw["gpu"].astype(str).str.strip()
    if "precision" in raw.columns:
        precision = raw["precision"].astype(str).str.strip().str.lower()
    else:
        precision = pd.Series("fp32", index=raw.index)
    for name in names[peak.notna()].unique():
        rows = (names == name) & peak.notna()
        peaks = {
            peak_precision(p): float(peak[rows & (precision == p)].max())
            for p in precision[rows].unique()
            if p in PRECISIONS
        }
        if not peaks:
            continue
        bandwidth = other.get("device_memory_bandwidth")
        power = other.get("device_power_limit_w")
        ctx.file_gpus[_gpu_key(name)] = GPU(
            name=name,
            peak_flops=peaks,
            default_precision=str(precision[rows].mode().iloc[0]),
            memory_bytes=None,  # type: ignore[arg-type]
            power_limit_w=None if power is None else _max_or_none(power[rows]),  # type: ignore[arg-type]
            memory_bandwidth=None if bandwidth is None else _max_or_none(bandwidth[rows]),
        )


def _max_or_none(values: pd.Series) -> float | None:
    value = values.max()
    return None if pd.isna(value) else float(value)


def _powerfit_operations(ctx: _Ctx) -> Converted:
    _device_specs(ctx)
    return _canonical_columns(ctx, _OPERATION_ORDER)


def _powerfit_runs(ctx: _Ctx) -> Converted:
    _device_specs(ctx)
    return _canonical_columns(ctx, _RUN_ORDER)
