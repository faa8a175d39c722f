"""Writing measurement files: canonical tables (CSV or Parquet) and JSON records.

Files are written to a temporary name beside the target and renamed, so that a file
is either absent or complete even when a campaign is killed while writing it.

Device specs
------------
:func:`device_specs` describes the measured device so that the file ingests as it
is, even for a device outside powerfit's catalogue (a CPU, a new GPU):
:func:`add_device_specs` appends the columns
:data:`powerfit.store.readers.rows.DEVICE_SPEC_COLUMNS` — ``device_peak_flops``
[FLOP/s] at the rows' precision, ``device_memory_bandwidth`` [B/s] and
``device_power_limit_w`` [W]. A catalogue GPU gets its data-sheet values. Any
other device gets **measured** values: the peak is the best throughput of a
square matrix product timed for a fraction of a second (and never below the best
throughput of the file's own rows, so that no row exceeds it); the bandwidth that
of copying a 64 MiB tensor; the power limit NVML's for a GPU, none for a CPU.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["add_device_specs", "device_specs", "write_json", "write_table"]


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a measurement table atomically.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows in a canonical format (:mod:`powerfit.formats`).
    path : path-like
        Target; Parquet for a ``.parquet`` suffix, CSV otherwise. Missing values are
        written as empty CSV fields.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False, float_format="%.10g")
    os.replace(tmp, path)
    return path


def write_json(record: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a JSON record atomically; NaN becomes null (JSON has no NaN).

    Parameters
    ----------
    record : dict
        JSON-serialisable values (NumPy scalars are converted).
    path : path-like
        Target file.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_clean(record), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _best_rate(run: Any, work: float, sync: Any, min_s: float) -> float:
    """Best ``work / seconds`` of repeated calls of ``run`` over about ``min_s`` seconds."""
    run()
    sync()
    best, spent = 0.0, 0.0
    while spent < min_s or best == 0.0:
        start = time.perf_counter()
        run()
        sync()
        elapsed = time.perf_counter() - start
        spent += elapsed
        if elapsed > 0:
            best = max(best, work / elapsed)
    return best


def measured_peak(device: Any, precision: str = "fp32", size: int = 512, min_s: float = 0.2):
    """Measured peak throughput of ``device`` [FLOP/s]: best of an n×n matrix product.

    Parameters
    ----------
    device : torch.device or str
    precision : str
        ``fp32``, ``tf32``, ``fp16``, ``bf16`` (``amp-*`` as their half type).
    size : int, default 512
        Matrix side (1024 on a GPU is used when given a CUDA device).
    min_s : float, default 0.2
        Time spent timing [s].

    Returns
    -------
    float
    """
    import torch

    from powerfit.measure.device import precision_dtype, precision_mode

    dev = torch.device(device)
    base = precision[4:] if precision.startswith("amp-") else precision
    if dev.type == "cuda":
        size = max(size, 4096)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    with precision_mode(base), torch.no_grad():
        a = torch.randn(size, size, device=dev, dtype=precision_dtype(base))
        b = torch.randn(size, size, device=dev, dtype=precision_dtype(base))
        return _best_rate(lambda: a @ b, 2.0 * size**3, sync, min_s)


def measured_bandwidth(device: Any, min_s: float = 0.1) -> float:
    """Measured memory bandwidth of ``device`` [B/s]: copying a 64 MiB tensor."""
    import torch

    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    src = torch.ones(16 * 2**20, device=dev, dtype=torch.float32)
    dst = torch.empty_like(src)
    return _best_rate(lambda: dst.copy_(src), 2.0 * src.numel() * 4, sync, min_s)


def device_specs(
    device: Any, precision: str, name: str, frame: pd.DataFrame | None = None, meter: Any = None
) -> dict[str, float | None]:
    """Specs of the measured device, for :func:`add_device_specs`.

    Parameters
    ----------
    device : torch.device or str
        The device measured.
    precision : str
        The precision of the measurements.
    name : str
        The device's name (the file's ``gpu`` column).
    frame : pandas.DataFrame, optional
        The measurements (``flops`` and ``duration_s``): the measured peak is at least
        their best throughput.
    meter : Meter, optional
        An NVML meter gives a GPU's power limit.

    Returns
    -------
    dict
        ``device_peak_flops`` [FLOP/s], ``device_memory_bandwidth`` [B/s],
        ``device_power_limit_w`` [W] (None where unknown).
    """
    from powerfit.hardware.gpus import get_gpu

    base = precision[4:] if precision.startswith("amp-") else precision
    try:
        spec = get_gpu(name)
    except ValueError:
        spec = None
    if spec is not None and base in spec.peak_flops:
        return {
            "device_peak_flops": float(spec.peak_flops[base]),
            "device_memory_bandwidth": spec.memory_bandwidth,
            "device_power_limit_w": spec.power_limit_w,
        }
    peak = measured_peak(device, precision)
    if frame is not None and {"flops", "duration_s"} <= set(frame.columns) and len(frame):
        rate = (frame["flops"] / frame["duration_s"]).max()
        if math.isfinite(rate):
            peak = max(peak, float(rate))
    power = None
    info = getattr(meter, "info", None)
    if callable(info):
        try:
            limit = info().get("power_limit_w")
            power = float(limit) if limit else None
        except Exception:  # the power limit is a nicety
            power = None
    return {
        "device_peak_flops": peak,
        "device_memory_bandwidth": measured_bandwidth(device),
        "device_power_limit_w": power,
    }


def add_device_specs(frame: pd.DataFrame, specs: dict[str, float | None]) -> pd.DataFrame:
    """``frame`` with the device-spec columns appended (same value on every row)."""
    out = frame.copy()
    for column, value in specs.items():
        out[column] = math.nan if value is None else float(value)
    out.attrs.update(frame.attrs)
    return out
