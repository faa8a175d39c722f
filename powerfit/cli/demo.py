"""``powerfit demo``: the whole pipeline on the published data, on embedded defaults."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from powerfit.cli import add_format_arguments

HELP = """\
Run the main job on embedded defaults: fetch the published measurements of
Mayaki & Charpenay (ECAI 2025), ingest them into a fresh SQLite store, fit the A100's
efficiency laws and energy model, record and register them in a local MLflow store,
promote the version, load it back with mlflow.pyfunc and compare candidate
Transformer architectures by predicted energy per training step.

Everything goes into one folder (default: <powerfit home>/demo, printed at the end).
Running it again is safe: files already ingested are skipped and a new model
version is added.

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
    parser.add_argument("--workdir", type=Path, help="folder for the demo's stores")
    parser.add_argument(
        "--data-home", type=Path, help="folder holding mayaki2025/ (default: POWERFIT_DATA_HOME)"
    )
    add_format_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``powerfit demo``."""
    from powerfit.demo import run_demo

    echo = (lambda text: print(text, file=sys.stderr)) if args.json else print
    table = run_demo(args.workdir, data_home=args.data_home, echo=echo)
    if args.json:
        print(table.reset_index().to_json(orient="records", indent=2))
    return 0
