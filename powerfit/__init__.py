"""powerfit: predict the energy of training a deep-learning model from its architecture.

Count the FLOPs of each elementary operation (:mod:`powerfit.paper.flops`), turn them into
time with a per-(GPU, operation) hardware-efficiency law
(:class:`PowerLawEfficiency`), and regress energy on those times
(:class:`EnergyRegressor`); :func:`make_energy_pipeline` chains them into one
scikit-learn pipeline from configurations to energy [J].

The estimators are imported lazily, so that light modules (:mod:`powerfit.paper.flops`,
:mod:`powerfit.hardware`, :mod:`powerfit.measure`) work with NumPy and pandas alone.

The packages are the stages of the method, each importing only the ones below it:
:mod:`~powerfit.hardware`, :mod:`~powerfit.architectures` and :mod:`~powerfit.datasets`
(what is given), :mod:`~powerfit.paper` (the published method), :mod:`~powerfit.kernels`
(operator latency laws), :mod:`~powerfit.steps` (one training step's operator graph and
time), :mod:`~powerfit.power` (board power), :mod:`powerfit.training` (a run: step →
kWh, CO₂), then :mod:`~powerfit.store`, :mod:`~powerfit.evaluation`,
:mod:`~powerfit.tracking`, :mod:`~powerfit.measure` and :mod:`~powerfit.cli`. Old module
paths (``powerfit.graph``, ``powerfit.models``...) still work for one release, with a
DeprecationWarning naming the new place (:mod:`powerfit._moved`).
"""

from __future__ import annotations

from powerfit._lazy import lazy_exports
from powerfit._moved import install as _install_old_paths
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
    "PowerLawEfficiency": "powerfit.paper.laws",
    "EnergyRegressor": "powerfit.paper.energy",
    "OperationDurations": "powerfit.paper.durations",
    "make_energy_pipeline": "powerfit.paper.durations",
    "load_profile": "powerfit.paper.profiles",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
_install_old_paths()
