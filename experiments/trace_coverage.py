"""Which of transformers' language models trace on the meta device (issue 24).

For every ``model_type`` with a causal-LM class in the installed transformers, the
default config of that type (``AutoConfig.for_model``: transformers' own defaults,
often the family's flagship size) is traced at 64 tokens in bf16
(:func:`powerfit.architectures.trace.trace_step`): the parameter count is checked
against the model transformers instantiates, and failures are grouped by their
first line.

Run: ``python experiments/trace_coverage.py [--out experiments/results/trace_coverage.json]``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "trace_coverage.json")
    parser.add_argument("--only", help="comma-separated model types")
    args = parser.parse_args(argv)
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from powerfit.architectures.trace import trace_step

    transformers.logging.set_verbosity_error()
    warnings.simplefilter("ignore")
    types = sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    if args.only:
        types = [t for t in types if t in args.only.split(",")]
    rows = []
    for model_type in types:
        t = time.perf_counter()
        try:
            trace = trace_step({"model_type": model_type}, 64, precision="bf16")
            rows.append(
                {
                    "model_type": model_type,
                    "ok": True,
                    "class": trace.model_class,
                    "n_parameters": trace.n_parameters,
                    "attention": trace.attention,
                    "nodes": len(trace.nodes),
                    "seconds": time.perf_counter() - t,
                }
            )
        except Exception as exc:  # a survey: every failure is recorded
            rows.append(
                {
                    "model_type": model_type,
                    "ok": False,
                    "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                    "seconds": time.perf_counter() - t,
                }
            )
        row = rows[-1]
        print(f"{model_type:30s} {'ok' if row['ok'] else 'FAIL':4s} {row.get('error', '')}")
    ok = sum(r["ok"] for r in rows)
    reasons = Counter(r["error"].split(":")[0] for r in rows if not r["ok"])
    summary = {
        "transformers": transformers.__version__,
        "model_types": len(rows),
        "traced": ok,
        "failed_by_exception": dict(reasons),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    print(f"{ok} of {len(rows)} model types traced; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
