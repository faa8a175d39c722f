"""``powerfit ingest``: add measurement files to the store."""

from __future__ import annotations

import argparse
import json
import sys

from powerfit.cli import add_format_arguments

HELP = """\
Add measurement files to the store, one transaction per file. Every file is read
and validated before anything is written; a file whose content was already
ingested (same SHA-256) adds nothing.

formats (detected from the columns): the four processed files of Mayaki &
Charpenay (2025), CodeCarbon's emissions.csv, powerfit's own CSV/Parquet.

examples:
  powerfit ingest ../shared/data/mayaki2025/processed/*.csv
  powerfit ingest emissions.csv --set gpu="NVIDIA A100 80GB PCIe" \\
      --set arch=transformer --set n_layers=6 --set batch_size=64 --set steps=100
  powerfit ingest runs.parquet --db postgresql+psycopg://me@host/powerfit --json
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``ingest`` sub-command."""
    parser = subparsers.add_parser(
        "ingest",
        help="add measurement files to the store",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="CSV or Parquet files")
    parser.add_argument(
        "--format",
        help="reader to use instead of detecting it (e.g. codecarbon, powerfit-runs, "
        "mayaki2025-transformer-energy)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="COLUMN=VALUE",
        dest="overrides",
        help="value of a canonical column for every row (CodeCarbon and powerfit "
        "formats); repeat for several columns",
    )
    add_db_argument(parser)
    add_format_arguments(parser)
    parser.set_defaults(func=run)


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--db URL``, shared by the commands that use the store."""
    parser.add_argument(
        "--db",
        metavar="URL",
        help="SQLAlchemy URL or SQLite file of the store (default: POWERFIT_DB_URL, "
        "else ~/.local/share/powerfit/powerfit.db, see POWERFIT_HOME)",
    )


def _overrides(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects COLUMN=VALUE, got {pair!r}")
        values[key.strip()] = value.strip()
    return values


def run(args: argparse.Namespace) -> int:
    """Validate every file, then ingest them one by one; print what each added."""
    from powerfit.store import open_store
    from powerfit.store.ingest import ingest_measurements
    from powerfit.store.readers import read_measurements

    overrides = _overrides(args.overrides)
    # Validate everything first: one bad file means nothing is written.
    parsed = [read_measurements(path, args.format, overrides) for path in args.paths]
    with open_store(args.db) as store:
        results = [ingest_measurements(store.engine, m) for m in parsed]
    if args.json:
        json.dump([r.as_dict() for r in results], sys.stdout, indent=2)
        print()
        return 0
    for r in results:
        if r.duplicate:
            print(f"{r.source}: already ingested (import {r.import_id}), nothing added")
        else:
            table = f"{r.kind}_measurements"
            print(f"{r.source}: {r.rows} rows into {table} ({r.format}, import {r.import_id})")
    return 0
