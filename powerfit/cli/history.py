"""``powerfit history``: the recorded model versions, or their predictions side by side."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from powerfit.cli import add_format_arguments, add_tracking_timeout_argument, working

HELP = """\
List the registered versions of powerfit's energy models with their coefficients,
held-out metrics, data hashes and dates; or, with --compare, predict the
configurations of a CSV file with every version, side by side (energy [J]).
Tables fit in 120 columns (long text cut with '…', the model name said once);
--wide prints every column in full.

examples:
  powerfit history
  powerfit history --gpu "NVIDIA A100 80GB PCIe" --arch transformer --json
  powerfit history --arch transformer --compare configs.csv
  powerfit history --arch transformer --compare configs.csv --versions 1 @champion
  powerfit history --gpu a100 --arch transformer --diff 1 2
  powerfit history --wide
"""

#: Width the tables fit in without --wide [characters].
WIDTH = 120

#: Columns shown by the table view with --wide (the JSON view has every column).
_SHOWN = ("model", "version", "aliases", "created", "energy_model", "precision", "data_sha256",
          "physics", "test_mape", "test_r2", "test_mae_j", "h", "laws")  # fmt: skip

#: Columns shown by default (the table fits :data:`WIDTH`).
_NARROW = ("model", "version", "aliases", "created", "energy_model", "precision",
           "physics", "test_mape", "test_r2", "test_mae_j")  # fmt: skip


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
    parser.add_argument(
        "--wide",
        action="store_true",
        help=f"every column, nothing cut (default: tables fit in {WIDTH} columns)",
    )
    add_format_arguments(parser)
    parser.set_defaults(func=run)


def fit_width(frame: Any, width: int = WIDTH, **kwargs: Any) -> str:
    """``frame.to_string`` with text cut (``…``) until every line fits ``width``.

    Parameters
    ----------
    frame : pandas.DataFrame
    width : int
        Most characters per line.
    **kwargs
        Passed to :meth:`pandas.DataFrame.to_string`.

    Returns
    -------
    str
        The table; wider than ``width`` only when even 12-character cells do not fit.
    """
    import pandas as pd

    text = frame.to_string(**kwargs)
    limit = 60
    while max(map(len, text.splitlines()), default=0) > width and limit >= 12:
        cut = frame.copy()
        for column in cut.columns:
            if cut[column].dtype == object or pd.api.types.is_string_dtype(cut[column]):
                cut[column] = cut[column].map(lambda v, n=limit: _cut(v, n))
        text = cut.to_string(**kwargs)
        limit -= 4
    return text


def _cut(value: Any, n: int) -> Any:
    if isinstance(value, str) and len(value) > n:
        return value[: n - 1] + "…"
    return value


def _one_model(table: Any, column: str = "model") -> str | None:
    """The model name when every row has the same one (said once, above the table)."""
    if column in table.columns and table[column].nunique() == 1:
        return str(table[column].iloc[0])
    return None


def run(args: argparse.Namespace) -> int:
    """Run ``powerfit history``."""
    from powerfit.tracking import compare, history
    from powerfit.tracking.versions import diff

    selection = {"model": args.model, "tracking_uri": args.tracking_uri}
    if args.diff is not None:
        with working("comparing the two versions", quiet=args.json):
            table = diff(*args.diff, args.gpu, args.arch, **selection)
        if args.json:
            print(table.to_json(orient="records"))
        elif args.wide:
            print(_printable(table).to_string(index=False))
        else:
            labels = [str(c) for c in table.columns[2:4]]
            names = {c.rsplit("/", 1)[0] for c in labels if "/" in c}
            if len(names) == 1 and all("/" in c for c in labels):
                print(f"model {names.pop()}: version {labels[0].rsplit('/', 1)[1]} → "
                      f"{labels[1].rsplit('/', 1)[1]} (--wide: nothing cut)")  # fmt: skip
                table = table.rename(columns={c: "v" + c.rsplit("/", 1)[1] for c in labels})
            print(fit_width(_printable(table.fillna("-").astype(str)), index=False))
        return 0
    if args.compare is not None:
        with working("predicting with every version", quiet=args.json):
            table = compare(args.compare, args.gpu, args.arch, versions=args.versions, **selection)
        if args.json:
            print(table.to_json(orient="records"))
            return 0
        if not args.wide:
            names = [c.rsplit("/", 1)[0] for c in table.columns if "/" in str(c)]
            if names and len(set(names)) == 1:
                print(f"model {names[0]}: energy [J] of one training step by version")
                table = table.rename(
                    columns=lambda c: "v" + c.rsplit("/", 1)[1] if "/" in c else c
                )
        float_format = lambda x: f"{x:.6g}"  # noqa: E731
        if args.wide:
            print(_printable(table).to_string(index=False, float_format=float_format))
        else:
            print(fit_width(_printable(table), index=False, float_format=float_format))
        return 0
    with working("reading the registry", quiet=args.json):
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
    shown = table[[c for c in (_SHOWN if args.wide else _NARROW) if c in table.columns]].copy()
    shown["created"] = shown["created"].dt.strftime(
        "%Y-%m-%d %H:%M:%S" if args.wide else "%Y-%m-%d %H:%M"
    )
    if "data_sha256" in shown.columns:
        shown["data_sha256"] = shown["data_sha256"].str[:12]
    shown["test_mape"] = (100 * shown["test_mape"]).map("{:.2f} %".format)
    model = None if args.wide else _one_model(shown)
    if model is not None:
        print(f"model {model} (--wide: every column)")
        shown = shown.drop(columns="model")
    float_format = lambda x: f"{x:.4g}"  # noqa: E731
    if args.wide:
        print(_printable(shown).to_string(index=False, float_format=float_format))
    else:
        print(fit_width(_printable(shown), index=False, float_format=float_format))
    return 0
