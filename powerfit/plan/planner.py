"""Which GPUs, how many and which split: every run that fits, ranked, and its Pareto front.

:func:`plan_training` enumerates, for each GPU kind available: GPU counts (powers of two
up to the number available, and that number), tensor-parallel degrees (powers of two
that divide the heads, within a node), pipeline degrees (powers of two up to the
layers), ZeRO sharding (``none``, ``optimizer``, ``gradients``, ``full``; only
``none`` without data parallelism), micro-batches of 1 to 8 sequences and activation
checkpointing (none, selective: the attention cores, full). The model's ``config.json``
is traced on the meta device once per GPU generation and tensor-parallel slice, as
``estimate --hf-config`` traces one GPU (``attention``: fused SDPA where transformers
uses it). A split is kept when it is possible (:func:`make_split`) and
fits in memory (:func:`powerfit.plan.runs.split_memory`, the traced step's memory
split); each kept one is timed
(:func:`parallel_step_time`, the micro-batch's operator timing shared by the splits of
the same GPU kind, T, micro-batch and checkpointing) and costed for the whole run
(:func:`powerfit.plan.runs.energy_and_run`). Options are sorted by the objective and
those on the Pareto front of run energy against run time are marked.
"""

from __future__ import annotations

import math
from typing import Any

from powerfit.plan.runs import energy_and_run, operator_setup, split_memory, traced_model

__all__ = ["OBJECTIVES", "pareto_front", "parse_gpus_available", "plan_training"]

#: Objective -> the option's key it minimises.
OBJECTIVES = {"energy": "run_energy_kwh", "time": "run_time_h", "co2": "co2_kg"}

#: Tokens of one optimizer step when no batch is given (Llama 2's 4 M tokens).
DEFAULT_BATCH_TOKENS = 4 * 1024**2


def parse_gpus_available(text: str) -> dict[str, int]:
    """``'h100:16,a100-sxm4-80gb:32'`` -> {catalogue name: count}.

    Raises
    ------
    ValueError
        A malformed item, a count that is not a positive integer, or an unknown GPU
        (one line naming it and ``powerfit gpus``).
    """
    from powerfit.hardware.gpus import get_gpu

    out: dict[str, int] = {}
    for item in (x.strip() for x in str(text).split(",")):
        if not item:
            continue
        name, sep, count = item.rpartition(":")
        if not sep or not name:
            raise ValueError(f"--gpus-available item {item!r} is not KIND:COUNT (e.g. h100:16)")
        try:
            n = int(count)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"--gpus-available {item!r}: the count must be a positive integer")
        try:
            spec = get_gpu(name)
        except ValueError:
            raise ValueError(
                f"--gpus-available: unknown GPU {name!r}; `powerfit gpus` lists the known ones"
            ) from None
        out[spec.name] = out.get(spec.name, 0) + n
    if not out:
        raise ValueError("--gpus-available lists no GPU (e.g. h100:16,a100-sxm4-80gb:32)")
    return out


def _slices(data: Any, tp: int) -> bool | None:
    """Whether T divides every head count the slice splits (linear attention's too);
    None when the model's slices cannot be traced at all."""
    from powerfit.steps.parallel import sliced_hf_config

    try:
        return None if sliced_hf_config(data, tp) is None else True
    except ValueError:
        return False


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """Which points no other point beats on both coordinates (both minimised)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front = [False] * len(points)
    best = math.inf
    for i in order:
        if points[i][1] < best:
            front[i] = True
            best = points[i][1]
    return front


def _powers(limit: int) -> list[int]:
    out, k = [], 1
    while k <= limit:
        out.append(k)
        k *= 2
    return out


def plan_training(
    config: Any,
    tokens: float,
    seq_len: int,
    gpus_available: dict[str, int] | str,
    *,
    batch_size: int | None = None,
    precision: str = "amp-bf16",
    optimizer: str = "adamw",
    objective: str = "energy",
    gpus_per_node: int = 8,
    interconnect: str | float | None = None,
    node_power_w: float = 0.0,
    grid_intensity: float | None = None,
    pue: float = 1.0,
    micro_batches: tuple[int, ...] = (1, 2, 4, 8),
    attention: str = "auto",
    checkpointing: tuple[str, ...] = ("none", "selective", "full"),
    attention_kernel: str | None = None,
    loss_kernel: str = "torch",
) -> dict[str, Any]:
    """Every run of a model over the GPUs available that fits in memory, ranked.

    Parameters
    ----------
    config : str, path-like or dict
        The model's ``config.json`` (traced on the meta device).
    tokens : float
        Training tokens of the run [-].
    seq_len : int
        Tokens per sequence [-].
    gpus_available : dict or str
        {GPU: count} or ``'h100:16,a100-sxm4-80gb:32'``.
    batch_size : int, optional
        Global batch [sequences]; default :data:`DEFAULT_BATCH_TOKENS` / ``seq_len``.
    precision, optimizer : str
        As :func:`powerfit.training.estimate_training` (default mixed BF16).
    objective : {'energy', 'time', 'co2'}
        What the options are sorted by (run energy, run wall time, emissions).
    gpus_per_node, interconnect, node_power_w, grid_intensity, pue
        As :func:`powerfit.plan.runs.estimate_parallel_training`.
    micro_batches : tuple of int
        Micro-batch sizes tried [sequences].
    attention : str, default "auto"
        As ``estimate --hf-config --attention``.
    checkpointing : tuple of str
        Activation checkpointing modes tried.
    attention_kernel : str, optional
        As ``estimate --hf-config --attention-kernel`` (default: the config's, else fa2).
    loss_kernel : {'torch', 'fused'}, default 'torch'
        As ``estimate --hf-config --loss-kernel``: the loss's kernels, in time and memory.

    Returns
    -------
    dict
        ``options`` (each: ``gpu``, ``split``, ``checkpointing``, ``step_time_s``,
        ``gpu_hours``, ``run_time_h``, ``run_energy_kwh``, ``co2_kg``, ``mfu``,
        ``tokens_per_s``, ``memory_gb``, ``fits_in_memory``, ``pareto``), sorted by
        the objective; ``considered`` and ``rejected`` counts (impossible or not
        fitting); the assumptions (``batch_size``, ``precision``, notes).
    """
    from powerfit.architectures.model import PRECISIONS
    from powerfit.hardware.gpus import get_gpu
    from powerfit.kernels.attention_kernels import check_attention_kernel, resolve_kernel
    from powerfit.kernels.collectives import Network
    from powerfit.kernels.loss_kernels import check_loss_kernel
    from powerfit.steps.memory import SHARDINGS
    from powerfit.steps.parallel import ModelShape, compute_profile, make_split, parallel_step_time

    if objective not in OBJECTIVES:
        raise ValueError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if attention_kernel is not None:
        check_attention_kernel(attention_kernel)
    check_loss_kernel(loss_kernel)
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if not tokens or tokens <= 0:
        raise ValueError(f"--tokens must be positive, got {tokens}")
    seq = int(seq_len)
    if seq < 1:
        raise ValueError(f"--seq-len must be a positive integer, got {seq_len}")
    available = (
        parse_gpus_available(gpus_available) if isinstance(gpus_available, str) else gpus_available
    )
    batch = int(batch_size) if batch_size else max(1, DEFAULT_BATCH_TOKENS // seq)
    notes: list[str] = []
    options: list[dict[str, Any]] = []
    considered = rejected = 0
    for gpu, count in available.items():
        spec = get_gpu(gpu)
        model, data, trace, flop = traced_model(config, spec.name, seq, precision, attention)
        notes.extend(trace.warnings)
        L = model.n_layers + model.n_decoder_layers
        net = Network(spec.name, gpus_per_node, interconnect)
        operator_model, calibration = operator_setup(spec.name, precision, False)
        profiles: dict[tuple[int, int, bool], Any] = {}
        counts = sorted(set(_powers(count)) | {count})
        tps = [t for t in _powers(min(gpus_per_node, count)) if model.n_heads % t == 0]
        if isinstance(model, ModelShape) and tps != [1]:
            if _slices(data, 2) is None:
                tps = [1]  # its tensor-parallel slice cannot be traced: data and pipeline only
                notes.append(
                    f"{data.get('model_type')}: tensor parallelism not considered (its slices "
                    "are not traced: its head width follows its head count)"
                )
            tps = [t for t in tps if t == 1 or _slices(data, t)]
        pps = [p for p in _powers(min(L, count)) if p == 1 or not model.is_encoder_decoder]
        for n in counts:
            for tp in tps:
                for pp in pps:
                    if n % (tp * pp):
                        continue
                    dp = n // (tp * pp)
                    if batch % dp:
                        continue
                    for sharding in SHARDINGS if dp > 1 else ("none",):
                        for mb in micro_batches:
                            for ckpt in checkpointing:
                                considered += 1
                                try:
                                    split = make_split(
                                        model,
                                        n,
                                        batch,
                                        tp=tp,
                                        pp=pp,
                                        micro_batch=mb,
                                        sharding=sharding,
                                        gpus_per_node=gpus_per_node,
                                    )
                                except ValueError:
                                    rejected += 1
                                    continue
                                mem = split_memory(
                                    trace,
                                    split,
                                    precision,
                                    optimizer,
                                    ckpt,
                                    spec.memory_bytes,
                                    loss_kernel,
                                )
                                if mem.get("fits_in_memory") is False:
                                    rejected += 1
                                    continue
                                key = (tp, mb, ckpt)
                                if key not in profiles:
                                    profiles[key] = compute_profile(
                                        model,
                                        spec.name,
                                        tp,
                                        mb,
                                        seq,
                                        precision=precision,
                                        optimizer=optimizer,
                                        checkpointing=ckpt,
                                        operator_model=operator_model,
                                        calibration=calibration,
                                        hf_config=data,
                                        attention=attention,
                                        attention_kernel=resolve_kernel(data, attention_kernel),
                                        loss_kernel=loss_kernel,
                                    )
                                    notes.extend(profiles[key].notes)
                                step = parallel_step_time(
                                    model,
                                    spec.name,
                                    split,
                                    seq,
                                    precision=precision,
                                    optimizer=optimizer,
                                    checkpointing=ckpt,
                                    network=net,
                                    profile=profiles[key],
                                    flop_per_sequence=flop,
                                )
                                run = energy_and_run(
                                    step,
                                    spec.name,
                                    precision,
                                    seq,
                                    node_power_w=node_power_w,
                                    tokens=tokens,
                                    grid_intensity=grid_intensity,
                                    pue=pue,
                                )
                                options.append(
                                    {
                                        "gpu": spec.name,
                                        "split": split.to_dict(),
                                        "checkpointing": ckpt,
                                        "step_time_s": step.step_time_s,
                                        "parts": step.breakdown(),
                                        "gpu_hours": run["gpu_hours"],
                                        "run_time_h": run["run_time_h"],
                                        "run_energy_kwh": run["run_energy_kwh"],
                                        "co2_kg": run["co2_kg"],
                                        "mfu": run["mfu"],
                                        "tokens_per_s": run["tokens_per_s"],
                                        "power_per_gpu_w": run["power_per_gpu_w"],
                                        "memory_gb": mem["memory_gb"],
                                        "fits_in_memory": mem.get("fits_in_memory"),
                                    }
                                )
        notes.extend(net.notes)
    key = OBJECTIVES[objective]
    options.sort(key=lambda o: (o[key], o["run_time_h"], o["run_energy_kwh"]))
    front = pareto_front([(o["run_time_h"], o["run_energy_kwh"]) for o in options])
    for o, on_front in zip(options, front, strict=True):
        o["pareto"] = on_front
    host = (
        f"host power {node_power_w:g} W per node included"
        if node_power_w
        else "host power not included (--node-power-w, default 0 W per node): GPUs only"
    )
    notes.append(host)
    if grid_intensity is None:
        from powerfit.plan.runs import DEFAULT_GRID_INTENSITY

        notes.append(
            f"grid intensity not given: world average {DEFAULT_GRID_INTENSITY:g} gCO2/kWh"
        )
    if batch_size is None:
        notes.append(f"global batch not given: {batch} sequences ({batch * seq} tokens) per step")
    return {
        "model": {"family": trace.model_type, "n_parameters": trace.n_parameters},
        "tokens": float(tokens),
        "seq_len": seq,
        "batch_size": batch,
        "precision": precision,
        "optimizer": optimizer,
        "loss_kernel": loss_kernel,
        "objective": objective,
        "gpus_available": dict(available),
        "considered": considered,
        "rejected": rejected,
        "options": options,
        "warnings": list(dict.fromkeys(notes)),
    }
