"""``powerfit estimate --hf-config``: a training step and a whole run of a Hugging Face model.

The estimate is :func:`powerfit.training.estimate_training` (its notes say how it is
made and where it extrapolates); ``--json`` prints the dict it returns. The model is
traced through transformers on the meta device (:mod:`powerfit.architectures.trace`,
cached on disk); ``--attention`` and ``--checkpointing`` say how the step runs, and
the text output says whether it fits in the GPU's memory. This module
exposes ``add_arguments(parser)`` and ``run(args) -> int``; the ``estimate``
sub-command calls them when ``--hf-config`` is given.

example::

  powerfit estimate --hf-config gpt2-large/config.json --gpu h100 --batch-size 4 \\
      --seq-len 1024 --precision amp-bf16 --attention sdpa --checkpointing selective \\
      --steps 50000 --grid-intensity 350 --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from powerfit.kernels.attention_kernels import ATTENTION_KERNELS
from powerfit.kernels.loss_kernels import LOSS_KERNELS

#: What each precision means for a training step (``--help`` and the output say it).
PRECISION_MEANING = {
    "fp32": "everything in fp32 on CUDA cores",
    "tf32": "matrix products on tensor cores in tf32, tensors in fp32",
    "fp16": "pure fp16: products, activations, norms, softmax, loss and optimizer in fp16",
    "bf16": "pure bf16: products, activations, norms, softmax, loss and optimizer in bf16",
    "amp-fp16": "mixed (torch.autocast fp16): products and element-wise in fp16; "
    "softmax, norms, loss and optimizer in fp32",
    "amp-bf16": "mixed (torch.autocast bf16): products and element-wise in bf16; "
    "softmax, norms, loss and optimizer in fp32 (slower than pure bf16)",
}


def _add(parser: argparse.ArgumentParser, *flags: str, **kwargs: Any) -> None:
    """Add an option unless the parser has it already (shared with ``estimate``)."""
    if any(flag in parser._option_string_actions for flag in flags):
        return
    parser.add_argument(*flags, **kwargs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--hf-config`` options to a parser (options it has are kept)."""
    _add(
        parser,
        "--hf-config",
        type=Path,
        help="a Hugging Face config.json or the model's folder (no download)",
    )
    _add(parser, "--gpu", help="GPU name or alias (e.g. 'NVIDIA H100 80GB HBM3', h100)")
    _add(parser, "--batch-size", dest="batch_size", type=float, help="sequences per step [-]")
    _add(parser, "--seq-len", dest="seq_len", type=float, help="tokens per sequence [-]")
    _add(
        parser,
        "--precision",
        default="fp32",
        choices=tuple(PRECISION_MEANING),
        help="precision of the step (default fp32). bf16/fp16: the whole step in half "
        "precision; amp-bf16/amp-fp16: automatic mixed precision as torch.autocast runs "
        "it, products and element-wise operators in half precision but softmax, "
        "normalisations, loss and optimizer in fp32, so more bytes move and the step "
        "is slower (GPT-2 large on an H100: amp-bf16 ≈ 1.2× bf16). Give the one your "
        "training script uses",
    )
    _add(
        parser,
        "--optimizer",
        default="adamw",
        choices=("adamw", "sgd", "none"),
        help="parameter update (default adamw)",
    )
    _add(
        parser,
        "--checkpointing",
        nargs="?",
        const="full",
        default="none",
        choices=("none", "full", "selective"),
        help="activation checkpointing: none (default), full (also a bare --checkpointing: "
        "every layer's forward again in the backward) or selective (the attention cores only)",
    )
    _add(
        parser,
        "--attention",
        default="auto",
        choices=("auto", "eager", "sdpa", "flash"),
        help="attention kernels: auto (default: what transformers runs for the model, SDPA "
        "where supported, else eager), eager, sdpa (fused) or flash (fp16/bf16 only); "
        "linear attention runs its fused kernels unless eager",
    )
    _add(
        parser,
        "--attention-kernel",
        dest="attention_kernel",
        choices=ATTENTION_KERNELS,
        help="kernel of a fused attention in fp16/bf16: fa2 (FlashAttention-2, SDPA's flash "
        "backend), cudnn (SDPA's cuDNN backend) or triton (Triton FlashAttention, "
        "llm-foundry's attn_impl: triton); default: the one the config names (MPT's "
        "attn_config.attn_impl), else fa2",
    )
    _add(
        parser,
        "--loss-kernel",
        dest="loss_kernel",
        choices=LOSS_KERNELS,
        help="the cross-entropy's kernels: torch (default: transformers' loss, the logits "
        "cast to fp32) or fused (one kernel each way on the half-precision logits: "
        "flash-attn's or Liger's, llm-foundry's default)",
    )
    _add(parser, "--steps", type=int, help="training steps of the whole run [-]")
    _add(parser, "--tokens", type=float, help="training tokens of the whole run [-]")
    _add(parser, "--grid-intensity", type=float, help="grid carbon intensity [gCO2/kWh]")
    _add(parser, "--pue", type=float, default=1.0, help="data-centre PUE [-] (default 1.0)")
    _add(
        parser,
        "--power-limit",
        dest="power_limit",
        type=float,
        help="NVML power limit of the board [W] (default its TDP): power capped, step slowed",
    )
    _add(
        parser,
        "--specs-only",
        action="store_true",
        help="predict as if this GPU had never been measured (specs and other GPUs only)",
    )
    _add(
        parser,
        "--db",
        metavar="URL",
        help="store whose GPUs (powerfit gpus add) are known besides the catalogue "
        "(default: POWERFIT_DB_URL, else the default store)",
    )
    _add(parser, "--json", action="store_true", help="print JSON")
    _add(parser, "--top", type=int, default=10, help="operators shown in the breakdown")
    add_parallel_arguments(parser)


def add_parallel_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a run over many GPUs (``--gpus N`` switches them on)."""
    group = parser.add_argument_group(
        "many GPUs (--gpus N; --batch-size is then the global batch of one optimizer step)"
    )
    group.add_argument("--gpus", type=int, help="GPUs of the run [-] (dp = N / (tp·pp))")
    group.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (default 1)")
    group.add_argument("--pp", type=int, default=1, help="pipeline stages, 1F1B (default 1)")
    group.add_argument(
        "--sharding",
        default="none",
        choices=("none", "optimizer", "gradients", "full"),
        help="ZeRO stage: optimizer=1, gradients=2, full=3 (FSDP FULL_SHARD)",
    )
    group.add_argument(
        "--micro-batch-size",
        dest="micro_batch_size",
        type=int,
        help="sequences per micro-batch (default: the replica's batch; 1 with --pp > 1)",
    )
    group.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per node (default 8)")
    group.add_argument(
        "--interconnect",
        help="between nodes: vidur (default, measured), ib-hdr, ib-ndr, roce-200g, "
        "eth-100g, or GB/s per GPU",
    )
    group.add_argument(
        "--node-power-w",
        dest="node_power_w",
        type=float,
        default=0.0,
        help="host power per node [W] added to the GPUs' (default 0: GPUs only)",
    )


#: Largest batch or sequence length accepted [-] (the store's SQL INTEGER).
_MAX_COUNT = 2**31 - 1


def _positive_int(value: Any, flag: str) -> int:
    if value is None:
        raise ValueError(f"{flag} is required with --hf-config")
    if value <= 0 or value != int(value) or value > _MAX_COUNT:
        raise ValueError(f"{flag} must be a positive integer ≤ {_MAX_COUNT:,}, got {value:g}")
    return int(value)


def estimate(args: argparse.Namespace) -> dict[str, Any]:
    """The estimate as a JSON-serialisable dict (what ``--json`` prints).

    :func:`powerfit.training.estimate_training` with the command's options (errors
    name the options).
    """

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
    if args.gpu is None:
        raise ValueError("--gpu is required with --hf-config")
    batch = _positive_int(args.batch_size, "--batch-size")
    seq = _positive_int(args.seq_len, "--seq-len")
    if args.steps is not None and args.tokens is not None:
        raise ValueError("give --steps or --tokens, not both")
    if args.steps is None and args.tokens is None and args.grid_intensity is not None:
        raise ValueError("--grid-intensity needs --steps or --tokens")
    parallel_only = {
        "--tp": getattr(args, "tp", 1) != 1,
        "--pp": getattr(args, "pp", 1) != 1,
        "--sharding": getattr(args, "sharding", "none") != "none",
        "--micro-batch-size": getattr(args, "micro_batch_size", None) is not None,
        "--interconnect": getattr(args, "interconnect", None) is not None,
        "--node-power-w": bool(getattr(args, "node_power_w", 0.0)),
    }
    given = [flag for flag, on in parallel_only.items() if on]
    if given and getattr(args, "gpus", None) is None:
        raise ValueError(f"{', '.join(given)} need --gpus N (a run over several GPUs)")
    with _store_gpus(args.gpu, getattr(args, "db", None)):
        if getattr(args, "gpus", None) is not None:
            from powerfit.plan.runs import estimate_parallel_training

            return estimate_parallel_training(
                args.hf_config,
                args.gpu,
                args.gpus,
                batch,
                seq,
                tp=args.tp,
                pp=args.pp,
                micro_batch=args.micro_batch_size,
                sharding=args.sharding,
                gpus_per_node=args.gpus_per_node,
                interconnect=args.interconnect,
                node_power_w=args.node_power_w,
                **_step_and_run_options(args),
            )
        return _estimate_training(args, batch, seq)


@contextlib.contextmanager
def _store_gpus(gpu: str, db: str | None) -> Iterator[None]:
    """Within the block, the store's GPUs (``powerfit gpus add``) are known by name.

    The store is opened only for a GPU the catalogue lacks (and only if it exists).
    """
    from powerfit.hardware.gpus import extra_gpus, get_gpu

    try:
        get_gpu(gpu)
    except ValueError:
        specs = _user_gpus(db)
        if specs:
            with extra_gpus(specs):
                yield
            return
    yield


def _user_gpus(db: str | None) -> list[Any]:
    """Specs of the store's GPUs beyond the catalogue; none when there is no store yet."""
    from pathlib import Path

    from powerfit.store import open_store, resolve_url
    from powerfit.store.gpus import store_gpus

    url = resolve_url(db)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
        return []
    with open_store(url) as store:
        return [spec for spec, _origin in store_gpus(store.engine).values()]


def _step_and_run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options one GPU's step and a whole run share, on one GPU or many."""
    return {
        "precision": args.precision,
        "optimizer": args.optimizer,
        "checkpointing": getattr(args, "checkpointing", None) or "none",
        "attention": getattr(args, "attention", None) or "auto",
        "attention_kernel": getattr(args, "attention_kernel", None),
        "loss_kernel": getattr(args, "loss_kernel", None) or "torch",
        "specs_only": bool(getattr(args, "specs_only", False)),
        "steps": args.steps,
        "tokens": args.tokens,
        "grid_intensity": args.grid_intensity,
        "pue": args.pue,
    }


def _estimate_training(args: argparse.Namespace, batch: int, seq: int) -> dict[str, Any]:
    from powerfit.training import estimate_training

    return estimate_training(
        args.hf_config,
        args.gpu,
        batch,
        seq,
        **_step_and_run_options(args),
        top=int(getattr(args, "top", 10)),
        power_limit_w=getattr(args, "power_limit", None),
    )


def run(args: argparse.Namespace) -> int:
    """Run ``powerfit estimate --hf-config ...``; print text or ``--json``."""
    from powerfit.cli import refuse_non_finite

    result = estimate(args)
    refuse_non_finite(result, "the estimate")
    for note in result["warnings"]:
        print(f"warning: {note}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2))
        return 0
    if "split" in result:
        return _print_parallel(result)
    t_lo, t_hi = result["step_time_interval_s"]
    e_lo, e_hi = result["energy_interval_j"]
    print(
        f"{result['model']['family']} ({result['model']['n_parameters'] / 1e9:.3g} B parameters) "
        f"on {result['gpu']}, batch {result['batch_size']} × {result['seq_len']} tokens, "
        f"{result['precision']}, {result['optimizer']} [{result['mode']}]"
    )
    print(f"precision: {result['precision']} = {PRECISION_MEANING[result['precision']]}")
    if result.get("attention"):
        kernel = result.get("attention_kernel")
        kernel = f" ({kernel} kernel)" if kernel else ""
        print(
            f"attention: {result['attention']}{kernel}, checkpointing: {result['checkpointing']}, "
            f"loss: {result.get('loss_kernel') or 'torch'}"
        )
    print(f"step time: {result['step_time_s']:.4g} s  [{t_lo:.3g}, {t_hi:.3g}]")
    print(
        f"energy:    {result['energy_j']:.4g} J  [{e_lo:.3g}, {e_hi:.3g}] "
        f"at {result['power_w']:.0f} W"
    )
    p_lo, p_hi = result["power_interval_w"]
    print(
        f"power:     {result['power_w']:.0f} W  [{p_lo:.0f}, {p_hi:.0f}] per GPU "
        f"(limit {result['power_limit_w']:.0f} W, {result['power_model']['source']} law)"
    )
    print("power limit trade-off (limit W: step s, power W, energy J):")
    for row in result["power_limit_tradeoff"]:
        print(
            f"  {row['power_limit_w']:6.0f}: {row['step_time_s']:.4g} s, "
            f"{row['power_w']:.0f} W, {row['energy_j']:.4g} J"
        )
    if result.get("memory") is not None:
        mem = result["memory"]
        if result.get("fits_in_memory") is None:  # a GPU of unknown memory
            print(f"memory:    {result['memory_gb']:.1f} GB peak (the GPU's memory is unknown)")
        else:
            verdict = "fits" if result["fits_in_memory"] else "DOES NOT FIT"
            print(
                f"memory:    {result['memory_gb']:.1f} GB peak of {mem['capacity_gb']:.1f} GB: "
                f"{verdict}"
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


def _print_parallel(r: dict[str, Any]) -> int:
    """The text of an estimate over many GPUs."""
    sp = r["split"]
    nodes = f"{sp['n_nodes']} node{'s' if sp['n_nodes'] != 1 else ''}"
    print(
        f"{r['model']['family']} ({r['model']['n_parameters'] / 1e9:.3g} B parameters) on "
        f"{sp['n_gpus']} × {r['gpu']} ({nodes}), tp {sp['tp']} × pp {sp['pp']} × "
        f"dp {sp['dp']}, sharding {sp['sharding']}, batch {sp['batch_size']} = "
        f"{sp['micro_batches']} × {sp['micro_batch']} per replica, {r['precision']}"
    )
    parts = r["parts"]
    print(
        f"step time: {r['step_time_s']:.4g} s (compute {parts['compute_s']:.3g}, tp "
        f"{parts['tp_comm_s']:.3g}, bubble {parts['bubble_s']:.3g}, dp exposed "
        f"{parts['dp_exposed_s']:.3g} of {parts['dp_comm_s']:.3g}, optimizer "
        f"{parts['optimizer_s']:.3g})"
    )
    print(
        f"energy:    {r['energy_j']:.4g} J per step, all GPUs at {r['power_per_gpu_w']:.0f} W "
        f"each; {r['host_power_note']}"
    )
    mem = r["memory"]
    fits = {True: "fits", False: "does NOT fit", None: "capacity unknown"}[r["fits_in_memory"]]
    print(
        f"memory:    {mem['memory_gb']:.1f} GB per GPU of {mem.get('capacity_gb', 0):.0f} "
        f"({fits}); attention {r['attention']}, checkpointing {r['checkpointing']}, "
        f"loss {r.get('loss_kernel', 'torch')}; "
        f"MFU {100 * r['mfu']:.1f} %, "
        f"{r['tokens_per_s']:.4g} tokens/s"
    )
    if "run_energy_kwh" in r:
        print(
            f"run:       {r['steps']} steps, {r['gpu_hours']:.4g} GPU-hours, "
            f"{r['run_time_h']:.4g} h, {r['run_energy_kwh']:.4g} kWh, {r['co2_kg']:.4g} kg CO2 "
            f"at {r['grid_intensity_g_per_kwh']:g} gCO2/kWh"
        )
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
