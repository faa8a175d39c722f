"""Tests of powerfit.tracking.flavor: the JSON specification behind the pyfunc loader."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

from powerfit import EnergyRegressor, PowerLawEfficiency, make_energy_pipeline
from powerfit.paper.laws import efficiency
from powerfit.tracking.flavor import SPEC_FILE, from_spec, to_spec

GPU = "NVIDIA A100 80GB PCIe"


@pytest.fixture
def fitted_pipeline():
    rng = np.random.default_rng(0)
    c = np.logspace(9, 12, 40)
    laws = {
        op: PowerLawEfficiency().fit(c.reshape(-1, 1), efficiency(c, 0.6, k, 0.8))
        for op, k in (("qkv_projections", 6.0), ("final_projection", 11.0))
    }
    configs = pd.DataFrame(
        {
            "batch_size": rng.choice([32, 64], 60),
            "seq_len": 256,
            "d_model": rng.choice([256, 512], 60),
            "n_heads": 8,
            "n_layers": rng.choice([4, 6], 60),
        }
    )
    energy = rng.uniform(10, 50, 60)
    pipe = make_energy_pipeline(
        {GPU: laws}, regressor=EnergyRegressor(n_bootstrap=10, random_state=0)
    ).fit(configs, energy)
    return pipe, configs


def test_round_trip_through_json_predicts_the_same(fitted_pipeline):
    pipe, configs = fitted_pipeline
    rebuilt = from_spec(json.loads(json.dumps(to_spec(pipe))))
    assert isinstance(rebuilt, Pipeline)
    np.testing.assert_array_equal(rebuilt.predict(configs), pipe.predict(configs))
    energy = rebuilt.named_steps["energy"]
    pd.testing.assert_frame_equal(
        energy.bootstrap_coefficients_, pipe.named_steps["energy"].bootstrap_coefficients_
    )
    law = rebuilt.named_steps["durations"].laws[GPU]["qkv_projections"]
    assert isinstance(law, PowerLawEfficiency) and law.k_ == pytest.approx(6.0, rel=1e-3)


def test_classes_outside_the_allowlist_are_neither_written_nor_built(fitted_pipeline):
    with pytest.raises(TypeError, match="not a powerfit estimator"):
        to_spec(LinearRegression())
    pipe, _ = fitted_pipeline
    spec = json.loads(json.dumps(to_spec(pipe)))
    text = json.dumps(spec).replace("powerfit.paper.energy.EnergyRegressor", "os.system")
    with pytest.raises(ValueError, match=r"refusing to build 'os\.system'"):
        from_spec(json.loads(text))
    with pytest.raises(ValueError, match="specification"):
        from_spec({"model": {}})


# ----------------------------------------------------------- a tampered model file
def _estimator(target, **params):
    """A specification entry that asks the loader to call ``target(**params)``."""
    return {
        "__estimator__": target,
        "params": {"__dict__": [[k, v] for k, v in params.items()]},
        "state": {"__dict__": []},
    }


def _attacks(canary, store_url):
    """Each way an edited ``powerfit_model.json`` tried to run code or change state."""
    frame = {
        "__dataframe__": {
            "columns": ["[loggers]"],
            "index": [0],
            "values": {"__ndarray__": [["keys=root"]], "dtype": "<U9"},
        }
    }
    return {
        "write_table": _estimator(
            "powerfit.measure.output.write_table", frame=frame, path=str(canary)
        ),
        "fileConfig": _estimator("powerfit.store.migrations.env.fileConfig", fname=str(canary)),
        "cli_downgrade": _estimator(
            "powerfit.cli.main", argv=["db", "downgrade", "base", "--db", store_url, "--yes"]
        ),
        "stdlib": _estimator("os.system", command=f"touch {canary}"),
        "sklearn_other": _estimator("sklearn.linear_model.LinearRegression"),
    }


def _energy_step(spec):
    steps = spec["model"]["params"]["__dict__"]
    (steps_value,) = [v for k, v in steps if k == "steps"]
    return steps_value[-1]["__tuple__"][1]


@pytest.fixture
def logged_model(recorded_fits, tmp_path):
    """A real logged model folder (downloaded from the registry) that a test may edit."""
    import mlflow

    uri, first, _ = recorded_fits
    mlflow.set_tracking_uri(uri)
    try:
        folder = mlflow.artifacts.download_artifacts(
            artifact_uri=first.model_uri, dst_path=str(tmp_path / "model")
        )
    finally:
        mlflow.set_tracking_uri(None)
    return Path(folder)


@pytest.fixture
def victim_store(data_home, tmp_path):
    """Another store with rows that a tampered model tries to drop."""
    from powerfit.store import open_store

    published = data_home / "mayaki2025" / "processed" / "dataForTransformerHEF.csv"
    csv = tmp_path / "victim.csv"
    csv.write_text("".join(published.read_text().splitlines(keepends=True)[:6]))
    path = tmp_path / "victim.db"
    with open_store(path) as store:
        store.ingest(csv)
    return path


def _row_count(path):
    import sqlite3

    with sqlite3.connect(path) as con:
        return con.execute("select count(*) from operation_measurements").fetchone()[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    "attack", ["write_table", "fileConfig", "cli_downgrade", "stdlib", "sklearn_other"]
)
@pytest.mark.parametrize("slot", ["declared_attribute", "parameter", "top"])
def test_a_tampered_model_file_is_refused_and_runs_nothing(
    logged_model, victim_store, tmp_path, attack, slot
):
    import mlflow

    from powerfit.tracking.flavor import UnsafeModelError

    canary = tmp_path / "canary.ini"
    before = _row_count(victim_store)
    spec_path = logged_model / SPEC_FILE
    spec = json.loads(spec_path.read_text())
    entry = _attacks(canary, f"sqlite:///{victim_store}")[attack]
    energy = _energy_step(spec)
    if slot == "declared_attribute":
        state = energy["state"]["__dict__"]
        state[[k for k, _ in state].index("coef_")][1] = entry
    elif slot == "parameter":
        params = energy["params"]["__dict__"]
        params[[k for k, _ in params].index("alpha")][1] = entry
    else:
        spec["model"] = entry
    spec_path.write_text(json.dumps(spec))

    with pytest.raises(UnsafeModelError, match="refusing to build"):
        mlflow.pyfunc.load_model(str(logged_model))
    assert not canary.exists()
    assert _row_count(victim_store) == before > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e["state"]["__dict__"].append(["predict", 1.0]), "not a fitted attribute"),
        (lambda e: e["state"]["__dict__"].append(["__class__", 1.0]), "not a fitted attribute"),
        (lambda e: e["params"]["__dict__"].append(["command", "id"]), "not a parameter"),
        (
            lambda e: e["state"]["__dict__"].append(
                ["coef_", {"__ndarray__": [1], "dtype": "M8[s]"}]
            ),
            "not allowed",
        ),
        (
            lambda e: e["state"]["__dict__"].append(
                ["coef_", {"__ndarray__": [1], "dtype": "V8"}]
            ),
            "not allowed",
        ),
        (lambda e: e["state"].clear(), "pairs"),
        (lambda e: e["state"]["__dict__"].append(["coef_", {"__code__": "x"}]), "unknown"),
    ],
)
def test_attributes_parameters_and_values_outside_the_allowlist_are_refused(
    logged_model, change, message
):
    import mlflow

    from powerfit.tracking.flavor import UnsafeModelError

    spec_path = logged_model / SPEC_FILE
    spec = json.loads(spec_path.read_text())
    change(_energy_step(spec))
    spec_path.write_text(json.dumps(spec))
    with pytest.raises(UnsafeModelError, match=message):
        mlflow.pyfunc.load_model(str(logged_model))


def test_a_pipeline_that_names_a_cache_folder_is_refused(fitted_pipeline, tmp_path):
    from powerfit.tracking.flavor import UnsafeModelError

    pipe, _ = fitted_pipeline
    spec = json.loads(json.dumps(to_spec(pipe)))
    params = spec["model"]["params"]["__dict__"]
    params[[k for k, _ in params].index("memory")][1] = str(tmp_path / "cache")
    with pytest.raises(UnsafeModelError, match="'memory' must be empty"):
        from_spec(spec)


def test_an_undeclared_attribute_is_not_written(fitted_pipeline):
    pipe, _ = fitted_pipeline
    pipe.named_steps["energy"].smuggled_ = 1
    with pytest.raises(TypeError, match=r"\['smuggled_'\].*does not declare"):
        to_spec(pipe)


def test_every_allowlisted_class_is_a_scikit_learn_estimator():
    from sklearn.base import BaseEstimator

    from powerfit.tracking.flavor import ALLOWED_ESTIMATORS, _class_for

    for path in ALLOWED_ESTIMATORS:
        cls = _class_for(path)
        assert issubclass(cls, BaseEstimator)
        assert f"{cls.__module__}.{cls.__qualname__}" == path


# ------------------------------------------------------------- skops without PyTorch
_SKOPS_PROBE = """
import json, sys
import sklearn
if sys.argv[1] == "powerfit":
    from powerfit.tracking.flavor import import_skops_io
    skops_io = import_skops_io()
else:
    import skops.io as skops_io
from skops.io import _trusted_types
wrapper = sys.modules.get("sklearn.externals.array_api_compat.torch")
print(json.dumps({
    "torch": "torch" in sys.modules,
    "wrapper": None if wrapper is None else hasattr(wrapper, "__path__"),
    "estimators": _trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES,
    "dumps": callable(skops_io.dumps),
}))
"""


@pytest.mark.slow
def test_skops_imported_without_pytorch_trusts_the_same_estimators():
    import subprocess
    import sys

    def probe(how):
        done = subprocess.run([sys.executable, "-c", _SKOPS_PROBE, how], capture_output=True,
                              text=True, timeout=300, check=True)  # fmt: skip
        return json.loads(done.stdout)

    plain, ours = probe("plain"), probe("powerfit")
    if not plain["torch"]:
        pytest.skip("this scikit-learn's skops import does not load PyTorch")
    assert ours["torch"] is False  # PyTorch left unloaded ...
    assert ours["wrapper"] is None  # ... and no placeholder left behind
    assert ours["estimators"] == plain["estimators"]  # skops trusts the same estimators
    assert ours["dumps"]
