"""The measurement store: GPUs, imports, operation and run measurements in SQL.

Open one with :func:`open_store` (the default SQLite file
``<default_home()>/powerfit.db``, ``POWERFIT_DB_URL``, or any SQLAlchemy URL); the
schema is created or upgraded on first use and a database newer than this powerfit
is refused, as are databases that are not powerfit stores (an MLflow tracking
database, tables without a schema revision; see :func:`check_store`). Then ingest
files and read DataFrames back:

>>> import tempfile, os
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "store.db"))
>>> store.counts()
{'gpus': 0, 'operation_measurements': 0, 'run_measurements': 0, 'imports': 0}
>>> store.close()

Modules: :mod:`~powerfit.store.engine` (location, connections, transactions),
:mod:`~powerfit.store.models` (tables), :mod:`~powerfit.store.schema` (Alembic
migrations), :mod:`~powerfit.store.readers` (file formats),
:mod:`~powerfit.store.ingest` (writing), :mod:`~powerfit.store.queries` (reading,
imports), :mod:`~powerfit.store.gpus` (GPUs beside the catalogue),
:mod:`~powerfit.store.validation` (accepted values, precisions).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from powerfit.exceptions import StoreError
from powerfit.store.engine import (
    create_engine,
    default_home,
    default_url,
    mask_url,
    resolve_url,
    transaction,
)
from powerfit.store.schema import ensure_schema

if TYPE_CHECKING:  # pandas is imported only when data are read or written
    import pandas as pd

    from powerfit.store.ingest import IngestResult

__all__ = [
    "IngestResult",
    "Store",
    "check_store",
    "default_home",
    "default_url",
    "open_store",
    "resolve_url",
]


@dataclass
class Store:
    """An open measurement store (a thin handle on a SQLAlchemy engine).

    Attributes
    ----------
    engine : sqlalchemy.engine.Engine
        Pass it to the functions of :mod:`powerfit.store.queries` and
        :mod:`powerfit.store.ingest`, or use the methods below.
    """

    engine: Engine

    @property
    def url(self) -> str:
        """The store's URL, password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    def ingest(
        self,
        path: str | os.PathLike[str],
        format: str | None = None,
        overrides: Mapping[str, object] | None = None,
        *,
        ignore_extra_columns: bool = False,
    ) -> IngestResult:
        """Ingest one file; see :func:`powerfit.store.ingest.ingest_file`."""
        from powerfit.store.ingest import ingest_file

        return ingest_file(
            self.engine, path, format, overrides, ignore_extra_columns=ignore_extra_columns
        )

    def gpus(self) -> list[dict[str, Any]]:
        """Catalogue and store GPUs; see :func:`powerfit.store.gpus.list_gpus`."""
        from powerfit.store.gpus import list_gpus

        return list_gpus(self.engine)

    def add_gpu(self, name: str, peak_flops: Mapping[str, float], **specs: Any) -> Any:
        """Store a GPU the catalogue lacks; see :func:`powerfit.store.gpus.add_gpu`."""
        from powerfit.store.gpus import add_gpu

        return add_gpu(self.engine, name, peak_flops, **specs)

    def operation_measurements(
        self,
        gpu: str | None = None,
        arch: str | None = None,
        operation: str | None = None,
        precision: str | None = None,
    ) -> pd.DataFrame:
        """See :func:`powerfit.store.queries.operation_measurements`."""
        from powerfit.store.queries import operation_measurements

        return operation_measurements(self.engine, gpu, arch, operation, precision)

    def run_measurements(
        self, gpu: str | None = None, arch: str | None = None, precision: str | None = None
    ) -> pd.DataFrame:
        """See :func:`powerfit.store.queries.run_measurements`."""
        from powerfit.store.queries import run_measurements

        return run_measurements(self.engine, gpu, arch, precision)

    def operator_measurements(
        self, gpu: str | None = None, op: str | None = None, precision: str | None = None
    ) -> pd.DataFrame:
        """See :func:`powerfit.store.queries.operator_measurements`."""
        from powerfit.store.queries import operator_measurements

        return operator_measurements(self.engine, gpu, op, precision)

    def imports(self) -> list[dict[str, object]]:
        """See :func:`powerfit.store.queries.list_imports`."""
        from powerfit.store.queries import list_imports

        return list_imports(self.engine)

    def remove_import(self, import_id: int) -> dict[str, int]:
        """See :func:`powerfit.store.queries.remove_import`."""
        from powerfit.store.queries import remove_import

        return remove_import(self.engine, import_id)

    def counts(self) -> dict[str, int]:
        """Rows per table; see :func:`powerfit.store.queries.table_counts`."""
        from powerfit.store.queries import table_counts

        return table_counts(self.engine)

    def close(self) -> None:
        """Release the store's connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(
    url: str | os.PathLike[str] | Engine | None = None,
    *,
    migrate: bool = True,
    create: bool = True,
) -> Store:
    """Open (and on first use create) a measurement store.

    Parameters
    ----------
    url : str, path or Engine, optional
        A SQLAlchemy URL, a SQLite file path, or a ready engine. Default:
        ``POWERFIT_DB_URL``, else ``sqlite:///<default_home()>/powerfit.db``
        (see :func:`powerfit.store.engine.default_home`).
    migrate : bool, default True
        Create the schema of a new database, upgrade an older one. With False the
        database is used as it is (``powerfit db`` commands manage it themselves).
    create : bool, default True
        False: refuse, with "no store here", a SQLite file that does not exist (it
        is not created) or a database without powerfit's schema (commands that only
        read, such as ``powerfit db stats``).

    Returns
    -------
    Store

    Raises
    ------
    StoreError
        For an unusable URL, a database that is not a powerfit store
        (:func:`check_store`), a database newer than this powerfit, or a database
        error.
    """
    if not create and not isinstance(url, Engine):
        _refuse_missing_file(url)
    engine = url if isinstance(url, Engine) else create_engine(url)
    if not create:
        try:
            _refuse_no_schema(engine)
        except BaseException:
            if not isinstance(url, Engine):
                engine.dispose()
            raise
    if migrate:
        try:
            check_store(engine)
            ensure_schema(engine)
        except BaseException:
            if not isinstance(url, Engine):
                engine.dispose()
            raise
    return Store(engine)


def _refuse_missing_file(url: str | os.PathLike[str] | None) -> None:
    """'no store here' for a SQLite URL whose file does not exist (nothing created)."""
    import sqlalchemy as sa

    resolved = resolve_url(url)
    try:
        parsed = sa.make_url(resolved)
    except (sa.exc.ArgumentError, ValueError):
        return  # create_engine explains it
    database = parsed.database
    if (
        parsed.get_backend_name() == "sqlite"
        and database
        and database != ":memory:"
        and not database.startswith("file:")
        and not Path(database).exists()
    ):
        raise StoreError(
            f"no store here: {database} does not exist (powerfit ingest creates a store; "
            "check --db or POWERFIT_DB_URL)"
        )


def _refuse_no_schema(engine: Engine) -> None:
    """'no store here' for a database without powerfit's schema revision."""
    import sqlalchemy as sa

    with transaction(engine) as conn:
        tables = set(sa.inspect(conn).get_table_names())
    if "alembic_version" not in tables and not tables & {"imports", "gpus"}:
        raise StoreError(
            f"no store here: {mask_url(engine.url)} holds no powerfit tables "
            "(powerfit ingest creates them; check --db or POWERFIT_DB_URL)"
        )


#: Tables that mark a database as MLflow's tracking store.
_MLFLOW_TABLES = frozenset({"experiments", "runs"})


def check_store(engine: Engine) -> None:
    """Refuse a database that powerfit must not migrate as its store.

    Refused, each with a message that says what the database is and what to do:

    * an MLflow tracking database (tables ``experiments`` and ``runs``): MLflow
      and powerfit both keep their schema revision in ``alembic_version``;
    * a database holding powerfit's tables but no schema revision (the
      ``alembic_version`` table is missing or empty), where creating the schema
      would fail on the existing tables.

    A new (empty) database, or one holding only other applications' tables, passes.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine

    Raises
    ------
    StoreError
        For the databases above, or when the database cannot be read.
    """
    import sqlalchemy as sa

    from powerfit.store.models import Base

    with transaction(engine) as conn:
        tables = set(sa.inspect(conn).get_table_names())
        revisions: list[str] = []
        if "alembic_version" in tables:
            rows = conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            revisions = [row[0] for row in rows]
    where = mask_url(engine.url)
    if _MLFLOW_TABLES <= tables:
        shown = f" (schema revision {', '.join(revisions)})" if revisions else ""
        raise StoreError(
            f"{where} is an MLflow tracking database{shown}, not a powerfit store; "
            "give it as --tracking-uri, and a separate database or file as --db"
        )
    ours = sorted(tables & set(Base.metadata.tables))
    if ours and not revisions:
        state = "is empty" if "alembic_version" in tables else "is missing"
        raise StoreError(
            f"the store {where} has powerfit tables ({', '.join(ours)}) but its "
            f"alembic_version table {state}, so powerfit cannot tell their schema "
            "revision; restore the database from a backup, or, if this powerfit made "
            "these tables, record their revision with 'powerfit db stamp'"
        )


def __getattr__(name: str) -> Any:
    if name == "IngestResult":
        from powerfit.store.ingest import IngestResult

        return IngestResult
    raise AttributeError(f"module 'powerfit.store' has no attribute {name!r}")
