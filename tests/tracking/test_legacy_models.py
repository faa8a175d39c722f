"""MLflow models written before the stage layout (issue 22) load through the allowlisted
loader, and predict what they predicted when they were written.

The fixtures (``tests/data/legacy_models/``, see its README) were logged by the release
before the layout: their specifications name the classes by their old paths.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from powerfit.tracking.flavor import ALLOWED_ESTIMATORS, LEGACY_PATHS, load_spec_folder, to_spec

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "legacy_models"

#: fixture -> (folder of its specification, old class paths it names)
MODELS = {
    "paper_energy": (
        ".",
        {
            "powerfit.laws.PowerLawEfficiency",
            "powerfit.pipeline.OperationDurations",
            "powerfit.energy.EnergyRegressor",
        },
    ),
    "step_energy": (
        ".",
        {"powerfit.models.StepFeatures", "powerfit.models.StepEnergyRegressor"},
    ),
    "operators": ("data", {"powerfit.operators.OperatorTimeModel"}),
    "step_time": (".", {"powerfit.graph.StepTimeRegressor"}),
}


def _inputs(name: str) -> tuple[pd.DataFrame, np.ndarray]:
    folder = FIXTURES / name
    X = pd.read_json(folder / "inputs.json", orient="split", dtype=False)
    expected = np.array(json.loads((folder / "expected.json").read_text())["predictions"])
    return X, expected


@pytest.mark.parametrize("name", sorted(MODELS))
def test_old_model_loads_and_predicts_as_when_written(name):
    import mlflow

    spec_folder, old_paths = MODELS[name]
    text = (FIXTURES / name / spec_folder / "powerfit_model.json").read_text()
    assert all(f'"{path}"' in text for path in old_paths)  # really the old class paths
    X, expected = _inputs(name)
    rtol = 0.0  # the models carry every coefficient: bit for bit
    if name == "step_time":
        # A step-time model carries only its per-GPU calibration: the operator times
        # under it are the shipped FP32 laws' as a step runs them, which moved since it
        # was written (issue 24: calls queued, not timed alone; -5 to +1 % here). It
        # predicts what today's model with the same calibration predicts.
        from powerfit.steps.regressor import StepTimeRegressor

        state = dict(json.loads(text)["model"]["state"]["__dict__"])
        today = StepTimeRegressor()
        today.calibrations_ = {
            gpu: tuple(c["__tuple__"]) for gpu, c in state["calibrations_"]["__dict__"]
        }
        today.n_features_in_ = state["n_features_in_"]
        recorded, expected = expected, today.predict(X)
        np.testing.assert_allclose(expected, recorded, rtol=0.1, atol=0)
    through_pyfunc = mlflow.pyfunc.load_model(str(FIXTURES / name))
    predicted = np.asarray(through_pyfunc.predict(X), dtype=float)
    np.testing.assert_allclose(predicted, expected, rtol=rtol, atol=0)
    model = load_spec_folder(FIXTURES / name / spec_folder)
    np.testing.assert_allclose(
        np.asarray(model.predict(X), dtype=float), expected, rtol=rtol, atol=0
    )
    # written again, it names the classes by their paths now
    rewritten = json.dumps(to_spec(model))
    assert not any(f'"{path}"' in rewritten for path in LEGACY_PATHS)
    assert all(LEGACY_PATHS[path] in rewritten for path in old_paths)


def test_legacy_paths_name_the_same_classes_as_the_old_modules():
    """Each old class path maps to the allowlisted path of the class its old module gives."""
    import importlib
    import warnings

    assert set(LEGACY_PATHS.values()) <= set(ALLOWED_ESTIMATORS)
    for old, new in LEGACY_PATHS.items():
        old_module, _, name = old.rpartition(".")
        new_module, _, new_name = new.rpartition(".")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            through_old = getattr(importlib.import_module(old_module), name)
        assert through_old is getattr(importlib.import_module(new_module), new_name)
