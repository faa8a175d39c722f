"""Training-step benchmark: time [s] and energy [J] of real training steps.

Each configuration row is built into a model (:func:`powerfit.measure.models.build_model`)
and trained on synthetic tokens — forward, cross-entropy loss, backward, AdamW step —
on one batch kept on the device, so that no data loading is measured.

Measurement of one configuration: ``warmup`` untimed steps; then at least
``min_steps`` steps lasting at least ``min_time_s`` (and at least the meter's
shortest resolvable region), split into ``chunks`` metered regions. The row reports
per-step means: ``duration_s`` = total region time / steps, ``energy_j`` = total
region energy / steps; ``duration_std_s`` is the standard deviation of single steps
(CUDA events on a GPU), ``energy_std_j`` that of the per-step energy of the chunks
(it includes the counter's quantisation). Only the GPU is metered: ``energy_j`` and
``gpu_energy_j`` hold the same value, ``cpu_energy_j`` and ``ram_energy_j`` are
empty.

Precision: ``fp32``/``tf32`` train an FP32 model with TF32 off/on; ``fp16`` and
``bf16`` train under :func:`torch.autocast` (with a gradient scaler for ``fp16``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from powerfit.formats import RUN_COLUMNS
from powerfit.paper import flops as _flops

__all__ = [
    "STEP_COLUMNS",
    "estimate_step",
    "measure_step",
    "measure_steps",
    "step_sweep",
]

logger = logging.getLogger("powerfit.measure")

#: Configuration columns of a training-step sweep.
STEP_COLUMNS: tuple[str, ...] = (
    "model",
    "arch",
    "n_layers",
    "batch_size",
    "seq_len",
    "d_model",
    "n_heads",
    "d_ff",
    "input_size",
    "hidden_size",
    "vocab_size",
)

_TRANSFORMER_GRID = {
    "n_layers": (2, 4, 6, 8, 12),
    "d_model": (128, 256, 384, 512, 768, 1024, 1280),
    "n_heads": (2, 4, 8, 12, 16),
    "batch_size": (16, 32, 64, 128, 256),
    "seq_len": (128, 256, 512, 1024),
}
_RECURRENT_GRID = {
    "n_layers": (1, 2, 3, 4),
    "input_size": (128, 256, 512, 768, 1024),
    "hidden_size": (128, 256, 512, 768, 1024, 1280),
    "batch_size": (16, 32, 64, 128, 256),
    "seq_len": (4, 16, 32, 64, 128),
}
_QUICK_TRANSFORMER = {
    "n_layers": (1, 2),
    "d_model": (32, 64),
    "n_heads": (2, 4),
    "batch_size": (2, 4),
    "seq_len": (16, 32),
}
_QUICK_RECURRENT = {
    "n_layers": (1, 2),
    "input_size": (16, 32),
    "hidden_size": (16, 32),
    "batch_size": (2, 4),
    "seq_len": (4, 8),
}
_SHARES = {"bert": 0.35, "gpt2": 0.35, "lstm": 0.15, "gru": 0.15}


# ----------------------------------------------------------------------------- sweep
def estimate_step(config: Mapping[str, Any], *, attention: str = "sdpa") -> dict[str, float]:
    """Rough cost of one FP32 training step of a configuration.

    Parameters
    ----------
    config : mapping
        Run columns (see :func:`powerfit.measure.models.build_model`).
    attention : {'sdpa', 'explicit'}, default 'sdpa'
        Explicit attention keeps batch·heads·seq_len² scores per layer.

    Returns
    -------
    dict
        ``flops`` forward + backward FLOPs of the layers and the head [FLOP];
        ``memory_bytes`` parameters, gradients and Adam state (16 B per parameter)
        plus activations kept for the backward pass [B] — an estimate for choosing
        configurations, not a measurement.
    """
    from powerfit.measure.models import DEFAULT_VOCAB_SIZE, model_arch

    arch = model_arch(str(config["model"]))
    g = {k: config.get(k) for k in STEP_COLUMNS}
    n_layers, b, t = float(g["n_layers"]), float(g["batch_size"]), float(g["seq_len"])
    vocab = g["vocab_size"]
    vocab = float(DEFAULT_VOCAB_SIZE if vocab is None or vocab != vocab else vocab)
    tokens = b * t
    if arch == "transformer":
        d, h = float(g["d_model"]), float(g["n_heads"])
        d_ff = 4 * d if g["d_ff"] is None or g["d_ff"] != g["d_ff"] else float(g["d_ff"])
        layer = sum(
            _flops.layer_flops(
                arch, batch_size=b, seq_len=t, d_model=d, n_heads=h, d_ff=d_ff
            ).values()
        )
        forward = n_layers * layer + 2 * tokens * d * vocab
        params = n_layers * (4 * d * d + 2 * d * d_ff) + 2 * vocab * d + t * d
        per_token = n_layers * (12 * d + 2 * d_ff) + 3 * vocab
        if attention == "explicit":
            per_token += n_layers * 3 * h * t
    else:
        hidden = float(g["hidden_size"])
        inp = (
            hidden
            if g["input_size"] is None or g["input_size"] != g["input_size"]
            else float(g["input_size"])
        )
        first = sum(
            _flops.layer_flops(
                arch, batch_size=b, input_size=inp, hidden_size=hidden, seq_len=t
            ).values()
        )
        rest = sum(
            _flops.layer_flops(
                arch, batch_size=b, input_size=hidden, hidden_size=hidden, seq_len=t
            ).values()
        )
        forward = first + (n_layers - 1) * rest + 2 * tokens * hidden * vocab
        gates = 4 if arch == "lstm" else 3
        params = gates * hidden * (inp + hidden + (n_layers - 1) * 2 * hidden) + 2 * vocab * hidden
        per_token = n_layers * (gates + 3) * hidden + inp + 3 * vocab
    return {
        "flops": float(_flops.training_flops(forward)),
        "memory_bytes": float(16 * params + 4 * tokens * per_token),
    }


def step_sweep(
    n: int | None = None,
    *,
    quick: bool = False,
    models: Iterable[str] = ("bert", "gpt2", "lstm", "gru"),
    vocab_size: int | None = None,
    max_step_flops: float = math.inf,
    max_memory_bytes: float = math.inf,
    attention: str = "sdpa",
    seed: int = 0,
) -> pd.DataFrame:
    """Training-step configurations drawn at random over the paper's ranges.

    Transformers: layers 2–12, d_model 128–1280, heads 2–16 (dividing d_model),
    batch 16–256, seq_len 128–1024. LSTM/GRU: layers 1–4, embedding 128–1024,
    hidden 128–1280, batch 16–256, 4–128 time steps. The families share ``n`` as
    35 % BERT, 35 % GPT-2, 15 % LSTM, 15 % GRU (of those asked for); draws whose
    :func:`estimate_step` exceeds a limit are rejected.

    Parameters
    ----------
    n : int, optional
        Configurations [-]; 100 (4 with ``quick``).
    quick : bool, default False
        Tiny models for a fast check on a CPU.
    models : iterable of str, default all four
        Model families (``bert``, ``gpt2``, ``lstm``, ``gru``).
    vocab_size : int, optional
        Vocabulary of every model; :data:`~powerfit.measure.models.DEFAULT_VOCAB_SIZE`
        (256 with ``quick``).
    max_step_flops : float, optional
        Largest training-step FLOPs [FLOP].
    max_memory_bytes : float, optional
        Largest estimated memory [B].
    attention : {'sdpa', 'explicit'}, default 'sdpa'
        For the memory estimate.
    seed : int, default 0
        Seed of the draw.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`STEP_COLUMNS`, in a shuffled order (so that a run stopped
        early keeps a mix of families).
    """
    from powerfit.measure.models import DEFAULT_VOCAB_SIZE, model_arch

    models = list(models)
    for model in models:
        model_arch(model)
    if not models:
        raise ValueError("models must name at least one model family")
    if n is None:
        n = 4 if quick else 100
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    if vocab_size is None:
        vocab_size = 256 if quick else DEFAULT_VOCAB_SIZE
    rng = np.random.default_rng(seed)
    total = sum(_SHARES[m] for m in models)
    quotas = {m: max(1, round(n * _SHARES[m] / total)) for m in models}
    while sum(quotas.values()) > n and max(quotas.values()) > 1:
        quotas[max(quotas, key=quotas.get)] -= 1
    rows: list[dict[str, Any]] = []
    for model in models:
        arch = model_arch(model)
        if arch == "transformer":
            grid = _QUICK_TRANSFORMER if quick else _TRANSFORMER_GRID
        else:
            grid = _QUICK_RECURRENT if quick else _RECURRENT_GRID
        seen: set[tuple[int, ...]] = set()
        for _ in range(2000 * quotas[model]):
            if len(seen) >= quotas[model]:
                break
            draw = {k: int(rng.choice(v)) for k, v in grid.items()}
            key = tuple(draw.values())
            if key in seen or (arch == "transformer" and draw["d_model"] % draw["n_heads"]):
                continue
            row = {k: math.nan for k in STEP_COLUMNS}
            row.update(draw, model=model, arch=arch, vocab_size=vocab_size)
            if arch == "transformer":
                row["d_ff"] = 4 * draw["d_model"]
            cost = estimate_step(row, attention=attention)
            if cost["flops"] > max_step_flops or cost["memory_bytes"] > max_memory_bytes:
                continue
            seen.add(key)
            rows.append(row)
    frame = pd.DataFrame(rows, columns=list(STEP_COLUMNS))
    frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    for column in STEP_COLUMNS[2:]:
        frame[column] = frame[column].astype(float)
    return frame


# ----------------------------------------------------------------------- measurement
def _training_step(
    model: Any, tokens: Any, targets: Any, precision: str, device: Any
) -> Callable[[], None]:
    import torch
    from torch.nn import functional as F

    from powerfit.measure.device import precision_dtype

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    half = precision in ("fp16", "bf16")
    dtype = precision_dtype(precision)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def autocast() -> Any:
        if half:
            return torch.autocast(device.type, dtype=dtype)
        return contextlib.nullcontext()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            logits = model(tokens)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()

    return step


def measure_step(
    config: Mapping[str, Any],
    meter: Any,
    *,
    device: Any = "cpu",
    precision: str = "fp32",
    warmup: int = 2,
    min_steps: int = 5,
    min_time_s: float = 0.5,
    chunks: int = 3,
    attention: str = "sdpa",
    deadline: float | None = None,
) -> dict[str, float] | None:
    """Train one configuration for a few steps and measure them.

    Parameters
    ----------
    config : mapping
        Run columns (see :func:`powerfit.measure.models.build_model`).
    meter : Meter
        Energy meter (:func:`powerfit.measure.make_meter`).
    device : str or torch.device, default 'cpu'
        Device to train on.
    precision : {'fp32', 'tf32', 'fp16', 'bf16'}, default 'fp32'
        Precision (see the module notes).
    warmup : int, default 2
        Untimed steps first [-] (>= 1: the first step allocates the optimiser state).
    min_steps : int, default 5
        Fewest measured steps [-].
    min_time_s : float, default 0.5
        Shortest measurement [s]; at least ``meter.min_region_s``.
    chunks : int, default 3
        Metered regions the steps are split into, for ``energy_std_j`` [-].
    attention : {'sdpa', 'explicit'}, default 'sdpa'
        Attention implementation of a Transformer.
    deadline : float, optional
        :func:`time.monotonic` time by which the measurement must end; fewer steps
        (at least 2) are measured to meet it, and None is returned if even that
        cannot.

    Returns
    -------
    dict or None
        ``duration_s``, ``energy_j`` (NaN when not measured), ``duration_std_s``,
        ``energy_std_j`` per step [s, J], ``repeats`` steps measured.
    """
    import torch

    from powerfit.measure.device import precision_mode
    from powerfit.measure.models import DEFAULT_VOCAB_SIZE, build_model

    if warmup < 1:
        raise ValueError(f"warmup must be >= 1, got {warmup!r}")
    if min_steps < 1:
        raise ValueError(f"min_steps must be >= 1, got {min_steps!r}")
    if chunks < 1:
        raise ValueError(f"chunks must be >= 1, got {chunks!r}")
    device = torch.device(device)
    vocab = config.get("vocab_size")
    vocab = int(DEFAULT_VOCAB_SIZE if vocab is None or vocab != vocab else vocab)
    shape = (int(config["batch_size"]), int(config["seq_len"]))
    gen = torch.Generator(device="cpu").manual_seed(0)
    tokens = torch.randint(vocab, shape, generator=gen).to(device)
    targets = torch.randint(vocab, shape, generator=gen).to(device)
    model = build_model(config, attention=attention).to(device)
    model.train()
    cuda = device.type == "cuda"
    with precision_mode(precision):
        step = _training_step(model, tokens, targets, precision, device)
        meter.synchronize()
        times = []
        for _ in range(warmup):
            t0 = time.perf_counter()
            step()
            meter.synchronize()
            times.append(time.perf_counter() - t0)
        once = max(times[-1], 1e-6)
        wanted = max(min_time_s, meter.min_region_s)
        steps = max(min_steps, math.ceil(wanted / once), chunks)
        if deadline is not None:
            fit = int((deadline - time.monotonic()) / (1.2 * once))
            if fit < 2:
                return None
            steps = min(steps, fit)
        chunks = min(chunks, steps)
        per_chunk = [steps // chunks + (1 if i < steps % chunks else 0) for i in range(chunks)]
        durations, energies, step_times = [], [], []
        for count in per_chunk:
            events = []
            with meter.measure() as region:
                for _ in range(count):
                    if cuda:
                        start = torch.cuda.Event(enable_timing=True)
                        end = torch.cuda.Event(enable_timing=True)
                        start.record()
                        step()
                        end.record()
                        events.append((start, end))
                    else:
                        t0 = time.perf_counter()
                        step()
                        step_times.append(time.perf_counter() - t0)
            step_times.extend(s.elapsed_time(e) / 1e3 for s, e in events)
            durations.append(region.duration_s)
            energies.append(region.energy_j / count)
    total = sum(per_chunk)
    energy = float(np.sum(np.asarray(energies) * per_chunk) / total)
    return {
        "duration_s": float(np.sum(durations) / total),
        "energy_j": energy,
        "duration_std_s": float(np.std(step_times, ddof=1)) if total > 1 else math.nan,
        "energy_std_j": float(np.std(energies, ddof=1))
        if len(energies) > 1 and math.isfinite(energy)
        else math.nan,
        "repeats": total,
        "first_step_s": times[0],
    }


def measure_steps(
    configs: pd.DataFrame,
    *,
    meter: Any,
    device: Any = "cpu",
    precision: str = "fp32",
    gpu: str | None = None,
    warmup: int = 2,
    min_steps: int = 5,
    min_time_s: float = 0.5,
    chunks: int = 3,
    attention: str = "sdpa",
    deadline: float | None = None,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> pd.DataFrame:
    """Measure training steps of many configurations.

    Parameters
    ----------
    configs : pandas.DataFrame
        One configuration a row (e.g. from :func:`step_sweep`, or read from a file)
        with a ``model`` column (``bert``, ``gpt2``, ``lstm``, ``gru``) and the sizes
        of :func:`powerfit.measure.models.build_model`.
    meter, device, precision, warmup, min_steps, min_time_s, chunks, attention
        As in :func:`measure_step`.
    gpu : str, optional
        Value of the ``gpu`` column; the device's name by default.
    deadline : float, optional
        :func:`time.monotonic` time after which no configuration starts; one that
        would not end by then is left out.
    progress : callable, optional
        Called as ``progress(done, total, row)`` after each configuration.

    Returns
    -------
    pandas.DataFrame
        Columns exactly :data:`powerfit.formats.RUN_COLUMNS`, one row per
        configuration measured. ``attrs['skipped']`` counts configurations left out
        (out of memory, or too long for the deadline) and ``attrs['unfinished']``
        those not started.
    """
    import torch

    from powerfit._version import __version__
    from powerfit.measure.device import device_name
    from powerfit.measure.models import DEFAULT_VOCAB_SIZE, model_arch

    if "model" not in configs.columns:
        raise ValueError("configs must have a 'model' column (bert, gpt2, lstm or gru)")
    for model in configs["model"].astype(str).unique():
        model_arch(model)
    device = torch.device(device)
    gpu = device_name(device, meter) if gpu is None else gpu
    tool = f"powerfit-measure {__version__} ({meter.name}, attention={attention})"
    rows: list[dict[str, Any]] = []
    skipped = 0
    started = 0
    speeds: list[float] = []  # achieved [FLOP/s] of the configurations measured so far
    for position, (_, series) in enumerate(configs.iterrows()):
        if deadline is not None and time.monotonic() + 1.0 > deadline:
            break
        started = position + 1
        config = {k: (None if _missing(v) else v) for k, v in series.items()}
        config["arch"] = model_arch(str(config["model"]))
        if config.get("vocab_size") is None:
            config["vocab_size"] = DEFAULT_VOCAB_SIZE
        cost = estimate_step(config, attention=attention)["flops"]
        if deadline is not None and speeds:
            expected = 0.3 + (warmup + min_steps) * cost / float(np.median(speeds))
            if time.monotonic() + expected > deadline:
                skipped += 1
                logger.info("no time left for %s", _describe(config))
                continue
        try:
            result = measure_step(
                config,
                meter,
                device=device,
                precision=precision,
                warmup=warmup,
                min_steps=min_steps,
                min_time_s=min_time_s,
                chunks=chunks,
                attention=attention,
                deadline=deadline,
            )
        except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError
            if "out of memory" not in str(exc).lower():
                raise
            result = None
            logger.warning("out of memory: %s", _describe(config))
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        if result is None:
            skipped += 1
            continue
        row = {column: config.get(column, math.nan) for column in RUN_COLUMNS}
        row.update(
            gpu=gpu,
            precision=precision,
            duration_s=result["duration_s"],
            energy_j=result["energy_j"],
            gpu_energy_j=result["energy_j"],
            cpu_energy_j=math.nan,
            ram_energy_j=math.nan,
            idle_power_w=meter.idle_power_w,
            repeats=result["repeats"],
            duration_std_s=result["duration_std_s"],
            energy_std_j=result["energy_std_j"],
            tool=tool,
        )
        rows.append(row)
        speeds.append(cost / result["duration_s"])
        if progress is not None:
            progress(len(rows), len(configs), row)
    frame = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    for column in RUN_COLUMNS:
        if column not in ("gpu", "arch", "model", "precision", "tool"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame.attrs["skipped"] = skipped
    frame.attrs["unfinished"] = len(configs) - started
    return frame


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def _describe(config: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in config.items() if v is not None)
