"""Read the store back as pandas DataFrames ready for fitting.

Columns use powerfit's canonical names and SI units (:mod:`powerfit.formats`);
integer configuration columns are pandas nullable integers (``Int64``), missing
measurements NaN. Rows come in insertion order.

Every measurement has a precision (``fp32``, ``tf32``, ``fp16``, ``bf16``,
``amp-fp16``, ``amp-bf16``); pass ``precision=`` to select one. A fit must use
one precision: :func:`single_precision` refuses rows that mix them, saying which
precisions and how many rows of each, and how to choose.

Imports: :func:`list_imports` lists them, :func:`remove_import` removes one with
its rows (one transaction).
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from powerfit.exceptions import DataError, StoreError
from powerfit.formats import CONFIG_COLUMNS
from powerfit.hardware.gpus import get_gpu
from powerfit.store.engine import transaction
from powerfit.store.models import Gpu, Import, OperationMeasurement, RunMeasurement
from powerfit.store.validation import PRECISIONS, peak_precision

__all__ = [
    "list_imports",
    "operation_measurements",
    "operator_measurements",
    "remove_import",
    "run_measurements",
    "single_precision",
    "table_counts",
]

_INT_COLUMNS = (
    *CONFIG_COLUMNS[1:], "n_layers", "vocab_size", "n_params", "repeats", "gpu_count",
    "m", "n", "k", "h",
)  # fmt: skip
_FLOAT_COLUMNS = (
    "flops", "bytes", "duration_s", "energy_j", "gpu_energy_j", "cpu_energy_j",
    "ram_energy_j", "idle_power_w", "duration_std_s", "energy_std_j",
)  # fmt: skip


def _check_precision(precision: str | None) -> str | None:
    if precision is None:
        return None
    value = str(precision).strip().lower()
    if value not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    return value


def single_precision(frame: pd.DataFrame, what: str = "measurements") -> str | None:
    """The one precision of ``frame``'s rows; refuse rows that mix precisions.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows with a ``precision`` column (from this module's queries).
    what : str
        What the rows are, for the message (e.g. ``"operation measurements of
        'NVIDIA A100 80GB PCIe' / transformer"``).

    Returns
    -------
    str or None
        The precision; None for no rows.

    Raises
    ------
    DataError
        When the rows hold several precisions: efficiencies are fractions of the
        peak of each precision and one law cannot mix them.
    """
    if frame.empty or "precision" not in frame.columns:
        return None
    counts = frame["precision"].value_counts()
    if len(counts) == 1:
        return str(counts.index[0])
    listed = ", ".join(f"{p} ({n} rows)" for p, n in counts.items())
    raise DataError(
        f"the {what} mix precisions: {listed}; a fit uses one precision (efficiency is "
        f"a fraction of that precision's peak). Choose one with --precision "
        f"({'/'.join(map(str, counts.index))}) or precision= in Python"
    )


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


def _filtered(
    stmt: sa.Select,
    model: type,
    gpu: str | None,
    arch: str | None,
    precision: str | None = None,
) -> sa.Select:
    if gpu is not None:
        stmt = stmt.where(Gpu.name == _gpu_name(gpu))
    if arch is not None:
        stmt = stmt.where(model.arch == arch.lower())
    precision = _check_precision(precision)
    if precision is not None:
        stmt = stmt.where(model.precision == precision)
    return stmt.order_by(model.id)


def operation_measurements(
    engine: Engine,
    gpu: str | None = None,
    arch: str | None = None,
    operation: str | None = None,
    precision: str | None = None,
) -> pd.DataFrame:
    """Operation measurements, with each row's hardware efficiency.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        The store's engine.
    gpu : str, optional
        GPU name or alias (:func:`powerfit.hardware.gpus.get_gpu`); all GPUs when omitted.
    arch : str, optional
        'transformer', 'lstm' or 'gru'; all when omitted.
    operation : str, optional
        An operation name of :data:`powerfit.paper.flops.OPERATIONS`; all when omitted.
    precision : str, optional
        One of :data:`~powerfit.store.validation.PRECISIONS`; all when omitted
        (check with :func:`single_precision` before fitting).

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
    stmt = _filtered(stmt, m, gpu, arch, precision)
    if operation is not None:
        stmt = stmt.where(m.operation == operation)
    frame = _frame(engine, stmt)
    pairs = zip(frame.pop("_peaks"), frame["precision"], strict=True)
    peaks = [table.get(peak_precision(str(p))) for table, p in pairs]
    frame.insert(frame.columns.get_loc("import_id"), "peak_flops", pd.Series(peaks, dtype=float))
    frame.insert(
        frame.columns.get_loc("import_id"),
        "efficiency",
        frame["flops"] / (frame["duration_s"] * frame["peak_flops"]),
    )
    return frame


def run_measurements(
    engine: Engine,
    gpu: str | None = None,
    arch: str | None = None,
    precision: str | None = None,
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
    precision : str, optional
        One precision; all when omitted.

    Returns
    -------
    pandas.DataFrame
        Columns ``gpu, gpu_count, arch, model, n_layers, batch_size, seq_len, d_model, n_heads,
        d_ff, input_size, hidden_size, vocab_size, n_params, precision,
        duration_s`` [s], ``energy_j, gpu_energy_j, cpu_energy_j, ram_energy_j`` [J],
        ``idle_power_w`` [W], ``repeats, duration_std_s`` [s], ``energy_std_j`` [J],
        ``tool, import_id`` and ``sha256`` (of the import's content).
    """
    m = RunMeasurement
    stmt = (
        sa.select(
            Gpu.name.label("gpu"),
            m.gpu_count,
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
    return _frame(engine, _filtered(stmt, m, gpu, arch, precision))


def operator_measurements(
    engine: Engine,
    gpu: str | None = None,
    op: str | None = None,
    precision: str | None = None,
) -> pd.DataFrame:
    """Generic operator measurements (NeuSight's ``bmm``, ``softmax``...), for
    :mod:`powerfit.kernels.model`.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
    gpu : str, optional
        GPU name or alias; all when omitted.
    op : str, optional
        Operator (a key of :data:`powerfit.kernels.counts.OPERATOR_KINDS`, aliases resolved).
    precision : str, optional
        One precision; all when omitted.

    Returns
    -------
    pandas.DataFrame
        Columns ``gpu, op, precision, B, M, N, K, H`` (shape; NaN where it does not
        apply), ``flops`` [FLOP], ``bytes`` [B], ``duration_s`` [s], ``energy_j``
        [J], ``kernel, tool, import_id``.
    """
    from powerfit.kernels.counts import operator_kind

    m = OperationMeasurement
    stmt = sa.select(
        Gpu.name.label("gpu"),
        m.operation.label("op"),
        m.precision,
        m.batch_size.label("B"),
        m.m.label("M"),
        m.n.label("N"),
        m.k.label("K"),
        m.h.label("H"),
        m.flops,
        m.bytes,
        m.duration_s,
        m.energy_j,
        m.kernel,
        m.tool,
        m.import_id,
    ).join(Gpu, m.gpu_id == Gpu.id)
    stmt = _filtered(stmt, m, gpu, "generic", precision)
    if op is not None:
        stmt = stmt.where(m.operation == operator_kind(op))
    frame = _frame(engine, stmt)
    for column in ("B", "M", "N", "K", "H"):
        frame[column] = pd.to_numeric(frame[column]).astype(float)
    return frame


def list_imports(engine: Engine) -> list[dict[str, object]]:
    """Every import of the store, oldest first.

    Returns
    -------
    list of dict
        ``id, source, sha256, format, kind, rows`` (rows it added), ``overrides``
        (the ``--set`` values; None for imports made before they were recorded),
        ``imported_at`` (ISO 8601, UTC), ``imported_by``, ``tool``.
    """
    with transaction(engine) as conn:
        rows = conn.execute(sa.select(Import.__table__).order_by(Import.id)).all()
        return [
            {
                "id": row.id,
                "source": row.source,
                "sha256": row.sha256,
                "format": row.format,
                "kind": row.kind,
                "rows": row.row_count,
                "overrides": None if row.overrides is None else dict(row.overrides),
                "imported_at": _iso(row.imported_at),
                "imported_by": row.imported_by,
                "tool": row.tool,
            }
            for row in rows
        ]


def _iso(value: object) -> str | None:
    if value is None:
        return None
    text = value.isoformat(timespec="seconds")  # type: ignore[attr-defined]
    return text if value.tzinfo is not None else text + "+00:00"  # type: ignore[attr-defined]


def remove_import(engine: Engine, import_id: int) -> dict[str, int]:
    """Remove one import and every measurement row it added, in one transaction.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
    import_id : int
        The import's id (:func:`list_imports`, ``powerfit db imports``).

    Returns
    -------
    dict of str to int
        Rows removed: ``{"operation_measurements": …, "run_measurements": …,
        "imports": 1}``.

    Raises
    ------
    StoreError
        For an import that does not exist (nothing is removed).
    """
    with transaction(engine, write=True) as conn:
        found = conn.execute(sa.select(Import.id).where(Import.id == int(import_id))).scalar()
        if found is None:
            raise StoreError(f"no import {import_id} in the store (see: powerfit db imports)")
        removed = {}
        for model in (OperationMeasurement, RunMeasurement):
            result = conn.execute(sa.delete(model).where(model.import_id == found))
            removed[model.__tablename__] = int(result.rowcount or 0)
        conn.execute(sa.delete(Import).where(Import.id == found))
        removed["imports"] = 1
    return removed
