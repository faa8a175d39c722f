"""Board power of a training step, as a function of what the step sustains.

:mod:`~powerfit.power.board` holds the board power law ``P(u_c, u_m)`` fitted on
measured boards (Zeus 2023, ML.ENERGY 2026), its transfer to unmeasured GPUs and the
power-limit law: the law behind every estimate.
:mod:`~powerfit.power.law` holds the paper's CodeCarbon law ``P(u)`` (its fit, its
transfer, its prior), kept to score the paper's energy; :mod:`~powerfit.power.bundle` the laws
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
    "BoardPowerLaw",
    "PowerFit",
    "board_law_for",
    "fit_board_power",
    "fit_power",
    "load_power_bundle",
    "power_law",
    "power_model_for",
    "prior_board_power",
    "prior_power",
    "step_fractions",
    "transfer_board_power",
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
    "board_law_for": "powerfit.power.bundle",
    "BoardPowerLaw": "powerfit.power.board",
    "fit_board_power": "powerfit.power.board",
    "prior_board_power": "powerfit.power.board",
    "step_fractions": "powerfit.power.board",
    "transfer_board_power": "powerfit.power.board",
    "load_power_bundle": "powerfit.power.bundle",
    "power_model_for": "powerfit.power.bundle",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
