"""``powerfit serve``: serve a registered model over HTTP from a verified copy."""

from __future__ import annotations

import argparse

from powerfit.cli import add_tracking_timeout_argument

HELP = """\
Serve a registered powerfit model with MLflow's scoring server (POST /invocations,
the same requests as 'mlflow models serve'), after checking its files against the
SHA-256 digest recorded when it was logged. The server loads the verified local
copy, which is deleted when the server stops; a version whose files changed is
refused and nothing is served.

'mlflow models serve -m models:/...' loads whatever loader the model's MLmodel file
names, without this check: serve registered powerfit models with this command.

examples:
  powerfit serve models:/powerfit-nvidia-a100-80gb-pcie-transformer@champion
  powerfit serve models:/powerfit-step-time/3 --host 0.0.0.0 --port 5001 --workers 2
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` sub-command."""
    parser = subparsers.add_parser(
        "serve",
        help="serve a registered model over HTTP after verifying its files",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model", metavar="MODEL_URI", help="models:/NAME/VERSION or models:/NAME@ALIAS"
    )
    parser.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI")
    add_tracking_timeout_argument(parser)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    parser.add_argument(
        "--timeout", type=int, default=60, help="seconds a request may take (default 60)"
    )
    parser.add_argument(
        "--max-rows",
        type=int,
        default=None,
        help="rows one request to a step-time model may hold (default 1000: each row builds "
        "a training-step graph, about 10 ms; a larger request is refused, not queued)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``powerfit serve`` until interrupted."""
    import os
    import shlex
    import subprocess
    import sys

    from mlflow.pyfunc import scoring_server

    from powerfit.exceptions import DataError
    from powerfit.tracking import verified_model
    from powerfit.tracking.flavor import MAX_ROWS_ENV, max_step_rows

    if args.max_rows is not None and args.max_rows < 1:
        raise DataError(f"--max-rows {args.max_rows}: give a positive number of rows")
    rows = max_step_rows() if args.max_rows is None else args.max_rows
    for name in ("port", "workers", "timeout"):
        value = getattr(args, name)
        if value < (0 if name == "port" else 1) or (name == "port" and value > 65535):
            raise DataError(f"--{name} {value}: out of range")
    with verified_model(args.model, args.tracking_uri) as folder:
        command, env = scoring_server.get_cmd(
            str(folder), args.port, args.host, args.timeout, args.workers
        )
        env = {**(env or os.environ), MAX_ROWS_ENV: str(rows)}
        words = shlex.split(command)
        if words[0] == "uvicorn":  # the uvicorn of this Python, whatever PATH says
            words = [sys.executable, "-m", "uvicorn", *words[1:]]
        print(
            f"serving {args.model} (verified) on http://{args.host}:{args.port}; "
            f"step-time requests of at most {rows:,} rows",
            file=sys.stderr,
        )
        server = subprocess.Popen(words, env=env)
        try:
            return server.wait()
        except KeyboardInterrupt:
            server.terminate()
            server.wait()
            return 0
