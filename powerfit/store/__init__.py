"""The measurement store: GPUs, imports, operation and run measurements in SQL.

Open one with :func:`open_store` (the default SQLite file
``<default_home()>/powerfit.db``, ``POWERFIT_DB_URL``, or any SQLAlchemy URL); the
schema is created or upgraded on first use and a database newer than this powerfit
is refused. Then ingest files and read DataFrames back:

>>> import tempfile, os
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "store.db"))
>>> store.counts()
{'gpus': 0, 'operation_measurements': 0, 'run_measurements': 0, 'imports': 0}
>>> store.close()

Modules: :mod:`~powerfit.store.engine` (location, connections, transactions),
:mod:`~powerfit.store.models` (tables), :mod:`~powerfit.store.schema` (Alembic
migrations), :mod:`~powerfit.store.readers` (file formats),
:mod:`~powerfit.store.ingest` (writing), :mod:`~powerfit.store.queries` (reading).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from powerfit.store.engine import create_engine, default_home, default_url, resolve_url
from powerfit.store.schema import ensure_schema

if TYPE_CHECKING:  # pandas is imported only when data are read or written
    import pandas as pd

    from powerfit.store.ingest import IngestResult

__all__ = [
    "IngestResult",
    "Store",
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
    ) -> IngestResult:
        """Ingest one file; see :func:`powerfit.store.ingest.ingest_file`."""
        from powerfit.store.ingest import ingest_file

        return ingest_file(self.engine, path, format, overrides)

    def operation_measurements(
        self, gpu: str | None = None, arch: str | None = None, operation: str | None = None
    ) -> pd.DataFrame:
        """See :func:`powerfit.store.queries.operation_measurements`."""
        from powerfit.store.queries import operation_measurements

        return operation_measurements(self.engine, gpu, arch, operation)

    def run_measurements(self, gpu: str | None = None, arch: str | None = None) -> pd.DataFrame:
        """See :func:`powerfit.store.queries.run_measurements`."""
        from powerfit.store.queries import run_measurements

        return run_measurements(self.engine, gpu, arch)

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
    url: str | os.PathLike[str] | Engine | None = None, *, migrate: bool = True
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

    Returns
    -------
    Store

    Raises
    ------
    StoreError
        For an unusable URL, a database newer than this powerfit, or a database error.
    """
    engine = url if isinstance(url, Engine) else create_engine(url)
    if migrate:
        ensure_schema(engine)
    return Store(engine)


def __getattr__(name: str) -> Any:
    if name == "IngestResult":
        from powerfit.store.ingest import IngestResult

        return IngestResult
    raise AttributeError(f"module 'powerfit.store' has no attribute {name!r}")
