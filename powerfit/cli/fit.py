"""``powerfit fit``: fit laws and energy model from the store, record them in MLflow."""

from __future__ import annotations

import argparse
import json

from powerfit.cli import add_format_arguments

HELP = """\
Fit one efficiency law per operation and the energy model of a GPU and architecture
from the measurement store, evaluate it on held-out runs, and record everything in
MLflow: one run (params, coefficients as metrics, plots, the fitted pipeline as a
model) and a new version of a registered model. The alias 'champion' moves to the
new version when its held-out MAPE is lower than the champion's (or with --promote).

Tracking store: --tracking-uri, else MLFLOW_TRACKING_URI, else
sqlite:///<powerfit home>/mlflow.db with artifacts in <powerfit home>/mlartifacts.

examples:
  powerfit fit --gpu "NVIDIA A100 80GB PCIe" --arch transformer
  powerfit fit --gpu a100 --arch lstm --register my-lstm-model --promote --json
  powerfit fit --gpu rtx2080ti --db sqlite:////data/powerfit.db \\
      --tracking-uri http://localhost:5000
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
        "--model", choices=("paper", "step"), default="paper",
        help="energy model: the paper's (default) or powerfit's training-step model",
    )  # fmt: skip
    parser.add_argument("--register", metavar="NAME", help="registered model name")
    parser.add_argument("--db", metavar="URL", help="measurement store URL or SQLite file")
    parser.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI")
    parser.add_argument(
        "--promote", action="store_true", help="make the new version champion unconditionally"
    )
    parser.add_argument(
        "--test-size", type=float, default=0.33, help="held-out fraction of runs (default 0.33)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    add_format_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``powerfit fit``."""
    from powerfit.tracking import fit_and_log

    result = fit_and_log(
        args.db,
        args.gpu,
        args.arch,
        tracking_uri=args.tracking_uri,
        register=args.register,
        promote=args.promote,
        test_size=args.test_size,
        random_state=args.seed,
        energy_model=args.model,
    )
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
                    "tracking_uri": result.tracking_uri,
                    "coefficients": result.coefficients,
                    "metrics": result.metrics,
                    "notes": result.notes,
                },
                indent=2,
            )
        )
        return 0
    fit = result.fit
    print(f"{fit.gpu}, {fit.arch}: laws on {fit.data['n_operation_rows']} operation rows, "
          f"energy model on {len(fit.X_train)} runs, evaluated on {len(fit.X_test)}")  # fmt: skip
    print("efficiency laws  (eta_max [% of peak], k [TFLOP^-alpha], alpha, R²)")
    for op, law in result.laws.items():
        print(f"  {op:<20} {100 * law.eta_max_:8.3f} {law.k_:12.5g} {law.alpha_:7.4f} "
              f"{law.r2_:7.4f}")  # fmt: skip
    energy = {k: v for k, v in result.coefficients.items() if k == "h" or k.startswith("h.")}
    if energy:
        print("energy model  (h [J], h_i [W])")
        for key, value in energy.items():
            print(f"  {key:<22} {value:12.6g}")
    m = result.metrics
    print(f"held-out: R² {m['test_r2']:.4f}, MAE {m['test_mae_j']:.3f} J, "
          f"MAPE {100 * m['test_mape']:.2f} %")  # fmt: skip
    for note in result.notes:
        print(f"note: {note}")
    state = "now champion" if result.promoted else f"champion is version {result.champion_version}"
    print(f"registered {result.model_name} version {result.version} ({state})")
    print(f"run {result.run_id} in {result.tracking_uri}")
    return 0
