"""``powerfit evaluate``: compare energy models on named train/test protocols."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from powerfit.cli import add_format_arguments, progress_bar, stages

HELP = """\
Fit the paper's model, powerfit's training-step model and a gradient-boosting
baseline on the training rows of each protocol, and print MAPE [%], R², MAE [J],
the worst absolute percentage error [%] and the coverage of powerfit's
prediction intervals on the test rows.

Protocols (Transformer): random (67/33 stratified, several seeds),
random-configs (67/33 split of the configurations: the published file repeats
most rows, and repeats of one configuration stay on one side), layers-12,
dmodel-1024, seq-1280, gpu-rtx (train on the A100, predict the RTX 2080 Ti);
--extra adds held-out batch sizes, heads, families, small models and short
sequences, and gpu-rtx-10 (the A100 plus 10 RTX configurations). LSTM:
random, random-configs, hidden-640; --extra adds hidden 64 and 384, input 640,
batch 128 and 512.

Measurements come from the published files under $POWERFIT_DATA_HOME (default),
from explicit files (--runs, --operations) or from a store (--db URL).

--suite operators evaluates instead the operator latency laws on NeuSight's FP32
measurements (per GPU and family: rows, η_max, R², MAPE in-GPU, leave-one-GPU-out
and roofline; see powerfit.evaluation.operators.evaluate_operators). --suite steps times
NeuSight's measured training steps of real models (BERT-large, GPT-2 large, GPT-3
XL/2.7B, OPT-1.3B) from their operator graphs: MAPE per GPU in every mode (in-GPU,
calibrated, specs-only, roofline), interval coverage, beside NeuSight's published
errors (see powerfit.evaluation.steps.evaluate_steps). --suite parallel times
NeuSight's 4-GPU steps (data, tensor, pipeline parallel) beside NeuSight's own errors
(see powerfit.evaluation.parallel.evaluate_parallel). --suite power scores the
board power laws on measured NVML power (Zeus 2023, ML.ENERGY 2026): MAPE of
power and energy leave-one-workload-out per GPU and leave-one-GPU-out, interval
coverage, the power-limit law, busy training steps beside measured boards and the
paper's CodeCarbon energy (see powerfit.evaluation.board_power.power_suite).

Progress is shown on stderr when it is a terminal (not with --json).

examples:
  powerfit evaluate
  powerfit evaluate --suite operators
  powerfit evaluate --suite steps
  powerfit evaluate --suite parallel
  powerfit evaluate --suite power --json
  powerfit evaluate --extra --json
  powerfit evaluate --arch lstm --extra
  powerfit evaluate --protocol layers-12 --protocol gpu-rtx --bootstrap 50
  powerfit evaluate --train train.csv --test test.csv --predictions predictions.csv
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` sub-command."""
    parser = subparsers.add_parser(
        "evaluate",
        help="compare energy models on held-out protocols",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--suite",
        choices=("energy", "operators", "steps", "parallel", "power"),
        default="energy",
        help="energy models (default), operator latency laws or real models' training "
        "steps (NeuSight's data)",
    )
    parser.add_argument("--arch", choices=("transformer", "lstm"), default="transformer")
    parser.add_argument(
        "--protocol",
        action="append",
        dest="protocols",
        metavar="NAME",
        help="run only this protocol (repeatable; default: the standard ones)",
    )
    parser.add_argument("--extra", action="store_true", help="add the sceptic's held-out groups")
    parser.add_argument(
        "--n-seeds",
        "--seeds",
        dest="seeds",
        type=int,
        default=None,
        metavar="N",
        help="how many seeds of the random split (default 5; --seeds: old name)",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=8,
        help="bootstrap refits for powerfit's prediction intervals (default 8; 0: none)",
    )
    parser.add_argument(
        "--confidence", type=float, default=0.9, help="nominal interval level (default 0.9)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=-1,
        help="processes running splits side by side (default -1: every core)",
    )
    parser.add_argument(
        "--db",
        "--store",
        dest="store",
        metavar="URL",
        help="read measurements from this store URL or SQLite file, as every command's "
        "--db (--store: old name)",
    )
    parser.add_argument("--runs", type=Path, help="training-step measurements (any format)")
    parser.add_argument("--operations", type=Path, help="per-operation measurements (laws)")
    parser.add_argument("--train", type=Path, help="training file for a protocol of your own")
    parser.add_argument("--test", type=Path, help="test file (with --train)")
    parser.add_argument(
        "--predictions", type=Path, help="CSV to write the test predictions to (with --train)"
    )
    add_format_arguments(parser)
    parser.set_defaults(func=run)


def _sources(args: argparse.Namespace):
    """(runs source, operations source) for the chosen architecture."""
    from powerfit.evaluation.paper import default_sources

    if args.store:
        from powerfit.store import open_store

        store = open_store(args.store)
        return store, store
    defaults = default_sources()
    prefix = "transformer" if args.arch == "transformer" else "lstm"
    runs = args.runs or defaults[f"{prefix}_energy"]
    ops = args.operations or defaults[f"{prefix}_operations"]
    for path in (runs, ops):
        if not Path(path).exists():
            raise FileNotFoundError(
                f"{path} not found; set POWERFIT_DATA_HOME, or pass --runs and --operations "
                "or --db"
            )
    return runs, ops


def run(args: argparse.Namespace) -> int:
    """Run ``powerfit evaluate``."""
    if getattr(args, "suite", "energy") == "operators":
        return _run_operators(args)
    if getattr(args, "suite", "energy") == "steps":
        return _run_steps(args)
    if getattr(args, "suite", "energy") == "parallel":
        return _run_parallel(args)
    if getattr(args, "suite", "energy") == "power":
        return _run_power(args)
    if (args.test or args.predictions) and not args.train:
        raise ValueError("--test and --predictions need --train")
    if args.train and not args.test:
        raise ValueError("--train needs --test")
    if args.bootstrap < 0:
        raise ValueError("--bootstrap must be >= 0")
    if not 0 < args.confidence < 1:
        raise ValueError("--confidence must be in (0, 1)")
    bar = progress_bar(None, "fitting the efficiency laws", quiet=args.json, unit="split")
    try:
        return _run_energy(args, bar)
    finally:
        if bar is not None:
            bar.close()


def _run_energy(args: argparse.Namespace, bar: Any) -> int:
    """``powerfit evaluate`` (energy suite), advancing ``bar`` (None: no progress)."""
    import numpy as np

    from powerfit.evaluation.paper import (
        LSTM_TARGETS,
        TARGETS,
        evaluate,
        fit_laws,
        format_table,
        load_operations,
        load_runs,
        predict_files,
    )
    from powerfit.evaluation.paper_protocols import (
        EXTRA_PROTOCOLS,
        LSTM_EXTRA_PROTOCOLS,
        LSTM_PROTOCOLS,
        TRANSFORMER_PROTOCOLS,
    )

    def progress(done: int, total: int) -> None:
        if bar is None:
            return
        if bar.total != total:
            bar.reset(total=total)
            bar.set_description_str("protocol splits")
        bar.update(done - bar.n)

    runs_source, ops_source = _sources(args)
    laws = fit_laws(load_operations(ops_source, args.arch), args.arch)
    if args.train:
        predictions, table = predict_files(
            args.train,
            args.test,
            laws,
            arch=args.arch,
            n_bootstrap=args.bootstrap,
            confidence=args.confidence,
        )
        if args.predictions:
            predictions.to_csv(args.predictions, index=False)
            print(f"wrote {len(predictions)} predictions to {args.predictions}", file=sys.stderr)
        if args.json:
            print(json.dumps({"metrics": table.to_dict(orient="records")}, indent=2))
        elif not table.empty:
            print(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        elif not args.predictions:
            print(predictions.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        return 0
    if args.arch == "transformer":
        available, extra = TRANSFORMER_PROTOCOLS, EXTRA_PROTOCOLS
    else:
        available, extra = LSTM_PROTOCOLS, LSTM_EXTRA_PROTOCOLS
    if args.extra:
        available = available + extra
    if args.protocols:
        every = {p.name: p for p in (*available, *extra)}
        unknown = [n for n in args.protocols if n not in every]
        if unknown:
            raise ValueError(f"unknown protocol(s) {unknown}; choose from {sorted(every)}")
        available = tuple(every[n] for n in args.protocols)
    runs = load_runs(runs_source, args.arch)
    result = evaluate(
        runs,
        laws,
        available,
        arch=args.arch,
        n_bootstrap=args.bootstrap,
        confidence=args.confidence,
        seeds=args.seeds,
        n_jobs=args.jobs,
        progress=progress,
    )
    if args.json:
        table = result.table.replace({np.nan: None})
        print(
            json.dumps(
                {
                    "arch": args.arch,
                    "confidence": args.confidence,
                    "seconds": round(result.seconds, 2),
                    "table": table.to_dict(orient="records"),
                },
                indent=2,
            )
        )
        return 0
    targets = TARGETS if args.arch == "transformer" else LSTM_TARGETS
    print(format_table(result, targets))
    print(f"({len(runs)} {args.arch} training steps, {result.seconds:.1f} s)")
    return 0


def _run_operators(args: argparse.Namespace) -> int:
    """``powerfit evaluate --suite operators``: the operator laws' table."""
    import numpy as np

    from powerfit.evaluation.operators import (
        EVALUATION_STAGES,
        coefficient_table,
        evaluate_operators,
        format_operator_table,
    )

    with stages(len(EVALUATION_STAGES), "operator laws", quiet=args.json) as stage:
        table = evaluate_operators(progress=stage)
    laws = coefficient_table(table.attrs["full_model"])
    if args.json:
        records = table.replace({np.nan: None}).to_dict(orient="records")
        payload = {"suite": "operators", "seconds": round(table.attrs["seconds"], 2)}
        coefficients = laws.replace({np.nan: None}).to_dict(orient="records")
        print(json.dumps({**payload, "table": records, "coefficients": coefficients}, indent=2))
        return 0
    print(format_operator_table(table))
    shown = laws[laws["op"].isin(("bmm", "linear", "softmax", "ln"))].dropna(axis=1, how="all")
    print(
        "\ncoefficients fitted on all rows (SI units; element-wise ops in --json):\n"
        + shown.to_string(index=False, float_format=lambda x: f"{x:.3g}")
    )
    return 0


def _run_steps(args: argparse.Namespace) -> int:
    """``powerfit evaluate --suite steps``: step-time MAPE of real models per GPU and mode."""
    import time

    import numpy as np

    from powerfit.evaluation.steps import (
        evaluate_half_precision_and_fused,
        evaluate_steps,
        fit_queued_call,
    )
    from powerfit.steps.latency import QUEUED_CALL_S

    start = time.perf_counter()
    with stages(2, "timing the measured training steps", quiet=args.json) as stage:
        stage("fp32 training steps")
        table = evaluate_steps()
        queued = [fit_queued_call(gpu=gpu) for gpu in table.gpu]
        stage("half-precision and fused rows")
        modern = evaluate_half_precision_and_fused()
    seconds = time.perf_counter() - start
    if args.json:
        records = table.replace({np.nan: None}).to_dict(orient="records")
        extra = modern.replace({np.nan: None}).to_dict(orient="records")
        payload = {
            "suite": "steps",
            "seconds": round(seconds, 2),
            "table": records,
            "queued_call": {"shipped_s": QUEUED_CALL_S, "fitted_per_gpu": queued},
            "half_precision_and_fused": extra,
        }
        print(json.dumps(payload, indent=2))
        return 0
    modes = ["in-gpu", "in-gpu+cal", "specs-only", "specs-only+cal-other-gpus", "roofline"]
    shown = table[["gpu", "steps", *modes, "neusight_published"]]
    print("step time of measured training steps (fp32, forward + backward): MAPE [%]")
    print(shown.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    coverage = [c for c in table.columns if c.startswith("coverage90_")]
    print("\n90 % interval coverage [%] (loo-step: leave one step out; loo-gpu: one GPU out)")
    print(table[["gpu", *coverage]].T.to_string(header=False, float_format=lambda x: f"{x:.0f}"))
    print(
        f"\nfixed cost of a queued call: {QUEUED_CALL_S * 1e6:.1f} µs shipped (calls timed "
        "alone pay up to 71 µs); fitted on each GPU's steps alone:"
    )
    for q in queued:
        print(
            f"  {q['gpu']}: {q['queued_call_s'] * 1e6:.1f} µs, in-GPU MAPE at it "
            f"{q['mape_pct']:.1f} % (calls as timed alone: {q['mape_isolated_pct']:.1f} %; "
            f"{q['steps']} steps)"
        )
    if not modern.empty:
        print("\nhalf-precision and fused rows: MAPE [%] (own: the GPU's own laws; logo: "
              "laws from the other GPUs; coverage: inside their 90 % interval)")  # fmt: skip
        shown = modern.drop(columns="what")
        print(shown.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
        for row, what in modern.drop_duplicates("row")[["row", "what"]].itertuples(index=False):
            print(f"  {row}: {what}")
    print(f"({int(table['steps'].sum())} steps on {len(table)} GPUs, {seconds:.1f} s)")
    return 0


def _run_parallel(args: argparse.Namespace) -> int:
    """``powerfit evaluate --suite parallel``: NeuSight's 4-GPU steps."""
    import numpy as np

    from powerfit.evaluation.parallel import evaluate_parallel

    table = evaluate_parallel()
    if args.json:
        records = table.replace({np.nan: None}).to_dict(orient="records")
        print(json.dumps({"suite": "parallel", "table": records, "mean": table.attrs.get("mean")}))
        return 0
    print("4-GPU training steps (fp32, forward + backward): predicted against measured")
    cols = ["gpu", "model", "option", "measured_s", "predicted_s", "error_pct"]
    cols += ["specs_only_error_pct", "neusight_published_pct"]
    print(table[cols].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    for m in table.attrs.get("mean", []):
        print(
            f"{m['gpu']}: mean |error| {m['in_gpu_mape']:.1f} % in-GPU, "
            f"{m['specs_only_mape']:.1f} % specs-only ({m['steps']} steps); "
            f"NeuSight's own {m['neusight_published']:.1f} %"
        )
    return 0


def _run_power(args: argparse.Namespace) -> int:
    """``powerfit evaluate --suite power``: the board power laws, held out."""
    import pandas as pd

    from powerfit.evaluation.board_power import power_suite

    with stages(1, "fitting and scoring the board power laws", quiet=args.json):
        result = power_suite()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    table = pd.DataFrame(result["scores"])
    print("average board power, held out (lowo: one workload out; logo: one GPU out)")
    cols = ["gpu", "protocol", "power_mape_pct", "energy_mape_pct", "coverage90_pct", "n"]
    print(table[cols].to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    lim = result["limit"]
    h = lim["heldout"]
    print(
        f"\npower limit (Zeus, {h['n']} rows below the default limit, half the workloads "
        f"held out): time {h['time_mape_pct']:.1f} %, power {h['power_mape_pct']:.1f} %, "
        f"energy {h['energy_mape_pct']:.1f} % MAPE (eta {lim['law']['eta']:.2f}, "
        f"rho {lim['law']['rho']:.2f})"
    )
    print("\nbusy training steps beside measured boards:")
    for c in result["busy_steps"]:
        lo, hi = c["power_interval_w"]
        m_lo, m_hi = c["measured_range_w"]
        print(
            f"  {c['step']} on {c['gpu']}: {c['power_w']:.0f} W [{lo:.0f}, {hi:.0f}]; "
            f"measured {m_lo:.0f}-{m_hi:.0f} W ({c['measured']})"
        )
    print("\npaper (CodeCarbon energy, held-out configurations):")
    for p in result["paper"]:
        print(f"  {p['gpu']}: {p['energy_mape_pct']:.2f} % MAPE ({p['n']} steps)")
    return 0
