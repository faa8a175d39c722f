"""A training run over many GPUs: one optimizer step's time, energy and memory, and the whole run.

:func:`estimate_parallel_training` is what ``powerfit estimate --hf-config F --gpus N``
prints with ``--json``: the split (:func:`powerfit.steps.parallel.make_split`), the
busiest GPU's step time with its parts (:func:`powerfit.steps.parallel.parallel_step_time`:
the GPU's tensor-parallel slice traced as ``estimate --hf-config`` traces one GPU), its
memory (:func:`powerfit.steps.memory.step_memory` of the traced step, split), and the energy of
**all** GPUs: ``N · P(u, u_m) · t`` with P the GPU's board power law
(:func:`powerfit.training.gpu_power_model`, as the single-GPU estimate) at the step's
compute utilisation ``u`` = the GPU's FLOP at the peak of each operator's precision / t,
as :func:`powerfit.steps.latency.utilisation`, and memory utilisation ``u_m`` = its
bytes / (bandwidth · t) (communication waits and the pipeline bubble lower both), plus
an optional host power per node (default 0 W, said in the output).

A run of ``steps`` or ``tokens`` gives ``gpu_hours = N · steps · t / 3600``,
``run_energy_kwh``, ``co2_kg`` (at ``grid_intensity``; default
:data:`DEFAULT_GRID_INTENSITY`, said in the output), ``mfu`` (the whole model's forward
and backward FLOP, without recomputation, over N · peak · t) and ``tokens_per_s``.
"""

from __future__ import annotations

import math
import os
from typing import Any

from powerfit.architectures.model import PRECISIONS, ModelConfig

__all__ = [
    "DEFAULT_GRID_INTENSITY",
    "estimate_parallel_training",
    "resolve_model",
    "split_memory",
    "traced_model",
]

#: World-average grid carbon intensity [gCO2/kWh] used when none is given (IEA, 2022:
#: about 460-480); the output says when it is used.
DEFAULT_GRID_INTENSITY = 475.0


def resolve_model(config: Any) -> ModelConfig:
    """A :class:`ModelConfig` from a ``config.json`` path, its dict or a ModelConfig."""
    from powerfit.architectures.hf import from_hf_config

    return config if isinstance(config, ModelConfig) else from_hf_config(config)


def traced_model(
    config: Any, gpu: str, seq_len: int, precision: str, attention: str = "auto"
) -> tuple[Any, dict[str, Any], Any, float]:
    """(model, ``config.json`` dict, whole model's trace, FLOP per sequence) of a model.

    The trace (:func:`powerfit.architectures.cache.cached_trace`, on the meta device,
    ``attention`` and the GPU's generation as ``estimate --hf-config``) gives the
    memory (:func:`split_memory`), the whole model's forward and backward FLOP of one
    sequence (for the MFU) and is the tensor-parallel degree 1 slice. ``model`` is
    the hand-written :class:`ModelConfig` of the families that have one, else a
    :class:`powerfit.steps.parallel.ModelShape` (heads, layers, width) for the split.
    """
    from powerfit.architectures.cache import cached_trace
    from powerfit.architectures.hf import FAMILIES, read_config_json
    from powerfit.hardware.gpus import get_gpu
    from powerfit.steps.graph import traced_step_graph
    from powerfit.steps.parallel import ModelShape

    if isinstance(config, ModelConfig):
        raise ValueError("a run over many GPUs needs the model's config.json (it is traced)")
    data, where = read_config_json(config)
    ampere = "bf16" in get_gpu(gpu).peak_flops
    trace, _hit = cached_trace(
        data, int(seq_len), attention=attention, precision=precision, ampere=ampere, source=where
    )
    full = traced_step_graph(trace, 1, precision, "none", "none")
    flop = float((full.flop * full["count"]).sum())
    if data.get("model_type") in FAMILIES:
        return resolve_model(data), data, trace, flop
    # a multimodal config's language model is in its text_config (traced alone)
    text = data.get("text_config") if isinstance(data.get("text_config"), dict) else {}
    keys = ("num_attention_heads", "n_head", "n_heads", "num_heads")
    heads = next((src[k] for src in (data, text) for k in keys if k in src), None)
    if heads is None:
        heads = 1  # no attention heads (Mamba): split by data and pipeline only
    if not isinstance(heads, int) or heads < 1:
        raise ValueError(f"{where}: no attention head count (num_attention_heads) to split")
    return ModelShape(heads, int(trace.layers), int(trace.d_model)), data, trace, flop


def split_memory(
    trace: Any,
    split: Any,
    precision: str,
    optimizer: str,
    checkpointing: str,
    capacity_bytes: float | None,
    loss_kernel: str = "torch",
) -> dict[str, Any]:
    """Memory of a split's busiest GPU (:func:`powerfit.steps.memory.step_memory`)."""
    from powerfit.steps.memory import step_memory

    return step_memory(
        trace,
        split.micro_batch,
        precision=precision,
        optimizer=optimizer,
        checkpointing=checkpointing,
        capacity_bytes=capacity_bytes,
        sharding=split.dp,
        sharded=split.sharding,
        tp=split.tp,
        pp=split.pp,
        in_flight=min(split.micro_batches, split.pp),
        loss_kernel=loss_kernel,
    )


def operator_setup(gpu: str, precision: str, specs_only: bool) -> tuple[Any, Any]:
    """(operator model, calibration) as :func:`powerfit.training.estimate_training` uses them."""
    from powerfit.steps.latency import bundled_operator_model
    from powerfit.steps.measured import calibrate_on_measured_steps

    operator_model = bundled_operator_model("fp32")
    calibration = None
    if operator_model is not None and not specs_only and precision == "fp32":
        calibration = calibrate_on_measured_steps(gpu, operator_model)
    return operator_model, calibration


def energy_and_run(
    step: Any,
    gpu: str,
    precision: str,
    seq_len: int,
    *,
    node_power_w: float = 0.0,
    steps: int | None = None,
    tokens: float | None = None,
    grid_intensity: float | None = None,
    pue: float = 1.0,
) -> dict[str, Any]:
    """Energy of one step of all GPUs and, with a run, the run (see the module notes)."""
    from powerfit.hardware.gpus import get_gpu, peak_flops
    from powerfit.training import gpu_power_model, run_energy

    split = step.split
    t = step.step_time_s
    peak = peak_flops(gpu, PRECISIONS[precision][0])
    u = min(1.0, step.busy_s / t) if t > 0 else 0.0
    bandwidth = get_gpu(gpu).memory_bandwidth
    u_m = min(1.0, step.moved_b / (bandwidth * t)) if t > 0 and bandwidth else 0.0
    law = gpu_power_model(gpu)
    # the board law of compute and memory utilisation (as the single-GPU estimate)
    args = (u, u_m) if hasattr(law, "k_m") else (u,)
    p_gpu = float(law.power(*args))
    p_lo, p_hi = (float(v) for v in law.interval(*args))
    if node_power_w < 0:
        raise ValueError(f"--node-power-w must be ≥ 0, got {node_power_w:g}")
    host_w = split.n_nodes * node_power_w
    energy = t * (split.n_gpus * p_gpu + host_w)
    out: dict[str, Any] = {
        "power_per_gpu_w": p_gpu,
        "power_per_gpu_interval_w": [p_lo, p_hi],
        "utilisation": u,
        "memory_utilisation": u_m,
        "node_power_w": float(node_power_w),
        "host_power_note": (
            f"host power {node_power_w:g} W per node × {split.n_nodes} nodes included"
            if node_power_w
            else "host power not included (--node-power-w, default 0 W per node): GPUs only"
        ),
        "energy_j": energy,
        "energy_interval_j": [
            t * (split.n_gpus * p_lo + host_w),
            t * (split.n_gpus * p_hi + host_w),
        ],
        "mfu": step.model_flop / (split.n_gpus * peak * t) if t > 0 else 0.0,
        "tokens_per_s": split.batch_size * seq_len / t if t > 0 else 0.0,
        "power_model_fitted": bool(getattr(law, "fitted", False)),
    }
    if steps is None and tokens is None:
        return out
    intensity = DEFAULT_GRID_INTENSITY if grid_intensity is None else float(grid_intensity)
    run = run_energy(
        energy,
        steps=steps,
        tokens=None if tokens is None else math.ceil(tokens),
        tokens_per_step=split.batch_size * seq_len,
        grid_intensity=intensity,
        pue=pue,
    )
    out.update(run)
    out["gpu_hours"] = split.n_gpus * run["steps"] * t / 3600.0
    out["run_time_h"] = run["steps"] * t / 3600.0
    out["grid_intensity_g_per_kwh"] = intensity
    if grid_intensity is None:
        out["grid_intensity_note"] = (
            f"grid intensity not given: world average {DEFAULT_GRID_INTENSITY:g} gCO2/kWh"
        )
    return out


def estimate_parallel_training(
    config: Any,
    gpu: str,
    n_gpus: int,
    batch_size: int,
    seq_len: int,
    *,
    tp: int = 1,
    pp: int = 1,
    micro_batch: int | None = None,
    sharding: str = "none",
    gpus_per_node: int = 8,
    interconnect: str | float | None = None,
    node_power_w: float = 0.0,
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
) -> dict[str, Any]:
    """One optimizer step of a model split over N GPUs, and optionally a whole run.

    Parameters
    ----------
    config : str, path-like or dict
        The model's ``config.json`` (no download; traced on the meta device).
    gpu : str
        GPU name or alias.
    n_gpus : int
        GPUs [-].
    batch_size : int
        Global batch of one optimizer step [sequences].
    seq_len : int
        Tokens per sequence [-].
    tp, pp : int
        Tensor- and pipeline-parallel degrees [-] (dp = N / (T·P)).
    micro_batch : int, optional
        Sequences per micro-batch (default: see :func:`powerfit.steps.parallel.make_split`).
    sharding : {'none', 'optimizer', 'gradients', 'full'}
        ZeRO stage (``full`` = ZeRO-3 = FSDP FULL_SHARD).
    gpus_per_node : int
        GPUs per node [-].
    interconnect : str or float, optional
        Between nodes (:func:`powerfit.kernels.collectives.parse_interconnect`).
    node_power_w : float
        Host power per node [W] (CPUs, memory, network), default 0.
    precision, optimizer, checkpointing, attention, attention_kernel, loss_kernel, specs_only
        As :func:`powerfit.training.estimate_training` (``checkpointing``: none, full,
        selective or a bool).
    steps, tokens, grid_intensity, pue
        As :func:`powerfit.training.estimate_training`.

    Returns
    -------
    dict
        JSON: ``split``, ``step_time_s`` [s], ``parts`` (the step's parts [s]),
        ``energy_j`` [J], ``power_per_gpu_w`` [W], ``utilisation``, ``mfu``,
        ``tokens_per_s``, ``memory`` (per GPU, ``fits_in_memory``), ``warnings``; with
        a run ``steps``, ``gpu_hours``, ``run_energy_kwh``, ``co2_kg``.
    """
    from powerfit.hardware.gpus import get_gpu
    from powerfit.kernels.attention_kernels import kernel_run, resolve_kernel
    from powerfit.kernels.collectives import Network
    from powerfit.kernels.loss_kernels import check_loss_kernel
    from powerfit.steps.graph import checkpointing_mode
    from powerfit.steps.parallel import make_split, parallel_step_time

    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if steps is not None and tokens is not None:
        raise ValueError("give steps or tokens, not both")
    spec = get_gpu(gpu)
    ckpt = checkpointing_mode(checkpointing)
    check_loss_kernel(loss_kernel)
    model, data, trace, flop = traced_model(config, spec.name, seq_len, precision, attention)
    kernel = resolve_kernel(data, attention_kernel)
    split = make_split(
        model,
        n_gpus,
        batch_size,
        tp=tp,
        pp=pp,
        micro_batch=micro_batch,
        sharding=sharding,
        gpus_per_node=gpus_per_node,
    )
    net = Network(spec.name, split.gpus_per_node, interconnect)
    operator_model, calibration = operator_setup(spec.name, precision, specs_only)
    step = parallel_step_time(
        model,
        spec.name,
        split,
        int(seq_len),
        precision=precision,
        optimizer=optimizer,
        checkpointing=ckpt,
        network=net,
        operator_model=operator_model,
        specs_only=specs_only,
        calibration=calibration,
        hf_config=data,
        attention=attention,
        attention_kernel=kernel,
        loss_kernel=loss_kernel,
        flop_per_sequence=flop,
    )
    memory = split_memory(trace, split, precision, optimizer, ckpt, spec.memory_bytes, loss_kernel)
    result: dict[str, Any] = {
        "model": {
            "family": trace.model_type,
            "class": trace.model_class,
            "n_parameters": trace.n_parameters,
            "config": os.fspath(config) if isinstance(config, (str, os.PathLike)) else None,
        },
        "gpu": spec.name,
        "seq_len": int(seq_len),
        "precision": precision,
        "optimizer": optimizer,
        "checkpointing": ckpt,
        "attention": trace.attention,
        "attention_kernel": kernel_run(trace.attention, precision, kernel),
        "loss_kernel": loss_kernel,
        "split": split.to_dict(),
        "interconnect": net.interconnect,
        "topology": net.topology,
        "step_time_s": step.step_time_s,
        "parts": step.breakdown(),
        "memory": memory,
        "fits_in_memory": memory.get("fits_in_memory"),
        "calibration_used": bool(calibration is not None and calibration.used),
    }
    result.update(
        energy_and_run(
            step,
            spec.name,
            precision,
            int(seq_len),
            node_power_w=node_power_w,
            steps=steps,
            tokens=tokens,
            grid_intensity=grid_intensity,
            pue=pue,
        )
    )
    notes = list(trace.warnings) + list(step.notes)
    if memory.get("fits_in_memory") is False:
        notes.append(
            f"does not fit: {memory['memory_gb']:.1f} GB per GPU needed, "
            f"{memory['capacity_gb']:.0f} GB on {spec.name}"
        )
    result["warnings"] = list(dict.fromkeys(notes))
    return result
