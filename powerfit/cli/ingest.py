"""``powerfit ingest``: add measurement files to the store."""

from __future__ import annotations

import argparse
import json
import sys

from powerfit.cli import add_format_arguments

HELP = """\
Add measurement files to the store, one transaction per file. Every file is read
and validated before anything is written (one bad value refuses the whole file,
and the error names the file, the data row and the column); a file already
ingested with the same --set values adds nothing, and the same file with other
--set values is a new import. --set COLUMN=VALUE fills a column the file lacks
(or leaves empty in every row); it never replaces values the file has: that is
an error naming the file and the column. Columns a format does not know are
refused unless --ignore-extra-columns is given.

formats (detected from the columns): the four processed files of Mayaki &
Charpenay (2025), NeuSight's operator files (ops/test/*.csv.gz,
ops/train/<op>/<GPU>.csv.gz: generic operators, FP32, time only), CodeCarbon's
emissions.csv ('4 x NVIDIA A100-SXM4-40GB' is stored as 4 GPUs, the energy as
their total), powerfit's own CSV/Parquet (what `powerfit measure` writes); each
may be gzip-compressed. Text must be UTF-8. Measured board power goes to
power_measurements: Zeus's summary_power_{gpu}.csv.gz and ML.ENERGY's
models/*.json.gz (power per GPU; power above 2 x TDP, a duration <= 0 or a zero
throughput is refused).

GPUs: a GPU must be in powerfit's catalogue or in the store (`powerfit gpus`
lists both; `powerfit gpus add NAME --peak-flops fp32=... ...` adds one), or be
described by the file itself (`powerfit measure` writes the device's specs, for
a CPU a measured peak). Precision: fp32, tf32, fp16, bf16, amp-fp16 or amp-bf16
(the `precision` column, or the GPU's default).

examples:
  powerfit ingest ../shared/data/mayaki2025/processed/*.csv
  powerfit ingest ../shared/data/neusight2025/ops/test/*.csv.gz
  powerfit ingest ../shared/data/zeus2023/summary_power_*.csv.gz
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
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="CSV or Parquet files (or .gz of them)"
    )
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
        "formats); repeat for several columns. It fills a column the file lacks or "
        "leaves empty in every row; a column the file has values in is an error "
        "naming the file and the column (never silently replaced). The values are "
        "part of the import's identity: the same file with other values is a new import",
    )
    parser.add_argument(
        "--ignore-extra-columns",
        action="store_true",
        help="ignore columns the format does not know instead of refusing the file "
        "(a column named like a known one but for case, e.g. Energy_J, is still refused)",
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
    from powerfit.store.gpus import store_gpus
    from powerfit.store.ingest import ingest_measurements
    from powerfit.store.readers.read import read_measurements

    overrides = _overrides(args.overrides)
    with open_store(args.db) as store:
        gpus = store_gpus(store.engine)
        # Validate everything first: one bad file means nothing is written.
        parsed = [
            read_measurements(
                path,
                args.format,
                overrides,
                ignore_extra_columns=args.ignore_extra_columns,
                gpus=gpus,
            )
            for path in args.paths
        ]
        results = [ingest_measurements(store.engine, m) for m in parsed]
    if args.json:
        json.dump([r.as_dict() for r in results], sys.stdout, indent=2)
        print()
        return 0
    for r in results:
        ignored = f"; ignored columns: {', '.join(r.ignored_columns)}" if r.ignored_columns else ""
        if r.duplicate:
            given = " with the same --set values" if r.overrides else ""
            print(
                f"{r.source}: already ingested{given} (import {r.import_id}), "
                f"nothing added{ignored}"
            )
            continue
        table = f"{r.kind}_measurements"
        same = ""
        if r.same_file_as:
            earlier = ", ".join(map(str, r.same_file_as))
            same = f"; same file as import {earlier}, with other --set values or --format"
        print(
            f"{r.source}: {r.rows} rows into {table} ({r.format}, import {r.import_id})"
            f"{same}{ignored}"
        )
    return 0
