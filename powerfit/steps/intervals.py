"""The step-time intervals shipped with powerfit: log half-widths per mode, measured ranges.

The nominal 90 % interval of a step time t is ``[t·e^−q, t·e^q]``;
:func:`half_width_for` gives q for a mode (widened outside the measured steps),
:func:`load_step_intervals` the bundled ``powerfit/data/power/step_time_intervals.json``
(half-widths and measured ranges). The bundle is computed from NeuSight's measured
steps by :func:`powerfit.evaluation.steps.step_interval_bundle`
(``experiments/build_power_models.py``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["half_width_for", "load_step_intervals"]

#: Factor on the interval's half-width outside the measured steps (model size, batch,
#: sequence, GPU, precision); the ``loo-gpu`` check applies it, as a GPU left out is
#: one without measured steps.
OUT_OF_RANGE_WIDEN = 2.0

STEP_INTERVALS_NAME = "step_time_intervals.json"


def load_step_intervals() -> dict[str, Any] | None:
    """The bundled ``powerfit/data/power/step_time_intervals.json`` (None when absent)."""
    import json
    from importlib import resources

    try:
        text = resources.files("powerfit").joinpath("data", "power", STEP_INTERVALS_NAME)
        return json.loads(text.read_text())
    except (FileNotFoundError, OSError):
        return None


#: Half-widths per mode when no bundle is there (≈ the bundled values of 2026-12-01).
DEFAULT_HALF_WIDTH = {"in-gpu": 0.17, "in-gpu+cal": 0.11, "specs-only": 0.30, "roofline": 0.48}


def half_width_for(
    mode: str, *, outside: bool, roofline: bool, bundle: dict[str, Any] | None = None
) -> float:
    """The log half-width q [-] of a step-time interval, as shipped.

    ``mode``: ``in-gpu``, ``in-gpu+cal``, ``specs-only`` or ``roofline``; ``outside``:
    the step is outside the measured ranges (×``widen_outside``); ``roofline``: some
    rows were timed by the roofline (matrix products of a precision without laws): q
    is then at least the roofline's, and that floor is widened outside the measured
    ranges too (the roofline's own q was measured on FP32 steps of the measured GPUs
    only; a tensor-core product's distance to its roof was never measured).

    ``q = widen^outside · max(q_mode, q_roofline if roofline else 0)``.
    """
    bundle = load_step_intervals() if bundle is None else bundle
    half = dict(DEFAULT_HALF_WIDTH)
    widen = OUT_OF_RANGE_WIDEN
    if bundle:
        half.update({k: float(v["half_width"]) for k, v in bundle["half_width"].items()})
        widen = float(bundle.get("widen_outside", widen))
    q = max(half[mode], half["roofline"]) if roofline else half[mode]
    return q * (widen if outside else 1.0)
