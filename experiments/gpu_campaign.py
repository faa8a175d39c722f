"""The GPU measurement campaign: operation sweep + training steps, in a time budget.

Run on a machine with one NVIDIA GPU, PyTorch and nvidia-ml-py, from the repository
root (no installation needed)::

    PYTHONPATH=. python experiments/gpu_campaign.py --out "$OUT"

and, as a dry run on a CPU (time only, tiny shapes)::

    python experiments/gpu_campaign.py --out /tmp/campaign --quick

It writes four files into ``--out``:

``ops.csv``
    Operation measurements (canonical format): every elementary operation of the
    Transformer, LSTM and GRU layers over a random sample of shapes whose FLOPs span
    3–5 decades per operation, in a shuffled order.
``steps.csv``
    Training-step measurements (canonical run format) of about 100 BERT-like,
    GPT-2-like, LSTM and GRU models over the paper's ranges, per-step means and
    standard deviations of time and energy.
``environment.json``
    GPU, driver, CUDA, cuDNN and PyTorch versions, precision and TF32 switches, the
    energy counter's observed update interval and whether it moved in the first
    seconds, idle power before and after, the budget and what each phase did.
``campaign.log``
    Progress and a summary.

Time budget: ``--budget-s`` (default 450 s) counts from the start of the script,
imports included. Each phase gets a deadline (operations 45 % of what is left
after the probes, training steps the rest but a reserve); no operation or model
starts that would not end before its deadline, and the CSV files are rewritten
(atomically) as rows arrive, so that they are valid whenever the script stops. An
alarm 20 s after the budget interrupts a phase that overruns, and the files are
still written.

Only PyTorch, NumPy, pandas and nvidia-ml-py are imported (no SQLAlchemy, MLflow or
scikit-learn). Read the results on any machine with ``powerfit ingest``.
"""

from __future__ import annotations

import time

_START = time.monotonic()  # the budget counts from here, imports included

import argparse  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

# The script runs from a checkout without installation.
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

log = logging.getLogger("powerfit.campaign")


class _BudgetExceeded(BaseException):
    """Raised by the alarm when a phase overruns the budget."""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--budget-s", type=float, default=450.0, help="wall-clock budget [s]")
    parser.add_argument("--device", default="auto", help="'cuda', 'cuda:N' or 'cpu'")
    parser.add_argument("--meter", default="auto", choices=("auto", "nvml", "none"))
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "tf32", "fp16", "bf16"),
        help="default: tf32 on Ampere or later (torch.backends.cuda.matmul.allow_tf32)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes: a dry run on a CPU")
    parser.add_argument("--n-steps", type=int, default=None, help="training-step configurations")
    parser.add_argument("--ops-share", type=float, default=0.45, help="budget share of the ops")
    parser.add_argument("--vocab-size", type=int, default=8192, help="vocabulary of the models")
    parser.add_argument(
        "--max-step-s", type=float, default=0.25, help="longest expected training step [s]"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="PyTorch CPU threads (1 with --quick)"
    )
    parser.add_argument(
        "--ops-energy-window",
        type=float,
        default=None,
        help="metered region per operation [s] (default: 3 counter intervals, 0.05-0.3 s; "
        "0: time only)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.budget_s <= 0:
        parser.error("--budget-s must be > 0")
    if not 0 < args.ops_share < 1:
        parser.error("--ops-share must be between 0 and 1")
    return args


def _setup_logging(out: Path) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    root = logging.getLogger("powerfit")
    root.setLevel(logging.INFO)
    for handler in (logging.FileHandler(out / "campaign.log", mode="w"), logging.StreamHandler()):
        handler.setFormatter(fmt)
        root.addHandler(handler)


def _elapsed() -> float:
    return time.monotonic() - _START


class _Collector:
    """Collects rows from a benchmark's progress callback and checkpoints them to a file."""

    def __init__(self, path: Path, columns: tuple[str, ...], every_s: float, label: str) -> None:
        self.path, self.columns, self.every_s, self.label = path, columns, every_s, label
        self.rows: list[dict[str, Any]] = []
        self._written = time.monotonic()
        self.write()

    def __call__(self, done: int, total: int, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if time.monotonic() - self._written >= self.every_s:
            self.write()
            log.info("%s: %d/%d done (t=%.0f s)", self.label, done, total, _elapsed())

    def frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(self.columns))

    def write(self) -> None:
        from powerfit.measure import write_table

        write_table(self.frame(), self.path)
        self._written = time.monotonic()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _setup_logging(out)
    budget_end = _START + args.budget_s
    log.info("campaign start; budget %.0f s; output %s", args.budget_s, out)

    def alarm(signum: int, frame: Any) -> None:
        raise _BudgetExceeded

    if hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGALRM, alarm)
        signal.alarm(max(1, math.ceil(budget_end - time.monotonic() + 20)))

    import pandas as pd
    import torch

    from powerfit.formats import OPERATION_COLUMNS, RUN_COLUMNS
    from powerfit.measure import counter_resolution, make_meter, write_json
    from powerfit.measure.device import (
        default_precision,
        environment,
        precision_mode,
        resolve_device,
    )
    from powerfit.measure.ops import benchmark_operations, operation_efficiency, operation_sweep
    from powerfit.measure.steps import measure_steps, step_sweep

    heavy = sorted(m for m in ("sqlalchemy", "mlflow", "sklearn", "scipy") if m in sys.modules)
    if heavy:
        log.warning("unexpected heavy imports: %s", ", ".join(heavy))
    log.info("imports done at t=%.1f s (torch %s)", _elapsed(), torch.__version__)

    threads = 1 if args.threads is None and args.quick else args.threads
    if threads is not None:
        torch.set_num_threads(threads)
    device = resolve_device(args.device)
    precision = default_precision(device) if args.precision == "auto" else args.precision
    meter = make_meter(args.meter, device)
    if device.type == "cuda" and not meter.measures_energy:
        log.warning("no NVML energy meter on this GPU: measuring time only")
    cuda = device.type == "cuda"
    record: dict[str, Any] = {"budget_s": args.budget_s, "quick": args.quick, "seed": args.seed}
    env_path = out / "environment.json"
    ops_out = _Collector(out / "ops.csv", OPERATION_COLUMNS, 20.0, "ops")
    steps_out = _Collector(out / "steps.csv", RUN_COLUMNS, 10.0, "steps")

    def write_environment() -> None:
        with precision_mode(precision):  # record the TF32 switches as measured
            env = environment(device, precision, meter)
        env.update(record)
        env["elapsed_s"] = round(_elapsed(), 1)
        write_json(env, env_path)

    status = "complete"
    try:
        # -- probes: counter resolution and idle power, on an idle device ----------------
        if cuda:
            torch.cuda.init()
            torch.empty(1, device=device)  # create the context before measuring idle
            time.sleep(1.0 if not args.quick else 0.1)
        res = counter_resolution(meter, 0.5 if args.quick else 2.0)
        idle = res.mean_power_w if math.isfinite(res.energy_j) else meter.measure_idle(1.0)
        if math.isfinite(idle):
            meter.idle_power_w = idle
        record["counter"] = {
            "moved_in_first_seconds": res.moved,
            "update_interval_s": res.update_interval_s,
            "min_step": res.min_step_j,
            "updates": res.updates,
            "observed_s": res.duration_s,
        }
        record["idle_power_start_w"] = idle
        log.info(
            "meter %s: counter moved=%s, %d updates, interval %.1f ms, idle %.1f W",
            meter.name,
            res.moved,
            res.updates,
            1e3 * res.update_interval_s,
            idle,
        )
        write_environment()

        # -- phase 1: elementary operations ------------------------------------------
        reserve = 5.0 if args.quick else 20.0
        left = budget_end - reserve - time.monotonic()
        ops_deadline = time.monotonic() + args.ops_share * left
        configs = pd.concat(
            [
                operation_sweep(arch, quick=args.quick, seed=args.seed)
                for arch in ("transformer", "lstm", "gru")
            ],
            ignore_index=True,
        )
        if args.ops_energy_window is not None:
            window = args.ops_energy_window if meter.measures_energy else 0.0
        elif meter.measures_energy:
            interval = res.update_interval_s if math.isfinite(res.update_interval_s) else 0.1
            window = min(0.3, max(0.05, 3 * interval))
        else:
            window = 0.0
        record["ops"] = {"configs": len(configs), "energy_window_s": window}
        log.info("ops: %d configurations, energy window %.3f s", len(configs), window)
        t0 = time.monotonic()
        frame = benchmark_operations(
            configs,
            meter=meter,
            device=device,
            precision=precision,
            min_block_s=0.002 if args.quick else 0.01,
            energy_window_s=window,
            seed=args.seed,
            deadline=ops_deadline,
            progress=ops_out,
        )
        ops_out.write()
        record["ops"].update(
            rows=len(frame),
            skipped=frame.attrs["skipped"],
            unfinished=frame.attrs["unfinished"],
            seconds=round(time.monotonic() - t0, 1),
        )
        log.info("ops: %d rows in %.0f s", len(frame), time.monotonic() - t0)
        write_environment()

        # -- phase 2: training steps --------------------------------------------------
        steps_deadline = budget_end - reserve
        if cuda:
            total = torch.cuda.get_device_properties(device).total_memory
            speed = 150e12 if precision != "fp32" else 40e12  # a guess, to size the sweep
        else:
            total, speed = 4e9, 20e9
        configs = step_sweep(
            args.n_steps,
            quick=args.quick,
            vocab_size=None if args.quick else args.vocab_size,
            max_step_flops=math.inf if args.quick else args.max_step_s * speed,
            max_memory_bytes=0.6 * total,
            seed=args.seed,
        )
        record["steps"] = {
            "configs": len(configs),
            "vocab_size": int(configs["vocab_size"].iloc[0]),
        }
        log.info("steps: %d configurations", len(configs))
        t0 = time.monotonic()
        frame = measure_steps(
            configs,
            meter=meter,
            device=device,
            precision=precision,
            warmup=1 if args.quick else 2,
            min_steps=3 if args.quick else 5,
            min_time_s=0.05 if args.quick else 0.5,
            deadline=steps_deadline,
            progress=steps_out,
        )
        steps_out.write()
        record["steps"].update(
            rows=len(frame),
            skipped=frame.attrs["skipped"],
            unfinished=frame.attrs["unfinished"],
            seconds=round(time.monotonic() - t0, 1),
        )
        log.info("steps: %d rows in %.0f s", len(frame), time.monotonic() - t0)
        if meter.measures_energy:
            record["idle_power_end_w"] = meter.measure_idle(1.0)
    except _BudgetExceeded:
        status = "stopped by the budget alarm"
        log.warning("budget exceeded: writing what was measured")
    except Exception as exc:  # write what was measured, then report the failure
        status = f"failed: {type(exc).__name__}: {exc}"
        log.exception("campaign failed")
    finally:
        if hasattr(signal, "SIGALRM"):
            signal.alarm(0)
        ops_out.write()
        steps_out.write()
        record["status"] = status
        record["rows"] = {"ops": len(ops_out.rows), "steps": len(steps_out.rows)}
        try:
            write_environment()
        finally:
            meter.close()
    _summary(ops_out.frame(), steps_out.frame(), operation_efficiency)
    log.info("campaign %s in %.0f s; files in %s", status, _elapsed(), out)
    return 0 if status == "complete" else 1


def _summary(ops: Any, steps: Any, efficiency: Any) -> None:
    if len(ops):
        eta = efficiency(ops)
        grouped = ops.assign(eta=eta).groupby(["arch", "operation"])
        for (arch, op), g in grouped:
            log.info(
                "  %-11s %-17s n=%3d FLOP %.1e..%.1e  eta median %s",
                arch,
                op,
                len(g),
                g["flops"].min(),
                g["flops"].max(),
                f"{100 * g['eta'].median():.1f} %" if g["eta"].notna().any() else "n/a",
            )
    if len(steps):
        for model, g in steps.groupby("model"):
            energy = g["energy_j"]
            log.info(
                "  %-5s n=%3d step %.3g..%.3g s  energy %s",
                model,
                len(g),
                g["duration_s"].min(),
                g["duration_s"].max(),
                f"{energy.min():.3g}..{energy.max():.3g} J" if energy.notna().any() else "n/a",
            )


if __name__ == "__main__":
    sys.exit(main())
