"""Tables of the measurement store (SQLAlchemy 2.x typed declarative models).

Units are SI and in the column names' suffixes, as in :mod:`powerfit.formats`:
``_s`` seconds, ``_j`` joules, ``_w`` watts, ``flops`` FLOP, ``peak_flops`` FLOP/s.

* :class:`Gpu` — one GPU model, by the name NVML reports, with its peak throughput
  per precision, memory bandwidth, SM count and power limit: copied from
  :mod:`powerfit.hardware` when first referenced (``origin`` 'catalogue'), given with
  ``powerfit gpus add`` ('user'), or measured by ``powerfit measure`` and carried in
  its output file ('measured', e.g. a CPU).
* :class:`Import` — one ingested file or batch: its source, the SHA-256 of its
  content, the values given for every row (``--set``), its identity (unique: the
  same content with the same values is never ingested twice), row count, time and
  who imported it. Every measurement references its import.
* :class:`OperationMeasurement` — one timed elementary operation (the operation
  names of :data:`powerfit.paper.flops.OPERATIONS`), with its shape parameters; or one
  generic operator (``arch`` 'generic', ``operation`` a key of
  :data:`powerfit.kernels.counts.OPERATOR_KINDS`: ``bmm``, ``linear``, ``softmax``, ``ln``,
  element-wise ``add``…) with its shape B (``batch_size``), ``m, n, k`` (matrix
  products) or ``h`` (a B×H tensor), the bytes it moves and its kernel.
* :class:`RunMeasurement` — one training step of a whole model, with every
  configuration column, its measured duration and energy (the total over its
  ``gpu_count`` GPUs).

Every measurement carries its ``precision``: ``fp32``, ``tf32``, ``fp16``, ``bf16``,
``amp-fp16`` or ``amp-bf16`` (:data:`powerfit.store.validation.PRECISIONS`).

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
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "Gpu", "Import", "OperationMeasurement", "PowerMeasurement", "RunMeasurement"]

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
    #: Peak DRAM bandwidth [B/s].
    memory_bandwidth: Mapped[float | None] = mapped_column(Double)
    #: Streaming multiprocessors (GPU) or cores (CPU).
    sm_count: Mapped[int | None] = mapped_column(Integer)
    #: Boost clock [Hz].
    boost_clock_hz: Mapped[float | None] = mapped_column(Double)
    #: Where the specs come from: 'catalogue', 'user' (powerfit gpus add) or
    #: 'measured' (written by powerfit measure).
    origin: Mapped[str] = mapped_column(String(16), server_default=text("'catalogue'"))


class Import(Base):
    """One ingested file or batch of measurements."""

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Where the rows came from (the path given to ``powerfit ingest``).
    source: Mapped[str] = mapped_column(String(1024))
    #: SHA-256 of the content (hex).
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    #: SHA-256 (hex) of the content's SHA-256, the reader and the ``--set`` values
    #: (:func:`powerfit.store.readers.read.import_identity`): ingested once.
    identity: Mapped[str] = mapped_column(String(64), unique=True)
    #: Values given for every row (``--set``), normalised; NULL for imports made
    #: before powerfit recorded them (schema 0001).
    overrides: Mapped[dict[str, str] | None] = mapped_column(JSON)
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
    #: A name of powerfit.paper.flops.OPERATIONS[arch] (or OPERATOR_KINDS for 'generic').
    operation: Mapped[str] = mapped_column(String(32))
    precision: Mapped[str] = mapped_column(String(16))
    #: FLOPs of one call [FLOP].
    flops: Mapped[float] = mapped_column(Double)
    #: Generic operators: matrix product (M×K)·(K×N) dimensions; B is batch_size.
    m: Mapped[int | None] = mapped_column(Integer)
    n: Mapped[int | None] = mapped_column(Integer)
    k: Mapped[int | None] = mapped_column(Integer)
    #: Generic memory-bound operators: the tensor is batch_size × h.
    h: Mapped[int | None] = mapped_column(Integer)
    #: Bytes one call moves to and from memory, at least [B] (generic operators).
    bytes: Mapped[float | None] = mapped_column(Double)
    #: Name of the (main) GPU kernel that ran, where recorded.
    kernel: Mapped[str | None] = mapped_column(String(1024))
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
    #: GPUs the step ran on (data parallel); the energies are their total.
    gpu_count: Mapped[int] = mapped_column(Integer, server_default=text("1"))
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


class PowerMeasurement(Base):
    """One measurement of a GPU's average board power over a workload (schema 0004_power)."""

    __tablename__ = "power_measurements"
    __table_args__ = (Index("ix_power_measurements_gpu", "gpu_id", "workload"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    import_id: Mapped[int] = mapped_column(
        ForeignKey("imports.id", ondelete="CASCADE"), index=True
    )
    source_row: Mapped[int] = mapped_column(Integer)
    gpu_id: Mapped[int] = mapped_column(ForeignKey("gpus.id"))
    #: GPUs the workload ran on; ``power_w`` is per GPU.
    gpu_count: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    #: What ran, e.g. 'imagenet/resnet50' or 'meta-llama/Llama-3.1-8B-Instruct/lm-arena-chat'.
    workload: Mapped[str] = mapped_column(String(255))
    precision: Mapped[str] = mapped_column(String(16))
    #: Samples per step (LLM serving: the average running batch) [-].
    batch_size: Mapped[float | None] = mapped_column(Double)
    #: NVML power limit of the board [W].
    power_limit_w: Mapped[float | None] = mapped_column(Double)
    #: Duration of one step (training: batch / throughput; serving: one batch) [s].
    duration_s: Mapped[float | None] = mapped_column(Double)
    #: Average board power of one GPU (NVML) [W].
    power_w: Mapped[float] = mapped_column(Double)
    #: Work per second, in ``throughput_unit`` (samples/s, tokens/s, images/s).
    throughput: Mapped[float | None] = mapped_column(Double)
    throughput_unit: Mapped[str | None] = mapped_column(String(32))
    #: The rest of the published configuration, as JSON text (written by the bulk
    #: paths as text: no bind processor).
    config: Mapped[str | None] = mapped_column(Text)
    tool: Mapped[str | None] = mapped_column(String(255))
