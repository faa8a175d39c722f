"""``powerfit estimate --hf-config``: a training step and a whole run of a Hugging Face model.

The step's operator graph (:func:`powerfit.graph.training_step_graph`) is built from
the model's ``config.json``; each operator is timed by the per-(GPU, operator) laws
of :mod:`powerfit.operators` (the roofline when that module is missing). Only FP32
laws are bundled: in TF32, FP16, BF16 and mixed precision the memory-bound operators
are timed by the FP32 laws on their own bytes, and the matrix products by the roofline
at the precision's (tensor-core) peak plus the FP32 laws' fixed cost per call
(:func:`powerfit.graph.operator_latency`); such an estimate says so (mode
``…+roofline``, ``roofline_share`` of the step time, ``outside_measured_range``) and
its step-time interval is at least the roofline's, widened. Energy is
time × a bounded power law of the step's utilisation (:mod:`powerfit.power`: fitted
on the GPUs with measured energy, transferred as fractions of TDP to the others, with
a wider interval and a flag), and a run is ``--steps`` or ``--tokens`` steps. The
step-time interval's half-width per mode and the measured ranges outside which it
doubles come from ``powerfit/data/power/step_time_intervals.json``
(``experiments/build_power_models.py``).

This module exposes ``add_arguments(parser)`` and ``run(args) -> int``; the
``estimate`` sub-command calls them when ``--hf-config`` is given.

example::

  powerfit estimate --hf-config gpt2-large/config.json --gpu h100 --batch-size 4 \\
      --seq-len 1024 --precision amp-bf16 --steps 50000 --grid-intensity 350 --json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

#: The measured training steps behind the calibration and the intervals (NeuSight's
#: FP32 steps), used when the bundled ``step_time_intervals.json`` is absent: outside
#: these ranges the estimate says so.
MEASURED_RANGES: dict[str, Any] = {
    "gpus": ("NVIDIA A100 80GB PCIe", "Tesla V100-PCIE-32GB"),
    "parameters": (3.0e8, 6.0e9),
    "batch_size": (1, 8),
    "seq_len": (512, 2048),
    "precision": ("fp32",),
}


def _ranges() -> dict[str, Any]:
    """The measured ranges of the bundled step-time intervals (or the defaults)."""
    from powerfit.step_evaluation import load_step_intervals

    bundle = load_step_intervals()
    if bundle is None:
        return dict(MEASURED_RANGES)
    r = bundle["ranges"]
    return {
        "gpus": tuple(r["gpus"]),
        "parameters": tuple(r["n_parameters"]),
        "batch_size": tuple(r["batch_size"]),
        "seq_len": tuple(r["seq_len"]),
        "precision": tuple(r["precision"]),
    }


def _add(parser: argparse.ArgumentParser, *flags: str, **kwargs: Any) -> None:
    """Add an option unless the parser has it already (shared with ``estimate``)."""
    if any(flag in parser._option_string_actions for flag in flags):
        return
    parser.add_argument(*flags, **kwargs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--hf-config`` options to a parser (options it has are kept)."""
    _add(parser, "--hf-config", type=Path, help="a Hugging Face config.json (no download)")
    _add(parser, "--gpu", help="GPU name or alias (e.g. 'NVIDIA H100 80GB HBM3', h100)")
    _add(parser, "--batch-size", dest="batch_size", type=float, help="sequences per step [-]")
    _add(parser, "--seq-len", dest="seq_len", type=float, help="tokens per sequence [-]")
    _add(
        parser,
        "--precision",
        default="fp32",
        choices=("fp32", "tf32", "fp16", "bf16", "amp-fp16", "amp-bf16"),
        help="precision of the step (default fp32)",
    )
    _add(
        parser,
        "--optimizer",
        default="adamw",
        choices=("adamw", "sgd", "none"),
        help="parameter update (default adamw)",
    )
    _add(parser, "--checkpointing", action="store_true", help="activation checkpointing")
    _add(parser, "--steps", type=int, help="training steps of the whole run [-]")
    _add(parser, "--tokens", type=float, help="training tokens of the whole run [-]")
    _add(parser, "--grid-intensity", type=float, help="grid carbon intensity [gCO2/kWh]")
    _add(parser, "--pue", type=float, default=1.0, help="data-centre PUE [-] (default 1.0)")
    _add(
        parser,
        "--specs-only",
        action="store_true",
        help="predict as if this GPU had never been measured (specs and other GPUs only)",
    )
    _add(parser, "--json", action="store_true", help="print JSON")
    _add(parser, "--top", type=int, default=10, help="operators shown in the breakdown")


def _positive_int(value: Any, flag: str) -> int:
    if value is None:
        raise ValueError(f"{flag} is required with --hf-config")
    if value <= 0 or value != int(value):
        raise ValueError(f"{flag} must be a positive integer, got {value:g}")
    return int(value)


def out_of_range(
    gpu: str,
    n_parameters: int,
    batch_size: int,
    seq_len: int,
    precision: str,
    ranges: dict[str, Any] | None = None,
) -> list[str]:
    """Why an estimate is outside the measured steps (empty when inside)."""
    r = MEASURED_RANGES if ranges is None else ranges
    notes = []
    if gpu not in r["gpus"]:
        notes.append(f"no measured training step on {gpu}")
    lo, hi = r["parameters"]
    if not lo <= n_parameters <= hi:
        notes.append(
            f"{n_parameters / 1e9:.2g} B parameters outside the measured "
            f"{lo / 1e9:g}–{hi / 1e9:g} B"
        )
    lo, hi = r["batch_size"]
    if not lo <= batch_size <= hi:
        notes.append(f"batch size {batch_size} outside the measured {lo}–{hi}")
    lo, hi = r["seq_len"]
    if not lo <= seq_len <= hi:
        notes.append(f"sequence length {seq_len} outside the measured {lo}–{hi}")
    if precision not in r["precision"]:
        notes.append(f"precision {precision} not measured on whole steps (only fp32)")
    return notes


def estimate(args: argparse.Namespace) -> dict[str, Any]:
    """The estimate as a JSON-serialisable dict (what ``--json`` prints)."""
    from powerfit.graph import (
        PRECISIONS,
        bundled_operator_model,
        calibrate_on_measured_steps,
        estimate_step,
        run_energy,
    )
    from powerfit.hardware import get_gpu
    from powerfit.hf import from_hf_config
    from powerfit.step_evaluation import half_width_for

    # The options this command shares with ``estimate`` may be absent or None there.
    defaults = {
        "precision": "fp32",
        "optimizer": "adamw",
        "steps": None,
        "tokens": None,
        "grid_intensity": None,
        "pue": 1.0,
        "gpu": None,
        "batch_size": None,
        "seq_len": None,
    }
    args = argparse.Namespace(
        **{**vars(args), **{k: v for k, v in defaults.items() if getattr(args, k, None) is None}}
    )
    if args.precision not in PRECISIONS:
        raise ValueError(f"--precision {args.precision!r} is not one of {', '.join(PRECISIONS)}")
    if args.gpu is None:
        raise ValueError("--gpu is required with --hf-config")
    gpu = get_gpu(args.gpu).name
    batch = _positive_int(args.batch_size, "--batch-size")
    seq = _positive_int(args.seq_len, "--seq-len")
    if args.steps is not None and args.tokens is not None:
        raise ValueError("give --steps or --tokens, not both")
    config = from_hf_config(args.hf_config)
    specs_only = bool(getattr(args, "specs_only", False))
    n_params = config.n_parameters
    notes = out_of_range(gpu, n_params, batch, seq, args.precision, _ranges())
    # the bundled FP32 laws time the FP32 rows, and the memory-bound rows of every
    # other precision on their own bytes; products of a precision without laws are
    # timed by the roofline at its peak (+ the FP32 laws' launch cost)
    operator_model = bundled_operator_model("fp32")
    calibration = None
    if operator_model is not None and not specs_only and args.precision == "fp32":
        # in-GPU mode: the GPU's measured (FP32) steps calibrate the sum; specs-only
        # mode must not see them
        calibration = calibrate_on_measured_steps(gpu, operator_model)
    est = estimate_step(
        config,
        gpu,
        batch,
        seq,
        precision=args.precision,
        optimizer=args.optimizer,
        checkpointing=bool(getattr(args, "checkpointing", False)),
        operator_model=operator_model,
        specs_only=specs_only,
        calibration=calibration,
    )
    if operator_model is None:
        est.warnings.append("no operator laws available: latencies from the roofline")
        mode = "roofline"
    else:
        mode = "specs-only" if specs_only else "in-gpu"
        if any("roofline" in w for w in est.warnings):
            mode += "+roofline"
    key = mode.split("+")[0]
    if key == "in-gpu" and calibration is not None and calibration.used:
        key = "in-gpu+cal"
    roofline = mode.endswith("+roofline")
    q = half_width_for(key, outside=bool(notes) or roofline, roofline=roofline)
    roofline_share = est.roofline_share()
    if roofline and operator_model is not None:
        notes.append(
            f"{100 * roofline_share:.0f} % of the step time is matrix products timed by the "
            f"roofline at the {PRECISIONS[args.precision][0]} peak (a lower bound: "
            "tensor-core products were never measured): step-time interval at least the "
            f"roofline's, widened outside the measured steps (q = {q:.2f}, "
            f"×{math.exp(q):.2f} either way)"
        )
    t_lo, t_hi = est.step_time_s * math.exp(-q), est.step_time_s * math.exp(q)
    p_lo, p_hi = (
        est.energy_interval_j[0] / est.step_time_s,
        est.energy_interval_j[1] / est.step_time_s,
    )
    e_lo, e_hi = t_lo * p_lo, t_hi * p_hi
    power_notes = []
    if est.power_source == "transferred":
        power_notes.append(
            f"power law not fitted on {gpu} (no measured energy): transferred as "
            "fractions of TDP from the measured GPUs, wider interval"
        )
    elif est.power_source == "prior":
        power_notes.append("power law unfitted (no bundled power models): prior only")
    if est.power_outside and est.power_source == "fitted":
        power_notes.append(
            f"utilisation {est.utilisation:.2f} outside the measured ones of the power law: "
            "interval widened (up to TDP)"
        )
    top = est.breakdown("name").head(max(0, int(getattr(args, "top", 10))))
    result: dict[str, Any] = {
        "model": {
            "family": config.family,
            "n_parameters": n_params,
            "config": str(args.hf_config),
        },
        "gpu": gpu,
        "batch_size": batch,
        "seq_len": seq,
        "precision": args.precision,
        "optimizer": args.optimizer,
        "mode": mode,
        "step_time_s": est.step_time_s,
        "step_time_interval_s": [t_lo, t_hi],
        "energy_j": est.energy_j,
        "energy_interval_j": [e_lo, e_hi],
        "power_w": est.power_w,
        "utilisation": est.utilisation,
        "power_model": _power_description(gpu, est),
        "step_time_half_width": q,
        "calibration": None
        if calibration is None
        else {
            "scale": calibration.scale,
            "launch_s": calibration.launch_s,
            "steps": calibration.n_steps,
            "mape_before_pct": calibration.mape_before,
            "mape_after_pct": calibration.mape_after,
            "mape_leave_one_out_pct": calibration.mape_loo,
            "used": calibration.used,
        },
        "outside_measured_range": bool(notes) or est.power_outside or roofline,
        "roofline_share": roofline_share,
        "warnings": list(dict.fromkeys(notes + power_notes + est.warnings)),
        "breakdown_by_phase": {k: float(v) for k, v in est.breakdown("phase").time_s.items()},
        "breakdown_by_op": {k: float(v) for k, v in est.breakdown("op").time_s.items()},
        "operators": [
            {"name": name, "time_s": float(row.time_s), "share": float(row.share)}
            for name, row in top.iterrows()
        ],
    }
    if args.steps is not None or args.tokens is not None:
        tokens = None if args.tokens is None else math.ceil(args.tokens)
        run = run_energy(
            est.energy_j,
            steps=args.steps,
            tokens=tokens,
            tokens_per_step=batch * seq,
            grid_intensity=args.grid_intensity,
            pue=args.pue,
        )
        result.update(run)
        result["run_energy_interval_kwh"] = [run["steps"] * e / 3.6e6 for e in (e_lo, e_hi)]
        if "co2_kg" in run:
            result["co2_interval_kg"] = [
                k * args.grid_intensity / 1000 * args.pue
                for k in result["run_energy_interval_kwh"]
            ]
    elif args.grid_intensity is not None:
        raise ValueError("--grid-intensity needs --steps or --tokens")
    return result


def _power_description(gpu: str, est: Any) -> dict[str, Any]:
    """The power law used, as JSON (``fitted`` False when not fitted on this GPU)."""
    from powerfit.hardware import get_gpu
    from powerfit.power import power_model_for, prior_power

    fit = power_model_for(gpu)
    if fit is None:
        spec = get_gpu(gpu)
        fit = prior_power(spec.name, float(spec.power_limit_w))
    return {
        "law": "P = P_idle + (P_max - P_idle) * u^gamma",
        "fitted": bool(fit.fitted),
        "source": est.power_source,
        "p_idle_w": fit.p_idle_w,
        "p_max_w": fit.p_max_w,
        "gamma": fit.gamma,
        "tdp_w": fit.tdp_w,
        "sigma_log": fit.sigma_log,
        "measured_utilisation": list(fit.u_range),
        "utilisation_outside_measured": bool(est.power_outside),
    }


def run(args: argparse.Namespace) -> int:
    """Run ``powerfit estimate --hf-config ...``; print text or ``--json``."""
    result = estimate(args)
    for note in result["warnings"]:
        print(f"warning: {note}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2))
        return 0
    t_lo, t_hi = result["step_time_interval_s"]
    e_lo, e_hi = result["energy_interval_j"]
    print(
        f"{result['model']['family']} ({result['model']['n_parameters'] / 1e9:.3g} B parameters) "
        f"on {result['gpu']}, batch {result['batch_size']} × {result['seq_len']} tokens, "
        f"{result['precision']}, {result['optimizer']} [{result['mode']}]"
    )
    print(f"step time: {result['step_time_s']:.4g} s  [{t_lo:.3g}, {t_hi:.3g}]")
    print(
        f"energy:    {result['energy_j']:.4g} J  [{e_lo:.3g}, {e_hi:.3g}] "
        f"at {result['power_w']:.0f} W"
    )
    if "run_energy_kwh" in result:
        lo, hi = result["run_energy_interval_kwh"]
        print(
            f"run:       {result['steps']} steps, {result['run_energy_kwh']:.4g} kWh "
            f"[{lo:.3g}, {hi:.3g}]"
        )
        if "co2_kg" in result:
            lo, hi = result["co2_interval_kg"]
            print(f"           {result['co2_kg']:.4g} kg CO2 [{lo:.3g}, {hi:.3g}]")
    print("largest operators:")
    for op in result["operators"]:
        print(f"  {op['name']:<50} {op['time_s']:.4g} s  {100 * op['share']:.1f} %")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m powerfit.cli.estimate_hf``)."""
    parser = argparse.ArgumentParser(
        prog="powerfit estimate", description=__doc__.split("\n\n")[0]
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.hf_config is None:
        parser.error("--hf-config is required")
    try:
        return run(args)
    except ValueError as exc:
        print(f"powerfit estimate: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
