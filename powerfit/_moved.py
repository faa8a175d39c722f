"""Old module paths of powerfit, kept for one release: each name warns and names its new place.

Issue 22 arranged the package by the stages of the method (``hardware``, ``architectures``,
``paper``, ``kernels``, ``steps``, ``power``, ``training``, ``evaluation``...). :data:`MOVED`
is the one table of what moved: old module → public name → the module that defines it
now. Reading a name through its old path returns the very same object, with a
:class:`DeprecationWarning` that says where to import it from; the old paths go in the
next release.

One table, two ways in, both plain attribute lookups (nothing is imported that the
table does not name):

* a module that no longer exists (``powerfit.graph``, ``powerfit.models``...) is served
  by :class:`OldModules`, a finder at the *end* of :data:`sys.meta_path` (so it answers
  only for names no real module has): an empty module whose ``__getattr__`` is
  :func:`moved_getattr`;
* a module or package that still exists but lost names (``powerfit.power``,
  ``powerfit.tracking.fitting``) forwards them from its own ``__getattr__``
  (:func:`moved_getattr`, or :func:`powerfit._lazy.lazy_exports` for a package with
  lazy exports).

A package that kept an old module's name (``powerfit.hardware``, ``powerfit.power``,
``powerfit.datasets``, ``powerfit.evaluation``, ``powerfit.store.readers``) re-exports
the old module's names that stayed inside it, without a warning: they are its public
face.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["MOVED", "OldModules", "install", "moved", "moved_getattr"]

#: old module -> public name -> module that defines the name now. A name an old module
#: still imports (because it uses it) is not listed: it is still there.
MOVED: dict[str, dict[str, str]] = {
    "powerfit.energy": {
        "EnergyRegressor": "powerfit.paper.energy",
    },
    "powerfit.flops": {
        "ARCHITECTURES": "powerfit.paper.flops",
        "OPERATIONS": "powerfit.paper.flops",
        "OPERATOR_ALIASES": "powerfit.kernels.counts",
        "OPERATOR_KINDS": "powerfit.kernels.counts",
        "activations": "powerfit.paper.flops",
        "attention_output": "powerfit.paper.flops",
        "attention_scores": "powerfit.paper.flops",
        "attention_softmax": "powerfit.paper.flops",
        "candidate": "powerfit.paper.flops",
        "cell_update": "powerfit.paper.flops",
        "configuration_flops": "powerfit.paper.flops",
        "ffn": "powerfit.paper.flops",
        "final_projection": "powerfit.paper.flops",
        "hidden_gates": "powerfit.paper.flops",
        "hidden_update": "powerfit.paper.flops",
        "input_gates": "powerfit.paper.flops",
        "layer_flops": "powerfit.paper.flops",
        "matmul_bytes": "powerfit.kernels.counts",
        "matmul_flops": "powerfit.kernels.counts",
        "operator_bytes": "powerfit.kernels.counts",
        "operator_flops": "powerfit.kernels.counts",
        "operator_kind": "powerfit.kernels.counts",
        "qkv_projections": "powerfit.paper.flops",
        "training_flops": "powerfit.paper.flops",
    },
    "powerfit.graph": {
        "Calibration": "powerfit.steps.calibration",
        "GRAPH_COLUMNS": "powerfit.steps.graph",
        "MATMUL_OPS": "powerfit.steps.graph",
        "MIN_STEPS_FOR_LAUNCH": "powerfit.steps.calibration",
        "PRECISIONS": "powerfit.architectures.model",
        "ROW_SOURCES": "powerfit.steps.latency",
        "STEP_COLUMNS": "powerfit.steps.regressor",
        "StepEstimate": "powerfit.training",
        "StepTimeRegressor": "powerfit.steps.regressor",
        "bundled_operator_model": "powerfit.steps.latency",
        "calibrate_on_measured_steps": "powerfit.steps.measured",
        "compare_products": "powerfit.evaluation.steps",
        "estimate_step": "powerfit.training",
        "fit_calibration": "powerfit.steps.calibration",
        "neusight_step_graph": "powerfit.steps.measured",
        "neusight_training_steps": "powerfit.datasets.neusight2025",
        "operator_latency": "powerfit.steps.latency",
        "operator_latency_sources": "powerfit.steps.latency",
        "parameter_count": "powerfit.architectures.model",
        "roofline_latency": "powerfit.steps.latency",
        "run_energy": "powerfit.training",
        "step_energy": "powerfit.training",
        "step_time": "powerfit.steps.latency",
        "traced_products": "powerfit.datasets.neusight2025",
        "training_step_graph": "powerfit.steps.graph",
        "utilisation": "powerfit.steps.latency",
    },
    "powerfit.hf": {
        "FAMILIES": "powerfit.architectures.hf",
        "ModelConfig": "powerfit.architectures.model",
        "from_hf_config": "powerfit.architectures.hf",
    },
    "powerfit.laws": {
        "PowerLawEfficiency": "powerfit.paper.laws",
        "TFLOP": "powerfit.paper.laws",
        "efficiency": "powerfit.paper.laws",
        "plain": "powerfit.paper.laws",
        "rolling_outlier_mask": "powerfit.paper.laws",
    },
    "powerfit.models": {
        "CORRECTION_DEFAULTS": "powerfit.paper.step_energy",
        "MEMORY_BANDWIDTH": "powerfit.paper.step_features",
        "StepEnergyRegressor": "powerfit.paper.step_energy",
        "StepFeatures": "powerfit.paper.step_features",
        "TFLOP": "powerfit.paper.step_features",
        "make_step_energy_pipeline": "powerfit.paper.step_energy",
        "predict_interval": "powerfit.paper.step_energy",
    },
    "powerfit.operators": {
        "EVALUATION_STAGES": "powerfit.evaluation.operators",
        "MATMUL_BOUNDS": "powerfit.kernels.laws",
        "MEMORY_BOUNDS": "powerfit.kernels.laws",
        "NEUSIGHT_EXCLUDED": "powerfit.evaluation.operators",
        "OPERATOR_COLUMNS": "powerfit.kernels.model",
        "OperatorTimeModel": "powerfit.kernels.model",
        "REFERENCE_PRODUCTS": "powerfit.kernels.transfer",
        "SPLITS": "powerfit.kernels.laws",
        "TAU": "powerfit.kernels.laws",
        "TILES": "powerfit.kernels.laws",
        "coefficient_table": "powerfit.evaluation.operators",
        "evaluate_operators": "powerfit.evaluation.operators",
        "format_operator_table": "powerfit.evaluation.operators",
        "gpu_specs": "powerfit.kernels.transfer",
        "load_operator_model": "powerfit.kernels.model",
        "neusight_operator_frame": "powerfit.evaluation.operators",
        "roofline_latency": "powerfit.kernels.roofline",
    },
    "powerfit.pipeline": {
        "LawsCloneMixin": "powerfit.paper.durations",
        "OperationDurations": "powerfit.paper.durations",
        "REQUIRED_COLUMNS": "powerfit.paper.durations",
        "check_configs": "powerfit.paper.durations",
        "law_coefficients": "powerfit.paper.durations",
        "make_energy_pipeline": "powerfit.paper.durations",
    },
    "powerfit.profiles": {
        "PAPER_DURATION_SCALE": "powerfit.paper.profiles",
        "Profile": "powerfit.paper.profiles",
        "available_profiles": "powerfit.paper.profiles",
        "load_profile": "powerfit.paper.profiles",
    },
    "powerfit.step_evaluation": {
        "DEFAULT_HALF_WIDTH": "powerfit.steps.intervals",
        "INTERVAL_MODES": "powerfit.evaluation.steps",
        "MODES": "powerfit.evaluation.steps",
        "NEUSIGHT_PUBLISHED": "powerfit.evaluation.steps",
        "OUT_OF_RANGE_WIDEN": "powerfit.steps.intervals",
        "STEP_INTERVALS_NAME": "powerfit.steps.intervals",
        "evaluate_steps": "powerfit.evaluation.steps",
        "half_width_for": "powerfit.steps.intervals",
        "interval_coverage": "powerfit.evaluation.steps",
        "interval_half_width": "powerfit.evaluation.steps",
        "load_step_intervals": "powerfit.steps.intervals",
        "step_interval_bundle": "powerfit.evaluation.steps",
        "step_predictions": "powerfit.evaluation.steps",
        "step_time_intervals": "powerfit.evaluation.steps",
        "trace_sum": "powerfit.evaluation.steps",
    },
    "powerfit.power": {
        "PAPER_PRECISION": "powerfit.evaluation.power",
        "SOURCES": "powerfit.evaluation.power",
        "build_power_bundle": "powerfit.evaluation.power",
        "evaluate_energy_chain": "powerfit.evaluation.power",
        "evaluate_power": "powerfit.evaluation.power",
        "mayaki_power_frame": "powerfit.evaluation.power",
        "paper_model_config": "powerfit.evaluation.power",
    },
    "powerfit.tracking.fitting": {
        "MONOTONE_COLUMNS": "powerfit.tracking.physics",
        "default_energy_model": "powerfit.tracking.energy_models",
        "step_energy_model": "powerfit.tracking.energy_models",
    },
}


def moved(module: str, name: str) -> Any:
    """``module.name`` read through its old path: the object, with a DeprecationWarning.

    Raises
    ------
    AttributeError
        When ``name`` did not move out of ``module`` (as a missing attribute does).
    """
    new = MOVED.get(module, {}).get(name)
    if new is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    warnings.warn(
        f"{module}.{name} moved to {new}.{name}: import it from {new} "
        f"(the old path is kept for one release)",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module(new), name)


def moved_getattr(module: str) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` serving the names that left ``module``."""

    def __getattr__(name: str) -> Any:
        return moved(module, name)

    return __getattr__


class OldModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finder and loader of the old modules that no longer exist (see the module notes)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname in MOVED:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec: Any) -> None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        name = module.__name__
        places = ", ".join(sorted(set(MOVED[name].values())))
        module.__doc__ = f"Deprecated old path: the names of {name} moved to {places}."
        module.__getattr__ = moved_getattr(name)  # type: ignore[method-assign]
        module.__dir__ = lambda: sorted(MOVED[name])  # type: ignore[method-assign]


def install() -> None:
    """Put :class:`OldModules` at the end of :data:`sys.meta_path` (once)."""
    if not any(isinstance(finder, OldModules) for finder in sys.meta_path):
        sys.meta_path.append(OldModules())
