"""``powerfit fit``: fit laws and energy model from the store, record them in MLflow."""

from __future__ import annotations

import argparse
import json
from typing import Any

from powerfit.cli import add_format_arguments, add_tracking_timeout_argument, stages, working

HELP = """\
Fit one efficiency law per operation and the energy model of a GPU and architecture
from the measurement store, evaluate it on held-out runs, and record everything in
MLflow: one run (params, coefficients as metrics, plots, the fitted pipeline as a
model) and a new version of a registered model. The alias 'champion' moves to the
new version when it passes the physics check (energy > 0 everywhere, never less for
more layers, tokens or batch) and its MAPE is lower than the champion's on the same
held-out runs (or with --promote); the reason is a note and a model-version tag.

A lab that measured only training steps (no operation measurements) fits the
energy model alone with --laws-from PROFILE: the published efficiency laws of a
bundled profile (powerfit estimate --list-profiles) are reused and recorded as the
tag powerfit.laws_from. The profile's laws must be of the steps' precision
(tf32 laws do not time fp32 steps); an explicit --precision reuses them for steps
of another precision anyway, with a note. Runs on several GPUs (CodeCarbon's
'4 x NVIDIA A100-SXM4-40GB') are fitted per GPU: the model predicts one GPU's
energy of a step.

Progress is shown on stderr when it is a terminal (not with --json).

Tracking store: --tracking-uri, else MLFLOW_TRACKING_URI, else
sqlite:///<powerfit home>/mlflow.db with artifacts in <powerfit home>/mlartifacts.

examples:
  powerfit fit --gpu "NVIDIA A100 80GB PCIe" --arch transformer
  powerfit fit --gpu a100 --arch lstm --register my-lstm-model --promote --json
  powerfit fit --gpu a100-sxm4-40gb --laws-from mayaki2025-a100   # steps only
  powerfit fit --gpu rtx2080ti --db sqlite:////data/powerfit.db \\
      --tracking-uri http://localhost:5000
  powerfit fit --power --gpu all   # board power laws from ingested power files
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``fit`` sub-command."""
    parser = subparsers.add_parser(
        "fit",
        help="fit laws and energy model from the store and record them in MLflow",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--gpu", required=True, help="GPU name or alias (e.g. a100)")
    parser.add_argument(
        "--arch", choices=("transformer", "lstm", "gru"), default="transformer",
        help="architecture (default: transformer)",
    )  # fmt: skip
    parser.add_argument(
        "--energy-model", "--model", dest="energy_model", choices=("paper", "step"),
        default="paper",
        help="kind of energy model: the paper's (default) or powerfit's training-step "
        "model (--model: old name; a registered model is --register NAME here and "
        "--model NAME in history and estimate)",
    )  # fmt: skip
    parser.add_argument(
        "--precision", metavar="P",
        help="fit only the measurements of this precision: fp32, tf32, fp16, bf16, amp-fp16, "
        "amp-bf16 (required when the store mixes precisions)",
    )  # fmt: skip
    parser.add_argument(
        "--laws-from", metavar="PROFILE",
        help="reuse this bundled profile's efficiency laws and fit only the energy model on "
        "the store's training steps (for a store without operation measurements)",
    )  # fmt: skip
    parser.add_argument("--register", metavar="NAME", help="registered model name")
    parser.add_argument("--db", metavar="URL", help="measurement store URL or SQLite file")
    parser.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI")
    add_tracking_timeout_argument(parser)
    parser.add_argument(
        "--promote", action="store_true",
        help="make the new version champion if it passes the physics check",
    )  # fmt: skip
    parser.add_argument(
        "--test-size", type=float, default=0.33, help="held-out fraction of runs (default 0.33)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    parser.add_argument(
        "--operators", action="store_true",
        help="fit the generic operator latency laws (bmm, linear, softmax, LayerNorm, "
        "element-wise) of --gpu ('all': every GPU with operator rows) at --precision "
        "(default fp32) instead, registered as powerfit-operators-<precision>",
    )  # fmt: skip
    parser.add_argument(
        "--call-timing", choices=("queued", "isolated"), default="queued",
        help="with --operators: how the operator rows were timed, 'queued' (a mean over "
        "a block of calls, as powerfit measure ops times them; default) or 'isolated' "
        "(each call timed alone, as NeuSight's files: a step replaces each call's fixed "
        "cost by that of a queued call)",
    )  # fmt: skip
    parser.add_argument(
        "--power", action="store_true",
        help="fit the board power laws of --gpu ('all': every GPU with power measurements) "
        "on the store's measured board power (Zeus / ML.ENERGY files), registered as "
        "powerfit-power",
    )  # fmt: skip
    add_format_arguments(parser)
    parser.set_defaults(func=run)


def _run_power(args: argparse.Namespace) -> int:
    """Run ``powerfit fit --power`` (:func:`powerfit.tracking.power.fit_power_laws`)."""
    from powerfit.store.engine import mask_url
    from powerfit.tracking.power import fit_power_laws

    result = fit_power_laws(
        args.db,
        None if args.gpu.lower() == "all" else args.gpu,
        tracking_uri=args.tracking_uri,
        register=args.register,
    )
    if args.json:
        out = {
            "run_id": result.run_id,
            "model_name": result.model_name,
            "version": result.version,
            "model_uri": result.model_uri,
            "tracking_uri": mask_url(result.tracking_uri),
            "gpus": result.gpus,
            "n_rows": result.n_rows,
            "laws": result.model.laws_,
            "metrics": result.metrics,
            "notes": result.notes,
        }
        print(json.dumps(out, indent=2))
        return 0
    print(f"board power laws on {result.n_rows} measurements of {', '.join(result.gpus)}")
    print("  gpu: P_idle [W], P_max [W], k_c, k_m, gamma (± standard error); in-sample MAPE")
    for gpu, d in result.model.laws_.items():
        e = d["std"]
        print(
            f"  {gpu}: {d['p_idle_w']:.0f}±{e.get('p_idle_w', 0):.0f}, "
            f"{d['p_max_w']:.0f}±{e.get('p_max_w', 0):.0f}, {d['k_c']:.2f}, {d['k_m']:.2f}, "
            f"{d['gamma']:.2f}; {100 * result.metrics[f'mape.{_slug(gpu)}']:.1f} %"
        )
    for note in result.notes:
        print(f"note: {note}")
    print(f"registered {result.model_name} version {result.version}")
    print(f"run {result.run_id} in {mask_url(result.tracking_uri)}")
    return 0


def _slug(name: str) -> str:
    from powerfit.tracking.locations import slug

    return slug(name)


def _run_operators(args: argparse.Namespace) -> int:
    """Run ``powerfit fit --operators`` (:func:`powerfit.tracking.operators.fit_operator_laws`)."""
    from powerfit.store.engine import mask_url
    from powerfit.tracking.operators import fit_operator_laws

    with working("fitting and recording the operator laws", quiet=args.json):
        result = fit_operator_laws(
            args.db,
            None if args.gpu.lower() == "all" else args.gpu,
            args.precision or "fp32",
            tracking_uri=args.tracking_uri,
            register=args.register,
            random_state=args.seed,
            call_timing=args.call_timing,
        )
    if args.json:
        out = {
            "run_id": result.run_id,
            "model_name": result.model_name,
            "version": result.version,
            "model_uri": result.model_uri,
            "tracking_uri": mask_url(result.tracking_uri),
            "precision": result.precision,
            "gpus": result.gpus,
            "n_rows": result.n_rows,
            "metrics": result.metrics,
            "notes": result.notes,
        }
        print(json.dumps(out, indent=2))
        return 0
    print(f"operator laws, {result.precision}: {result.n_rows} rows of {', '.join(result.gpus)}")
    print("  (gpu, op): in-sample latency MAPE [%]")
    for key, value in result.metrics.items():
        if key.startswith("mape."):
            print(f"  {key[5:]:<40} {100 * value:7.2f}")
    print(f"  all rows: {100 * result.metrics['mape']:.2f} %")
    for note in result.notes:
        print(f"note: {note}")
    print(f"registered {result.model_name} version {result.version}")
    print(f"run {result.run_id} in {mask_url(result.tracking_uri)}")
    return 0


#: Heading of the energy model's coefficients, by kind of model.
_COEFFICIENT_LABELS = {
    "paper": "energy model  (h [J] intercept; h.<op> [J/s]: regression weight of the "
    "operation's predicted duration, not a measured power)",
    "step": "energy model  (log space: log_scale, exponent, log_coef, log_overhead "
    "[ln of s]; power_w [W]; power_fraction [fraction of TDP])",
}

#: Stages of :func:`~powerfit.tracking.fitting.fit_coefficients` that ``powerfit fit``'s
#: progress bar counts; the recording's (:data:`~powerfit.tracking.recording.RECORDING_STAGES`)
#: follow.
_FIT_STAGES = 5


def _fit_and_log(args: argparse.Namespace) -> Any:
    """:func:`~powerfit.tracking.fit_and_log` with the command's options and progress."""
    from powerfit.tracking import fit_and_log
    from powerfit.tracking.recording import RECORDING_STAGES

    total = _FIT_STAGES + len(RECORDING_STAGES)
    with stages(total, "powerfit fit", quiet=args.json) as stage:
        return fit_and_log(
            args.db,
            args.gpu,
            args.arch,
            tracking_uri=args.tracking_uri,
            register=args.register,
            promote=args.promote,
            test_size=args.test_size,
            random_state=args.seed,
            energy_model=args.energy_model,
            precision=args.precision,
            laws_from=args.laws_from,
            progress=stage,
        )


def run(args: argparse.Namespace) -> int:
    """Run ``powerfit fit``."""
    if getattr(args, "operators", False):
        return _run_operators(args)
    if getattr(args, "power", False):
        return _run_power(args)
    from powerfit.store.engine import mask_url

    result = _fit_and_log(args)
    if args.json:
        print(
            json.dumps(
                {
                    "run_id": result.run_id,
                    "model_name": result.model_name,
                    "version": result.version,
                    "promoted": result.promoted,
                    "champion_version": result.champion_version,
                    "model_uri": result.model_uri,
                    "tracking_uri": mask_url(result.tracking_uri),
                    "laws_from": result.fit.laws_from,
                    "coefficients": result.coefficients,
                    "metrics": result.metrics,
                    "notes": result.notes,
                },
                indent=2,
            )
        )
        return 0
    fit = result.fit
    precision = fit.precision or "unknown precision"
    laws = (
        f"laws of profile {fit.laws_from} ({fit.laws_precision})"
        if fit.laws_from
        else f"laws on {fit.data['n_operation_rows']} operation rows"
    )
    print(f"{fit.gpu}, {fit.arch}, {precision}: {laws}, "
          f"energy model on {len(fit.X_train)} runs, evaluated on {len(fit.X_test)}")  # fmt: skip
    print("efficiency laws  (eta_max [% of peak], k [TFLOP^-alpha], alpha, R²)")
    for op, law in result.laws.items():
        r2 = "      -" if fit.laws_from else f"{law.r2_:7.4f}"  # published: no fit of ours
        print(f"  {op:<20} {100 * law.eta_max_:8.3f} {law.k_:12.5g} {law.alpha_:7.4f} {r2}")
    energy = {k: v for k, v in result.coefficients.items() if k == "h" or k.startswith("h.")}
    if energy:
        print(_COEFFICIENT_LABELS.get(args.energy_model, "energy model coefficients"))
        for key, value in energy.items():
            print(f"  {key:<22} {value:12.6g}")
    m = result.metrics
    print(f"held-out (this fit's own test split, {len(fit.X_test)} runs): R² {m['test_r2']:.4f}, "
          f"MAE {m['test_mae_j']:.3f} J, MAPE {100 * m['test_mape']:.2f} %")  # fmt: skip
    for note in result.notes:
        print(f"note: {note}")
    if result.promoted:
        state = "now champion"
    elif result.champion_version is None:
        state = "no champion: no version passes the physics check yet"
    else:
        state = f"champion is version {result.champion_version}"
    print(f"registered {result.model_name} version {result.version} ({state})")
    print(f"run {result.run_id} in {mask_url(result.tracking_uri)}")
    return 0
