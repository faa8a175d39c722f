"""Torch device, precision and environment facts shared by the benchmarks.

Precisions
----------
``fp32``
    FP32 tensors, TF32 off (``torch.backends.cuda.matmul.allow_tf32 = False``).
``tf32``
    FP32 tensors, matrix products and convolutions in TF32 (Ampere and later).
    The default for FP32 work on such GPUs, as in the paper's setting.
``fp16``, ``bf16``
    Elementary operations run on tensors of that type; training steps run under
    :func:`torch.autocast` (mixed precision, FP32 weights).

The names are those of :mod:`powerfit.hardware`, so that the peak throughput of a
measurement is ``peak_flops(gpu, precision)``.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import platform
import sys
from collections.abc import Iterator
from typing import Any

__all__ = [
    "PRECISIONS",
    "default_precision",
    "device_name",
    "environment",
    "precision_dtype",
    "precision_mode",
    "resolve_device",
]

#: Precisions the benchmarks accept.
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "fp16", "bf16")


def resolve_device(device: str | None = "auto") -> Any:
    """Turn a device name into a :class:`torch.device`.

    Parameters
    ----------
    device : str, default 'auto'
        ``'cpu'``, ``'cuda'``, ``'cuda:1'``…; ``'auto'`` (or None) takes the first
        CUDA device where there is one and the CPU otherwise.

    Returns
    -------
    torch.device
        With an explicit index for CUDA.

    Raises
    ------
    ValueError
        For an unknown device, or CUDA where PyTorch sees no GPU.
    """
    import torch

    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: PyTorch sees no CUDA GPU here; use --device cpu")
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} GPUs")
        return torch.device("cuda", index)
    if dev.type != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    return dev


def default_precision(device: Any) -> str:
    """Precision of FP32 work on ``device``: ``tf32`` on Ampere or later, else ``fp32``."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.get_device_capability(dev)[0] >= 8:
        return "tf32"
    return "fp32"


def _check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def precision_dtype(precision: str) -> Any:
    """Tensor dtype of a precision (FP32 for ``fp32`` and ``tf32``)."""
    import torch

    return {
        "fp32": torch.float32,
        "tf32": torch.float32,
        "fp16": torch.float16,
        "bf16": torch.bfloat16,
    }[_check_precision(precision)]


@contextlib.contextmanager
def precision_mode(precision: str) -> Iterator[None]:
    """Set PyTorch's TF32 switches for ``precision`` and restore them afterwards.

    Parameters
    ----------
    precision : {'fp32', 'tf32', 'fp16', 'bf16'}
        ``tf32`` turns ``torch.backends.cuda.matmul.allow_tf32`` and
        ``torch.backends.cudnn.allow_tf32`` on; every other precision turns them off
        (so that FP32 means FP32, and half-precision runs are not affected).
    """
    import torch

    allow = _check_precision(precision) == "tf32"
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def device_name(device: Any, meter: Any = None) -> str:
    """Name of the device for the ``gpu`` column.

    The NVML name of a GPU (from ``meter`` where it is an NVML meter, else PyTorch's
    name, which is the same string); on the CPU, the processor's model name from
    ``/proc/cpuinfo``, :func:`platform.processor` or ``'cpu'``.
    """
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        name = getattr(meter, "device_name", None)
        return name or torch.cuda.get_device_name(dev)
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip() or "cpu"
    return platform.processor() or "cpu"


def environment(device: Any, precision: str, meter: Any = None) -> dict[str, Any]:
    """Facts about the machine that a measurement file should travel with.

    Parameters
    ----------
    device : torch.device or str
        Device measured.
    precision : str
        Precision measured (see module notes).
    meter : Meter, optional
        The meter; NVML facts (driver, power limit…) are added for an NVML meter.

    Returns
    -------
    dict
        JSON-serialisable: device and GPU name, driver, CUDA, cuDNN, PyTorch, Python
        and powerfit versions, TF32 switches, meter, idle power [W], counter update
        interval [s], date (UTC, ISO 8601).
    """
    import torch

    from powerfit._version import __version__

    dev = torch.device(device)
    out: dict[str, Any] = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "powerfit_version": __version__,
        "device": str(dev),
        "gpu": device_name(dev, meter),
        "precision": precision,
        "allow_tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "allow_tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version()
        if torch.backends.cudnn.is_available()
        else None,
        "python_version": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": device_name("cpu"),
        "torch_threads": torch.get_num_threads(),
        "meter": getattr(meter, "name", None),
        "idle_power_w": _finite(getattr(meter, "idle_power_w", math.nan)),
        "counter_update_interval_s": _finite(getattr(meter, "update_interval_s", math.nan)),
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        out["compute_capability"] = f"{props.major}.{props.minor}"
        out["gpu_memory_bytes"] = int(props.total_memory)
    if hasattr(meter, "info"):
        out["nvml"] = meter.info()
        out["driver_version"] = out["nvml"].get("driver_version")
    return out


def _finite(value: float) -> float | None:
    """A float for JSON: None for NaN (JSON has no NaN)."""
    return float(value) if value is not None and math.isfinite(value) else None
