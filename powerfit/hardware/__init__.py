"""The hardware a training step runs on: the GPU catalogue (later: nodes, interconnects).

:mod:`~powerfit.hardware.gpus` holds the catalogue: each GPU's dense peak per precision,
memory, bandwidth, SMs, board power limit and aliases. Its names are importable from
this package too (``from powerfit.hardware import get_gpu``). Imports nothing of
powerfit.
"""

from __future__ import annotations

from powerfit._lazy import lazy_exports

__all__ = ["GPU", "GPUS", "PAPER_PEAK_FLOPS", "get_gpu", "peak_flops"]

_LAZY = {name: "powerfit.hardware.gpus" for name in (*__all__, "T")}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
