"""``powerfit ingest``: add measurement files to the store."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

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
power_measurements: Zeus's summary_power_{gpu}.csv.gz (a lab's own file with
Zeus's columns, under any name, with --set gpu=NAME) and ML.ENERGY's
models/*.json.gz (power per GPU; power above 2 x TDP, a duration <= 0 or a zero
throughput is refused).

GPUs: a GPU must be in powerfit's catalogue or in the store (`powerfit gpus`
lists both; `powerfit gpus add NAME --peak-flops fp32=... ...` adds one), or be
described by the file itself (`powerfit measure` writes the device's specs, for
a CPU a measured peak). Precision: fp32, tf32, fp16, bf16, amp-fp16 or amp-bf16
(the `precision` column, or the GPU's default).

examples:
  powerfit ingest "$(powerfit env --published-data)"/*.csv*   # the paper's four files
  powerfit ingest "$POWERFIT_DATA_HOME"/neusight2025/ops/test/*.csv.gz
  powerfit ingest "$POWERFIT_DATA_HOME"/zeus2023/summary_power_*.csv.gz
  powerfit ingest lab_power.csv --set gpu=v100           # Zeus's columns, your board
  powerfit ingest emissions.csv --set arch=transformer --set model=bert \\
      --set n_layers=6 --set batch_size=64 --set seq_len=512 --set d_model=768 \\
      --set n_heads=12 --set steps=100

CodeCarbon rows lacking an input every energy model needs (n_layers, batch_size,
and seq_len, d_model, n_heads for a Transformer; input_size, hidden_size for an
LSTM or GRU) are refused, naming the columns and the --set that supplies them;
--allow-incomplete stores them anyway, with a warning (a fit leaves them out).
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
    parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="store CodeCarbon rows that lack an input the energy models need (a "
        "warning instead of a refusal; fits leave such rows out)",
    )
    add_db_argument(parser)
    add_format_arguments(parser)
    parser.set_defaults(func=run)


def incomplete_runs(measurements: Any) -> str | None:
    """What CodeCarbon rows lack for the energy models, or None when nothing.

    Parameters
    ----------
    measurements : powerfit.store.readers.rows.Measurements
        A read file.

    Returns
    -------
    str or None
        ``'FILE: 3 of 4 rows lack n_heads (3), seq_len (3), needed by every energy
        model of a transformer; give them with --set n_heads=... --set seq_len=...'``.
    """
    if measurements.format != "codecarbon":
        return None
    # Imported here: it loads scikit-learn (about 90 MB), needed for CodeCarbon files only.
    from powerfit.tracking.energy_models import model_input_columns

    rows = measurements.rows
    lacking: dict[str, int] = {}
    incomplete = 0
    archs = []
    for arch, group in rows.groupby(rows["arch"].fillna("?"), sort=True):
        if arch == "?":
            lacking["arch"] = len(group)
            incomplete += len(group)
            continue
        required, _ = model_input_columns(str(arch))
        archs.append(str(arch))
        missing = group.reindex(columns=required).isna()
        incomplete += int(missing.any(axis=1).sum())
        for column, n in missing.sum().items():
            if n:
                lacking[str(column)] = lacking.get(str(column), 0) + int(n)
    if not incomplete:
        return None
    what = ", ".join(f"{c} ({n})" for c, n in sorted(lacking.items()))
    hint = " ".join(f"--set {c}=..." for c in sorted(lacking))
    return (
        f"{measurements.source}: {incomplete} of {len(rows)} rows lack {what}, needed by "
        f"every energy model of {' and '.join(archs) or 'any architecture'}; give them "
        f"with {hint}"
    )


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


def _ingest_each(engine, parsed):  # type: ignore[no-untyped-def]
    """Ingest validated files, one transaction each; a failure says what was committed."""
    from powerfit.exceptions import DataError, PowerfitError, StoreError
    from powerfit.files import printable
    from powerfit.store.ingest import ingest_measurements

    results = []
    for index, measurements in enumerate(parsed):
        try:
            results.append(ingest_measurements(engine, measurements))
        except (PowerfitError, OSError) as exc:
            if len(parsed) == 1:
                raise
            done = ", ".join(f"{printable(r.source)} (import {r.import_id})" for r in results)
            left = ", ".join(printable(m.source) for m in parsed[index:])
            text = " ".join(str(exc).splitlines())
            message = f"committed: {done or 'nothing'}; not committed: {left}; because {text}"
            raise (DataError if isinstance(exc, DataError) else StoreError)(message) from exc
    return results


def run(args: argparse.Namespace) -> int:
    """Validate every file, then ingest them one by one; print what each added."""
    from powerfit.exceptions import DataError
    from powerfit.store import open_store
    from powerfit.store.gpus import store_gpus
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
        for measurements in parsed:
            problem = incomplete_runs(measurements)
            if problem is None:
                continue
            if not args.allow_incomplete:
                raise DataError(
                    f"{problem} (or pass --allow-incomplete to store them anyway); "
                    "nothing was written"
                )
            print(f"warning: {problem}; stored anyway (--allow-incomplete)", file=sys.stderr)
        results = _ingest_each(store.engine, parsed)
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
