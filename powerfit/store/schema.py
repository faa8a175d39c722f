"""Create, upgrade and check the store's schema with the Alembic scripts shipped in
the package (``powerfit/store/migrations``), as an installed powerfit does on first use.

* A brand-new database is brought to the head revision by running the migrations
  (one path for every database, so a new database and an upgraded one are identical).
* An older database is upgraded in place.
* A database whose revision this powerfit does not know (written by a newer
  powerfit) is refused with a :class:`~powerfit.exceptions.StoreError` that says so.

Concurrent first uses are serialised: on SQLite by the write lock taken with
``BEGIN IMMEDIATE``, on PostgreSQL by a transaction-level advisory lock; the loser
finds the schema at head and does nothing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from powerfit.exceptions import StoreError
from powerfit.store.engine import transaction

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "check",
    "current_revision",
    "downgrade",
    "ensure_schema",
    "head_revision",
    "upgrade",
]

#: Folder of the Alembic scripts inside the installed package.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Key of the PostgreSQL advisory lock that serialises migrations ("pwrfit" in hex).
_PG_LOCK_KEY = 0x707772666974


def alembic_config(connection: Connection | Engine | None = None) -> Config:
    """An Alembic configuration that runs the shipped scripts on ``connection``.

    Parameters
    ----------
    connection : sqlalchemy Connection or Engine, optional
        Passed to ``env.py`` in ``config.attributes["connection"]``; a Connection is
        used inside its current transaction.

    Returns
    -------
    alembic.config.Config
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["configure_logger"] = False
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """Revision of the newest schema this powerfit knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # the package ships at least one revision
    return head


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def current_revision(engine: Engine) -> str | None:
    """Revision the database is at; None for a database without powerfit's schema.

    Raises
    ------
    StoreError
        When the database cannot be read.
    """
    with transaction(engine) as conn:
        return _current(conn)


def _known(revision: str) -> bool:
    script = ScriptDirectory.from_config(alembic_config())
    try:
        return script.get_revision(revision) is not None
    except Exception:  # alembic raises several kinds for an unknown revision
        return False


def _refuse_newer(revision: str | None, url: object) -> None:
    if revision is not None and not _known(revision):
        raise StoreError(
            f"the store {url} has schema revision {revision!r}, newer than this powerfit "
            f"knows (head {head_revision()!r}); upgrade powerfit to use it"
        )


def _locked(conn: Connection) -> None:
    """Serialise schema changes between processes (SQLite: BEGIN IMMEDIATE already)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def ensure_schema(engine: Engine) -> str:
    """Bring a database to the head revision (create it if new); refuse a newer one.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine

    Returns
    -------
    str
        The head revision.

    Raises
    ------
    StoreError
        For a database at a revision newer than this powerfit, or any database error.
    """
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return head
    _refuse_newer(current, engine.url)
    with transaction(engine, write=True, foreign_keys=False) as conn:
        _locked(conn)
        current = _current(conn)
        _refuse_newer(current, engine.url)
        if current != head:
            command.upgrade(alembic_config(conn), "head")
    return head


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (default the head).

    Raises
    ------
    StoreError
        For a database newer than this powerfit, an unknown revision, or a database error.
    """
    _migrate(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str = "-1") -> None:
    """Downgrade the database to ``revision`` (``base`` removes every table).

    Raises
    ------
    StoreError
        For an unknown revision or a database error.
    """
    _migrate(engine, "downgrade", revision)


def _migrate(engine: Engine, direction: str, revision: str) -> None:
    _refuse_newer(current_revision(engine), engine.url)
    with transaction(engine, write=True, foreign_keys=False) as conn:
        _locked(conn)
        try:
            getattr(command, direction)(alembic_config(conn), revision)
        except StoreError:
            raise
        except Exception as exc:  # alembic's CommandError and friends
            if exc.__class__.__module__.startswith("sqlalchemy"):
                raise
            raise StoreError(f"cannot {direction} to {revision!r}: {exc}") from exc


def check(engine: Engine) -> None:
    """Raise when the models and the database's schema differ (``alembic check``).

    Raises
    ------
    alembic.util.exc.AutogenerateDiffsDetected
        Listing the differences.
    """
    with transaction(engine) as conn:
        command.check(alembic_config(conn))
