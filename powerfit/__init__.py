"""powerfit: predict the energy of training a deep-learning model from its architecture.

Count the FLOPs of each elementary operation (:mod:`powerfit.flops`), turn them into
time with a per-(GPU, operation) hardware-efficiency law
(:class:`PowerLawEfficiency`), and regress energy on those times
(:class:`EnergyRegressor`); :func:`make_energy_pipeline` chains them into one
scikit-learn pipeline from configurations to energy [J].

The estimators are imported lazily, so that light modules (:mod:`powerfit.flops`,
:mod:`powerfit.hardware`, :mod:`powerfit.measure`) work with NumPy and pandas alone.
"""

from __future__ import annotations

from powerfit._lazy import lazy_exports
from powerfit._version import __version__

__all__ = [
    "EnergyRegressor",
    "OperationDurations",
    "PowerLawEfficiency",
    "__version__",
    "load_profile",
    "make_energy_pipeline",
]

_LAZY = {
    "PowerLawEfficiency": "powerfit.laws",
    "EnergyRegressor": "powerfit.energy",
    "OperationDurations": "powerfit.pipeline",
    "make_energy_pipeline": "powerfit.pipeline",
    "load_profile": "powerfit.profiles",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
