"""The ``powerfit`` command line.

Each sub-command lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a function
``run(args) -> int``. Heavy libraries (MLflow, SQLAlchemy, PyTorch) are imported
inside ``run`` so that ``powerfit --help`` stays fast.

Exit codes
----------
0
    Success.
1
    The command failed for a reason it explains (bad input, unknown GPU, a fit that
    did not converge, a database that cannot be used).
2
    The command line itself is wrong (unknown option, missing argument).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from powerfit._version import __version__
from powerfit.exceptions import PowerfitError

#: Modules of this package that define sub-commands, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "demo",
    "estimate",
    "ingest",
    "db",
    "fit",
    "history",
    "evaluate",
    "measure",
)

EPILOG = """\
examples:
  powerfit demo                          # the whole pipeline on the published data
  powerfit estimate --profile mayaki2025-a100 --arch transformer \\
      --n-layers 6 --d-model 512 --n-heads 8 --batch-size 64 --seq-len 320
  powerfit ingest data.csv               # add measurements to the store
  powerfit fit --gpu "NVIDIA A100 80GB PCIe" --arch transformer

exit codes: 0 success, 1 an explained failure (bad input, ...), 2 a bad command line.
Add --debug to see the full traceback of a failure.
"""


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="powerfit",
        description=(
            "Predict the energy [J] of training a deep-learning model from its "
            "architecture, and keep the measurements and fitted models that do it."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"powerfit {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback when a command fails"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"powerfit.cli.{name}")
        except ModuleNotFoundError as exc:  # a command not built yet in this checkout
            if exc.name == f"powerfit.cli.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (PowerfitError, ValueError, FileNotFoundError) as exc:
        if args.debug:
            raise
        print(f"powerfit {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def add_format_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--json`` switch shared by commands that print results."""
    parser.add_argument(
        "--json", action="store_true", help="print machine-readable JSON instead of a table"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
