"""The cost of training a Hugging Face model: one step, a whole run, its emissions.

:func:`estimate_training` is what ``powerfit estimate --hf-config`` prints with
``--json``, as a Python function: the step's operator graph
(:func:`powerfit.steps.graph.training_step_graph`) built from the model's ``config.json``,
each operator timed by the per-(GPU, operator) laws of :mod:`powerfit.kernels.model`
(calibrated on the GPU's measured FP32 steps where there are some), energy = time ×
the board power law of the step's fractions of compute peak and DRAM bandwidth
(:mod:`powerfit.power.board`, capped at ``power_limit_w``), and a run of
``steps`` or ``tokens`` in kWh and kg CO₂.

A ``config.json`` (a path or its dict) is traced through transformers on the meta
device (:mod:`powerfit.architectures.trace`, cached by
:mod:`powerfit.architectures.cache`) into the step graph
(:func:`powerfit.steps.graph.traced_step_graph`; fused attention and selective
checkpointing as asked), with the step's peak memory
(:func:`powerfit.steps.memory.step_memory`); a
:class:`~powerfit.architectures.model.ModelConfig` takes its hand-written graph (the
checked reference), as do the hand-written families where tracing is not possible.

The orchestration, stage by stage: :func:`estimate_step` builds the graph
(:mod:`powerfit.steps.graph`), times it (:mod:`powerfit.steps.latency`, with a
:class:`~powerfit.steps.calibration.Calibration`) and gives its energy
(:func:`step_energy`: time × the GPU's board power law, fitted where board power was
measured and transferred elsewhere, :func:`powerfit.power.bundle.board_law_for`);
:func:`run_energy` turns one step into a whole run's kWh and CO₂.

FP32 and FP16/BF16 operator laws are bundled (:mod:`powerfit.kernels`); rows no law
covers (TF32 products, half precision on a GPU without its peak) fall back to the
roofline at the precision's peak plus the fixed cost of a queued call
(:func:`powerfit.steps.latency.operator_latency`); such an estimate says so (mode
``…+roofline``, ``roofline_share`` of the step time, ``outside_measured_range``) and
its step-time interval is at least the roofline's, widened. Rows timed by laws no
measured step checks (half precision, fused attention) add their laws' own evidence
to the interval (:func:`powerfit.steps.intervals.law_half_width`). Outside the measured
steps (:func:`out_of_range`: GPU, model size, batch, sequence, precision) the
interval's half-width doubles; the half-widths per mode and the measured ranges come
from ``powerfit/data/power/step_time_intervals.json``
(``experiments/build_power_models.py``).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from powerfit.architectures.model import ModelConfig
from powerfit.kernels.loss_kernels import HAND_WRITTEN_LOSS_NOTE, check_loss_kernel
from powerfit.steps.calibration import Calibration
from powerfit.steps.graph import checkpointing_mode, training_step_graph
from powerfit.steps.latency import _gpu, operator_latency_sources

__all__ = [
    "MEASURED_RANGES",
    "StepEstimate",
    "estimate_step",
    "estimate_training",
    "gpu_power_model",
    "measured_ranges",
    "out_of_range",
    "run_energy",
    "step_energy",
]

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
    from powerfit.steps.intervals import load_step_intervals

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
    checkpointing: bool | str = False,
    attention: str = "auto",
    attention_kernel: str | None = None,
    loss_kernel: str = "torch",
    specs_only: bool = False,
    steps: int | None = None,
    tokens: float | None = None,
    grid_intensity: float | None = None,
    pue: float = 1.0,
    top: int = 10,
    power_limit_w: float | None = None,
) -> dict[str, Any]:
    """One training step of a Hugging Face model on a GPU, and optionally a whole run.

    Parameters
    ----------
    config : str, path-like, dict or ModelConfig
        The model's ``config.json`` (a path or its parsed dict; no download) or a
        :class:`powerfit.architectures.model.ModelConfig`.
    gpu : str
        GPU name or alias (``'NVIDIA H100 80GB HBM3'``, ``'h100'``).
    batch_size, seq_len : int
        Sequences per step and tokens per sequence [-].
    precision : {'fp32', 'tf32', 'fp16', 'bf16', 'amp-fp16', 'amp-bf16'}
        Precision of the step.
    optimizer : {'adamw', 'sgd', 'none'}
        The parameter update.
    checkpointing : {'none', 'full', 'selective'} or bool, default False
        Activation checkpointing (True: full; selective: the attention cores only).
    attention : {'auto', 'eager', 'sdpa', 'flash'}, default 'auto'
        Attention kind of a traced model (:func:`powerfit.architectures.trace.resolve_attention`).
    attention_kernel : {'fa2', 'cudnn', 'triton'}, optional
        The kernel that runs a fused attention in half precision, timed by its own law
        (:data:`powerfit.kernels.attention_kernels.ATTENTION_KERNELS`): FlashAttention-2
        (SDPA's flash backend, transformers' ``flash_attention_2``), cuDNN (SDPA's cuDNN
        backend) or the Triton FlashAttention (llm-foundry's ``attn_impl: triton``).
        Default: the one the config names (MPT's ``attn_config.attn_impl``), else ``fa2``
        (:func:`powerfit.kernels.attention_kernels.resolve_kernel`).
    loss_kernel : {'torch', 'fused'}, default 'torch'
        The cross-entropy of a traced model (:data:`powerfit.kernels.loss_kernels.LOSS_KERNELS`):
        transformers' (the logits cast to FP32, log-softmax, NLL) or a fused kernel on
        the half-precision logits (flash-attn's, llm-foundry's default; Liger's), in
        time and in memory.
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
    power_limit_w : float, optional
        NVML power limit of the board [W] (default: its TDP). Power is capped at it
        and the step slowed by the Zeus-fitted power-limit law
        (:class:`powerfit.power.board.LimitLaw`); ``power_limit_tradeoff`` lists
        time, power and energy over the board's settable limits.

    Returns
    -------
    dict
        JSON-serialisable: ``step_time_s`` [s], ``energy_j`` [J] (``power_w`` ×
        step time × 1 GPU), ``power_w`` [W] (average board power of the GPU over the
        step), their intervals (nominal 90 %; ``power_interval_w``), ``power_limit_w``,
        ``power_limit_tradeoff``, ``mode``, ``outside_measured_range``,
        ``roofline_share``, ``warnings``, the breakdowns, the calibration and the
        power law used; with a run also ``steps``, ``run_energy_kwh`` [kWh] and
        ``run_energy_interval_kwh``, and with ``grid_intensity`` ``co2_kg`` [kg] and
        ``co2_interval_kg`` (``run_energy_kwh = steps · energy_j / 3.6e6``,
        ``co2_kg = run_energy_kwh · grid_intensity / 1000 · pue``).
        A traced model (a ``config.json``) also gives ``attention`` (the kind
        run), ``checkpointing``, ``memory_gb`` [GB] and ``fits_in_memory`` (the
        step's peak on one GPU, :func:`powerfit.steps.memory.step_memory`) and
        ``memory`` (its breakdown); they are None for a hand-written graph.

    Raises
    ------
    ValueError
        An unknown GPU or precision, a count that is not a positive integer, both
        ``steps`` and ``tokens``, ``grid_intensity`` without a run, a power limit
        outside the board's range (the range is named), or a config field that
        changes the cost but is not modelled (named).

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
    from powerfit.architectures.model import PRECISIONS, ModelConfig
    from powerfit.hardware.gpus import get_gpu
    from powerfit.kernels.attention_kernels import check_attention_kernel, kernel_run
    from powerfit.steps.latency import bundled_operator_model
    from powerfit.steps.measured import calibrate_on_measured_steps
    from powerfit.steps.memory import memory_warning

    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    gpu = get_gpu(gpu).name
    batch = _positive_int(batch_size, "batch_size")
    seq = _positive_int(seq_len, "seq_len")
    if steps is not None and tokens is not None:
        raise ValueError("give steps or tokens, not both")
    if steps is None and tokens is None and grid_intensity is not None:
        raise ValueError("grid_intensity needs a run: give steps or tokens")
    ckpt = checkpointing_mode(checkpointing)
    if attention_kernel is not None:
        check_attention_kernel(attention_kernel)
    check_loss_kernel(loss_kernel)
    model, graph, trace, memory, fallback = None, None, None, None, None
    if isinstance(config, ModelConfig):  # the hand-written graph (the checked reference)
        if ckpt == "selective":
            raise ValueError("selective checkpointing needs a traced model: give its config.json")
        model = config
        family, n_params = model.family, model.n_parameters
    else:  # every architecture transformers knows: traced on the meta device
        trace, graph, memory, fallback, attention_kernel = _traced(
            config,
            gpu,
            batch,
            seq,
            precision,
            optimizer,
            ckpt,
            attention,
            attention_kernel,
            loss_kernel,
        )
        if trace is None:  # a hand-written family, without torch or untraceable
            from powerfit.architectures.hf import from_hf_config

            model = from_hf_config(config)
            family, n_params = model.family, model.n_parameters
            if ckpt == "selective":
                fallback += "; selective checkpointing needs a traced step: estimated as full"
        else:
            family, n_params = trace.model_type, trace.n_parameters
    notes = out_of_range(gpu, n_params, batch, seq, precision, measured_ranges())
    if fallback:
        notes.append(fallback)
    if trace is None and loss_kernel == "fused":
        notes.append(HAND_WRITTEN_LOSS_NOTE)
    if trace is not None:
        notes += trace.warnings
        if loss_kernel == "fused" and not graph.attrs.get("loss_fused", False):
            notes.append(
                "--loss-kernel fused: no cross-entropy over the vocabulary in the traced "
                "step; the step is timed as traced"
            )
        if memory.get("fits_in_memory") is False:
            notes.append(memory_warning(memory, gpu))
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
        checkpointing=ckpt != "none",
        operator_model=operator_model,
        specs_only=bool(specs_only),
        calibration=calibration,
        graph=graph,
        power_limit_w=power_limit_w,
    )
    from powerfit.steps.intervals import law_half_width, timed_by_transfer

    law = law_half_width(est.graph, est.latency_s, est.row_source, gpu, bool(specs_only))
    transferred = timed_by_transfer(operator_model, gpu, precision)
    mode, q, roofline = _mode_and_half_width(
        est, operator_model, calibration, bool(specs_only) or transferred, notes, law
    )
    roofline_share = est.roofline_share()
    if roofline and operator_model is not None:
        notes.append(
            f"{100 * roofline_share:.0f} % of the step time is matrix products (and fused "
            "attention) timed by the "
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
    power_law = _power_model(gpu)
    result: dict[str, Any] = {
        "model": {
            "family": family,
            "n_parameters": n_params,
            "config": os.fspath(config) if isinstance(config, (str, os.PathLike)) else None,
            "class": None if trace is None else trace.model_class,
            "graph": "hand-written" if trace is None else "traced",
        },
        "attention": None if trace is None else trace.attention,
        "attention_kernel": kernel_run(
            None if trace is None else trace.attention, precision, attention_kernel or "fa2"
        ),
        "loss_kernel": None if trace is None else loss_kernel,
        "checkpointing": ckpt,
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
        "power_interval_w": list(est.power_interval_w),
        "power_limit_w": est.power_limit_w,
        "utilisation": est.utilisation,
        "memory_utilisation": est.memory_utilisation,
        "power_limit_tradeoff": power_law.tradeoff(
            est.utilisation, est.memory_utilisation, est.step_time_s / est.slowdown
        ),
        "power_model": {**power_law.describe(), "source": est.power_source},
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
        "memory_gb": None if memory is None else memory["memory_gb"],
        "fits_in_memory": None if memory is None else memory.get("fits_in_memory"),
        "memory": memory,
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


def _traced(
    config: Any,
    gpu: str,
    batch: int,
    seq: int,
    precision: str,
    optimizer: str,
    checkpointing: str,
    attention: str,
    attention_kernel: str | None = None,
    loss_kernel: str = "torch",
) -> tuple[Any, Any, Any, str | None, str | None]:
    """(trace, step graph, peak memory, None, fused-attention kernel) of a ``config.json``
    traced on the meta device; (None, None, None, why, None) for a hand-written family
    that cannot be traced here (no ``hf`` extra, or a step the meta device cannot run:
    Switch's routing)."""
    from powerfit.architectures.cache import cached_trace
    from powerfit.architectures.hf import FAMILIES, read_config_json
    from powerfit.architectures.trace import MissingExtraError
    from powerfit.exceptions import DataError
    from powerfit.kernels.attention_kernels import resolve_kernel
    from powerfit.steps.graph import traced_step_graph
    from powerfit.steps.memory import step_memory

    data, where = read_config_json(config)
    ampere = "bf16" in _gpu(gpu).peak_flops  # Ampere and newer have bf16 tensor cores
    try:
        trace, _hit = cached_trace(
            data, seq, attention=attention, precision=precision, ampere=ampere, source=where
        )
    except (MissingExtraError, DataError) as exc:
        if data.get("model_type") not in FAMILIES or (
            isinstance(exc, DataError) and "cannot trace" not in str(exc)
        ):
            raise
        # the seven hand-written families are still estimated (their checked graphs)
        why = f"{exc}: the hand-written graph of {data['model_type']} is used"
        return None, None, None, why, None
    kernel = resolve_kernel(data, attention_kernel)
    graph = traced_step_graph(
        trace, batch, precision, optimizer, checkpointing, kernel, loss_kernel
    )
    memory = step_memory(
        trace,
        batch,
        precision=precision,
        optimizer=optimizer,
        checkpointing=checkpointing,
        capacity_bytes=_gpu(gpu).memory_bytes,
        loss_kernel=loss_kernel if graph.attrs.get("loss_fused", False) else "torch",
    )
    return trace, graph, memory, None, kernel


def _mode_and_half_width(
    est: Any,
    operator_model: Any,
    calibration: Any,
    specs_only: bool,
    notes: list[str],
    law: tuple[float, float] = (0.0, 0.0),
) -> tuple[str, float, bool]:
    """(mode, step-time half-width q, whether products used the roofline).

    ``specs_only``: the step is timed by laws transferred from other GPUs (asked for,
    or an FP32 step on a GPU without measured FP32 operators), so its q is the
    specs-only mode's.
    ``law``: (q, share) of the rows timed by laws no measured step checks
    (:func:`powerfit.steps.intervals.law_half_width`); their q is added in quadrature,
    and a precision the steps never measured no longer widens the interval when
    those laws' own evidence covers it.
    """
    from powerfit.steps.intervals import half_width_for

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
    q_law, share = law
    outside = [n for n in notes if not (share > 0 and n.startswith("precision "))]
    q = half_width_for(key, outside=bool(outside) or roofline, roofline=roofline)
    if share > 0 and math.isfinite(q_law):
        q = math.hypot(q, q_law)
    return mode, q, roofline


def _power_notes(gpu: str, est: Any) -> list[str]:
    """What the power law behind the energy does not know."""
    notes = []
    if est.power_source == "transferred":
        notes.append(
            f"board power law not fitted on {gpu} (no measured board power): transferred "
            "from the measured GPUs by TDP and memory type, leave-one-GPU-out interval"
        )
    elif est.power_source == "prior":
        notes.append("power law unfitted (no bundled power models): prior only")
    if est.slowdown > 1.0:
        notes.append(
            f"power limit {est.power_limit_w:.0f} W binds: step "
            f"{100 * (est.slowdown - 1):.3g} % slower "
            "(power-limit law fitted on the Zeus traces)"
        )
    return notes


def step_energy(
    graph: pd.DataFrame,
    gpu: str,
    latency_s: np.ndarray,
    step_s: float,
    power_model: Any = None,
    power_limit_w: float | None = None,
) -> tuple[float, float, float, float]:
    """Energy of one step [J] with its interval: (energy, low, high, power [W]).

    ``power_model``: a :class:`powerfit.power.board.BoardPowerLaw` (``power(u_c, u_m,
    limit)``, ``interval(...)``), or None for the bundled law of the GPU
    (:func:`powerfit.power.bundle.board_law_for`: fitted on measured board power,
    transferred elsewhere, the prior when nothing is bundled); a paper
    :class:`powerfit.power.law.PowerFit` (``power(u)``) is accepted too. ``u_c`` and
    ``u_m`` come from the graph and ``latency_s``
    (:func:`powerfit.power.board.step_fractions`). The interval here is the power's
    only (the step time taken as exact).
    """
    from powerfit.power.board import step_fractions

    pm = _power_model(gpu) if power_model is None else power_model
    u_c, u_m = step_fractions(graph, latency_s, gpu)
    if hasattr(pm, "k_m"):
        p = float(pm.power(u_c, u_m, power_limit_w))
        lo, hi = (float(v) for v in pm.interval(u_c, u_m, power_limit_w))
    else:
        p = float(pm.power(u_c))
        lo, hi = (float(v) for v in pm.interval(u_c))
    return step_s * p, step_s * lo, step_s * hi, p


def gpu_power_model(gpu: str) -> Any:
    """The bundled power law of a GPU (``power(u)``, ``interval(u)``), else the unfitted prior."""
    return _power_model(gpu)


def _power_model(gpu: str) -> Any:
    """The bundled board power law of a GPU (fitted, transferred, or the prior)."""
    from powerfit.power.bundle import board_law_for

    return board_law_for(gpu)


def run_energy(
    energy_j: float,
    *,
    steps: int | None = None,
    tokens: int | None = None,
    tokens_per_step: int | None = None,
    grid_intensity: float | None = None,
    pue: float = 1.0,
) -> dict[str, float]:
    """Energy [kWh] and emissions [kg CO₂] of a whole run.

    ``run_energy_kwh = N · energy_j / 3.6e6`` with N the steps (``steps``, or
    ``ceil(tokens / tokens_per_step)``); ``co2_kg = kWh · G / 1000 · PUE`` with G the
    grid's carbon intensity [gCO₂/kWh].

    Examples
    --------
    >>> run_energy(360.0, steps=10_000, grid_intensity=400, pue=1.2)
    {'steps': 10000, 'run_energy_kwh': 1.0, 'co2_kg': 0.48}
    """
    if (steps is None) == (tokens is None):
        raise ValueError("give exactly one of steps and tokens")
    if tokens is not None:
        if not tokens_per_step or tokens_per_step <= 0:
            raise ValueError("tokens needs tokens_per_step (batch_size · seq_len)")
        if tokens <= 0:
            raise ValueError(f"tokens must be positive, got {tokens}")
        steps = math.ceil(tokens / tokens_per_step)
    if steps is None or steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    if pue < 1.0:
        raise ValueError(f"pue must be ≥ 1, got {pue}")
    kwh = steps * energy_j / 3.6e6
    out: dict[str, float] = {"steps": int(steps), "run_energy_kwh": kwh}
    if grid_intensity is not None:
        if grid_intensity < 0:
            raise ValueError(f"grid_intensity must be ≥ 0, got {grid_intensity}")
        out["co2_kg"] = kwh * grid_intensity / 1000.0 * pue
    return out


@dataclass
class StepEstimate:
    """Time and energy of one step, with the graph and its per-row latencies."""

    step_time_s: float
    energy_j: float
    energy_interval_j: tuple[float, float]
    step_time_interval_s: tuple[float, float]
    power_w: float
    utilisation: float
    graph: pd.DataFrame
    latency_s: np.ndarray
    source: str
    warnings: list[str] = field(default_factory=list)
    #: the power law used: ``fitted`` (on this GPU's measured energy), ``transferred``
    #: (fractions of TDP from other GPUs) or ``prior`` (unfitted)
    power_source: str = "prior"
    #: the step's utilisation is outside the ones the power law was fitted on
    power_outside: bool = True
    #: per row, where its latency comes from (:data:`~powerfit.steps.latency.ROW_SOURCES`)
    row_source: np.ndarray | None = None
    #: the GPU's NVML name
    gpu: str = ""
    #: achieved fraction of DRAM bandwidth of the (unlimited) step [-]
    memory_utilisation: float = 0.0
    #: nominal 90 % interval of the average board power [W]
    power_interval_w: tuple[float, float] = (0.0, 0.0)
    #: the board's power limit [W] and the step's slowdown under it [-]
    power_limit_w: float = 0.0
    slowdown: float = 1.0

    def roofline_share(self) -> float:
        """Share [-] of the step time timed by the roofline (rows without laws)."""
        if self.row_source is None:
            return 1.0 if self.source == "roofline" else 0.0
        t = self.latency_s * self.graph["count"].to_numpy()
        total = float(t.sum())
        return float(t[self.row_source == "roofline"].sum() / total) if total > 0 else 0.0

    def breakdown(self, by: str = "op") -> pd.DataFrame:
        """Time per ``op``, ``phase`` or ``name`` [s], largest first."""
        t = self.graph.assign(time_s=self.latency_s * self.graph["count"].to_numpy())
        out = t.groupby(by, sort=False)[["time_s"]].sum()
        out["share"] = out.time_s / out.time_s.sum()
        return out.sort_values("time_s", ascending=False)


def estimate_step(
    config: ModelConfig,
    gpu: str,
    batch_size: int,
    seq_len: int,
    *,
    precision: str = "fp32",
    optimizer: str = "adamw",
    checkpointing: bool = False,
    operator_model: Any = None,
    specs_only: bool = False,
    calibration: Calibration | None = None,
    power_model: Any = None,
    relative_error: float = 0.15,
    half_width: float | None = None,
    graph: pd.DataFrame | None = None,
    power_limit_w: float | None = None,
) -> StepEstimate:
    """Time [s] and energy [J] of one training step of a model on a GPU.

    The step time's interval is ``[t·e^−q, t·e^q]`` with ``q = half_width`` (a log
    half-width, e.g. from :func:`powerfit.evaluation.steps.step_time_intervals`), or
    ``[t·(1 − r), t·(1 + r)]`` with ``r = relative_error`` when ``half_width`` is
    None. The energy interval is the step-time interval times the power interval.
    ``power_model``: see :func:`step_energy` (default: the bundled law of the GPU).
    ``graph``: a step graph built already (e.g. a traced one,
    :func:`powerfit.steps.graph.traced_step_graph`), used instead of ``config``'s.
    ``power_limit_w``: the board's power limit [W] (default TDP; refused outside the
    board's range): the power is capped and the step slowed
    (:meth:`powerfit.power.board.BoardPowerLaw.slowdown`).
    """
    from powerfit.power.board import step_fractions

    if graph is None:
        graph = training_step_graph(
            config, batch_size, seq_len, precision, optimizer, checkpointing
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lat, row_source, notes = operator_latency_sources(graph, gpu, operator_model, specs_only)
    notes = notes + [str(w.message) for w in caught]
    source = "roofline" if (row_source == "roofline").any() else "operator model"
    total = float(np.sum(lat * graph["count"].to_numpy()))
    if calibration is not None:
        summed = total
        total = calibration.apply(summed, n_ops=float(graph["count"].sum()))
        # rows share the calibrated total in proportion to their latencies
        lat = lat * (total / summed if summed > 0 else calibration.scale)
    pm = _power_model(gpu) if power_model is None else power_model
    u, u_m = step_fractions(graph, lat, gpu)
    slowdown, limit = 1.0, float(getattr(pm, "tdp_w", 0.0))
    if hasattr(pm, "slowdown"):
        limit = pm.check_limit(power_limit_w)
        slowdown = float(pm.slowdown(u, u_m, limit))
    elif power_limit_w is not None:
        raise ValueError("power_limit_w needs a board power law (powerfit.power.board)")
    e, lo, hi, p = step_energy(graph, gpu, lat, total, pm, power_limit_w)
    # under a binding limit the step runs slower at the capped power
    total, lat = total * slowdown, lat * slowdown
    e, lo, hi = e * slowdown, lo * slowdown, hi * slowdown
    if getattr(pm, "prior", False):
        power_source = "prior"
    else:
        power_source = "fitted" if pm.fitted else "transferred"
    power_outside = bool(pm.outside(u))
    if half_width is None:
        t_lo, t_hi = total * (1 - relative_error), total * (1 + relative_error)
    else:
        t_lo, t_hi = total * math.exp(-half_width), total * math.exp(half_width)
    p_lo, p_hi = (lo / total, hi / total) if total > 0 else (0.0, 0.0)
    if limit > 0:  # energy / time may round a bound at the limit past it
        p_lo, p_hi = min(p_lo, limit), min(p_hi, limit)
    return StepEstimate(
        step_time_s=total,
        energy_j=e,
        energy_interval_j=(t_lo * p_lo, t_hi * p_hi),
        step_time_interval_s=(t_lo, t_hi),
        power_w=p,
        utilisation=u,
        graph=graph,
        latency_s=lat,
        source=source,
        warnings=notes,
        power_source=power_source,
        power_outside=power_outside,
        row_source=row_source,
        gpu=_gpu(gpu).name,
        memory_utilisation=u_m,
        power_interval_w=(p_lo, p_hi),
        power_limit_w=limit,
        slowdown=slowdown,
    )
