"""Measured board power in the store: read back as a frame (``power_measurements``)."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from powerfit.store.engine import transaction
from powerfit.store.models import Gpu, PowerMeasurement

__all__ = ["power_measurements"]


def power_measurements(engine: Engine, gpu: str | None = None) -> pd.DataFrame:
    """The store's power measurements, one row each.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        The store's engine (schema at head).
    gpu : str, optional
        Only this GPU (NVML name).

    Returns
    -------
    pandas.DataFrame
        ``gpu, import_id, source_row, gpu_count, workload, precision, batch_size,
        power_limit_w [W], duration_s [s], power_w [W] (per GPU), throughput,
        throughput_unit, config`` (JSON text), ``tool``.
    """
    p = PowerMeasurement
    query = (
        sa.select(
            Gpu.name.label("gpu"),
            p.import_id,
            p.source_row,
            p.gpu_count,
            p.workload,
            p.precision,
            p.batch_size,
            p.power_limit_w,
            p.duration_s,
            p.power_w,
            p.throughput,
            p.throughput_unit,
            p.config,
            p.tool,
        )
        .join(Gpu, Gpu.id == p.gpu_id)
        .order_by(p.import_id, p.source_row)
    )
    if gpu is not None:
        query = query.where(Gpu.name == gpu)
    with transaction(engine) as conn:
        result = conn.execute(query)
        return pd.DataFrame(result.all(), columns=list(result.keys()))
