"""Tables of the measurement store (SQLAlchemy 2.x typed declarative models).

Units are SI and in the column names' suffixes, as in :mod:`powerfit.formats`:
``_s`` seconds, ``_j`` joules, ``_w`` watts, ``flops`` FLOP, ``peak_flops`` FLOP/s.

* :class:`Gpu` — one GPU model, by the name NVML reports, with its peak throughput
  per precision (copied from :mod:`powerfit.hardware` when first referenced).
* :class:`Import` — one ingested file or batch: its source, the SHA-256 of its
  content (unique: the same content is never ingested twice), row count, time and
  who imported it. Every measurement references its import.
* :class:`OperationMeasurement` — one timed elementary operation (the operation
  names of :data:`powerfit.flops.OPERATIONS`), with its shape parameters.
* :class:`RunMeasurement` — one training step of a whole model, with every
  configuration column, its measured duration and energy.

Shape columns that do not apply to an architecture are NULL (``hidden_size`` for a
Transformer). Schema changes go through an Alembic migration
(``powerfit/store/migrations``); ``alembic check`` must stay clean.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "Gpu", "Import", "OperationMeasurement", "RunMeasurement"]

#: Constraint names that are stable across backends (needed by Alembic batch mode).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with powerfit's naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Gpu(Base):
    """A GPU model."""

    __tablename__ = "gpus"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Name as NVML reports it, e.g. 'NVIDIA A100 80GB PCIe'.
    name: Mapped[str] = mapped_column(String(128), unique=True)
    #: Dense peak throughput per precision name [FLOP/s].
    peak_flops: Mapped[dict[str, float]] = mapped_column(JSON)
    #: Precision of an FP32 PyTorch model's matrix products on this GPU.
    default_precision: Mapped[str] = mapped_column(String(16))
    #: Memory [B].
    memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    #: Default board power limit [W].
    power_limit_w: Mapped[float | None] = mapped_column(Double)


class Import(Base):
    """One ingested file or batch of measurements."""

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Where the rows came from (the path given to ``powerfit ingest``).
    source: Mapped[str] = mapped_column(String(1024))
    #: SHA-256 of the content (hex); the same content is ingested once.
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    #: Reader that parsed it, e.g. 'mayaki2025-transformer-operations'.
    format: Mapped[str] = mapped_column(String(64))
    #: 'operation' or 'run': the table its rows went to.
    kind: Mapped[str] = mapped_column(String(16))
    row_count: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    #: user@host of the importing process.
    imported_by: Mapped[str] = mapped_column(String(255))
    #: Program that imported it, e.g. 'powerfit 0.1.0'.
    tool: Mapped[str] = mapped_column(String(255))


class _Shape:
    """Configuration columns shared by both measurement tables (powerfit.formats)."""

    arch: Mapped[str] = mapped_column(String(16))
    batch_size: Mapped[int | None] = mapped_column(Integer)
    seq_len: Mapped[int | None] = mapped_column(Integer)
    d_model: Mapped[int | None] = mapped_column(Integer)
    n_heads: Mapped[int | None] = mapped_column(Integer)
    d_ff: Mapped[int | None] = mapped_column(Integer)
    input_size: Mapped[int | None] = mapped_column(Integer)
    hidden_size: Mapped[int | None] = mapped_column(Integer)


class OperationMeasurement(_Shape, Base):
    """One timed elementary operation of one layer."""

    __tablename__ = "operation_measurements"
    __table_args__ = (
        Index("ix_operation_measurements_gpu_arch_op", "gpu_id", "arch", "operation"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    import_id: Mapped[int] = mapped_column(
        ForeignKey("imports.id", ondelete="CASCADE"), index=True
    )
    #: 1-based data row of the source file.
    source_row: Mapped[int] = mapped_column(Integer)
    gpu_id: Mapped[int] = mapped_column(ForeignKey("gpus.id"))
    #: A name of powerfit.flops.OPERATIONS[arch].
    operation: Mapped[str] = mapped_column(String(32))
    precision: Mapped[str] = mapped_column(String(16))
    #: FLOPs of one call [FLOP].
    flops: Mapped[float] = mapped_column(Double)
    #: Duration of one call [s].
    duration_s: Mapped[float] = mapped_column(Double)
    #: Energy of one call [J]; NULL when not measured.
    energy_j: Mapped[float | None] = mapped_column(Double)
    repeats: Mapped[int | None] = mapped_column(Integer)
    tool: Mapped[str | None] = mapped_column(String(255))


class RunMeasurement(_Shape, Base):
    """One training step of a whole model."""

    __tablename__ = "run_measurements"
    __table_args__ = (Index("ix_run_measurements_gpu_arch", "gpu_id", "arch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    import_id: Mapped[int] = mapped_column(
        ForeignKey("imports.id", ondelete="CASCADE"), index=True
    )
    source_row: Mapped[int] = mapped_column(Integer)
    gpu_id: Mapped[int] = mapped_column(ForeignKey("gpus.id"))
    #: Model family, e.g. 'bert', 'gpt2', 'lstm'.
    model: Mapped[str | None] = mapped_column(String(64))
    n_layers: Mapped[int] = mapped_column(Integer)
    vocab_size: Mapped[int | None] = mapped_column(Integer)
    #: Trainable parameters [-].
    n_params: Mapped[int | None] = mapped_column(BigInteger)
    precision: Mapped[str] = mapped_column(String(16))
    #: Duration of one training step [s]; NULL when not measured.
    duration_s: Mapped[float | None] = mapped_column(Double)
    #: Energy of one training step, total (GPU + CPU + RAM where measured) [J].
    energy_j: Mapped[float | None] = mapped_column(Double)
    gpu_energy_j: Mapped[float | None] = mapped_column(Double)
    cpu_energy_j: Mapped[float | None] = mapped_column(Double)
    ram_energy_j: Mapped[float | None] = mapped_column(Double)
    #: GPU power measured just before the run [W].
    idle_power_w: Mapped[float | None] = mapped_column(Double)
    #: Steps or runs averaged into this row.
    repeats: Mapped[int | None] = mapped_column(Integer)
    #: Standard deviation of the duration over the repeats [s].
    duration_std_s: Mapped[float | None] = mapped_column(Double)
    #: Standard deviation of the energy over the repeats [J].
    energy_std_j: Mapped[float | None] = mapped_column(Double)
    tool: Mapped[str | None] = mapped_column(String(255))
