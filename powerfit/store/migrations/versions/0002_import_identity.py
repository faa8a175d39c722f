"""Import identity: the content's SHA-256, the reader and the ``--set`` values.

Adds ``imports.identity`` (unique) and ``imports.overrides`` (the values given with
``--set``; NULL for imports made before this revision, whose values were not
recorded), and makes ``imports.sha256`` a plain index: the same file ingested with
other values is another import. Existing imports get the identity of their content
and reader without values.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _identity(sha256: str, format: str) -> str:
    """powerfit.store.readers.read.import_identity without values (frozen copy)."""
    key = json.dumps({"sha256": sha256, "format": format, "set": {}}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


_imports = sa.table(
    "imports",
    sa.column("id", sa.Integer()),
    sa.column("sha256", sa.String(64)),
    sa.column("format", sa.String(64)),
    sa.column("identity", sa.String(64)),
)


def upgrade() -> None:
    """Upgrade the schema by one revision."""
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("overrides", sa.JSON(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.select(_imports.c.id, _imports.c.sha256, _imports.c.format)).all()
    for id_, sha256, format in rows:
        conn.execute(
            _imports.update()
            .where(_imports.c.id == id_)
            .values(identity=_identity(sha256, format))
        )
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.alter_column("identity", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_constraint("uq_imports_sha256", type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_imports_identity"), ["identity"])
        batch_op.create_index(batch_op.f("ix_imports_sha256"), ["sha256"], unique=False)


def downgrade() -> None:
    """Downgrade the schema by one revision.

    Refused while one file is imported several times (with other ``--set``
    values): revision 0001 allows one import per content.
    """
    conn = op.get_bind()
    repeated = conn.execute(
        sa.select(_imports.c.sha256).group_by(_imports.c.sha256).having(sa.func.count() > 1)
    ).all()
    if repeated:
        raise RuntimeError(
            f"cannot downgrade to 0001: {len(repeated)} file(s) are imported several times "
            "with different --set values, which 0001 cannot hold; remove those imports first"
        )
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_imports_sha256"))
        batch_op.drop_constraint(batch_op.f("uq_imports_identity"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_imports_sha256"), ["sha256"])
        batch_op.drop_column("overrides")
        batch_op.drop_column("identity")
