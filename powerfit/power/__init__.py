"""Board power of a training step, as a function of its utilisation (next: measured power).

:mod:`~powerfit.power.law` holds the bounded law ``P(u)``, its fit, its transfer to GPUs
without measured energy and the unfitted prior; :mod:`~powerfit.power.bundle` the laws
shipped with the package, per GPU. The names of the former ``powerfit.power`` module
that stayed here are importable from this package; those that fit and score the laws on
published data moved to :mod:`powerfit.evaluation.power` (old paths warn).
"""

from __future__ import annotations

from powerfit._lazy import lazy_exports

__all__ = [
    "BUNDLE_NAME",
    "POWER_BOUNDS",
    "Z90",
    "PowerFit",
    "fit_power",
    "load_power_bundle",
    "power_law",
    "power_model_for",
    "prior_power",
]

_LAZY = {
    "POWER_BOUNDS": "powerfit.power.law",
    "Z90": "powerfit.power.law",
    "PRIOR": "powerfit.power.law",
    "PowerFit": "powerfit.power.law",
    "power_law": "powerfit.power.law",
    "fit_power": "powerfit.power.law",
    "transfer_power": "powerfit.power.law",
    "prior_power": "powerfit.power.law",
    "BUNDLE_NAME": "powerfit.power.bundle",
    "load_power_bundle": "powerfit.power.bundle",
    "power_model_for": "powerfit.power.bundle",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
