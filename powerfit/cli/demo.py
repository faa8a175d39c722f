"""``powerfit demo``: the whole pipeline on the published data, on embedded defaults."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from powerfit.cli import add_format_arguments

HELP = """\
Run the main job on embedded defaults, offline: read the published measurements of
Mayaki & Charpenay (ECAI 2025) (from POWERFIT_DATA_HOME/mayaki2025/processed, else
the copy embedded in powerfit), ingest them into the measurement store, fit the
A100's efficiency laws and energy model, record and register them in the MLflow
store, promote the version, load it back with mlflow.pyfunc and compare candidate
Transformer architectures by predicted energy per training step.

It uses the default stores, the same every other command uses (POWERFIT_DB_URL and
MLFLOW_TRACKING_URI, else <powerfit home>/powerfit.db and <powerfit home>/mlflow.db,
<powerfit home> being ~/.local/share/powerfit; printed at the end, and by
'powerfit env'), so the tour of the README continues from what it registered.
--workdir keeps both in a folder of their own instead. Running it again is safe:
files already ingested are skipped and a new model version is added.

examples:
  powerfit demo
  powerfit demo --workdir /tmp/powerfit-demo --json
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on the published data (store, fit, MLflow, comparison)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep the demo's stores in this folder, not the default ones"
    )
    parser.add_argument(
        "--data-home",
        type=Path,
        help="folder holding mayaki2025/ (default: POWERFIT_DATA_HOME; else the embedded copy)",
    )
    parser.add_argument("--db", metavar="URL", help="store URL (default: POWERFIT_DB_URL)")
    parser.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI")
    add_format_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``powerfit demo``."""
    from powerfit.demo import run_demo

    stream = sys.stderr if args.json else sys.stdout
    echo = lambda text: print(text, file=stream, flush=True)  # noqa: E731
    table = run_demo(
        args.workdir,
        data_home=args.data_home,
        store_url=args.db,
        tracking_uri=args.tracking_uri,
        echo=echo,
    )
    if args.json:
        print(table.reset_index().to_json(orient="records", indent=2))
    return 0
