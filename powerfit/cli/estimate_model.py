"""``powerfit estimate --model models:/NAME@ALIAS``: predict with a registered model.

The version is loaded by :func:`powerfit.tracking.load_model` (digest verified, built
by the allowlisted loader: never MLflow's own loaders), then predicts the energy [J]
of one training step of each configuration: the shape options of ``estimate``
(``--n-layers ...``) or the rows of ``--input configs.csv`` (``--output`` writes
them with an ``energy_j`` column).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

#: Shape options of ``estimate`` a registered model may take, with their columns.
_COLUMNS = ("n_layers", "batch_size", "seq_len", "d_model", "n_heads", "d_ff",
            "input_size", "hidden_size")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--model URI`` and ``--tracking-uri`` to ``estimate``."""
    parser.add_argument(
        "--model",
        metavar="URI",
        help="predict with a registered model instead of a profile: models:/NAME@ALIAS "
        "or models:/NAME/VERSION (verified before use; see powerfit history)",
    )
    if "--tracking-uri" not in parser._option_string_actions:
        parser.add_argument(
            "--tracking-uri",
            metavar="URI",
            help="MLflow tracking URI of --model (default: MLFLOW_TRACKING_URI, else "
            "powerfit's default store)",
        )


def _count(value: float) -> Any:
    return int(value) if float(value).is_integer() else value


def configurations(args: argparse.Namespace) -> Any:
    """The configurations to predict: ``--input``'s rows, else the shape options."""
    import pandas as pd

    if getattr(args, "input", None) is not None:
        return pd.read_csv(args.input)
    given = {c: _count(getattr(args, c)) for c in _COLUMNS if getattr(args, c, None) is not None}
    if not given:
        raise ValueError(
            "--model needs a configuration: the shape options (--n-layers, --d-model, "
            "--n-heads, --batch-size, --seq-len, ...) or --input configs.csv"
        )
    return pd.DataFrame([given])


def run(args: argparse.Namespace) -> int:
    """Run ``powerfit estimate --model URI``."""
    uri = args.model
    if not uri.startswith("models:/"):
        raise ValueError(
            f"--model expects models:/NAME@ALIAS or models:/NAME/VERSION, got {uri!r} "
            "(powerfit history lists the registered versions)"
        )
    configs = configurations(args)
    from powerfit.tracking import load_model

    model = load_model(uri, getattr(args, "tracking_uri", None))
    energy = [float(e) for e in model.predict(configs)]
    if getattr(args, "output", None) is not None:
        configs.assign(energy_j=energy).to_csv(args.output, index=False)
        print(f"wrote {len(energy)} estimates to {args.output} ({uri})", file=sys.stderr)
        return 0
    if args.json:
        records = [
            {"config": {k: _count(v) for k, v in row.items()}, "energy_j": e}
            for row, e in zip(configs.to_dict("records"), energy, strict=True)
        ]
        print(json.dumps({"model": uri, "estimates": records}, indent=2))
        return 0
    for row, e in zip(configs.to_dict("records"), energy, strict=True):
        shape = ", ".join(f"{k}={_count(v)}" for k, v in row.items())
        print(f"{uri}: {shape}")
        print(f"energy: {e:.2f} J per training step")
    return 0
