"""Runs over many GPUs and the planner that picks one.

:mod:`~powerfit.plan.runs` (one split's step time, energy, memory and whole run) and
:mod:`~powerfit.plan.planner` (every split that fits, ranked, with the Pareto front of
energy against time). The stage sits above :mod:`powerfit.training` and below the CLI.
"""

from __future__ import annotations

from powerfit._lazy import lazy_exports

__all__ = ["estimate_parallel_training", "plan_training"]

_LAZY = {
    "estimate_parallel_training": "powerfit.plan.runs",
    "plan_training": "powerfit.plan.planner",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
