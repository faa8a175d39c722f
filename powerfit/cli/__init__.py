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

Failures print one line, ``powerfit COMMAND: error: ...`` (``--debug``: the
traceback). Every URL password in it, in log records and in warnings is shown as
``***``. MLflow's own log lines, registry messages and download bars are left out
unless ``--debug`` (:func:`quiet_mlflow`): powerfit's commands print powerfit's
messages. Destructive commands ask on a terminal and need ``--yes`` otherwise
(:func:`confirm`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from powerfit._version import __version__
from powerfit.exceptions import PowerfitError, mask_urls

#: Environment variable of the tracking-store timeout [s]
#: (:data:`powerfit.tracking.locations.TRACKING_TIMEOUT_ENV`).
TRACKING_TIMEOUT_ENV = "POWERFIT_TRACKING_TIMEOUT"

#: Modules of this package that define sub-commands, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "demo",
    "env",
    "estimate",
    "plan",
    "ingest",
    "db",
    "fit",
    "history",
    "serve",
    "evaluate",
    "measure",
    "gpus",
)

EPILOG = """\
examples:
  powerfit demo                          # the whole pipeline on the published data
  eval "$(powerfit env --exports)"       # point plain MLflow at powerfit's store
  powerfit estimate --profile mayaki2025-a100 --arch transformer \\
      --n-layers 6 --d-model 512 --n-heads 8 --batch-size 64 --seq-len 320
  powerfit ingest data.csv               # add measurements to the store
  powerfit fit --gpu "NVIDIA A100 80GB PCIe" --arch transformer

exit codes: 0 success, 1 an explained failure (bad input, ...), 2 a bad command line.
Add --debug to see the full traceback of a failure and MLflow's own messages.
Passwords in URLs are shown as ***.
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
        "--debug",
        action="store_true",
        help="show the full traceback when a command fails, and MLflow's own log lines",
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
    """Run the command line; return the exit code.

    Failures print one line, ``powerfit COMMAND: error: ...``, with every URL
    password masked (:func:`powerfit.exceptions.mask_urls`); ``--debug`` prints the
    (masked) traceback instead. Log records and warnings are masked the same way
    while the command runs.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    with (
        _masked_output(),
        quiet_mlflow(not args.debug),
        _tracking_timeout(getattr(args, "tracking_timeout", None)),
    ):
        try:
            _refuse_non_finite_options(parser, args)
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # the reader left (| head): stop quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
        except Exception as exc:
            return _report(args, exc)


def _refuse_non_finite_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """No option takes NaN or infinity (``--pue nan``, ``--tokens 1e400``)."""
    import math

    for dest, value in vars(args).items():
        if isinstance(value, float) and not math.isfinite(value):
            flag = "--" + dest.replace("_", "-")
            raise ValueError(f"{flag}: {value!r} is not a finite number")


def refuse_non_finite(result: Any, what: str = "the result") -> None:
    """Raise instead of printing a result holding NaN or infinity (never valid JSON).

    Raises
    ------
    ValueError
        Naming the first non-finite value's key, e.g. ``energy_j``.
    """
    import math

    def walk(value: Any, key: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(
                f"{what}: {key} is {value!r} (the inputs are beyond what the model can "
                "compute); give smaller values"
            )
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, key)

    walk(result, what)


def entry() -> None:
    """The ``powerfit`` program (``python -m powerfit``, the console script).

    Runs :func:`main`, then ends the process the way the interpreter would — other
    threads joined, ``atexit`` handlers run (MLflow's and logging's), output
    flushed — but without tearing down every imported module one by one, which
    took 1–4 s after the last line (MLflow, SQLAlchemy, scikit-learn, PyTorch) while
    the command had nothing left to do. Call :func:`main` to run a command inside a
    Python program.
    """
    import atexit
    import threading

    code = main()
    # What the interpreter does first at exit: tell thread pools to stop, then wait
    # for the other non-daemon threads (joining an idle pool's workers without the
    # first step would wait forever).
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or the reader left
            pass
    os._exit(code)


#: Modules whose exceptions are explained failures of the environment (a server, a
#: database, a file), reported in one line like powerfit's own errors.
_EXTERNAL_ERRORS = ("mlflow", "sqlalchemy", "alembic", "requests", "urllib3", "psycopg")

#: Longest error line printed [characters] (the rest is cut, e.g. an HTML body).
_MAX_LINE = 600


def _report(args: argparse.Namespace, exc: BaseException) -> int:
    """Print a failure (masked) and return its exit code."""
    prefix = f"powerfit {args.command}: error:"
    if args.debug:
        print(mask_urls("".join(traceback.format_exception(exc))), file=sys.stderr, end="")
        return 1
    explained = isinstance(exc, (PowerfitError, ValueError, OSError)) or (
        type(exc).__module__.split(".")[0] in _EXTERNAL_ERRORS
    )
    if explained:
        print(f"{prefix} {_one_line(exc)}", file=sys.stderr)
    else:
        print(mask_urls("".join(traceback.format_exception(exc))), file=sys.stderr, end="")
        print(f"{prefix} unexpected {_one_line(exc)} (a bug in powerfit?)", file=sys.stderr)
    return 1


def _one_line(exc: BaseException) -> str:
    """An exception as one masked line (SQL dumps and follow-up lines left out)."""
    text = str(exc)
    for marker in ("\n[SQL:", "\n(Background on this error"):
        text = text.split(marker, 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    text = " ".join(lines) if isinstance(exc, PowerfitError) else (lines[0] if lines else "")
    if not isinstance(exc, (PowerfitError, ValueError, OSError)) or not text:
        text = f"{type(exc).__name__}: {text}".rstrip(": ")
    if len(text) > _MAX_LINE:
        text = text[: _MAX_LINE - 3] + "..."
    return mask_urls(text)


@contextlib.contextmanager
def _masked_output() -> Iterator[None]:
    """Mask URL passwords in log records and warnings while a command runs."""
    previous_factory = logging.getLogRecordFactory()
    previous_format = warnings.formatwarning

    def factory(*a: Any, **kw: Any) -> logging.LogRecord:
        record = previous_factory(*a, **kw)
        try:
            message = record.getMessage()
        except Exception:  # a broken record: leave it to logging's own handling
            return record
        masked = mask_urls(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and record.exc_info[1] is not None:
            formatted = "".join(traceback.format_exception(record.exc_info[1]))
            record.exc_text = mask_urls(formatted).rstrip("\n")
        return record

    def formatwarning(*a: Any, **kw: Any) -> str:
        return mask_urls(previous_format(*a, **kw))

    logging.setLogRecordFactory(factory)
    warnings.formatwarning = formatwarning
    try:
        yield
    finally:
        logging.setLogRecordFactory(previous_factory)
        warnings.formatwarning = previous_format


#: MLflow settings while a command runs without ``--debug`` (unless already set): no
#: "Downloading artifacts" bars.
_QUIET_MLFLOW_ENV = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}

#: The module through which MLflow writes its log records and messages.
_MLFLOW_STREAM_MODULE = "mlflow.utils.logging_utils"


class _WithoutMlflow:
    """A text stream that forwards everything except what MLflow's logging stream writes.

    MLflow sends its log records (``INFO`` table creation, ``Found extra inputs``)
    and its registry messages (``Registered model ... already exists``) through
    ``mlflow.utils.logging_utils.MLFLOW_LOGGING_STREAM``, which writes to
    ``sys.stderr`` at each call: those writes are recognised by their caller and
    dropped. Everything else (powerfit's messages, progress bars, warnings) passes.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        caller = sys._getframe(1).f_globals.get("__name__")
        if caller == _MLFLOW_STREAM_MODULE:
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def quiet_mlflow(quiet: bool = True) -> Iterator[None]:
    """Leave MLflow's own output out of a command's (``--debug`` keeps it).

    Parameters
    ----------
    quiet : bool, default True
        Drop MLflow's log lines and registry messages from stderr and switch off its
        download bars (unless ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR`` is set);
        False changes nothing.
    """
    if not quiet:
        yield
        return
    added = {k: v for k, v in _QUIET_MLFLOW_ENV.items() if k not in os.environ}
    os.environ.update(added)
    saved = sys.stderr
    sys.stderr = _WithoutMlflow(saved)
    try:
        yield
    finally:
        sys.stderr = saved
        for key in added:
            os.environ.pop(key, None)


@contextlib.contextmanager
def _tracking_timeout(seconds: float | None) -> Iterator[None]:
    """Set ``POWERFIT_TRACKING_TIMEOUT`` for the command (``--tracking-timeout``)."""
    if seconds is None:
        yield
        return
    saved = os.environ.get(TRACKING_TIMEOUT_ENV)
    os.environ[TRACKING_TIMEOUT_ENV] = repr(float(seconds))
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(TRACKING_TIMEOUT_ENV, None)
        else:
            os.environ[TRACKING_TIMEOUT_ENV] = saved


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def add_tracking_timeout_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--tracking-timeout SECONDS``, shared by the commands that use MLflow."""
    parser.add_argument(
        "--tracking-timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        help="give up on an unreachable tracking server or database after this long "
        f"(default: {TRACKING_TIMEOUT_ENV}, else 30)",
    )


def add_yes_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--yes``, shared by destructive commands (see :func:`confirm`)."""
    parser.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="do it without asking (required when stdin is not a terminal)",
    )


def confirm(what: str, details: Sequence[str], *, yes: bool) -> None:
    """Ask before a destructive action; refuse without a terminal unless ``yes``.

    Parameters
    ----------
    what : str
        The action, e.g. ``"downgrade sqlite:////x.db to base"``.
    details : sequence of str
        Lines saying what will be lost (shown before the question, on stderr).
    yes : bool
        ``--yes`` was given: go ahead without asking.

    Raises
    ------
    PowerfitError
        When stdin is not a terminal and ``yes`` is false, or the answer is not ``yes``.
    """
    if yes:
        return
    if not _stdin_is_terminal():
        raise PowerfitError(
            f"refusing to {what} without confirmation: stdin is not a terminal; "
            "pass --yes to do it anyway"
        )
    print(f"This will {what}.", file=sys.stderr)
    for line in details:
        print(f"  {line}", file=sys.stderr)
    try:
        answer = input("Type 'yes' to continue: ")
    except EOFError:
        answer = ""
    if answer.strip().lower() != "yes":
        raise PowerfitError(f"not confirmed: did not {what}")


def _stdin_is_terminal() -> bool:
    try:
        return bool(sys.stdin is not None and sys.stdin.isatty())
    except (AttributeError, ValueError, OSError):  # closed or replaced stdin
        return False


def progress_bar(
    total: int | None, label: str, *, quiet: bool = False, unit: str = "stage"
) -> Any:
    """A progress bar on stderr for a command that takes more than a few seconds.

    Shown only when stderr is a terminal and ``quiet`` is false (pass ``args.json``:
    machine-readable runs stay silent); nothing is written otherwise. The bar is
    removed when closed (like :mod:`powerfit.store.ingest`'s).

    Parameters
    ----------
    total : int or None
        Units of work (stages, splits...); None while not known yet.
    label : str
        What is being done, shown before the bar.
    quiet : bool, default False
        Show nothing.
    unit : str, default 'stage'

    Returns
    -------
    tqdm.tqdm or None
        None when nothing is shown; callers check before ``update``/``close``.
    """
    try:
        terminal = bool(sys.stderr is not None and sys.stderr.isatty())
    except (AttributeError, ValueError, OSError):  # closed or replaced stderr
        terminal = False
    if quiet or not terminal:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit=unit, file=sys.stderr, leave=False)


@contextlib.contextmanager
def stages(total: int, label: str, *, quiet: bool = False) -> Iterator[Callable[[str], None]]:
    """A :func:`progress_bar` of ``total`` stages around a block.

    Yields a ``stage(name)`` callback (what ``progress=`` arguments of the library
    take): each call shows ``name`` and advances the bar by one. Nothing is shown
    when stderr is not a terminal or ``quiet`` (pass ``args.json``).

    Parameters
    ----------
    total : int
        Stages the block will announce.
    label : str
        What is being done, shown until the first stage.
    quiet : bool, default False
        Show nothing.
    """
    bar = progress_bar(total, label, quiet=quiet)

    def stage(name: str) -> None:
        if bar is not None:
            bar.set_description_str(name)
            bar.update(1)

    try:
        yield stage
    finally:
        if bar is not None:
            bar.close()


@contextlib.contextmanager
def working(label: str, *, quiet: bool = False, interval_s: float = 1.0) -> Iterator[None]:
    """Show ``label… N s`` on stderr, updated every second, while a slow block runs.

    For steps that announce no stages (loading and predicting with every registered
    version, fitting operator laws): the user sees that the command is working and
    for how long. Shown only when stderr is a terminal and ``quiet`` is false; the
    line is erased when the block ends.

    Parameters
    ----------
    label : str
        What is being done.
    quiet : bool, default False
        Show nothing (pass ``args.json``).
    interval_s : float, default 1.0
        Seconds between updates [s].
    """
    try:
        terminal = bool(sys.stderr is not None and sys.stderr.isatty())
    except (AttributeError, ValueError, OSError):
        terminal = False
    if quiet or not terminal:
        yield
        return
    import threading
    import time

    stream = sys.stderr
    stop = threading.Event()
    start = time.monotonic()

    def beat() -> None:
        while not stop.wait(interval_s):
            stream.write(f"\r{label}… {time.monotonic() - start:.0f} s")
            stream.flush()

    thread = threading.Thread(target=beat, name="powerfit-working", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        stream.write("\r\033[K")
        stream.flush()


def add_format_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--json`` switch shared by commands that print results."""
    parser.add_argument(
        "--json", action="store_true", help="print machine-readable JSON instead of a table"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
