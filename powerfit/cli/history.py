"""``powerfit history``: the recorded model versions, or their predictions side by side."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from powerfit.cli import add_format_arguments, add_tracking_timeout_argument

HELP = """\
List the registered versions of powerfit's energy models with their coefficients,
held-out metrics, data hashes and dates; or, with --compare, predict the
configurations of a CSV file with every version, side by side (energy [J]).

examples:
  powerfit history
  powerfit history --gpu "NVIDIA A100 80GB PCIe" --arch transformer --json
  powerfit history --arch transformer --compare configs.csv
  powerfit history --arch transformer --compare configs.csv --versions 1 @champion
  powerfit history --gpu a100 --arch transformer --diff 1 2
"""

#: Columns shown by the table view (the JSON view has every column).
_SHOWN = ("model", "version", "aliases", "created", "energy_model", "precision", "data_sha256",
          "physics", "test_mape", "test_r2", "test_mae_j", "h", "laws")  # fmt: skip


def _laws_column(table: Any) -> Any:
    """Per version, 'op η_max%/k/α' of every law (η_max in % of peak, k in TFLOP^-α)."""
    ops = sorted({c.split(".")[1] for c in table.columns if c.startswith("law.") and
                  c.endswith(".eta_max")})  # fmt: skip

    def one(row: Any) -> str:
        parts = []
        for op in ops:
            values = [row.get(f"law.{op}.{k}") for k in ("eta_max", "k", "alpha")]
            if all(v is not None and v == v for v in values):
                parts.append(f"{op} {100 * values[0]:.3g}%/{values[1]:.3g}/{values[2]:.3g}")
        return "; ".join(parts)

    return table.apply(one, axis=1) if ops else None


def _printable(table):  # type: ignore[no-untyped-def]
    """The table with control characters of its text cells escaped (terminal-safe)."""
    from powerfit.files import printable

    out = table.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map(lambda v: printable(v) if isinstance(v, str) else v)
    out.columns = [printable(c) for c in out.columns]
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``history`` sub-command."""
    parser = subparsers.add_parser(
        "history",
        help="list recorded model versions, or compare their predictions",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--gpu", help="only versions for this GPU (name or alias)")
    parser.add_argument("--arch", choices=("transformer", "lstm", "gru"), help="architecture")
    parser.add_argument("--model", metavar="NAME", help="only this registered model")
    parser.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI")
    add_tracking_timeout_argument(parser)
    parser.add_argument(
        "--compare", metavar="CONFIGS.csv", type=Path,
        help="predict these configurations with every version",
    )  # fmt: skip
    parser.add_argument(
        "--versions", nargs="+", metavar="V",
        help="with --compare: only these versions (NAME/3, NAME@champion, or 3)",
    )  # fmt: skip
    parser.add_argument(
        "--diff", nargs=2, metavar=("A", "B"),
        help="what changed from version A to B: tags, data, coefficients, metrics",
    )  # fmt: skip
    add_format_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``powerfit history``."""
    from powerfit.tracking import compare, history
    from powerfit.tracking.versions import diff

    selection = {"model": args.model, "tracking_uri": args.tracking_uri}
    if args.diff is not None:
        table = diff(*args.diff, args.gpu, args.arch, **selection)
        if args.json:
            print(table.to_json(orient="records"))
        else:
            print(_printable(table).to_string(index=False, max_colwidth=60))
        return 0
    if args.compare is not None:
        table = compare(args.compare, args.gpu, args.arch, versions=args.versions, **selection)
        if args.json:
            print(table.to_json(orient="records"))
        else:
            print(_printable(table).to_string(index=False, float_format=lambda x: f"{x:.6g}"))
        return 0
    table = history(args.gpu, args.arch, **selection)
    if args.json:
        print(table.to_json(orient="records", date_format="iso"))
        return 0
    if table.empty:
        print("no recorded versions (record one with 'powerfit fit')")
        return 0
    laws = _laws_column(table)
    if laws is not None:
        table = table.assign(laws=laws)
    if "physics" in table.columns:
        table["physics"] = table["physics"].fillna("-").str.split().str[0]
    shown = table[[c for c in _SHOWN if c in table.columns]].copy()
    shown["created"] = shown["created"].dt.strftime("%Y-%m-%d %H:%M:%S")
    shown["data_sha256"] = shown["data_sha256"].str[:12]
    shown["test_mape"] = (100 * shown["test_mape"]).map("{:.2f} %".format)
    print(_printable(shown).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    return 0
