"""Measuring harness: energy meters and benchmarks of operations and training steps.

* :mod:`powerfit.measure.meters` — time [s] and energy [J] of a region of code
  (NVML energy counter or sampled power; ``none`` for time only).
* :mod:`powerfit.measure.ops` — micro-benchmarks of the elementary operations of
  :mod:`powerfit.paper.flops` (canonical operation format).
* :mod:`powerfit.measure.steps` and :mod:`powerfit.measure.models` — real training
  steps of BERT-like, GPT-2-like, LSTM and GRU models (canonical run format).
* :mod:`powerfit.measure.device` — device, precision and environment facts.

Only NumPy, pandas, PyTorch and (for the ``nvml`` meter) nvidia-ml-py are needed:
this package imports none of powerfit's store, tracking or fitting modules, and
PyTorch only when a benchmark runs. The command line is ``powerfit measure``.

Examples
--------
>>> from powerfit.measure import make_meter
>>> with make_meter("none") as meter, meter.measure() as m:
...     _ = sum(range(100))
>>> m.duration_s >= 0
True
"""

from __future__ import annotations

from powerfit._lazy import lazy_exports
from powerfit.measure.meters import (
    METERS,
    CounterResolution,
    Measurement,
    Meter,
    MeterError,
    NoneMeter,
    NvmlMeter,
    counter_resolution,
    make_meter,
)
from powerfit.measure.output import write_json, write_table

__all__ = [
    "METERS",
    "CounterResolution",
    "Measurement",
    "Meter",
    "MeterError",
    "NoneMeter",
    "NvmlMeter",
    "benchmark_operations",
    "build_model",
    "counter_resolution",
    "environment",
    "make_meter",
    "measure_steps",
    "operation_efficiency",
    "operation_sweep",
    "resolve_device",
    "step_sweep",
    "write_json",
    "write_table",
]

_LAZY = {
    "benchmark_operations": "powerfit.measure.ops",
    "operation_efficiency": "powerfit.measure.ops",
    "operation_sweep": "powerfit.measure.ops",
    "measure_steps": "powerfit.measure.steps",
    "step_sweep": "powerfit.measure.steps",
    "build_model": "powerfit.measure.models",
    "environment": "powerfit.measure.device",
    "resolve_device": "powerfit.measure.device",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
