"""Precision labels, generic operators, GPU specs and GPU counts.

* ``operation_measurements`` gains the generic operators' shape (``m``, ``n``,
  ``k``, ``h``; B is ``batch_size``), the bytes a call moves (``bytes`` [B]) and the
  kernel name (``kernel``).
* ``run_measurements`` gains ``gpu_count`` (1 for existing rows): the energies of a
  row are the total over that many GPUs.
* ``gpus`` gains ``memory_bandwidth`` [B/s], ``sm_count``, ``boost_clock_hz`` [Hz]
  and ``origin`` ('catalogue' for existing rows; 'user' for ``powerfit gpus add``,
  'measured' for specs written by ``powerfit measure``).
* Existing rows of the published data (imports whose format starts with
  ``mayaki2025``) get their precision by the rule of
  :func:`powerfit.store.readers.mayaki2025.mayaki_precision`: ``tf32`` on the A100 (its
  throughput reaches 82–117 TFLOP/s on matrix products, above the 19.5 TFLOP/s
  FP32 peak), ``fp32`` on the RTX 2080 Ti (at most 11.5 TFLOP/s, 85 % of its
  13.45 TFLOP/s FP32 peak and far below its 53.8 TFLOP/s FP16 tensor peak; Turing
  has no TF32).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Precision of the published data per GPU name (frozen copy of the readers' rule).
_MAYAKI_PRECISION = {
    "NVIDIA A100 80GB PCIe": "tf32",
    "NVIDIA GeForce RTX 2080 Ti": "fp32",
}


def upgrade() -> None:
    """Upgrade the schema by one revision."""
    recreate = _recreate()
    with op.batch_alter_table("gpus", schema=None, recreate=recreate) as batch_op:
        batch_op.add_column(sa.Column("memory_bandwidth", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("sm_count", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("boost_clock_hz", sa.Double(), nullable=True))
        origin = sa.Column(
            "origin", sa.String(length=16), server_default=sa.text("'catalogue'"), nullable=False
        )
        batch_op.add_column(origin)
    with op.batch_alter_table(
        "operation_measurements", schema=None, recreate=recreate
    ) as batch_op:
        for name in ("m", "n", "k", "h"):
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("bytes", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("kernel", sa.String(length=1024), nullable=True))
    with op.batch_alter_table("run_measurements", schema=None, recreate=recreate) as batch_op:
        batch_op.add_column(
            sa.Column("gpu_count", sa.Integer(), server_default=sa.text("1"), nullable=False)
        )
    conn = op.get_bind()
    gpus = sa.table("gpus", sa.column("id", sa.Integer()), sa.column("name", sa.String()))
    imports = sa.table("imports", sa.column("id", sa.Integer()), sa.column("format", sa.String()))
    published = sa.select(imports.c.id).where(imports.c.format.like("mayaki2025%"))
    for table in ("operation_measurements", "run_measurements"):
        rows = sa.table(
            table,
            sa.column("gpu_id", sa.Integer()),
            sa.column("import_id", sa.Integer()),
            sa.column("precision", sa.String()),
        )
        for name, precision in _MAYAKI_PRECISION.items():
            gpu = sa.select(gpus.c.id).where(gpus.c.name == name).scalar_subquery()
            conn.execute(
                rows.update()
                .where(rows.c.gpu_id == gpu, rows.c.import_id.in_(published))
                .values(precision=precision)
            )


def _recreate() -> str:
    """Batch mode: on SQLite >= 3.35 add and drop columns in place (never recreate).

    Recreating ``gpus`` would drop a table that the measurements reference, which
    SQLite refuses while foreign keys are enforced (and the rows are kept in place).
    """
    import sqlite3

    conn = op.get_bind()
    if conn.dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 35):
        return "never"
    return "auto"


def downgrade() -> None:
    """Downgrade the schema by one revision (the new columns and their values are lost)."""
    recreate = _recreate()
    with op.batch_alter_table("run_measurements", schema=None, recreate=recreate) as batch_op:
        batch_op.drop_column("gpu_count")
    with op.batch_alter_table(
        "operation_measurements", schema=None, recreate=recreate
    ) as batch_op:
        for name in ("kernel", "bytes", "h", "k", "n", "m"):
            batch_op.drop_column(name)
    with op.batch_alter_table("gpus", schema=None, recreate=recreate) as batch_op:
        for name in ("origin", "boost_clock_hz", "sm_count", "memory_bandwidth"):
            batch_op.drop_column(name)
