"""Measured board power: the ``power_measurements`` table.

One row per measurement of average board power (Zeus 2023 ``summary_power_*``,
ML.ENERGY 2026 ``models/*.json``): the GPU and how many ran, the workload, its
precision and batch, the power limit, the duration of one step, the average board
power of one GPU [W], the throughput and its unit, and the rest of the
configuration (JSON text).

Revision ID: 0004_power
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_power"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade the schema by one revision."""
    op.create_table(
        "power_measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("source_row", sa.Integer(), nullable=False),
        sa.Column("gpu_id", sa.Integer(), nullable=False),
        sa.Column("gpu_count", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("workload", sa.String(length=255), nullable=False),
        sa.Column("precision", sa.String(length=16), nullable=False),
        sa.Column("batch_size", sa.Double(), nullable=True),
        sa.Column("power_limit_w", sa.Double(), nullable=True),
        sa.Column("duration_s", sa.Double(), nullable=True),
        sa.Column("power_w", sa.Double(), nullable=False),
        sa.Column("throughput", sa.Double(), nullable=True),
        sa.Column("throughput_unit", sa.String(length=32), nullable=True),
        sa.Column("config", sa.Text(), nullable=True),
        sa.Column("tool", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["gpu_id"], ["gpus.id"], name=op.f("fk_power_measurements_gpu_id_gpus")
        ),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["imports.id"],
            name=op.f("fk_power_measurements_import_id_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_power_measurements")),
    )
    op.create_index(op.f("ix_power_measurements_import_id"), "power_measurements", ["import_id"])
    op.create_index("ix_power_measurements_gpu", "power_measurements", ["gpu_id", "workload"])


def downgrade() -> None:
    """Downgrade the schema by one revision (the power measurements are lost)."""
    op.drop_index("ix_power_measurements_gpu", table_name="power_measurements")
    op.drop_index(op.f("ix_power_measurements_import_id"), table_name="power_measurements")
    op.drop_table("power_measurements")
