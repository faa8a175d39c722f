"""Initial schema: gpus, imports, operation_measurements, run_measurements.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade the schema by one revision."""
    op.create_table(
        "gpus",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("peak_flops", sa.JSON(), nullable=False),
        sa.Column("default_precision", sa.String(length=16), nullable=False),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=True),
        sa.Column("power_limit_w", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gpus")),
        sa.UniqueConstraint("name", name=op.f("uq_gpus_name")),
    )
    op.create_table(
        "imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_by", sa.String(length=255), nullable=False),
        sa.Column("tool", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imports")),
        sa.UniqueConstraint("sha256", name=op.f("uq_imports_sha256")),
    )
    op.create_table(
        "operation_measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("source_row", sa.Integer(), nullable=False),
        sa.Column("gpu_id", sa.Integer(), nullable=False),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("precision", sa.String(length=16), nullable=False),
        sa.Column("flops", sa.Double(), nullable=False),
        sa.Column("duration_s", sa.Double(), nullable=False),
        sa.Column("energy_j", sa.Double(), nullable=True),
        sa.Column("repeats", sa.Integer(), nullable=True),
        sa.Column("tool", sa.String(length=255), nullable=True),
        sa.Column("arch", sa.String(length=16), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=True),
        sa.Column("seq_len", sa.Integer(), nullable=True),
        sa.Column("d_model", sa.Integer(), nullable=True),
        sa.Column("n_heads", sa.Integer(), nullable=True),
        sa.Column("d_ff", sa.Integer(), nullable=True),
        sa.Column("input_size", sa.Integer(), nullable=True),
        sa.Column("hidden_size", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["gpu_id"], ["gpus.id"], name=op.f("fk_operation_measurements_gpu_id_gpus")
        ),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["imports.id"],
            name=op.f("fk_operation_measurements_import_id_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operation_measurements")),
    )
    with op.batch_alter_table("operation_measurements", schema=None) as batch_op:
        batch_op.create_index(
            "ix_operation_measurements_gpu_arch_op", ["gpu_id", "arch", "operation"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_operation_measurements_import_id"), ["import_id"], unique=False
        )

    op.create_table(
        "run_measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("source_row", sa.Integer(), nullable=False),
        sa.Column("gpu_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=True),
        sa.Column("n_layers", sa.Integer(), nullable=False),
        sa.Column("vocab_size", sa.Integer(), nullable=True),
        sa.Column("n_params", sa.BigInteger(), nullable=True),
        sa.Column("precision", sa.String(length=16), nullable=False),
        sa.Column("duration_s", sa.Double(), nullable=True),
        sa.Column("energy_j", sa.Double(), nullable=True),
        sa.Column("gpu_energy_j", sa.Double(), nullable=True),
        sa.Column("cpu_energy_j", sa.Double(), nullable=True),
        sa.Column("ram_energy_j", sa.Double(), nullable=True),
        sa.Column("idle_power_w", sa.Double(), nullable=True),
        sa.Column("repeats", sa.Integer(), nullable=True),
        sa.Column("duration_std_s", sa.Double(), nullable=True),
        sa.Column("energy_std_j", sa.Double(), nullable=True),
        sa.Column("tool", sa.String(length=255), nullable=True),
        sa.Column("arch", sa.String(length=16), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=True),
        sa.Column("seq_len", sa.Integer(), nullable=True),
        sa.Column("d_model", sa.Integer(), nullable=True),
        sa.Column("n_heads", sa.Integer(), nullable=True),
        sa.Column("d_ff", sa.Integer(), nullable=True),
        sa.Column("input_size", sa.Integer(), nullable=True),
        sa.Column("hidden_size", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["gpu_id"], ["gpus.id"], name=op.f("fk_run_measurements_gpu_id_gpus")
        ),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["imports.id"],
            name=op.f("fk_run_measurements_import_id_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_measurements")),
    )
    with op.batch_alter_table("run_measurements", schema=None) as batch_op:
        batch_op.create_index("ix_run_measurements_gpu_arch", ["gpu_id", "arch"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_run_measurements_import_id"), ["import_id"], unique=False
        )


def downgrade() -> None:
    """Downgrade the schema by one revision."""
    with op.batch_alter_table("run_measurements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_measurements_import_id"))
        batch_op.drop_index("ix_run_measurements_gpu_arch")

    op.drop_table("run_measurements")
    with op.batch_alter_table("operation_measurements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operation_measurements_import_id"))
        batch_op.drop_index("ix_operation_measurements_gpu_arch_op")

    op.drop_table("operation_measurements")
    op.drop_table("imports")
    op.drop_table("gpus")
