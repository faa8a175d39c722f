"""Where the measurement store lives, and how powerfit connects to it.

Location
--------
The default store is one SQLite file, ``<home>/powerfit.db``, where ``<home>`` is
:func:`default_home`:

1. ``$POWERFIT_HOME`` when set;
2. else ``$XDG_DATA_HOME/powerfit`` when ``XDG_DATA_HOME`` is set;
3. else ``~/.local/share/powerfit``.

Other powerfit modules keep their own files in the same folder (the MLflow tracking
database ``mlflow.db`` and its artifacts), so that one environment variable moves
everything. Any SQLAlchemy URL can replace the default: pass it explicitly
(``--db URL`` on the command line) or set ``POWERFIT_DB_URL``; see :func:`resolve_url`.

SQLite settings
---------------
Every SQLite connection turns foreign keys on, uses write-ahead logging (readers do
not block the writer), and waits up to :data:`BUSY_TIMEOUT_S` for a lock instead of
failing at once. Transactions that write start with ``BEGIN IMMEDIATE`` (see
:func:`transaction`), so that concurrent writers queue on the busy timeout instead
of failing with "database is locked" when a read lock cannot be upgraded.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from powerfit.exceptions import StoreError, mask_urls

__all__ = [
    "BUSY_TIMEOUT_S",
    "CONNECT_TIMEOUT_S",
    "LOCK_TIMEOUT_S",
    "STATEMENT_TIMEOUT_S",
    "check_sqlite_file",
    "create_engine",
    "default_home",
    "default_url",
    "mask_url",
    "mask_urls",
    "resolve_url",
    "scratch_schema",
    "transaction",
]

#: How long a SQLite connection waits for another writer's lock [s].
BUSY_TIMEOUT_S = 60.0

#: How long a connection to a database server may take before it fails [s]
#: (``connect_timeout`` of PostgreSQL and MySQL drivers, unless the URL sets one).
CONNECT_TIMEOUT_S = 30

#: How long a PostgreSQL statement waits for a lock another session holds [s]
#: (``lock_timeout``, set on every connection).
LOCK_TIMEOUT_S = 30.0

#: Longest a PostgreSQL statement may run [s] (``statement_timeout``); a bulk
#: ingest of a million rows takes well under a minute.
STATEMENT_TIMEOUT_S = 600.0

#: Dialects whose drivers take a ``connect_timeout`` connect argument [s].
_CONNECT_TIMEOUT_DIALECTS = ("postgresql", "mysql", "mariadb")

#: First bytes of every SQLite 3 database file.
_SQLITE_HEADER = b"SQLite format 3\x00"

#: Execution option that makes :func:`transaction` start a write transaction.
_WRITE = "powerfit_write"


def default_home() -> Path:
    """Folder holding powerfit's default store (and, beside it, MLflow's files).

    Returns
    -------
    pathlib.Path
        ``$POWERFIT_HOME``, else ``$XDG_DATA_HOME/powerfit``, else
        ``~/.local/share/powerfit``; absolute, not created.

    Examples
    --------
    >>> default_home().name in {"powerfit", default_home().name}
    True
    """
    home = os.environ.get("POWERFIT_HOME")
    if not home:
        data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
        home = Path(data) / "powerfit"
    return Path(home).expanduser().resolve()


def default_url() -> str:
    """SQLAlchemy URL of the default store: ``sqlite:///<default_home()>/powerfit.db``."""
    return f"sqlite:///{default_home() / 'powerfit.db'}"


def resolve_url(url: str | os.PathLike[str] | None = None) -> str:
    """The store URL to use.

    Parameters
    ----------
    url : str or path, optional
        A SQLAlchemy URL (``sqlite:///file.db``,
        ``postgresql+psycopg://user@host/db``), or a plain file path, taken as a
        SQLite file. Default: ``POWERFIT_DB_URL``, else :func:`default_url`.

    Returns
    -------
    str
        A SQLAlchemy URL.

    Examples
    --------
    >>> resolve_url("sqlite:///:memory:")
    'sqlite:///:memory:'
    >>> resolve_url("/tmp/x.db")
    'sqlite:////tmp/x.db'
    """
    if url is None:
        url = os.environ.get("POWERFIT_DB_URL") or default_url()
    url = os.fspath(url)
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser().resolve()}"
    return url


def create_engine(url: str | os.PathLike[str] | None = None, **kwargs: object) -> Engine:
    """Create a SQLAlchemy engine for a store, with powerfit's SQLite settings.

    Parameters
    ----------
    url : str or path, optional
        See :func:`resolve_url`. The folder of a SQLite file is created if needed.
    **kwargs
        Passed to :func:`sqlalchemy.create_engine` (e.g. ``connect_args``).

    Returns
    -------
    sqlalchemy.engine.Engine

    Raises
    ------
    StoreError
        For a URL SQLAlchemy cannot use (unknown dialect, missing driver).
    """
    resolved = resolve_url(url)
    try:
        parsed = sa.make_url(resolved)
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database
            if database and database != ":memory:" and not database.startswith("file:"):
                check_sqlite_file(
                    Path(database),
                    f"the store {mask_url(resolved)}",
                    str(Path(database) / "powerfit.db"),
                )
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            connect_args = dict(kwargs.pop("connect_args", {}) or {})  # type: ignore[call-overload]
            connect_args.setdefault("timeout", BUSY_TIMEOUT_S)
            engine = sa.create_engine(parsed, connect_args=connect_args, **kwargs)
            _configure_sqlite(engine, in_memory=database in (None, "", ":memory:"))
        else:
            if (
                parsed.get_backend_name() in _CONNECT_TIMEOUT_DIALECTS
                and "connect_timeout" not in parsed.query
            ):
                connect_args = dict(kwargs.pop("connect_args", {}) or {})  # type: ignore[call-overload]
                connect_args.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
                kwargs["connect_args"] = connect_args
            engine = sa.create_engine(parsed, **kwargs)
            if parsed.get_backend_name() == "postgresql":
                _configure_postgresql(engine)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"cannot use the store URL {mask_url(resolved)}: {exc}") from exc
    return engine


def _configure_postgresql(engine: Engine) -> None:
    """Bound every PostgreSQL statement's wait for locks and its run time."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET lock_timeout = {int(LOCK_TIMEOUT_S * 1000)}")
        cursor.execute(f"SET statement_timeout = {int(STATEMENT_TIMEOUT_S * 1000)}")
        cursor.close()
        dbapi_connection.commit()


def timeout_message(text: str) -> str | None:
    """What a PostgreSQL timeout error means, in one line; None for other errors.

    Examples
    --------
    >>> timeout_message("canceling statement due to lock timeout")[:40]
    'waited 30 s for a lock another session h'
    >>> timeout_message("duplicate key") is None
    True
    """
    if "due to lock timeout" in text:
        return (
            f"waited {LOCK_TIMEOUT_S:g} s for a lock another session holds (lock_timeout); "
            "retry when it ends (pg_stat_activity shows who holds it)"
        )
    if "due to statement timeout" in text:
        return (
            f"a statement ran longer than {STATEMENT_TIMEOUT_S:g} s (statement_timeout) "
            "and was cancelled; nothing was written"
        )
    return None


def sqlite_file_state(path: Path) -> str:
    """What a SQLite path holds: 'folder', 'missing', 'empty', 'sqlite', 'other' or 'special'.

    'special' is anything but a regular file or folder (``/dev/null``, a FIFO): it is
    never opened.

    Raises
    ------
    OSError
        When the file exists but cannot be read.
    """
    if path.is_dir():
        return "folder"
    if path.exists() and not path.is_file():
        return "special"
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return "missing"
    if not header:
        return "empty"
    return "sqlite" if header == _SQLITE_HEADER else "other"


def check_sqlite_file(
    path: Path, label: str, example: str, error: type[Exception] = StoreError
) -> str:
    """Refuse a folder, or an existing non-empty file that is not a SQLite database.

    Parameters
    ----------
    path : pathlib.Path
        The SQLite file a URL names.
    label : str
        What the path is, for messages (its URL masked), e.g. ``"the store sqlite:///…"``.
    example : str
        A correct value to suggest when the path is a folder.
    error : type of Exception, default StoreError
        The exception to raise.

    Returns
    -------
    str
        :func:`sqlite_file_state` of the path ('missing', 'empty' or 'sqlite').
    """
    try:
        state = sqlite_file_state(path)
    except OSError as exc:
        raise error(f"cannot read {label}: {exc}") from None
    if state == "folder":
        raise error(f"{label} names a folder, not a SQLite file; give a file such as {example}")
    if state == "other":
        raise error(f"{label} is not a SQLite database (file {path})")
    if state == "special":
        raise error(f"{label} is not a regular file ({path}); give a SQLite file")
    return state


def _configure_sqlite(engine: Engine, *, in_memory: bool) -> None:
    """Install the connect/begin hooks that give SQLite our settings."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own
        # transaction handling would defer it and break BEGIN IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def mask_url(url: str | os.PathLike[str] | sa.URL) -> str:
    """A store or tracking URL with its password replaced by ``***``, for output.

    Database URLs are rendered by SQLAlchemy (``hide_password=True``); other URLs
    (``http://user:password@host``) and anything SQLAlchemy cannot parse are masked
    with :func:`mask_urls`, which also hides secret query parameters.

    Examples
    --------
    >>> mask_url("postgresql+psycopg://me:secret@db:5432/x")
    'postgresql+psycopg://me:***@db:5432/x'
    >>> mask_url("https://me:secret@mlflow.example.org/")
    'https://me:***@mlflow.example.org/'
    >>> mask_url("sqlite:////tmp/s.db")
    'sqlite:////tmp/s.db'
    """
    if isinstance(url, sa.URL):
        text = url.render_as_string(hide_password=True)
    else:
        text = os.fspath(url)
        if urlsplit(text).scheme not in ("http", "https", "") and "://" in text:
            try:
                text = sa.make_url(text).render_as_string(hide_password=True)
            except (SQLAlchemyError, ValueError):
                pass
    return mask_urls(text)


@contextlib.contextmanager
def transaction(
    engine: Engine, *, write: bool = False, foreign_keys: bool = True
) -> Iterator[Connection]:
    """One commit-or-rollback transaction; every database error becomes a StoreError.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        The store's engine.
    write : bool, default False
        The transaction writes: on SQLite it starts with ``BEGIN IMMEDIATE`` and so
        waits (up to :data:`BUSY_TIMEOUT_S`) for other writers before it starts.
    foreign_keys : bool, default True
        False: on SQLite, foreign keys are not enforced during the transaction (schema
        migrations: Alembic's batch mode recreates a table by dropping it, which
        would otherwise delete, through ``ON DELETE CASCADE``, every row that
        references it); they are checked at its end (``PRAGMA foreign_key_check``),
        and any violation rolls it back.

    Yields
    ------
    sqlalchemy.engine.Connection
        Committed when the block ends normally, rolled back when it raises.

    Raises
    ------
    StoreError
        Wrapping any :class:`sqlalchemy.exc.SQLAlchemyError` (the original is chained).
    """
    try:
        with engine.connect() as conn:
            unchecked = not foreign_keys and engine.dialect.name == "sqlite"
            if unchecked:  # outside any transaction, where SQLite honours it
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")
            try:
                if write:
                    conn = conn.execution_options(**{_WRITE: True})
                with conn.begin():
                    yield conn
                    if unchecked:
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise StoreError(
                                f"store {mask_url(engine.url)}: {len(broken)} rows would "
                                f"reference missing rows (first: {tuple(broken[0])}); "
                                "rolled back"
                            )
            finally:
                if unchecked:
                    conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = ON")
    except SQLAlchemyError as exc:
        raise store_error(engine, exc) from exc


def store_error(engine: Engine, exc: BaseException) -> StoreError:
    """A database error as a StoreError naming the store (and a timeout by name)."""
    text = str(exc)
    for marker in ("\n[SQL:", "\n(Background on this error"):
        text = text.split(marker, 1)[0]
    message = timeout_message(text) or mask_urls(" ".join(text.split()))
    return StoreError(f"store {mask_url(engine.url)}: {message}")


@contextlib.contextmanager
def scratch_schema(url: str, prefix: str = "powerfit_scratch") -> Iterator[str]:
    """URL of a new, empty schema on the PostgreSQL server at ``url``, dropped on exit.

    For tests and benchmarks that need a database of their own on a shared server:
    the returned URL sets ``search_path`` to the new schema, so a store opened on it
    creates its tables there.

    Parameters
    ----------
    url : str
        A PostgreSQL URL (its user may create schemas).
    prefix : str, default 'powerfit_scratch'
        Start of the schema's name (a random suffix follows).

    Yields
    ------
    str
        The URL of the schema (password not hidden: it is for connecting).
    """
    import uuid

    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        scoped = sa.make_url(url).update_query_dict({"options": f"-csearch_path={name}"})
        try:
            yield scoped.render_as_string(hide_password=False)
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    finally:
        admin.dispose()
