"""Build the bundled power laws and step-time intervals (``powerfit/data/power/``).

* ``power_models.json``: the board power laws ``P(u_c, u_m)`` fitted on measured
  NVML board power (Zeus 2023, ML.ENERGY 2026; section ``boards``,
  :func:`powerfit.evaluation.board_power.build_board_bundle`), and the paper's
  CodeCarbon power law ``P(u)`` fitted per GPU on the
  published Mayaki & Charpenay training steps (A100 80GB PCIe, RTX 2080 Ti), its
  held-out scores (configurations held out; the other GPU held out for the
  transferred law) and the transfer to GPUs without measured energy
  (:func:`powerfit.evaluation.power.build_power_bundle`);
* ``step_time_intervals.json``: the half-widths of the nominal 90 % step-time
  interval per mode, the measured ranges outside which it widens, and its
  out-of-sample coverage on NeuSight's measured training steps
  (:func:`powerfit.evaluation.steps.step_interval_bundle`).

    POWERFIT_DATA_HOME=../shared/data .venv/bin/python experiments/build_power_models.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from powerfit.evaluation.board_power import build_board_bundle
from powerfit.evaluation.power import build_power_bundle
from powerfit.evaluation.steps import step_interval_bundle, step_predictions
from powerfit.power.bundle import BUNDLE_NAME
from powerfit.steps.intervals import STEP_INTERVALS_NAME

OUT = Path(__file__).resolve().parents[1] / "powerfit" / "data" / "power"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    # the step-time intervals first: the power bundle's end-to-end scores use them
    steps = step_predictions()
    if steps.empty:
        print("no NeuSight labels: step_time_intervals.json not written")
    else:
        intervals = step_interval_bundle(steps)
        (args.out / STEP_INTERVALS_NAME).write_text(json.dumps(intervals, indent=2) + "\n")
        print("\nstep-time interval half-widths q [-] (nominal 90 %: t·exp(±q)):")
        for mode, d in intervals["half_width"].items():
            print(f"  {mode}: {d['half_width']:.3f} ({d['n_steps']} steps)")
        cov = pd.DataFrame(intervals["coverage"])
        print("\nout-of-sample coverage [%] of the nominal 90 % step-time interval:")
        print(cov.to_string(index=False, float_format="{:.3f}".format))
    power = build_power_bundle()
    # the board power laws behind every estimate (Zeus 2023, ML.ENERGY 2026)
    power["boards"] = build_board_bundle()
    (args.out / BUNDLE_NAME).write_text(json.dumps(power, indent=2) + "\n")
    print("power laws (P = P_idle + (P_max - P_idle) u^gamma), fitted per GPU:")
    for gpu, d in power["gpus"].items():
        print(
            f"  {gpu}: P_idle {d['p_idle_w']:.1f} W, P_max {d['p_max_w']:.1f} W, "
            f"gamma {d['gamma']:.2f}, sigma_log {d['sigma_log']:.3f}, TDP {d['tdp_w']:.0f} W, "
            f"u {d['u_range'][0]:.3f}-{d['u_range'][1]:.3f}, {d['n_runs']} runs / "
            f"{d['n_configs']} configurations"
        )
        print(pd.DataFrame(d["heldout"]).to_string(index=False, float_format="{:.3f}".format))
    t = power["transfer"]
    print(
        f"  transfer: P_idle {t['idle_fraction']:.3f} TDP, P_max {t['max_fraction']:.3f} TDP, "
        f"gamma {t['gamma']:.2f}, sigma_log {t['sigma_log']:.3f}"
    )
    print("\nend to end (predicted step time x power law; held-out configurations):")
    chain = pd.DataFrame(power["end_to_end"]["scores"])
    print(chain.to_string(index=False, float_format="{:.3f}".format))
    print(f"\nwrote {args.out / BUNDLE_NAME} and {args.out / STEP_INTERVALS_NAME}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
