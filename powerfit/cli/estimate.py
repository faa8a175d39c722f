"""``powerfit estimate``: energy of configurations from a published profile."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from powerfit.cli import add_format_arguments

HELP = """\
Estimate the energy [J] of one training step of a model configuration, from a
published profile (efficiency laws + energy model), without running anything.

examples:
  powerfit estimate --profile mayaki2025-a100 --arch transformer \\
      --n-layers 6 --d-model 512 --n-heads 8 --batch-size 64 --seq-len 320 --json
  powerfit estimate --profile mayaki2025-a100 --input configs.csv --output estimates.csv
  powerfit estimate --list-profiles
"""

_SHAPE_OPTIONS = (
    ("--n-layers", "n_layers", "layers [-]"),
    ("--d-model", "d_model", "model width [-] (Transformer)"),
    ("--n-heads", "n_heads", "attention heads [-] (Transformer)"),
    ("--d-ff", "d_ff", "feed-forward width [-] (Transformer; default 4*d_model)"),
    ("--batch-size", "batch_size", "sequences per batch [-]"),
    ("--seq-len", "seq_len", "tokens (time steps) per sequence [-]"),
    ("--input-size", "input_size", "input width [-] (LSTM/GRU)"),
    ("--hidden-size", "hidden_size", "hidden width [-] (LSTM/GRU)"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``estimate`` sub-command."""
    parser = subparsers.add_parser(
        "estimate",
        help="estimate the energy of a configuration from a published profile",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--profile",
        default="mayaki2025-a100",
        help="published profile (default: mayaki2025-a100; see --list-profiles)",
    )
    parser.add_argument("--list-profiles", action="store_true", help="list the profiles and exit")
    parser.add_argument(
        "--arch",
        choices=("transformer", "lstm", "gru"),
        default=None,
        help="architecture (default: the profile's)",
    )
    for flag, dest, text in _SHAPE_OPTIONS:
        parser.add_argument(flag, dest=dest, type=float, default=None, help=text)
    parser.add_argument("--input", type=Path, help="CSV of configurations, one per row")
    parser.add_argument("--output", type=Path, help="CSV to write the estimates to (with --input)")
    add_format_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``powerfit estimate``."""
    import pandas as pd

    from powerfit.exceptions import DataError
    from powerfit.profiles import available_profiles, load_profile

    if args.list_profiles:
        names = available_profiles()
        if args.json:
            print(json.dumps(names))
        else:
            for name in names:
                print(f"{name}: {load_profile(name).description}")
        return 0
    profile = load_profile(args.profile)
    arch = args.arch or profile.arch
    if arch != profile.arch:
        raise ValueError(
            f"profile {profile.name!r} is for {profile.arch} models, not {arch}; "
            "choose a profile of that architecture (--list-profiles)"
        )
    if args.input is not None:
        source = str(args.input)
        try:
            configs = pd.read_csv(args.input)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(f"not a readable CSV file ({exc})", source=source) from None
        return _run_many(profile, configs, source, args)
    config = {dest: getattr(args, dest) for _, dest, _ in _SHAPE_OPTIONS}
    config = {k: [v] for k, v in config.items() if v is not None}
    configs = pd.DataFrame(config)
    from powerfit.pipeline import REQUIRED_COLUMNS, check_configs

    try:
        check_configs(configs, arch)
    except DataError as exc:
        if exc.column:
            raise ValueError(f"--{exc.column.replace('_', '-')}: {exc.message}") from None
        needed = [f"--{c.replace('_', '-')}" for c in ("n_layers", *REQUIRED_COLUMNS[arch])]
        missing = [flag for flag in needed if getattr(args, flag[2:].replace("-", "_")) is None]
        raise ValueError(
            f"missing {', '.join(missing)} (a {arch} needs {', '.join(needed)})"
        ) from None
    table, energy = profile.estimate(configs)
    result = {
        "profile": profile.name,
        "gpu": profile.gpu,
        "arch": arch,
        "config": {k: v[0] for k, v in config.items()},
        "energy_j": None if energy is None else float(energy.iloc[0]),
        "duration_s": float(table["duration_s"].sum()),
        "operations": table.drop(columns="config").to_dict(orient="records"),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"profile {profile.name} ({profile.gpu}), {arch}: "
        + ", ".join(f"{k}={v[0]:g}" for k, v in config.items())
    )
    shown = table.drop(columns="config").rename(
        columns={"flops": "FLOP", "efficiency": "eta", "duration_s": "time [s]"}
    )
    print(shown.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    if energy is not None:
        print(f"energy: {energy.iloc[0]:.2f} J per training step")
    return 0


def _run_many(profile, configs, source: str, args: argparse.Namespace) -> int:
    from powerfit.pipeline import check_configs

    check_configs(configs, profile.arch, source=source)
    table, energy = profile.estimate(configs)
    wide = table.pivot(index="config", columns="op")
    wide = wide.reindex(configs.index)
    out = configs.copy()
    for value in ("flops", "efficiency", "duration_s"):
        for op in table["op"].unique():
            out[f"{op}_{value}"] = wide[(value, op)].to_numpy()
    out["energy_j"] = energy.to_numpy() if energy is not None else float("nan")
    if args.output is not None:
        out.to_csv(args.output, index=False)
        print(f"wrote {len(out)} estimates to {args.output}", file=sys.stderr)
    elif args.json:
        print(out.to_json(orient="records"))
    else:
        print(out.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    return 0
