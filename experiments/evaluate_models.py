"""The full accuracy study of issue #6: every protocol, the sceptic's groups, the LSTM data.

Writes ``experiments/results/evaluation/`` (git-ignored): ``transformer.csv``,
``transformer_runs.csv`` (per seed), ``lstm.csv``, ``summary.md`` (the tables
as ``powerfit evaluate`` prints them) and ``meta.json`` (date, machine, seeds,
run times), from which ``python experiments/update_readme.py`` rewrites the
README's accuracy table.

Usage::

    POWERFIT_DATA_HOME=/path/to/data python experiments/evaluate_models.py [--bootstrap 20]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from pathlib import Path

from powerfit.evaluation import paper as ev
from powerfit.evaluation.paper_protocols import (
    EXTRA_PROTOCOLS,
    LSTM_EXTRA_PROTOCOLS,
    LSTM_PROTOCOLS,
    TRANSFORMER_PROTOCOLS,
)

OUT = Path(__file__).resolve().parent / "results" / "evaluation"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    src = ev.default_sources()
    sections = []
    seconds = {}
    for arch, protocols, targets in (
        ("transformer", TRANSFORMER_PROTOCOLS + EXTRA_PROTOCOLS, ev.TARGETS),
        ("lstm", LSTM_PROTOCOLS + LSTM_EXTRA_PROTOCOLS, ev.LSTM_TARGETS),
    ):
        runs = ev.load_runs(src[f"{arch}_energy"], arch)
        laws = ev.fit_laws(ev.load_operations(src[f"{arch}_operations"], arch), arch)
        result = ev.evaluate(
            runs,
            laws,
            protocols,
            arch=arch,
            n_bootstrap=args.bootstrap,
            seeds=args.seeds,
            n_jobs=-1,
        )
        result.table.to_csv(OUT / f"{arch}.csv", index=False)
        result.runs.to_csv(OUT / f"{arch}_runs.csv", index=False)
        seconds[arch] = result.seconds
        text = ev.format_table(result, targets)
        print(f"## {arch} ({len(runs)} steps, {result.seconds:.0f} s)\n{text}\n")
        sections.append(f"## {arch} ({len(runs)} steps)\n\n```\n{text}\n```\n")
    (OUT / "summary.md").write_text("\n".join(sections))
    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "seeds": args.seeds,
        "bootstrap": args.bootstrap,
        "confidence": 0.9,
        "seconds": seconds,
    }
    (OUT / "meta.json").write_text(json.dumps(meta, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
