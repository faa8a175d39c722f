"""The cost of training a Hugging Face model: one step, a whole run, its emissions.

:func:`estimate_training` is what ``powerfit estimate --hf-config`` prints with
``--json``, as a Python function: the step's operator graph
(:func:`powerfit.graph.training_step_graph`) built from the model's ``config.json``,
each operator timed by the per-(GPU, operator) laws of :mod:`powerfit.operators`
(calibrated on the GPU's measured FP32 steps where there are some), energy = time ×
a bounded power law of the step's utilisation (:mod:`powerfit.power`), and a run of
``steps`` or ``tokens`` in kWh and kg CO₂.

Only FP32 laws are bundled: in TF32, FP16, BF16 and mixed precision the memory-bound
operators are timed by the FP32 laws on their own bytes, and the matrix products by
the roofline at the precision's (tensor-core) peak plus the FP32 laws' fixed cost per
call (:func:`powerfit.graph.operator_latency`); such an estimate says so (mode
``…+roofline``, ``roofline_share`` of the step time, ``outside_measured_range``) and
its step-time interval is at least the roofline's, widened. Outside the measured
steps (:func:`out_of_range`: GPU, model size, batch, sequence, precision) the
interval's half-width doubles; the half-widths per mode and the measured ranges come
from ``powerfit/data/power/step_time_intervals.json``
(``experiments/build_power_models.py``).
"""

from __future__ import annotations

import math
import os
from typing import Any

__all__ = ["MEASURED_RANGES", "estimate_training", "measured_ranges", "out_of_range"]

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


def measured_ranges() -> dict[str, Any]:
    """The measured ranges of the bundled step-time intervals (or :data:`MEASURED_RANGES`).

    Returns
    -------
    dict
        ``gpus`` (names), ``parameters`` [-], ``batch_size`` [-], ``seq_len`` [-]
        (each a (low, high) pair) and ``precision`` (names).
    """
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


def out_of_range(
    gpu: str,
    n_parameters: int,
    batch_size: int,
    seq_len: int,
    precision: str,
    ranges: dict[str, Any] | None = None,
) -> list[str]:
    """Why an estimate is outside the measured steps (empty when inside).

    Parameters
    ----------
    gpu : str
        The GPU's catalogue name.
    n_parameters : int
        Parameters of the model [-].
    batch_size, seq_len : int
        Sequences per step and tokens per sequence [-].
    precision : str
        Precision of the step.
    ranges : dict, optional
        As :func:`measured_ranges` returns; default :data:`MEASURED_RANGES`.

    Returns
    -------
    list of str
        One note per range left.
    """
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


def _positive_int(value: Any, name: str) -> int:
    try:
        ok = value is not None and value > 0 and value == int(value)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def estimate_training(
    config: Any,
    gpu: str,
    batch_size: int,
    seq_len: int,
    *,
    precision: str = "fp32",
    optimizer: str = "adamw",
    checkpointing: bool = False,
    specs_only: bool = False,
    steps: int | None = None,
    tokens: float | None = None,
    grid_intensity: float | None = None,
    pue: float = 1.0,
    top: int = 10,
) -> dict[str, Any]:
    """One training step of a Hugging Face model on a GPU, and optionally a whole run.

    Parameters
    ----------
    config : str, path-like, dict or ModelConfig
        The model's ``config.json`` (a path or its parsed dict; no download) or a
        :class:`powerfit.hf.ModelConfig`.
    gpu : str
        GPU name or alias (``'NVIDIA H100 80GB HBM3'``, ``'h100'``).
    batch_size, seq_len : int
        Sequences per step and tokens per sequence [-].
    precision : {'fp32', 'tf32', 'fp16', 'bf16', 'amp-fp16', 'amp-bf16'}
        Precision of the step.
    optimizer : {'adamw', 'sgd', 'none'}
        The parameter update.
    checkpointing : bool, default False
        Activation checkpointing.
    specs_only : bool, default False
        Predict as if this GPU had never been measured (catalogue specs and other
        GPUs' operator laws only; no calibration).
    steps : int, optional
        Training steps of the whole run [-].
    tokens : float, optional
        Training tokens of the whole run [-] (instead of ``steps``).
    grid_intensity : float, optional
        Grid carbon intensity [gCO2/kWh]; gives ``co2_kg`` (needs a run).
    pue : float, default 1.0
        Data-centre power usage effectiveness [-].
    top : int, default 10
        Operators listed in ``operators``.

    Returns
    -------
    dict
        JSON-serialisable: ``step_time_s`` [s], ``energy_j`` [J], ``power_w`` [W],
        their intervals (nominal 90 %), ``mode``, ``outside_measured_range``,
        ``roofline_share``, ``warnings``, the breakdowns, the calibration and the
        power law used; with a run also ``steps``, ``run_energy_kwh`` [kWh] and
        ``run_energy_interval_kwh``, and with ``grid_intensity`` ``co2_kg`` [kg] and
        ``co2_interval_kg`` (``run_energy_kwh = steps · energy_j / 3.6e6``,
        ``co2_kg = run_energy_kwh · grid_intensity / 1000 · pue``).

    Raises
    ------
    ValueError
        An unknown GPU or precision, a count that is not a positive integer, both
        ``steps`` and ``tokens``, ``grid_intensity`` without a run, or a config field
        that changes the cost but is not modelled (named).

    Examples
    --------
    >>> from powerfit.training import estimate_training
    >>> gpt2 = {"model_type": "gpt2", "n_layer": 2, "n_embd": 128, "n_head": 2,
    ...         "vocab_size": 1000, "n_positions": 256}
    >>> r = estimate_training(gpt2, "h100", 4, 256, steps=1000, grid_intensity=350)
    >>> r["run_energy_kwh"] == 1000 * r["energy_j"] / 3.6e6
    True
    >>> r["outside_measured_range"]  # no measured step on an H100, a 0.0x B model
    True
    """
    from powerfit.graph import (
        PRECISIONS,
        bundled_operator_model,
        calibrate_on_measured_steps,
        estimate_step,
        run_energy,
    )
    from powerfit.hardware import get_gpu
    from powerfit.hf import ModelConfig, from_hf_config

    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    gpu = get_gpu(gpu).name
    batch = _positive_int(batch_size, "batch_size")
    seq = _positive_int(seq_len, "seq_len")
    if steps is not None and tokens is not None:
        raise ValueError("give steps or tokens, not both")
    if steps is None and tokens is None and grid_intensity is not None:
        raise ValueError("grid_intensity needs a run: give steps or tokens")
    model = config if isinstance(config, ModelConfig) else from_hf_config(config)
    n_params = model.n_parameters
    notes = out_of_range(gpu, n_params, batch, seq, precision, measured_ranges())
    # the bundled FP32 laws time the FP32 rows, and the memory-bound rows of every
    # other precision on their own bytes; products of a precision without laws are
    # timed by the roofline at its peak (+ the FP32 laws' launch cost)
    operator_model = bundled_operator_model("fp32")
    calibration = None
    if operator_model is not None and not specs_only and precision == "fp32":
        # in-GPU mode: the GPU's measured (FP32) steps calibrate the sum; specs-only
        # mode must not see them
        calibration = calibrate_on_measured_steps(gpu, operator_model)
    est = estimate_step(
        model,
        gpu,
        batch,
        seq,
        precision=precision,
        optimizer=optimizer,
        checkpointing=bool(checkpointing),
        operator_model=operator_model,
        specs_only=bool(specs_only),
        calibration=calibration,
    )
    mode, q, roofline = _mode_and_half_width(est, operator_model, calibration, specs_only, notes)
    roofline_share = est.roofline_share()
    if roofline and operator_model is not None:
        notes.append(
            f"{100 * roofline_share:.0f} % of the step time is matrix products timed by the "
            f"roofline at the {PRECISIONS[precision][0]} peak (a lower bound: "
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
    top_ops = est.breakdown("name").head(max(0, int(top)))
    result: dict[str, Any] = {
        "model": {
            "family": model.family,
            "n_parameters": n_params,
            "config": os.fspath(config) if isinstance(config, (str, os.PathLike)) else None,
        },
        "gpu": gpu,
        "batch_size": batch,
        "seq_len": seq,
        "precision": precision,
        "optimizer": optimizer,
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
        "warnings": list(dict.fromkeys(notes + _power_notes(gpu, est) + est.warnings)),
        "breakdown_by_phase": {k: float(v) for k, v in est.breakdown("phase").time_s.items()},
        "breakdown_by_op": {k: float(v) for k, v in est.breakdown("op").time_s.items()},
        "operators": [
            {"name": name, "time_s": float(row.time_s), "share": float(row.share)}
            for name, row in top_ops.iterrows()
        ],
    }
    if steps is not None or tokens is not None:
        run = run_energy(
            est.energy_j,
            steps=steps,
            tokens=None if tokens is None else math.ceil(tokens),
            tokens_per_step=batch * seq,
            grid_intensity=grid_intensity,
            pue=pue,
        )
        result.update(run)
        result["run_energy_interval_kwh"] = [run["steps"] * e / 3.6e6 for e in (e_lo, e_hi)]
        if "co2_kg" in run:
            result["co2_interval_kg"] = [
                k * grid_intensity / 1000 * pue for k in result["run_energy_interval_kwh"]
            ]
    return result


def _mode_and_half_width(
    est: Any, operator_model: Any, calibration: Any, specs_only: bool, notes: list[str]
) -> tuple[str, float, bool]:
    """(mode, step-time half-width q, whether products used the roofline)."""
    from powerfit.step_evaluation import half_width_for

    if operator_model is None:
        est.warnings.append("no operator laws available: latencies from the roofline")
        mode = "roofline"
    else:
        mode = "specs-only" if specs_only else "in-gpu"
        if est.source == "roofline":  # some rows had no laws of their precision
            mode += "+roofline"
    key = mode.split("+")[0]
    if key == "in-gpu" and calibration is not None and calibration.used:
        key = "in-gpu+cal"
    roofline = mode.endswith("+roofline")
    q = half_width_for(key, outside=bool(notes) or roofline, roofline=roofline)
    return mode, q, roofline


def _power_notes(gpu: str, est: Any) -> list[str]:
    """What the power law behind the energy does not know."""
    notes = []
    if est.power_source == "transferred":
        notes.append(
            f"power law not fitted on {gpu} (no measured energy): transferred as "
            "fractions of TDP from the measured GPUs, wider interval"
        )
    elif est.power_source == "prior":
        notes.append("power law unfitted (no bundled power models): prior only")
    if est.power_outside and est.power_source == "fitted":
        notes.append(
            f"utilisation {est.utilisation:.2f} outside the measured ones of the power law: "
            "interval widened (up to TDP)"
        )
    return notes


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
