"""Regenerate the README's result tables from the output of the experiment scripts.

Each table sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers
and is rewritten from one run of the script that measures it, never by hand:

* ``evaluation``: the accuracy table of *Accuracy: powerfit evaluate*, from
  ``experiments/results/evaluation/{transformer,lstm}.csv`` and ``meta.json``
  (``python experiments/evaluate_models.py``);
* ``evaluation-extra``: the sceptic's held-out groups (``--extra``) of both
  architectures, from the same files;
* ``benchmarks``: the benchmark table, from ``experiments/results/benchmarks.json``
  (``python experiments/benchmarks.py``; its ``--update-readme`` calls the same code).

Usage::

    python experiments/evaluate_models.py && python experiments/update_readme.py
    python experiments/update_readme.py --only evaluation --readme README.md

A missing result file is an error naming the script that writes it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

#: Rows of the accuracy table: (architecture, protocol, label).
EVALUATION_ROWS = (
    ("transformer", "random", "random (67/33 rows, stratified)"),
    ("transformer", "random-configs", "random-configs (67/33 configurations)"),
    ("transformer", "layers-12", "layers-12 (train 4/6 layers)"),
    ("transformer", "dmodel-1024", "dmodel-1024 (train d < 1024)"),
    ("transformer", "seq-1280", "seq-1280 (train seq < 1280)"),
    ("transformer", "gpu-rtx", "gpu-rtx (train A100, predict RTX 2080 Ti)"),
    ("lstm", "random", "LSTM random"),
    ("lstm", "random-configs", "LSTM random-configs"),
    ("lstm", "hidden-640", "LSTM hidden-640 (train hidden < 640)"),
)

#: Models of the accuracy table, in its column order.
MODELS = ("paper", "powerfit", "gbm")


def replace_between(text: str, name: str, body: str) -> str:
    """``text`` with what lies between the ``name`` markers replaced by ``body``.

    Raises
    ------
    ValueError
        When the markers are missing.

    Examples
    --------
    >>> replace_between("a<!-- t:start -->old<!-- t:end -->b", "t", "new\\n")
    'a<!-- t:start -->\\nnew\\n<!-- t:end -->b'
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}{end}{tail}"


def _cell(row: pd.Series | None, best: bool) -> str:
    if row is None or pd.isna(row["mape"]):
        return "–"
    text = f"{row['mape']:.2f}"
    if row.get("seeds", 1) > 1 and pd.notna(row.get("mape_sd")):
        text += f" ± {row['mape_sd']:.2f}"
    return f"**{text}**" if best else text


def _target(arch: str, protocol: str, row: pd.Series | None, best_other: float) -> str:
    from powerfit.evaluation.paper import LSTM_TARGETS, TARGETS

    targets = TARGETS if arch == "transformer" else LSTM_TARGETS
    target = targets.get(protocol)
    if row is None:
        return "–"
    if target is not None:
        gap = row["mape"] - target
        return f"≤ {target:g} ✓" if gap <= 0 else f"≤ {target:g}: missed by {gap:.2f}"
    if best_other < row["mape"]:
        return f"loses by {row['mape'] - best_other:.2f}"
    return "–"


def evaluation_table(folder: Path = RESULTS / "evaluation") -> str:
    """The README's accuracy table (Markdown) from ``evaluate_models.py``'s output.

    Parameters
    ----------
    folder : pathlib.Path
        Holds ``transformer.csv``, ``lstm.csv`` and ``meta.json``.
    """
    tables = {}
    for arch in ("transformer", "lstm"):
        path = folder / f"{arch}.csv"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run python experiments/evaluate_models.py")
        tables[arch] = pd.read_csv(path)
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    level = round(100 * float(meta.get("confidence", 0.9)))
    facts = [f"{meta['seeds']} seeds" if "seeds" in meta else None]
    if "bootstrap" in meta:
        facts.append(f"{meta['bootstrap']} bootstrap refits")
    seconds = meta.get("seconds", {})
    if seconds:
        facts.append(
            " and ".join(f"{v:.0f} s for the {k} protocols" for k, v in seconds.items())
            + (f" on {meta['machine']}" if "machine" in meta else "")
        )
    said = "; ".join(f for f in facts if f)
    lines = [
        f"Measured {meta.get('date', '?')} by `python experiments/evaluate_models.py`"
        + (f" ({said})" if said else "")
        + ", written here by `python experiments/update_readme.py`:",
        "",
        "| protocol | paper's model | **powerfit** | gradient boosting | "
        f"powerfit {level} % interval coverage | target |",
        "|---|---|---|---|---|---|",
    ]
    for arch, protocol, label in EVALUATION_ROWS:
        table = tables[arch]
        rows = {
            m: (table[(table["protocol"] == protocol) & (table["model"] == m)].iloc[0]
                if ((table["protocol"] == protocol) & (table["model"] == m)).any() else None)
            for m in MODELS
        }  # fmt: skip
        if all(r is None for r in rows.values()):
            continue
        scores = {m: r["mape"] for m, r in rows.items() if r is not None and pd.notna(r["mape"])}
        best = min(scores, key=scores.get) if scores else None
        others = [v for m, v in scores.items() if m != "powerfit"]
        ours = rows["powerfit"]
        coverage = (
            f"{ours['coverage']:.0f} %"
            if ours is not None and "coverage" in ours and pd.notna(ours["coverage"])
            else "–"
        )
        cells = [_cell(rows[m], m == best) for m in MODELS]
        target = _target(arch, protocol, ours, min(others, default=float("inf")))
        lines.append(f"| {label} | {' | '.join(cells)} | {coverage} | {target} |")
    return "\n".join(lines) + "\n"


def extra_table(folder: Path = RESULTS / "evaluation") -> str:
    """The README's table of the ``--extra`` held-out groups (Markdown), same source."""
    from powerfit.evaluation.paper_protocols import EXTRA_PROTOCOLS, LSTM_EXTRA_PROTOCOLS

    lines = [
        "| architecture | held out | paper's model | **powerfit** | gradient boosting | "
        "powerfit vs the better baseline |",
        "|---|---|---|---|---|---|",
    ]
    for arch, protocols in (("transformer", EXTRA_PROTOCOLS), ("lstm", LSTM_EXTRA_PROTOCOLS)):
        path = folder / f"{arch}.csv"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run python experiments/evaluate_models.py")
        table = pd.read_csv(path)
        for protocol in protocols:
            rows = {
                m: table[(table["protocol"] == protocol.name) & (table["model"] == m)]
                for m in MODELS
            }
            rows = {m: r.iloc[0] for m, r in rows.items() if len(r)}
            if "powerfit" not in rows:
                continue
            scores = {m: r["mape"] for m, r in rows.items() if pd.notna(r["mape"])}
            best = min(scores, key=scores.get)
            cells = [_cell(rows.get(m), m == best) for m in MODELS]
            others = [v for m, v in scores.items() if m != "powerfit"]
            gap = scores["powerfit"] - min(others, default=float("inf"))
            verdict = f"wins by {-gap:.2f}" if gap < 0 else f"loses by {gap:.2f}"
            label = "Transformer" if arch == "transformer" else "LSTM"
            lines.append(f"| {label} | {protocol.description} | {' | '.join(cells)} | {verdict} |")
    return "\n".join(lines) + "\n"


def benchmark_table(path: Path = RESULTS / "benchmarks.json") -> str:
    """The README's benchmark table from ``benchmarks.py``'s JSON (its own formatter)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run python experiments/benchmarks.py")
    sys.path.insert(0, str(HERE))
    from benchmarks import readme_table

    return readme_table(json.loads(path.read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=HERE.parent / "README.md")
    parser.add_argument(
        "--only",
        choices=("evaluation", "evaluation-extra", "benchmarks"),
        action="append",
        help="one table only (repeatable)",
    )
    args = parser.parse_args(argv)
    builders = {
        "evaluation": evaluation_table,
        "evaluation-extra": extra_table,
        "benchmarks": benchmark_table,
    }
    text = args.readme.read_text(encoding="utf-8")
    for name in args.only or builders:
        try:
            text = replace_between(text, name, builders[name]())
        except (FileNotFoundError, ValueError) as exc:
            print(f"update_readme: {name}: {exc}", file=sys.stderr)
            return 1
        print(f"updated the {name} table of {args.readme}", file=sys.stderr)
    args.readme.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
