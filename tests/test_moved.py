"""Old module paths (the release before the stage layout) still work, and warn where to go.

One mechanism serves them (:mod:`powerfit._moved`): a table of what moved where. The
public names of ``powerfit`` and the packages that kept an old module's name
(``powerfit.hardware``, ``powerfit.power``...) are not deprecated.
"""

from __future__ import annotations

import importlib
import warnings

import pytest

from powerfit._moved import MOVED

OLD_NAMES = sorted((module, name) for module, names in MOVED.items() for name in names)


@pytest.mark.parametrize(("module", "name"), OLD_NAMES)
def test_old_path_gives_the_same_object_and_names_the_new_place(module, name):
    new = MOVED[module][name]
    with pytest.warns(DeprecationWarning, match=rf"{module}\.{name} moved to {new}\.{name}"):
        old = getattr(importlib.import_module(module), name)
    assert old is getattr(importlib.import_module(new), name)


def test_the_warning_points_at_the_importing_line():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from powerfit.graph import training_step_graph  # noqa: F401
    (warning,) = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert warning.filename == __file__
    assert "powerfit.steps.graph.training_step_graph" in str(warning.message)


def test_an_old_module_imported_whole_still_works():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        from powerfit import flops, models  # the modules: no warning yet

        with pytest.warns(DeprecationWarning, match="powerfit.paper.step_energy"):
            assert models.StepEnergyRegressor.__module__ == "powerfit.paper.step_energy"
    with pytest.warns(DeprecationWarning):
        assert flops.operator_kind("LayerNorm") == "ln"  # now in powerfit.kernels.counts


def test_unknown_names_of_old_modules_are_missing_attributes():
    graph = importlib.import_module("powerfit.graph")
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        graph.nothing  # noqa: B018
    power = importlib.import_module("powerfit.power")
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        power.nothing  # noqa: B018
    with pytest.raises(ImportError):
        importlib.import_module("powerfit.nothing")


def test_public_names_are_unchanged_and_not_deprecated():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        from powerfit import (
            EnergyRegressor,
            OperationDurations,
            PowerLawEfficiency,
            load_profile,
            make_energy_pipeline,
        )
        from powerfit.training import estimate_training

    assert PowerLawEfficiency.__module__ == "powerfit.paper.laws"
    assert EnergyRegressor.__module__ == "powerfit.paper.energy"
    assert OperationDurations.__module__ == "powerfit.paper.durations"
    assert make_energy_pipeline.__module__ == "powerfit.paper.durations"
    assert load_profile.__module__ == "powerfit.paper.profiles"
    assert estimate_training.__module__ == "powerfit.training"


@pytest.mark.parametrize(
    "package",
    [
        "powerfit.hardware",
        "powerfit.datasets",
        "powerfit.power",
        "powerfit.evaluation",
        "powerfit.store.readers",
    ],
)
def test_packages_that_kept_an_old_name_export_its_names_without_warning(package):
    module = importlib.import_module(package)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for name in dir(module):
            if not name.startswith("_"):
                value = getattr(module, name)
                assert value is not None, name
    assert set(module.__all__) <= set(dir(module))
