"""``powerfit measure``: take measurements on this machine's GPU (or CPU).

Three actions:

``ops``
    Micro-benchmarks of every elementary operation (:mod:`powerfit.measure.ops`);
    writes the canonical operation format.
``steps``
    Training steps of BERT-like, GPT-2-like, LSTM and GRU models
    (:mod:`powerfit.measure.steps`); writes the canonical run format.
``meter``
    Observes the energy meter: counter update interval and idle power.

PyTorch (and nvidia-ml-py for ``--meter nvml``) are imported only when an action runs.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

EXAMPLES = """\
examples:
  powerfit measure ops --device cpu --quick --out ops.csv
  powerfit measure ops --device cuda --arch transformer --out a100-ops.csv
  powerfit measure steps --device cuda --n-configs 100 --budget-s 600 --out steps.csv
  powerfit measure steps --configs my-models.csv --out steps.csv
  powerfit measure meter --device cuda --duration 2

The output files are read by `powerfit ingest` as they are: they carry the device's
specs (device_peak_flops, device_memory_bandwidth, device_power_limit_w: data-sheet
values for a catalogue GPU, measured ones otherwise, e.g. for a CPU).
--meter nvml needs an NVIDIA GPU and nvidia-ml-py; --meter none measures time only
(energy is left empty).
"""


def register(subparsers: Any) -> None:
    """Add the ``measure`` command and its actions to the top-level parser."""
    parser = subparsers.add_parser(
        "measure",
        help="measure operations and training steps on this machine's GPU (or its CPU)",
        description=(
            "Measure time [s] and energy [J] of elementary operations and training "
            "steps with PyTorch, and write them in powerfit's canonical formats."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    ops = actions.add_parser(
        "ops",
        help="time every elementary operation over a sweep of shapes",
        epilog="example:\n  powerfit measure ops --device cpu --quick --out ops.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(ops)
    ops.add_argument(
        "--arch",
        nargs="+",
        choices=("transformer", "lstm", "gru"),
        default=["transformer", "lstm", "gru"],
        help="architectures whose operations to time (default: all three)",
    )
    ops.add_argument("--repeats", type=int, default=3, help="timed blocks per operation")
    ops.add_argument(
        "--min-block",
        type=float,
        default=None,
        help="shortest timed block [s] (0.01; quick 0.002)",
    )
    ops.add_argument(
        "--energy-window",
        type=float,
        default=None,
        help="shortest metered region per operation [s] (default: 5 counter intervals; 0: none)",
    )
    ops.set_defaults(func=run, action_func=_run_ops)

    steps = actions.add_parser(
        "steps",
        help="measure real training steps of Transformer, LSTM and GRU models",
        epilog="example:\n  powerfit measure steps --device cpu --quick --out steps.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(steps)
    steps.add_argument(
        "--models",
        nargs="+",
        choices=("bert", "gpt2", "lstm", "gru"),
        default=["bert", "gpt2", "lstm", "gru"],
        help="model families (default: all four)",
    )
    steps.add_argument("--vocab-size", type=int, default=None, help="vocabulary (8192; quick 256)")
    steps.add_argument(
        "--attention", choices=("sdpa", "explicit"), default="sdpa", help="attention kernel"
    )
    steps.add_argument("--min-steps", type=int, default=None, help="fewest measured steps (5)")
    steps.add_argument(
        "--min-time", type=float, default=None, help="shortest measurement [s] (0.5; quick 0.05)"
    )
    steps.add_argument("--chunks", type=int, default=3, help="metered regions per configuration")
    steps.set_defaults(func=run, action_func=_run_steps)

    meter = actions.add_parser(
        "meter",
        help="observe the energy counter's update interval and the idle power",
        epilog="example:\n  powerfit measure meter --device cuda --duration 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _device_arguments(meter)
    meter.add_argument("--duration", type=float, default=2.0, help="observation time [s]")
    meter.set_defaults(func=run, action_func=_run_meter)


def _device_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default="auto", help="'cpu', 'cuda' or 'cuda:N' (default: a GPU if any)"
    )
    parser.add_argument(
        "--meter",
        choices=("auto", "nvml", "none"),
        default="auto",
        help="energy meter: nvml (GPU counter), none (time only), auto (nvml on a GPU)",
    )
    parser.add_argument(
        "--nvml-index", type=int, default=None, help="NVML device index (default: the CUDA GPU's)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="PyTorch CPU threads (default: PyTorch's; 1 with --quick, whose tiny shapes "
        "only lose from threading)",
    )


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output file (.csv, or .parquet)")
    _device_arguments(parser)
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "tf32", "fp16", "bf16", "amp-fp16", "amp-bf16"),
        default="auto",
        help="precision (default: tf32 on Ampere or later, else fp32). ops: fp16/bf16 time "
        "operations on half-precision tensors (amp-* is refused: it is a property of a "
        "training step). steps: amp-fp16/amp-bf16 run the step under torch.autocast "
        "(FP32 weights and optimizer); fp16/bf16 run the same and are recorded as amp-*",
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes, for a check on a CPU")
    parser.add_argument(
        "--n-configs",
        type=int,
        default=None,
        help="configurations (ops: per architecture, 80/60; steps: 100; quick: 3/4)",
    )
    parser.add_argument(
        "--configs", default=None, help="CSV of configurations to measure instead of the sweep"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls or steps first")
    parser.add_argument(
        "--budget-s", type=float, default=None, help="start nothing new after this many seconds"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sweep")


def _check(args: argparse.Namespace) -> None:
    for name in ("n_configs", "repeats", "min_steps", "chunks", "vocab_size", "threads"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    for name in ("min_block", "energy_window", "min_time", "budget_s"):
        value = getattr(args, name, None)
        if value is not None and not value >= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    if getattr(args, "warmup", 1) < 0:
        raise ValueError(f"--warmup must be >= 0, got {args.warmup}")
    if getattr(args, "duration", 1.0) <= 0:
        raise ValueError(f"--duration must be > 0, got {args.duration}")


def run(args: argparse.Namespace) -> int:
    """Run the chosen action; return the exit code."""
    _check(args)
    import torch

    from powerfit.measure import make_meter
    from powerfit.measure.device import default_precision, resolve_device

    threads = 1 if args.threads is None and getattr(args, "quick", False) else args.threads
    if threads is not None:
        torch.set_num_threads(threads)
    device = resolve_device(args.device)
    with make_meter(args.meter, device, index=args.nvml_index) as meter:
        if hasattr(args, "precision"):
            args.precision = (
                default_precision(device) if args.precision == "auto" else args.precision
            )
        return args.action_func(args, device, meter)


def _read_configs(path: str) -> Any:
    import pandas as pd

    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"--configs: no such file {path!r}") from None


def _deadline(args: argparse.Namespace) -> float | None:
    return None if args.budget_s is None else time.monotonic() + args.budget_s


def _progress(every: int) -> Any:
    def report(done: int, total: int, row: dict[str, Any]) -> None:
        if done % every == 0 or done == total:
            print(f"  {done}/{total}", file=sys.stderr, flush=True)

    return report


def _run_ops(args: argparse.Namespace, device: Any, meter: Any) -> int:
    import pandas as pd

    from powerfit.measure import write_table
    from powerfit.measure.ops import benchmark_operations, operation_efficiency, operation_sweep

    if args.precision.startswith("amp-"):
        raise ValueError(
            f"--precision {args.precision}: automatic mixed precision is a property of a "
            "training step (powerfit measure steps); time operations with fp16 or bf16"
        )
    if args.configs:
        configs = _read_configs(args.configs)
    else:
        configs = pd.concat(
            [
                operation_sweep(arch, args.n_configs, quick=args.quick, seed=args.seed)
                for arch in args.arch
            ],
            ignore_index=True,
        )
    start = time.perf_counter()
    frame = benchmark_operations(
        configs,
        meter=meter,
        device=device,
        precision=args.precision,
        warmup=args.warmup,
        repeats=args.repeats,
        min_block_s=(0.002 if args.quick else 0.01) if args.min_block is None else args.min_block,
        energy_window_s=args.energy_window,
        seed=args.seed,
        deadline=_deadline(args),
        progress=_progress(50),
    )
    frame = _with_specs(frame, device, args.precision, meter)
    path = write_table(frame, args.out)
    eta = operation_efficiency(frame)
    name = frame["gpu"].iloc[0] if len(frame) else "?"
    print(
        f"wrote {len(frame)} operation measurements to {path} in "
        f"{time.perf_counter() - start:.1f} s ({frame.attrs['skipped']} skipped, "
        f"{frame.attrs['unfinished']} not started; device {name}, {args.precision}, "
        f"meter {meter.name})"
    )
    if len(frame) and eta.notna().any():
        summary = eta.groupby([frame["arch"], frame["operation"]]).agg(["median", "max"])
        print("hardware efficiency [%] (median, max):")
        for (arch, op), row in summary.iterrows():
            print(f"  {arch:<12} {op:<18} {100 * row['median']:6.2f} {100 * row['max']:6.2f}")
    return 0


def _with_specs(frame: Any, device: Any, precision: str, meter: Any) -> Any:
    """The measurements with the device's specs appended (see powerfit.measure.output)."""
    from powerfit.measure.device import device_name
    from powerfit.measure.output import add_device_specs, device_specs

    if not len(frame):
        return frame
    name = str(frame["gpu"].iloc[0]) if "gpu" in frame.columns else device_name(device, meter)
    return add_device_specs(frame, device_specs(device, precision, name, frame, meter))


def _run_steps(args: argparse.Namespace, device: Any, meter: Any) -> int:
    from powerfit.measure import write_table
    from powerfit.measure.steps import measure_steps, step_sweep

    if args.configs:
        configs = _read_configs(args.configs)
    else:
        configs = step_sweep(
            args.n_configs,
            quick=args.quick,
            models=args.models,
            vocab_size=args.vocab_size,
            attention=args.attention,
            seed=args.seed,
        )
    # The harness runs half-precision steps under torch.autocast: that is amp-*.
    harness = args.precision.removeprefix("amp-")
    start = time.perf_counter()
    frame = measure_steps(
        configs,
        meter=meter,
        device=device,
        precision=harness,
        warmup=max(1, args.warmup),
        min_steps=(3 if args.quick else 5) if args.min_steps is None else args.min_steps,
        min_time_s=(0.05 if args.quick else 0.5) if args.min_time is None else args.min_time,
        chunks=args.chunks,
        attention=args.attention,
        deadline=_deadline(args),
        progress=_progress(10),
    )
    if harness in ("fp16", "bf16") and len(frame):
        frame["precision"] = f"amp-{harness}"
    frame = _with_specs(frame, device, harness, meter)
    path = write_table(frame, args.out)
    energy = frame["energy_j"]
    mean_energy = f"{energy.mean():.3g} J" if energy.notna().any() else "not measured"
    print(
        f"wrote {len(frame)} training-step measurements to {path} in "
        f"{time.perf_counter() - start:.1f} s ({frame.attrs['skipped']} skipped, "
        f"{frame.attrs['unfinished']} not started; mean step energy {mean_energy}, "
        f"meter {meter.name})"
    )
    return 0


def _run_meter(args: argparse.Namespace, device: Any, meter: Any) -> int:
    from powerfit.measure import counter_resolution

    res = counter_resolution(meter, args.duration)
    idle = meter.measure_idle(min(args.duration, 1.0)) if meter.measures_energy else math.nan
    print(f"meter {meter.name} on {device}")
    if not meter.measures_energy:
        print("  measures time only (no energy)")
        return 0
    print(f"  counter moved: {res.moved} ({res.updates} updates in {res.duration_s:.2f} s)")
    print(f"  update interval: {res.update_interval_s * 1e3:.1f} ms")
    print(f"  smallest step: {res.min_step_j:.4g}")
    print(f"  idle power: {idle:.1f} W")
    return 0
