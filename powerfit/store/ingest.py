"""Write validated measurements into the store: one transaction per file.

A file is read and validated completely (:func:`powerfit.store.readers.read.read_measurements`)
before anything is written; then its import row, any GPU it references and all its
measurement rows are inserted in one transaction: a refused or interrupted file
writes nothing. The measurement rows go in bulk, never as ORM objects one by one:
on SQLite through the driver's ``executemany``, on PostgreSQL (psycopg 3) with
``COPY ... FROM STDIN`` inside that same transaction, elsewhere with Core
``executemany`` (:func:`_insert_many`). Every path stores the same values.

Identity of an import
---------------------
An import is identified by its content (SHA-256), its reader and the values given
for every row (``--set``, :func:`powerfit.store.readers.read.import_identity`):

* the same file with the same values again is skipped ("already ingested");
* the same file with **other** values is a **new import** (its rows are other
  data); :attr:`IngestResult.same_file_as` lists the earlier imports of that file,
  so that the command line can say so;
* a file imported before powerfit recorded the values (schema 0001, ``overrides``
  NULL) is skipped whatever the values, since they cannot be compared.

This is checked before writing, and enforced by the unique constraint on
``imports.identity`` when two processes race to ingest the same import — the
loser rolls back and reports a duplicate.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import socket
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from powerfit._version import __version__
from powerfit.hardware.gpus import GPU, get_gpu
from powerfit.store.engine import transaction
from powerfit.store.gpus import gpu_row
from powerfit.store.models import (
    Gpu,
    Import,
    OperationMeasurement,
    PowerMeasurement,
    RunMeasurement,
)
from powerfit.store.readers.read import import_identity, read_measurements
from powerfit.store.readers.rows import Measurements

__all__ = ["IngestResult", "ingest_file", "ingest_measurements"]

#: Rows per write (one executemany or one COPY; also the progress bar's step).
CHUNK_ROWS = 20_000
#: Files with at least this many rows get a progress bar (on a terminal).
PROGRESS_MIN_ROWS = 50_000


@dataclass(frozen=True)
class IngestResult:
    """What one ingested file did to the store.

    Attributes
    ----------
    source : str
        The path as given.
    format : str
        Reader used.
    kind : {'operation', 'run'}
        Table written.
    sha256 : str
        SHA-256 of the content.
    rows : int
        Rows added (0 for a duplicate).
    import_id : int
        The import's id (of the earlier import, for a duplicate).
    duplicate : bool
        The same content with the same values had already been ingested; nothing
        was added.
    overrides : dict of str to str
        Values given for every row (``--set``), normalised.
    same_file_as : tuple of int
        Earlier imports of the same content with other values (for a new import).
    ignored_columns : tuple of str
        Unknown columns that were ignored (``--ignore-extra-columns``).
    """

    source: str
    format: str
    kind: str
    sha256: str
    rows: int
    import_id: int
    duplicate: bool
    overrides: dict[str, str] = field(default_factory=dict)
    same_file_as: tuple[int, ...] = ()
    ignored_columns: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """The result as a JSON-ready dict."""
        return {
            "source": self.source,
            "format": self.format,
            "kind": self.kind,
            "sha256": self.sha256,
            "rows": self.rows,
            "import_id": self.import_id,
            "status": "duplicate" if self.duplicate else "imported",
            "overrides": dict(self.overrides),
            "same_file_as": list(self.same_file_as),
            "ignored_columns": list(self.ignored_columns),
        }


class _Duplicate(Exception):
    """Raised inside the write transaction to roll it back when the content exists."""


def _who() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some containers
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def _existing_import(conn: Connection, identity: str, sha256: str) -> int | None:
    """The import with this identity, or a pre-0002 import of the same content."""
    found = conn.execute(sa.select(Import.id).where(Import.identity == identity)).scalar()
    if found is None:
        found = conn.execute(
            sa.select(Import.id)
            .where(Import.sha256 == sha256, Import.overrides.is_(None))
            .order_by(Import.id)
        ).scalar()
    return found


def _same_file(conn: Connection, sha256: str, import_id: int) -> tuple[int, ...]:
    """Other imports of the same content (with other values)."""
    ids = conn.execute(
        sa.select(Import.id).where(Import.sha256 == sha256, Import.id != import_id)
    ).scalars()
    return tuple(sorted(ids))


def _gpu_ids(
    conn: Connection,
    names: Iterable[str],
    specs: Mapping[str, tuple[GPU, str]] | None = None,
) -> dict[str, int]:
    """Ids of these GPUs, inserting those not stored yet (race-safe).

    ``specs`` (name -> (spec, origin)) describes GPUs outside the catalogue; a GPU
    the file measured ('measured') that is stored already as 'measured' keeps, per
    precision, the largest peak of both.
    """
    names = sorted(set(names))
    specs = specs or {}
    table = Gpu.__table__
    rows = []
    for name in names:
        spec, origin = specs[name] if name in specs else (get_gpu(name), "catalogue")
        rows.append(gpu_row(spec, origin))
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        module = sqlite if dialect == "sqlite" else postgresql
        stmt = module.insert(table).on_conflict_do_nothing(index_elements=["name"])
        conn.execute(stmt, rows)
    else:  # pragma: no cover - other backends: insert what is missing
        known = set(conn.execute(sa.select(Gpu.name).where(Gpu.name.in_(names))).scalars())
        missing = [row for row in rows if row["name"] not in known]
        if missing:
            conn.execute(sa.insert(table), missing)
    result = conn.execute(
        sa.select(Gpu.name, Gpu.id, Gpu.origin, Gpu.peak_flops).where(Gpu.name.in_(names))
    )
    ids = {}
    for name, id_, origin, peaks in result.all():
        ids[name] = id_
        spec = specs.get(name)
        if spec is not None and spec[1] == "measured" and origin == "measured":
            merged = dict(peaks)
            for key, value in spec[0].peak_flops.items():
                merged[key] = max(float(value), float(merged.get(key, 0.0)))
            if merged != peaks:
                conn.execute(sa.update(Gpu).where(Gpu.id == id_).values(peak_flops=merged))
    return ids


def _column_values(series: pd.Series, integer: bool) -> list[object]:
    """A column as a list of Python scalars (ints for integer columns), None if missing."""
    if integer:
        numbers = series.to_numpy(dtype=float, na_value=np.nan)
        if not np.isnan(numbers).any():
            return numbers.astype(np.int64).tolist()
        return [None if v != v else int(v) for v in numbers.tolist()]  # NaN != NaN
    if pd.api.types.is_float_dtype(series.dtype):
        values = series.to_numpy(dtype=float).tolist()
    else:
        values = series.tolist()
    if series.hasnans:
        values = [None if (v is None or v != v) else v for v in values]
    return values


def _tuples(table: sa.Table, frame: pd.DataFrame) -> tuple[list[str], list[tuple[object, ...]]]:
    """Columns with at least one value, and the rows as tuples of Python scalars.

    Values of the table's integer columns are Python ints, of the others floats or
    strings as in the frame. Columns missing in every row are left out: the
    database fills them with the column's default (NULL where it has none).
    """
    columns = [c for c in frame.columns if frame[c].notna().any()]
    values = (
        _column_values(frame[c], isinstance(table.columns[c].type, sa.Integer)) for c in columns
    )
    return columns, list(zip(*values, strict=True))


def _insert_many(conn: Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    """Write a frame's rows (columns named as in ``table``) by the backend's bulk path.

    The rows go in ``conn``'s open transaction:

    * SQLite: the compiled INSERT is handed to the driver's ``executemany`` with
      positional tuples, skipping SQLAlchemy's per-row parameter processing (3x faster
      for 100,000 rows; no column of these tables needs a bind processor).
    * PostgreSQL through psycopg 3: ``COPY ... FROM STDIN`` (:func:`_copy_rows`).
    * Other backends and drivers: Core ``executemany`` of dictionaries
      (insertmanyvalues where supported).

    Every path writes the same values: the tuples of :func:`_tuples`; columns empty in
    every row of the frame get the column's default (NULL where it has none).
    """
    columns, rows = _tuples(table, frame)
    dialect = conn.dialect
    if dialect.name == "sqlite":
        preparer = dialect.identifier_preparer
        marks = ", ".join("?" for _ in columns)
        names = ", ".join(preparer.quote(c) for c in columns)
        sql = f"INSERT INTO {preparer.format_table(table)} ({names}) VALUES ({marks})"
        conn.exec_driver_sql(sql, rows)
    elif dialect.name == "postgresql" and dialect.driver == "psycopg":
        _copy_rows(conn, table, columns, rows)
    else:
        conn.execute(sa.insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


def _copy_rows(
    conn: Connection, table: sa.Table, columns: list[str], rows: list[tuple[object, ...]]
) -> None:
    """``COPY table (columns) FROM STDIN`` of ``rows`` through psycopg 3 (PostgreSQL).

    The rows go through the connection's own DBAPI connection, so inside its open
    transaction (the import row is already written there): a failure or a killed
    process leaves nothing. psycopg writes the text format of COPY: each value as
    PostgreSQL reads it (floats by :func:`repr`, the shortest text that reads back
    the same double; NULL as ``\\N``; backslashes escaped), parsed by the server with
    the column's type, so that the stored values are those ``executemany`` stores
    (``tests/store/test_copy.py``). A database error is raised as SQLAlchemy's
    :class:`~sqlalchemy.exc.DBAPIError` (so :func:`~powerfit.store.engine.transaction`
    reports it as a :class:`~powerfit.exceptions.StoreError`).
    """
    preparer = conn.dialect.identifier_preparer
    names = ", ".join(preparer.quote(c) for c in columns)
    sql = f"COPY {preparer.format_table(table)} ({names}) FROM STDIN"
    driver = conn.connection.driver_connection
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            write = copy.write_row
            for row in rows:
                write(row)
    except dbapi_error as exc:
        raise DBAPIError.instance(sql, None, exc, dbapi_error, dialect=conn.dialect) from exc


def _table_frame(kind: str, rows: pd.DataFrame, import_id: int, gpu_ids: Mapping[str, int]):
    """The table of ``kind`` and ``rows`` as its columns (one chunk at a time: no copy
    of a whole file's rows is made)."""
    model = {"operation": OperationMeasurement, "power": PowerMeasurement}.get(
        kind, RunMeasurement
    )
    table = model.__table__
    frame = pd.DataFrame({"import_id": import_id, "gpu_id": rows["gpu"].map(gpu_ids)})
    for column in table.columns.keys():
        if column in ("id", "import_id", "gpu_id"):
            continue
        frame[column] = rows[column]
    return table, frame


def _progress(total: int, label: str):
    if total < PROGRESS_MIN_ROWS or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit="row", file=sys.stderr, leave=False)


def ingest_measurements(engine: Engine, measurements: Measurements) -> IngestResult:
    """Write validated measurements in one transaction (or nothing for a duplicate).

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        The store's engine, with the schema at head.
    measurements : Measurements
        From :func:`~powerfit.store.readers.read.read_measurements`.

    Returns
    -------
    IngestResult

    Raises
    ------
    StoreError
        For any database error (the transaction is rolled back).
    """
    m = measurements
    identity = m.identity or import_identity(m.sha256, m.format, m.overrides)

    def result(
        rows: int, import_id: int, duplicate: bool, same: tuple[int, ...] = ()
    ) -> IngestResult:
        return IngestResult(
            m.source, m.format, m.kind, m.sha256, rows, import_id, duplicate,
            dict(m.overrides), same, tuple(m.ignored_columns),
        )  # fmt: skip

    with transaction(engine) as conn:
        existing = _existing_import(conn, identity, m.sha256)
    if existing is not None:
        return result(0, existing, True)
    try:
        with transaction(engine, write=True) as conn:
            gpu_ids = _gpu_ids(conn, m.rows["gpu"].unique(), m.gpus)
            try:
                import_id = conn.execute(
                    sa.insert(Import)
                    .values(
                        source=m.source[-1024:],
                        sha256=m.sha256,
                        identity=identity,
                        overrides=dict(m.overrides),
                        format=m.format,
                        kind=m.kind,
                        row_count=len(m),
                        imported_at=dt.datetime.now(dt.timezone.utc),
                        imported_by=_who()[:255],
                        tool=f"powerfit {__version__}",
                    )
                    .returning(Import.id)
                ).scalar_one()
            except IntegrityError:
                raise _Duplicate from None
            bar = _progress(len(m.rows), os.path.basename(m.source))
            for start in range(0, len(m.rows), CHUNK_ROWS):
                rows = m.rows.iloc[start : start + CHUNK_ROWS]
                table, chunk = _table_frame(m.kind, rows, import_id, gpu_ids)
                _insert_many(conn, table, chunk)
                if bar is not None:
                    bar.update(len(chunk))
            if bar is not None:
                bar.close()
            same = _same_file(conn, m.sha256, import_id)
    except _Duplicate:
        with transaction(engine) as conn:
            existing = _existing_import(conn, identity, m.sha256)
        return result(0, existing if existing is not None else -1, True)
    return result(len(m), import_id, False, same)


def ingest_file(
    engine: Engine,
    path: str | os.PathLike[str],
    format: str | None = None,
    overrides: Mapping[str, object] | None = None,
    *,
    ignore_extra_columns: bool = False,
) -> IngestResult:
    """Read, validate and ingest one file (see :mod:`powerfit.store.readers`).

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        The store's engine, with the schema at head.
    path : path
        CSV or Parquet file.
    format : str, optional
        Reader name; detected from the columns when omitted.
    overrides : mapping, optional
        Canonical column values for every row (CodeCarbon and powerfit formats):
        they fill columns the file lacks or leaves empty, and a column the file has
        values in is refused (see :func:`~powerfit.store.readers.read.read_measurements`);
        part of the import's identity.
    ignore_extra_columns : bool, default False
        Ignore columns the format does not know instead of refusing the file.

    Returns
    -------
    IngestResult

    Raises
    ------
    DataError
        For invalid content, or an override of a column the file fills; the store
        is unchanged.
    StoreError
        For a database error; the store is unchanged.
    """
    from powerfit.store.gpus import store_gpus

    measurements = read_measurements(
        path,
        format,
        overrides,
        ignore_extra_columns=ignore_extra_columns,
        gpus=store_gpus(engine),
    )
    return ingest_measurements(engine, measurements)
