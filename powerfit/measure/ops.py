"""Micro-benchmarks of the elementary operations of :mod:`powerfit.paper.flops`.

Every operation of :data:`powerfit.paper.flops.OPERATIONS` is run with PyTorch on tensors
of one configuration's shape, forward only, the way one layer runs it:

* Transformer (``x`` of shape batch × seq_len × d_model, d_k = floor(d_model /
  n_heads)): ``qkv_projections`` one linear map d → 3d; ``attention_scores``
  Q·Kᵀ on batch × heads × seq_len × d_k; ``attention_softmax`` softmax over the
  last axis of the batch × heads × seq_len × seq_len scores; ``attention_output``
  A·V; ``final_projection`` one linear map d → d; ``ffn`` linear d → d_ff, GELU,
  linear d_ff → d (the GELU is timed with it, not counted in its FLOPs).
* LSTM and GRU (batch B, input I, hidden H, T = seq_len time steps):
  ``input_gates`` one linear map of all T·B inputs to the gates, as cuDNN and
  PyTorch do it; every other operation is repeated for each of the T time steps,
  because each step needs the previous one: ``hidden_gates`` the product of the
  hidden state (B × H) with the hidden-to-hidden weights, ``activations`` the
  gates' sigmoids and tanh, ``cell_update`` f⊙c + i⊙g, ``hidden_update``
  o⊙tanh(c) (LSTM) or n + z⊙(h − n) (GRU), ``candidate`` i_n + r⊙(W_hn·h) (GRU).

Timing: warm-up calls first, then one call to size a block of calls that lasts
``min_block_s``, then ``repeats`` blocks, timed with CUDA events on a GPU and
:func:`time.perf_counter` on the CPU. The reported duration is the mean time of one
call over all blocks. Where the meter measures energy, the blocks form one region of
at least ``energy_window_s``, and the energy of one call is that region's energy
divided by its calls.

The rows are in the canonical operation format
(:data:`powerfit.formats.OPERATION_COLUMNS`), with FLOPs from :mod:`powerfit.paper.flops`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from powerfit.formats import CONFIG_COLUMNS, OPERATION_COLUMNS
from powerfit.paper import flops as _flops

__all__ = [
    "benchmark_operations",
    "build_operation",
    "operation_efficiency",
    "operation_sweep",
    "time_operation",
]

logger = logging.getLogger("powerfit.measure")

#: Largest tensor an operation of the sweep may allocate [elements].
MAX_ELEMENTS = 2**30

_TRANSFORMER_GRID = {
    "batch_size": (16, 32, 64, 128, 256),
    "seq_len": (128, 256, 512, 1024),
    "d_model": (128, 256, 384, 512, 768, 1024, 1280),
    "n_heads": (2, 4, 8, 12, 16),
}
_RECURRENT_GRID = {
    "batch_size": (16, 32, 64, 128, 256, 512),
    "input_size": (64, 128, 256, 512, 768, 1024, 1280),
    "hidden_size": (64, 128, 256, 512, 768, 1024, 1280),
    "seq_len": (1, 4, 16),
}
_QUICK_TRANSFORMER = {
    "batch_size": (2, 4),
    "seq_len": (16, 32),
    "d_model": (32, 64),
    "n_heads": (2, 4),
}
_QUICK_RECURRENT = {
    "batch_size": (2, 4),
    "input_size": (16, 32),
    "hidden_size": (16, 32),
    "seq_len": (1, 2),
}


# ----------------------------------------------------------------------------- sweep
def operation_sweep(
    arch: str, n: int | None = None, *, quick: bool = False, seed: int = 0
) -> pd.DataFrame:
    """Configurations to benchmark the operations of one architecture on.

    Draws ``n`` distinct configurations at random from a grid that spans the
    paper's ranges (Transformer: batch 16–256, seq_len 128–1024, d_model 128–1280,
    heads 2–16 dividing d_model; LSTM/GRU: batch 16–512, input and hidden 64–1280,
    1, 4 or 16 time steps), so that each operation's FLOPs span 3–5 decades.
    Shapes whose largest tensor exceeds :data:`MAX_ELEMENTS` are left out.

    Parameters
    ----------
    arch : {'transformer', 'lstm', 'gru'}
        Architecture.
    n : int, optional
        Configurations [-]; 80 for a Transformer, 60 for LSTM/GRU (3 with ``quick``).
    quick : bool, default False
        Tiny shapes for a fast check on a CPU.
    seed : int, default 0
        Seed of the draw.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`powerfit.formats.CONFIG_COLUMNS`, one configuration a row,
        empty where a column does not apply (``d_ff`` is 4·d_model).
    """
    if arch not in _flops.OPERATIONS:
        raise ValueError(f"arch must be one of {', '.join(_flops.ARCHITECTURES)}, got {arch!r}")
    transformer = arch == "transformer"
    if quick:
        grid = _QUICK_TRANSFORMER if transformer else _QUICK_RECURRENT
    else:
        grid = _TRANSFORMER_GRID if transformer else _RECURRENT_GRID
    if n is None:
        n = 3 if quick else (80 if transformer else 60)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    full = pd.MultiIndex.from_product(grid.values(), names=list(grid)).to_frame(index=False)
    if transformer:
        d, h, b, t = full["d_model"], full["n_heads"], full["batch_size"], full["seq_len"]
        keep = (d % h == 0) & (b * h * t * t <= MAX_ELEMENTS) & (b * t * 4 * d <= MAX_ELEMENTS)
    else:
        b, t = full["batch_size"], full["seq_len"]
        keep = b * t * 4 * np.maximum(full["input_size"], full["hidden_size"]) <= MAX_ELEMENTS
    full = full[keep].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    rows = full.iloc[rng.permutation(len(full))[: min(n, len(full))]]
    rows = rows.sort_values(list(grid)).reset_index(drop=True)
    frame = pd.DataFrame({"arch": arch}, index=rows.index)
    for column in CONFIG_COLUMNS[1:]:
        frame[column] = rows[column].astype(float) if column in rows else np.nan
    if transformer:
        frame["d_ff"] = 4.0 * frame["d_model"]
    return frame


# ------------------------------------------------------------------------ operations
def build_operation(
    arch: str, operation: str, config: Any, device: Any = "cpu", dtype: Any = None
) -> Callable[[], Any]:
    """Allocate the tensors of one operation and return a call that runs it once.

    Parameters
    ----------
    arch : {'transformer', 'lstm', 'gru'}
        Architecture.
    operation : str
        A name of ``powerfit.paper.flops.OPERATIONS[arch]``.
    config : mapping
        Shape (canonical column names; see :func:`powerfit.paper.flops.layer_flops`).
    device : str or torch.device, default 'cpu'
        Where the tensors live.
    dtype : torch.dtype, optional
        Tensor type; ``torch.float32`` by default.

    Returns
    -------
    callable
        Runs the operation (forward only, see the module notes) and returns its
        result; launches the work on the device without waiting for it.

    Raises
    ------
    ValueError
        For an unknown architecture or operation, or a missing shape parameter.
    """
    import torch

    if arch not in _flops.OPERATIONS:
        raise ValueError(f"arch must be one of {', '.join(_flops.ARCHITECTURES)}, got {arch!r}")
    if operation not in _flops.OPERATIONS[arch]:
        raise ValueError(
            f"operation must be one of {', '.join(_flops.OPERATIONS[arch])} for {arch}, "
            f"got {operation!r}"
        )
    dtype = torch.float32 if dtype is None else dtype

    def rand(*shape: int, scale: float = 1.0) -> Any:
        # drawn on the device: drawing a 4 GB tensor on the CPU would take seconds
        return torch.randn(*shape, device=device, dtype=dtype).mul_(scale)

    if arch == "transformer":
        return _transformer_op(operation, _shape(config, arch), rand)
    return _recurrent_op(arch, operation, _shape(config, arch), rand)


def _shape(config: Any, arch: str) -> dict[str, int]:
    names = (
        ("batch_size", "seq_len", "d_model", "n_heads")
        if arch == "transformer"
        else ("batch_size", "input_size", "hidden_size")
    )
    out = {}
    for name in names:
        value = config.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise ValueError(f"a {arch} operation needs {name}")
        out[name] = int(value)
    seq = config.get("seq_len")
    out["seq_len"] = 1 if seq is None or seq != seq else int(seq)
    if arch == "transformer":
        d_ff = config.get("d_ff")
        out["d_ff"] = 4 * out["d_model"] if d_ff is None or d_ff != d_ff else int(d_ff)
    return out


def _transformer_op(op: str, s: dict[str, int], rand: Callable[..., Any]) -> Callable[[], Any]:
    import torch
    import torch.nn.functional as F

    b, t, d, h, f = s["batch_size"], s["seq_len"], s["d_model"], s["n_heads"], s["d_ff"]
    dk = d // h
    if op in ("qkv_projections", "final_projection"):
        x, w = rand(b, t, d), rand((3 if op == "qkv_projections" else 1) * d, d, scale=d**-0.5)
        return lambda: F.linear(x, w)
    if op == "attention_scores":
        q, k = rand(b, h, t, dk), rand(b, h, t, dk)
        return lambda: torch.matmul(q, k.transpose(-2, -1))
    if op == "attention_softmax":
        scores = rand(b, h, t, t)
        return lambda: torch.softmax(scores, dim=-1)
    if op == "attention_output":
        a, v = torch.softmax(rand(b, h, t, t), dim=-1), rand(b, h, t, dk)
        return lambda: torch.matmul(a, v)
    x, w1, w2 = rand(b, t, d), rand(f, d, scale=d**-0.5), rand(d, f, scale=f**-0.5)
    return lambda: F.linear(F.gelu(F.linear(x, w1)), w2)


def _recurrent_op(
    arch: str, op: str, s: dict[str, int], rand: Callable[..., Any]
) -> Callable[[], Any]:
    import torch
    import torch.nn.functional as F

    b, i, h, steps = s["batch_size"], s["input_size"], s["hidden_size"], s["seq_len"]
    gates = 4 if arch == "lstm" else 3
    if op == "input_gates":
        x, w = rand(steps * b, i), rand(gates * h, i, scale=i**-0.5)
        return lambda: F.linear(x, w)
    if op == "hidden_gates":
        state, w = rand(b, h), rand(gates * h, h, scale=h**-0.5)
        step: Callable[[], Any] = lambda: F.linear(state, w)  # noqa: E731
    elif op == "activations":
        pre, n_sigmoid = rand(b, gates * h), (gates - 1) * h
        step = lambda: (torch.sigmoid(pre[:, :n_sigmoid]), torch.tanh(pre[:, n_sigmoid:]))  # noqa: E731
    elif op == "cell_update":
        f, c, ig, g = rand(b, h), rand(b, h), rand(b, h), rand(b, h)
        step = lambda: torch.addcmul(f * c, ig, g)  # noqa: E731
    elif op == "candidate":
        i_n, r, h_n = rand(b, h), rand(b, h), rand(b, h)
        step = lambda: torch.addcmul(i_n, r, h_n)  # noqa: E731
    elif arch == "lstm":  # hidden_update
        o, c = rand(b, h), rand(b, h)
        step = lambda: o * torch.tanh(c)  # noqa: E731
    else:
        n, z, prev = rand(b, h), rand(b, h), rand(b, h)
        step = lambda: torch.addcmul(n, z, prev - n)  # noqa: E731

    def run() -> Any:
        for _ in range(steps):
            out = step()
        return out

    return run


# --------------------------------------------------------------------------- timing
def _block_timer(device: Any) -> Callable[[Callable[[], Any], int], float]:
    """Timer of ``calls`` calls: CUDA events on a GPU, perf_counter on the CPU [s]."""
    import torch

    if torch.device(device).type == "cuda":

        def cuda_block(fn: Callable[[], Any], calls: int) -> float:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3

        return cuda_block

    def cpu_block(fn: Callable[[], Any], calls: int) -> float:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        return time.perf_counter() - t0

    return cpu_block


def time_operation(
    fn: Callable[[], Any],
    meter: Any,
    *,
    device: Any = "cpu",
    warmup: int = 2,
    repeats: int = 3,
    min_block_s: float = 0.01,
    energy_window_s: float | None = None,
    max_calls: int = 100_000,
) -> dict[str, float]:
    """Time (and meter) one operation.

    Parameters
    ----------
    fn : callable
        One call of the operation (see :func:`build_operation`).
    meter : Meter
        Energy meter of the device (:func:`powerfit.measure.make_meter`).
    device : str or torch.device, default 'cpu'
        Device ``fn`` runs on (CUDA events on a GPU).
    warmup : int, default 2
        Untimed calls first [-].
    repeats : int, default 3
        Timed blocks [-].
    min_block_s : float, default 0.01
        Shortest block [s]; a block holds as many calls as that needs.
    energy_window_s : float, optional
        Shortest metered region [s], ``meter.min_region_s`` by default; 0 to skip
        energy. Ignored by a time-only meter.
    max_calls : int, default 100_000
        Most calls in a block [-].

    Returns
    -------
    dict
        ``duration_s`` mean time of one call [s], ``energy_j`` mean energy of one
        call [J] (NaN when not measured), ``repeats`` calls averaged [-],
        ``duration_std_s`` standard deviation of the block means [s].
    """
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup!r}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats!r}")
    if not min_block_s >= 0:
        raise ValueError(f"min_block_s must be >= 0, got {min_block_s!r}")
    block = _block_timer(device)
    for _ in range(warmup):
        fn()
    window = meter.min_region_s if energy_window_s is None else float(energy_window_s)
    with_energy = bool(meter.measures_energy) and window > 0
    block_s = max(min_block_s, window / repeats if with_energy else 0.0)
    # Size the block on short trial runs (one slow call must not decide alone), then
    # scale the calls to the block's length.
    calls, target = 1, 0.5 * min(block_s, max(min_block_s, 1e-3))
    for _ in range(4):
        elapsed = max(block(fn, calls), 1e-7)
        if elapsed >= target or calls >= max_calls:
            break
        calls = int(min(max_calls, max(2 * calls, math.ceil(target * calls / elapsed))))
    calls = int(min(max_calls, max(1, math.ceil(block_s * calls / elapsed))))
    with meter.measure() as region:
        times = [block(fn, calls) for _ in range(repeats)]
    total = calls * repeats
    per_block = np.asarray(times) / calls
    return {
        "duration_s": float(np.sum(times) / total),
        "energy_j": region.energy_j / total if with_energy else math.nan,
        "repeats": total,
        "duration_std_s": float(np.std(per_block, ddof=1)) if repeats > 1 else math.nan,
    }


def _is_out_of_memory(exc: BaseException) -> bool:
    return "out of memory" in str(exc).lower()


def benchmark_operations(
    configs: pd.DataFrame,
    *,
    meter: Any,
    device: Any = "cpu",
    precision: str = "fp32",
    operations: Iterable[str] | None = None,
    gpu: str | None = None,
    warmup: int = 2,
    repeats: int = 3,
    min_block_s: float = 0.01,
    energy_window_s: float | None = None,
    seed: int | None = None,
    deadline: float | None = None,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> pd.DataFrame:
    """Benchmark every operation of every configuration.

    Parameters
    ----------
    configs : pandas.DataFrame
        One configuration a row with an ``arch`` column and the shape columns
        (e.g. from :func:`operation_sweep`; architectures may be mixed).
    meter : Meter
        Energy meter (:func:`powerfit.measure.make_meter`).
    device : str or torch.device, default 'cpu'
        Device to run on.
    precision : {'fp32', 'tf32', 'fp16', 'bf16'}, default 'fp32'
        Precision (see :mod:`powerfit.measure.device`).
    operations : iterable of str, optional
        Only these operations; all of each architecture by default.
    gpu : str, optional
        Value of the ``gpu`` column; the device's name by default.
    warmup, repeats, min_block_s, energy_window_s
        As in :func:`time_operation`.
    seed : int, optional
        Run the (configuration, operation) tasks in an order shuffled with this seed
        (so that a run stopped by ``deadline`` is a random subsample); in the given
        order when None.
    deadline : float, optional
        :func:`time.monotonic` time after which no new task starts.
    progress : callable, optional
        Called as ``progress(done, total, row)`` after each task.

    Returns
    -------
    pandas.DataFrame
        Columns exactly :data:`powerfit.formats.OPERATION_COLUMNS`, one row per
        (configuration, operation) measured. ``attrs['skipped']`` counts tasks left
        out (out of memory) and ``attrs['unfinished']`` tasks not started before the
        deadline.
    """
    import torch

    from powerfit._version import __version__
    from powerfit.measure.device import device_name, precision_dtype, precision_mode

    if "arch" not in configs.columns:
        raise ValueError("configs must have an 'arch' column")
    dtype = precision_dtype(precision)
    gpu = device_name(device, meter) if gpu is None else gpu
    wanted = None if operations is None else set(operations)
    tasks = [
        (index, str(row["arch"]), op)
        for index, row in configs.iterrows()
        for op in _flops.OPERATIONS.get(str(row["arch"]), ())
        if wanted is None or op in wanted
    ]
    unknown = set(configs["arch"].astype(str)) - set(_flops.OPERATIONS)
    if unknown:
        raise ValueError(f"configs: unknown arch {sorted(unknown)}")
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(tasks))
        tasks = [tasks[i] for i in order]
    window = meter.min_region_s if energy_window_s is None else float(energy_window_s)
    expected_s = 1.5 * max(repeats * min_block_s, window if meter.measures_energy else 0) + 0.05
    tool = f"powerfit-measure {__version__} ({meter.name})"
    rows: list[dict[str, Any]] = []
    skipped = 0
    done = 0
    with torch.inference_mode(), precision_mode(precision):
        for index, arch, op in tasks:
            if deadline is not None and time.monotonic() + expected_s > deadline:
                break
            config = {k: _value(configs.at[index, k]) for k in configs.columns}
            try:
                fn = build_operation(arch, op, config, device, dtype)
                result = time_operation(
                    fn,
                    meter,
                    device=device,
                    warmup=warmup,
                    repeats=repeats,
                    min_block_s=min_block_s,
                    energy_window_s=energy_window_s,
                )
            except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError
                if not _is_out_of_memory(exc):
                    raise
                skipped += 1
                logger.warning("out of memory: %s %s %s", arch, op, _describe(config))
                _free(device)
                continue
            finally:
                fn = None
            shape = {k: config.get(k, math.nan) for k in CONFIG_COLUMNS}
            shape["arch"] = arch
            row = {
                "gpu": gpu,
                **shape,
                "operation": op,
                "precision": precision,
                "flops": float(_flops.layer_flops(arch, **_flops_args(arch, shape))[op]),
                "duration_s": result["duration_s"],
                "energy_j": result["energy_j"],
                "repeats": result["repeats"],
                "tool": tool,
            }
            rows.append(row)
            done += 1
            if progress is not None:
                progress(done, len(tasks), row)
    frame = pd.DataFrame(rows, columns=list(OPERATION_COLUMNS))
    frame.attrs["skipped"] = skipped
    frame.attrs["unfinished"] = len(tasks) - done - skipped
    return frame


def _value(value: Any) -> Any:
    if isinstance(value, (np.floating, float)) and math.isnan(value):
        return math.nan
    return value.item() if isinstance(value, np.generic) else value


def _flops_args(arch: str, shape: dict[str, Any]) -> dict[str, Any]:
    names = (
        ("batch_size", "seq_len", "d_model", "n_heads", "d_ff")
        if arch == "transformer"
        else ("batch_size", "input_size", "hidden_size", "seq_len")
    )
    return {k: (None if shape.get(k) is None or shape[k] != shape[k] else shape[k]) for k in names}


def _describe(config: dict[str, Any]) -> str:
    return " ".join(
        f"{k}={int(v)}" for k, v in config.items() if isinstance(v, (int, float)) and v == v
    )


def _free(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def operation_efficiency(frame: pd.DataFrame) -> pd.Series:
    """Hardware efficiency η = flops / (duration_s · peak) of operation measurements.

    Parameters
    ----------
    frame : pandas.DataFrame
        Canonical operation measurements (``gpu``, ``precision``, ``flops``,
        ``duration_s``).

    Returns
    -------
    pandas.Series
        η as a fraction [-], same index; NaN where the GPU or its peak at that
        precision is not in :mod:`powerfit.hardware` (e.g. a CPU).
    """
    from powerfit.hardware.gpus import peak_flops

    peaks: dict[tuple[str, str], float] = {}
    for gpu, precision in frame[["gpu", "precision"]].drop_duplicates().itertuples(index=False):
        try:
            peaks[(gpu, precision)] = peak_flops(gpu, precision)
        except ValueError:
            peaks[(gpu, precision)] = math.nan
    peak = pd.Series(
        [peaks[(g, p)] for g, p in zip(frame["gpu"], frame["precision"], strict=True)],
        index=frame.index,
    )
    return frame["flops"] / (frame["duration_s"] * peak)
