"""Step time of real models against NeuSight's measured training steps.

For every training step in ``neusight2025/labels/`` (FP32, TF32 off; forward +
backward, no optimizer step), build the operator graph of the step from the model's
Hugging Face config and sum the operators' latencies in each mode of
:mod:`powerfit.step_evaluation` (``in-gpu``, ``in-gpu+cal`` leave-one-step-out,
``specs-only``, ``specs-only+cal-other-gpus``, ``roofline``, ``trace_sum``).

Prints MAPE per GPU and mode beside NeuSight's published errors and the
out-of-sample coverage of the nominal 90 % step-time interval
(:func:`powerfit.step_evaluation.evaluate_steps`), the per-GPU calibration, and the
per-step table with ``--steps``. ``--json FILE`` writes everything.

    POWERFIT_DATA_HOME=../shared/data .venv/bin/python experiments/evaluate_steps.py --steps
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from powerfit.graph import fit_calibration
from powerfit.step_evaluation import (
    MODES,
    evaluate_steps,
    interval_coverage,
    step_predictions,
)


def calibrations(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-GPU calibration fitted on all of a GPU's steps (reported, bounded)."""
    rows = []
    for gpu, group in frame.groupby("gpu"):
        group = group[np.isfinite(group["in-gpu"].to_numpy(float))]
        if group.empty:
            continue
        cal = fit_calibration(gpu, group["in-gpu"], group.n_ops, group.measured_s)
        rows.append(
            {
                "mode": "in-gpu",
                "gpu": gpu,
                "scale": cal.scale,
                "launch_us": cal.launch_s * 1e6,
                "steps": cal.n_steps,
                "mape_before": cal.mape_before,
                "mape_after_in_sample": cal.mape_after,
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", action="store_true", help="print the per-step table")
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    frame = step_predictions()
    if frame.empty:
        raise SystemExit("no NeuSight labels under the data home; set POWERFIT_DATA_HOME")
    table = evaluate_steps(frame=frame)
    cal = calibrations(frame)
    cov = interval_coverage(frame)
    mape_cols = ["gpu", "steps", *MODES, "in-gpu_vs_trace_sum", "neusight_published"]
    print("MAPE of training-step time [%] (forward + backward, FP32), per GPU and mode")
    print(table[mape_cols].to_string(index=False, float_format="{:.1f}".format))
    print("\nout-of-sample coverage [%] of the nominal 90 % step-time interval")
    pivot = cov.pivot_table(
        index=["gpu", "mode"], columns="protocol", values="coverage90_pct"
    ).reset_index()
    print(pivot.to_string(index=False, float_format="{:.0f}".format))
    if not cal.empty:
        print("\nper-GPU calibration (all steps; bounds scale [0.8, 1.25], launch [0, 20] µs)")
        print(cal.to_string(index=False, float_format="{:.3g}".format))
    if args.steps:
        cols = ["gpu", "model", "batch_size", "seq_len", "measured_s", *MODES]
        print()
        print(frame[cols].to_string(index=False, float_format="{:.3f}".format))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "summary": table.to_dict(orient="records"),
                    "coverage": cov.to_dict(orient="records"),
                    "calibration": cal.to_dict(orient="records"),
                    "steps": frame.to_dict(orient="records"),
                },
                indent=2,
                default=float,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
