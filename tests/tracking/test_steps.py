"""The step-time model of real configurations in MLflow: registered, loaded through pyfunc."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from powerfit.tracking.flavor import SPEC_FILE


@pytest.fixture(scope="module")
def measured_steps(data_home) -> pd.DataFrame:
    """NeuSight's measured training steps, ``config`` as the config.json text."""
    from powerfit.datasets.neusight2025 import neusight_training_steps

    steps = neusight_training_steps(data_home)
    if steps.empty:
        pytest.skip(
            pytest.skip(
                "needs the neusight2025 data set (github.com/sitar-lab/NeuSight, see "
                "powerfit/datasets/neusight2025.py): set POWERFIT_DATA_HOME to a folder "
                "holding neusight2025/"
            )
        )
    texts = {path: Path(path).read_text() for path in steps["config"].unique()}
    return steps.assign(config=steps["config"].map(texts))


@pytest.fixture(scope="module")
def registered(measured_steps, mlflow_db_template, tmp_path_factory):
    """A StepTimeRegressor fitted on 3 in 4 measured steps, registered (held out: the rest)."""
    import shutil

    from powerfit.steps.regressor import StepTimeRegressor
    from powerfit.tracking import log_step_time_model

    columns = ["gpu", "config", "batch_size", "seq_len"]
    test = np.arange(len(measured_steps)) % 4 == 3
    train, held_out = measured_steps[~test], measured_steps[test]
    model = StepTimeRegressor().fit(train[columns], train["measured_s"])
    database = tmp_path_factory.mktemp("steps") / "mlflow.db"
    shutil.copyfile(mlflow_db_template, database)
    uri = f"sqlite:///{database}"
    result = log_step_time_model(
        model, X_test=held_out[columns], y_test=held_out["measured_s"], tracking_uri=uri
    )
    return result, measured_steps[columns]


def test_registered_step_time_model_predicts_through_pyfunc_as_in_python(registered):
    import mlflow
    from mlflow import MlflowClient

    result, X = registered
    model = result.pipeline
    assert set(model.calibrations_) == set(X["gpu"])  # both measured GPUs calibrated
    assert result.promoted and result.version == 1
    assert 0 < result.metrics["test_mape"] < 0.5
    mlflow.set_tracking_uri(result.tracking_uri)
    loaded = mlflow.pyfunc.load_model(result.model_uri)
    assert loaded.metadata.flavors["python_function"]["loader_module"] == (
        "powerfit.tracking.flavor"
    )
    # One registered model for every GPU, calibrated or not (the T4: operator laws only).
    rows = pd.concat([X, X.head(2).assign(gpu="Tesla T4")], ignore_index=True)
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))
    assert loaded.predict(rows.assign(precision="fp32")).shape == (len(rows),)
    schema = loaded.metadata.get_input_schema()
    inputs = {c.name: (c.type.name, c.required) for c in schema.inputs}
    assert inputs == {
        "gpu": ("string", True),
        "config": ("string", True),
        "batch_size": ("long", True),
        "seq_len": ("long", True),
        "precision": ("string", False),
    }
    raw = loaded.get_raw_model()
    assert raw.calibrations_ == model.calibrations_
    # Every registered coefficient within its physical bounds (Calibration.BOUNDS):
    # scale in [0.8, 1.25], launch overhead per operator in [0, 20 µs].
    from powerfit.steps.calibration import Calibration

    for scale, launch_s in raw.calibrations_.values():
        assert Calibration.BOUNDS["scale"][0] <= scale <= Calibration.BOUNDS["scale"][1]
        assert Calibration.BOUNDS["launch_s"][0] <= launch_s <= Calibration.BOUNDS["launch_s"][1]
    assert all(type(v) is tuple for v in raw.calibrations_.values())  # exact round trip
    client = MlflowClient(result.tracking_uri)
    tags = client.get_registered_model(result.model_name).tags
    assert tags["powerfit.kind"] == "step-time-model"
    version_tags = client.get_model_version(result.model_name, "1").tags
    assert len(version_tags["powerfit.model_sha256"]) == 64
    metrics = client.get_run(result.run_id).data.metrics
    assert metrics["calibration.nvidia-a100-80gb-pcie.scale"] == pytest.approx(
        model.calibrations_["NVIDIA A100 80GB PCIe"][0]
    )


def test_history_lists_energy_models_only(registered):
    from powerfit.tracking import history

    result, _ = registered
    table = history(tracking_uri=result.tracking_uri)
    assert result.model_name not in set(table.get("model", pd.Series(dtype=str)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda m: m["state"]["__dict__"].append(
                ["calibrations_", {"__estimator__": "subprocess.Popen", "params": {}}]
            ),
            "refusing to build",
        ),
        (lambda m: m["params"]["__dict__"].append(["config", "/etc/passwd"]), "not a parameter"),
        (lambda m: m["state"]["__dict__"].append(["predict", 1.0]), "not a fitted attribute"),
        (
            lambda m: m.update({"__estimator__": "powerfit.steps.graph.training_step_graph"}),
            "refusing",
        ),
    ],
)
def test_a_tampered_step_time_model_is_refused(registered, tmp_path, change, message):
    import mlflow

    from powerfit.tracking.flavor import UnsafeModelError
    from powerfit.tracking.verify import download_model

    result, _ = registered
    mlflow.set_tracking_uri(result.tracking_uri)
    folder = download_model(result.model_uri, tmp_path / "model")
    spec = json.loads((folder / SPEC_FILE).read_text())
    assert spec["model"]["__estimator__"] == "powerfit.steps.regressor.StepTimeRegressor"
    change(spec["model"])
    (folder / SPEC_FILE).write_text(json.dumps(spec))
    with pytest.raises(UnsafeModelError, match=message):
        mlflow.pyfunc.load_model(str(folder))


def test_only_a_fitted_step_time_regressor_is_logged(tracking_uri):
    from sklearn.exceptions import NotFittedError

    from powerfit.steps.regressor import StepTimeRegressor
    from powerfit.tracking import log_step_time_model

    with pytest.raises(TypeError, match="expected a StepTimeRegressor"):
        log_step_time_model(object(), tracking_uri=tracking_uri)
    with pytest.raises(NotFittedError):
        log_step_time_model(StepTimeRegressor(), tracking_uri=tracking_uri)


def test_a_served_step_time_model_refuses_a_config_path(registered, data_home):
    """Through pyfunc the caller may be remote: a path would open one of the server's files."""
    import mlflow

    from powerfit.tracking.flavor import UnsafeModelError

    result, X = registered
    mlflow.set_tracking_uri(result.tracking_uri)
    loaded = mlflow.pyfunc.load_model(result.model_uri)
    path = next(Path(data_home, "neusight2025", "models").rglob("*.json"))
    rows = pd.concat([X.head(1), X.head(1).assign(config=str(path))], ignore_index=True)
    with pytest.raises(UnsafeModelError, match=r"row 1, column 'config': .*JSON text"):
        loaded.predict(rows)
    # The Python object, called by its owner, still reads a config.json path.
    assert result.pipeline.predict(rows).shape == (2,)
