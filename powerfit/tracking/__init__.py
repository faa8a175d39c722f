"""Track fitted coefficient sets with MLflow: record, register, load, compare.

Every fit of the efficiency laws and energy model of a (GPU, architecture) pair is
one MLflow run (params, coefficients as metrics, plots, the fitted pipeline as a
model) and a new version of a registered model; the alias ``champion`` marks the
best version on the held-out data.

>>> from powerfit.tracking import fit_and_log, history, compare  # doctest: +SKIP
>>> result = fit_and_log(gpu="NVIDIA A100 80GB PCIe", arch="transformer")  # doctest: +SKIP
>>> from powerfit.tracking import load_model  # doctest: +SKIP
>>> model = load_model(f"models:/{result.model_name}@champion")  # digest checked  # doctest: +SKIP
>>> energy_j = model.predict(configs)  # doctest: +SKIP

Modules: :mod:`~powerfit.tracking.locations` (where: default SQLite store and
artifact folder beside powerfit's store), :mod:`~powerfit.tracking.fitting` (the
fit itself, no MLflow; the rows it reads, :mod:`~powerfit.tracking.inputs`, the energy
models it builds, :mod:`~powerfit.tracking.energy_models`, and their physics check,
:mod:`~powerfit.tracking.physics`), :mod:`~powerfit.tracking.recording` (the MLflow run and
model), :mod:`~powerfit.tracking.operators` (the same for the operator latency
laws), :mod:`~powerfit.tracking.registry` (versions and the champion alias),
:mod:`~powerfit.tracking.versions` (history: and comparing versions),
:mod:`~powerfit.tracking.plots` (figures), :mod:`~powerfit.tracking.verify` (check a
model's files against the digest recorded when it was logged).
"""

from __future__ import annotations

from powerfit._lazy import lazy_exports

__all__ = [
    "FitResult",
    "OperatorFitResult",
    "compare",
    "default_artifact_root",
    "default_tracking_uri",
    "fit_and_log",
    "fit_operator_laws",
    "history",
    "load_model",
    "log_step_time_model",
    "model_name_for",
    "verified_model",
    "verify_model",
]

_LAZY = {
    "FitResult": "powerfit.tracking.recording",
    "fit_and_log": "powerfit.tracking.recording",
    "log_step_time_model": "powerfit.tracking.recording",
    "fit_operator_laws": "powerfit.tracking.operators",
    "OperatorFitResult": "powerfit.tracking.operators",
    "history": "powerfit.tracking.versions",
    "compare": "powerfit.tracking.versions",
    "default_tracking_uri": "powerfit.tracking.locations",
    "default_artifact_root": "powerfit.tracking.locations",
    "model_name_for": "powerfit.tracking.locations",
    "verify_model": "powerfit.tracking.verify",
    "verified_model": "powerfit.tracking.verify",
    "load_model": "powerfit.tracking.verify",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
