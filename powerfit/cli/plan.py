"""``powerfit plan``: which GPUs, how many and which split for a training run.

:func:`powerfit.plan.planner.plan_training` with the command's options; ``--json``
prints the options sorted by the objective, ``--plot FILE`` draws run energy against
run time with the Pareto front (matplotlib, headless).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from powerfit.kernels.attention_kernels import ATTENTION_KERNELS
from powerfit.kernels.loss_kernels import LOSS_KERNELS

HELP = """\
Enumerate the runs of a Hugging Face model over the GPUs available (GPU kind, count,
tensor and pipeline parallel degrees, ZeRO sharding, micro-batch, activation
checkpointing) that fit in memory, rank them by energy, time or CO2, and mark the
Pareto front of energy against time.

examples:
  powerfit plan --hf-config llama-2-13b/config.json --tokens 2e12 --seq-len 4096 \\
      --gpus-available h100:16,a100-sxm4-80gb:32 --objective energy --json
  powerfit plan --hf-config gpt2-large/config.json --tokens 1e10 --seq-len 1024 \\
      --gpus-available a100-sxm4-40gb:8 --plot front.png
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``plan`` sub-command."""
    parser = subparsers.add_parser(
        "plan",
        help="rank the GPU kinds, counts and splits of a training run",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--hf-config",
        type=Path,
        required=True,
        help="a Hugging Face config.json or the model's folder (no download)",
    )
    parser.add_argument("--tokens", type=float, required=True, help="training tokens [-]")
    parser.add_argument("--seq-len", type=int, required=True, help="tokens per sequence [-]")
    parser.add_argument(
        "--gpus-available",
        required=True,
        help="GPU kinds and counts, e.g. h100:16,a100-sxm4-80gb:32 (`powerfit gpus`)",
    )
    parser.add_argument(
        "--batch-size", type=int, help="global batch [sequences] (default 4 M tokens)"
    )
    parser.add_argument(
        "--precision",
        default="amp-bf16",
        choices=("fp32", "tf32", "fp16", "bf16", "amp-fp16", "amp-bf16"),
        help="precision of the steps (default amp-bf16)",
    )
    parser.add_argument(
        "--optimizer", default="adamw", choices=("adamw", "sgd"), help="default adamw"
    )
    parser.add_argument(
        "--objective",
        default="energy",
        choices=("energy", "time", "co2"),
        help="sort by run energy, run time or CO2 (default energy)",
    )
    parser.add_argument(
        "--attention",
        default="auto",
        choices=("auto", "eager", "sdpa", "flash"),
        help="attention kernels, as estimate --hf-config (default auto: fused SDPA where "
        "transformers uses it)",
    )
    parser.add_argument(
        "--attention-kernel",
        dest="attention_kernel",
        choices=ATTENTION_KERNELS,
        help="kernel of a fused attention, as estimate --hf-config (default: the config's, "
        "else fa2)",
    )
    parser.add_argument(
        "--loss-kernel",
        dest="loss_kernel",
        default="torch",
        choices=LOSS_KERNELS,
        help="the cross-entropy's kernels, as estimate --hf-config (default torch)",
    )
    parser.add_argument("--gpus-per-node", type=int, default=8, help="default 8")
    parser.add_argument(
        "--interconnect",
        help="between nodes: vidur (default), ib-hdr, ib-ndr, roce-200g, eth-100g, or GB/s",
    )
    parser.add_argument(
        "--node-power-w", type=float, default=0.0, help="host power per node [W] (default 0)"
    )
    parser.add_argument("--grid-intensity", type=float, help="gCO2/kWh (default 475)")
    parser.add_argument("--pue", type=float, default=1.0, help="data-centre PUE (default 1)")
    parser.add_argument("--plot", type=Path, help="draw energy against time to this image")
    parser.add_argument("--top", type=int, default=15, help="options printed (text)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def plot_front(result: dict[str, Any], path: Path) -> None:
    """Draw every option's run energy against run time, the Pareto front joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    by_gpu: dict[str, list[dict]] = {}
    for o in result["options"]:
        by_gpu.setdefault(o["gpu"], []).append(o)
    for gpu, opts in by_gpu.items():
        ax.scatter(
            [o["run_time_h"] / 24 for o in opts],
            [o["run_energy_kwh"] / 1e3 for o in opts],
            s=8,
            alpha=0.4,
            label=gpu,
        )
    front = sorted((o for o in result["options"] if o["pareto"]), key=lambda o: o["run_time_h"])
    ax.plot(
        [o["run_time_h"] / 24 for o in front],
        [o["run_energy_kwh"] / 1e3 for o in front],
        "k.-",
        label="Pareto front",
    )
    ax.set_xscale("log")
    ax.set_xlabel("run time [days]")
    ax.set_ylabel("run energy [MWh]")
    n = result["model"]["n_parameters"] / 1e9
    ax.set_title(f"{n:.3g} B parameters, {result['tokens']:.3g} tokens, {result['precision']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    """Run ``powerfit plan``."""
    from powerfit.plan.planner import parse_gpus_available, plan_training

    available = parse_gpus_available(args.gpus_available)
    result = plan_training(
        args.hf_config,
        args.tokens,
        args.seq_len,
        available,
        batch_size=args.batch_size,
        precision=args.precision,
        optimizer=args.optimizer,
        objective=args.objective,
        attention=args.attention,
        attention_kernel=args.attention_kernel,
        loss_kernel=args.loss_kernel,
        gpus_per_node=args.gpus_per_node,
        interconnect=args.interconnect,
        node_power_w=args.node_power_w,
        grid_intensity=args.grid_intensity,
        pue=args.pue,
    )
    if args.plot is not None:
        plot_front(result, args.plot)
    for note in result["warnings"]:
        print(f"warning: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(result["options"], indent=2))
        return 0
    print(
        f"{len(result['options'])} runs fit in memory ({result['considered']} considered), "
        f"sorted by {result['objective']}; * = Pareto front of energy against time"
    )
    print(
        f"{'':1} {'GPU':<24} {'N':>4} {'tp':>3} {'pp':>3} {'dp':>4} {'shard':>9} {'mb':>3} "
        f"{'ckpt':>9} {'step s':>8} {'GPU-h':>10} {'days':>7} {'MWh':>8} {'t CO2':>7} {'MFU':>5}"
    )
    for o in result["options"][: max(0, args.top)]:
        sp = o["split"]
        print(
            f"{'*' if o['pareto'] else ' '} {o['gpu'][:24]:<24} {sp['n_gpus']:>4} {sp['tp']:>3} "
            f"{sp['pp']:>3} {sp['dp']:>4} {sp['sharding']:>9} {sp['micro_batch']:>3} "
            f"{o['checkpointing']:>9} {o['step_time_s']:>8.3g} "
            f"{o['gpu_hours']:>10.4g} {o['run_time_h'] / 24:>7.3g} "
            f"{o['run_energy_kwh'] / 1e3:>8.4g} {o['co2_kg'] / 1e3:>7.3g} {100 * o['mfu']:>4.0f}%"
        )
    if args.plot is not None:
        print(f"plot: {args.plot}")
    return 0
