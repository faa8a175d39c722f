"""Read the store back as pandas DataFrames ready for fitting.

Columns use powerfit's canonical names and SI units (:mod:`powerfit.formats`);
integer configuration columns are pandas nullable integers (``Int64``), missing
measurements NaN. Rows come in insertion order.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from powerfit.formats import CONFIG_COLUMNS
from powerfit.hardware import get_gpu
from powerfit.store.engine import transaction
from powerfit.store.models import Gpu, Import, OperationMeasurement, RunMeasurement

__all__ = ["operation_measurements", "run_measurements", "table_counts"]

_INT_COLUMNS = (*CONFIG_COLUMNS[1:], "n_layers", "vocab_size", "n_params", "repeats")
_FLOAT_COLUMNS = (
    "flops", "duration_s", "energy_j", "gpu_energy_j", "cpu_energy_j", "ram_energy_j",
    "idle_power_w", "duration_std_s", "energy_std_j",
)  # fmt: skip


def table_counts(engine: Engine) -> dict[str, int]:
    """Rows per table.

    Returns
    -------
    dict of str to int
        ``{"gpus": …, "operation_measurements": …, "run_measurements": …, "imports": …}``.
    """
    tables = (Gpu, OperationMeasurement, RunMeasurement, Import)
    with transaction(engine) as conn:
        return {
            model.__tablename__: conn.execute(
                sa.select(sa.func.count()).select_from(model)
            ).scalar_one()
            for model in tables
        }


def _gpu_name(gpu: str) -> str:
    try:
        return get_gpu(gpu).name
    except ValueError:
        return gpu


def _frame(engine: Engine, stmt: sa.Select) -> pd.DataFrame:
    with transaction(engine) as conn:
        result = conn.execute(stmt)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    for column in _INT_COLUMNS:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    for column in _FLOAT_COLUMNS:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column]).astype(float)
    return frame


def _filtered(stmt: sa.Select, model: type, gpu: str | None, arch: str | None) -> sa.Select:
    if gpu is not None:
        stmt = stmt.where(Gpu.name == _gpu_name(gpu))
    if arch is not None:
        stmt = stmt.where(model.arch == arch.lower())
    return stmt.order_by(model.id)


def operation_measurements(
    engine: Engine,
    gpu: str | None = None,
    arch: str | None = None,
    operation: str | None = None,
) -> pd.DataFrame:
    """Operation measurements, with each row's hardware efficiency.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        The store's engine.
    gpu : str, optional
        GPU name or alias (:func:`powerfit.hardware.get_gpu`); all GPUs when omitted.
    arch : str, optional
        'transformer', 'lstm' or 'gru'; all when omitted.
    operation : str, optional
        An operation name of :data:`powerfit.flops.OPERATIONS`; all when omitted.

    Returns
    -------
    pandas.DataFrame
        Columns ``gpu, arch, operation, batch_size, seq_len, d_model, n_heads, d_ff,
        input_size, hidden_size, precision, flops`` [FLOP], ``duration_s`` [s],
        ``energy_j`` [J], ``repeats, tool``, ``peak_flops`` [FLOP/s] (the GPU's
        peak at the row's precision), ``efficiency`` [-] = flops / (duration_s ·
        peak_flops), a fraction, and ``import_id``.
    """
    m = OperationMeasurement
    stmt = sa.select(
        Gpu.name.label("gpu"),
        m.arch,
        m.operation,
        *(getattr(m, c) for c in CONFIG_COLUMNS[1:]),
        m.precision,
        m.flops,
        m.duration_s,
        m.energy_j,
        m.repeats,
        m.tool,
        Gpu.peak_flops.label("_peaks"),
        m.import_id,
    ).join(Gpu, m.gpu_id == Gpu.id)
    stmt = _filtered(stmt, m, gpu, arch)
    if operation is not None:
        stmt = stmt.where(m.operation == operation)
    frame = _frame(engine, stmt)
    pairs = zip(frame.pop("_peaks"), frame["precision"], strict=True)
    peaks = [table.get(precision) for table, precision in pairs]
    frame.insert(frame.columns.get_loc("import_id"), "peak_flops", pd.Series(peaks, dtype=float))
    frame.insert(
        frame.columns.get_loc("import_id"),
        "efficiency",
        frame["flops"] / (frame["duration_s"] * frame["peak_flops"]),
    )
    return frame


def run_measurements(
    engine: Engine, gpu: str | None = None, arch: str | None = None
) -> pd.DataFrame:
    """Run measurements (training steps) with their configuration columns.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        The store's engine.
    gpu : str, optional
        GPU name or alias; all GPUs when omitted.
    arch : str, optional
        Architecture; all when omitted.

    Returns
    -------
    pandas.DataFrame
        Columns ``gpu, arch, model, n_layers, batch_size, seq_len, d_model, n_heads,
        d_ff, input_size, hidden_size, vocab_size, n_params, precision,
        duration_s`` [s], ``energy_j, gpu_energy_j, cpu_energy_j, ram_energy_j`` [J],
        ``idle_power_w`` [W], ``repeats, duration_std_s`` [s], ``energy_std_j`` [J],
        ``tool, import_id`` and ``sha256`` (of the import's content).
    """
    m = RunMeasurement
    stmt = (
        sa.select(
            Gpu.name.label("gpu"),
            m.arch,
            m.model,
            m.n_layers,
            *(getattr(m, c) for c in CONFIG_COLUMNS[1:]),
            m.vocab_size,
            m.n_params,
            m.precision,
            m.duration_s,
            m.energy_j,
            m.gpu_energy_j,
            m.cpu_energy_j,
            m.ram_energy_j,
            m.idle_power_w,
            m.repeats,
            m.duration_std_s,
            m.energy_std_j,
            m.tool,
            m.import_id,
            Import.sha256,
        )
        .join(Gpu, m.gpu_id == Gpu.id)
        .join(Import, m.import_id == Import.id)
    )
    return _frame(engine, _filtered(stmt, m, gpu, arch))
