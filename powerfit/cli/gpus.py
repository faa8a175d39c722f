"""``powerfit gpus``: the GPUs powerfit knows, and adding one it does not."""

from __future__ import annotations

import argparse
import json

from powerfit.cli import add_format_arguments
from powerfit.cli.ingest import add_db_argument

HELP = """\
List the GPUs powerfit knows — its catalogue and the GPUs of the store — with their
specs (peak throughput per precision [FLOP/s], memory bandwidth [B/s], TDP [W], SM
count), the measurements the store holds for each and the laws bundled for each
(energy profiles; operator laws 'operators:<precision>', fitted on its own
measurements or '(transferred)' from its specs).

`powerfit gpus add` stores a GPU the catalogue lacks, by the name NVML reports
(nvidia-smi --query-gpu=name); `powerfit ingest` then accepts files measured on it.

examples:
  powerfit gpus
  powerfit gpus --json
  powerfit gpus add "NVIDIA GeForce RTX 3090" --peak-flops fp32=35.6T,fp16=71T \\
      --memory-bandwidth 0.936e12 --tdp 350 --sm-count 82
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``gpus`` sub-command and its ``add`` action."""
    parser = subparsers.add_parser(
        "gpus",
        help="list the GPUs powerfit knows; add one it does not",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_db_argument(parser)
    add_format_arguments(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    add = actions.add_parser(
        "add",
        help="store a GPU the catalogue lacks",
        description="Store a GPU the catalogue lacks, so that files measured on it ingest.",
    )
    add.add_argument("name", metavar="NAME", help="the GPU's name as NVML reports it")
    add.add_argument(
        "--peak-flops",
        required=True,
        metavar="PREC=FLOP/s,...",
        help="dense peak throughput per precision, e.g. fp32=82.6e12,tf32=82.6e12 "
        "(suffix T = 1e12, G = 1e9 accepted: fp32=82.6T)",
    )
    add.add_argument(
        "--memory-bandwidth", type=float, metavar="B/s", help="peak DRAM bandwidth [B/s]"
    )
    add.add_argument("--tdp", type=float, metavar="W", help="board power limit [W]")
    add.add_argument("--sm-count", type=int, metavar="N", help="streaming multiprocessors")
    add.add_argument("--memory", type=float, metavar="BYTES", help="memory [B]")
    add.add_argument(
        "--default-precision",
        metavar="PREC",
        help="precision of FP32 PyTorch matrix products (default: tf32 if a TF32 peak "
        "is given, else fp32)",
    )
    add.add_argument(
        "--replace", action="store_true", help="replace the specs of a GPU added before"
    )
    # Also accepted after ACTION; SUPPRESS keeps values given before it.
    add.add_argument("--db", metavar="URL", default=argparse.SUPPRESS, help="as for gpus")
    add.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    parser.set_defaults(func=run)


def _fmt(value: float | None, scale: float, digits: int = 4) -> str:
    return "-" if value is None else f"{value / scale:.{digits}g}"


def run(args: argparse.Namespace) -> int:
    """List the GPUs, or add one."""
    from powerfit.files import printable
    from powerfit.store import open_store
    from powerfit.store.gpus import add_gpu, list_gpus, parse_peak_flops

    with open_store(args.db) as store:
        if args.action == "add":
            spec = add_gpu(
                store.engine,
                args.name,
                parse_peak_flops(args.peak_flops),
                memory_bandwidth=args.memory_bandwidth,
                power_limit_w=args.tdp,
                sm_count=args.sm_count,
                memory_bytes=None if args.memory is None else int(args.memory),
                default_precision=args.default_precision,
                replace=args.replace,
            )
            if args.json:
                print(json.dumps({"name": spec.name, "peak_flops": spec.peak_flops}))
            else:
                peaks = ", ".join(f"{k} {v / 1e12:.4g}" for k, v in spec.peak_flops.items())
                print(f"added {printable(spec.name)!r} to {store.url} (peak TFLOP/s: {peaks})")
            return 0
        gpus = list_gpus(store.engine)
    if args.json:
        print(json.dumps(gpus, indent=2))
        return 0
    print(
        f"{'GPU':<28} {'origin':<9} {'FP32':>6} {'TF32':>6} {'FP16':>6} {'BW':>6} {'mem':>4} "
        f"{'TDP':>5} {'SMs':>4} {'ops':>7} {'runs':>6}  laws"
    )
    print(f"{'':<28} {'':<9} {'TFLOP/s':>20} {'TB/s':>6} {'':>4} {'W':>5}")
    for gpu in gpus:
        peaks = gpu["peak_flops"]
        print(
            f"{printable(gpu['name'])[:28]:<28} {gpu['origin']:<9} "
            f"{_fmt(peaks.get('fp32'), 1e12):>6} {_fmt(peaks.get('tf32'), 1e12):>6} "
            f"{_fmt(peaks.get('fp16'), 1e12):>6} {_fmt(gpu['memory_bandwidth'], 1e12, 3):>6} "
            f"{gpu['memory_type']:>4} {_fmt(gpu['power_limit_w'], 1, 4):>5} "
            f"{gpu['sm_count'] if gpu['sm_count'] is not None else '-':>4} "
            f"{gpu['operation_rows']:>7} {gpu['run_rows']:>6}  "
            f"{', '.join(gpu['profiles']) or '-'}"
        )
    return 0
