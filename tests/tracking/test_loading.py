"""Loading a recorded model from a clean process: pyfunc, sklearn flavour, the MLflow CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

NAME = "powerfit-nvidia-a100-80gb-pcie-transformer"

#: Runs in a fresh interpreter that imports only mlflow (and pandas for the input).
_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import mlflow, pandas as pd

    name, configs_path = sys.argv[1], sys.argv[2]
    configs = pd.read_csv(configs_path)
    out = {"powerfit_imported_before_load": "powerfit" in sys.modules}
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    out["pyfunc"] = [float(x) for x in model.predict(configs)]
    floats = configs.astype(float)
    try:  # counts are declared long: MLflow refuses a float column, naming it
        model.predict(floats)
    except Exception as exc:
        out["floats_refused"] = str(exc)[-300:]
    from powerfit.tracking.recording import as_model_input

    floats = as_model_input(floats, model.metadata.signature)
    out["pyfunc_floats"] = [float(x) for x in model.predict(floats)]
    pipeline = mlflow.sklearn.load_model(f"models:/{name}/2")
    out["sklearn_type"] = type(pipeline).__module__ + "." + type(pipeline).__name__
    out["sklearn_steps"] = [step for step, _ in pipeline.steps]
    out["sklearn"] = [float(x) for x in pipeline.predict(configs)]
    bad = configs.copy()
    bad.loc[1, "d_model"] = -512
    try:
        model.predict(bad)
    except Exception as exc:
        out["error"] = [type(exc).__module__ + "." + type(exc).__name__, str(exc)]
    print(json.dumps(out))
    """
)


@pytest.fixture
def clean_env(recorded_fits, tmp_path) -> dict[str, str]:
    uri = recorded_fits[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTEST_"))}
    return env | {
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "POWERFIT_HOME": str(tmp_path / "home"),
    }


@pytest.fixture
def configs_csv(tmp_path) -> Path:
    path = tmp_path / "configs.csv"
    pd.DataFrame(
        {
            "batch_size": [64, 64, 32],
            "seq_len": [320, 320, 128],
            "d_model": [512, 768, 256],
            "n_heads": [8, 12, 4],
            "n_layers": [6, 12, 4],
        }
    ).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_three_loading_paths_from_a_clean_process(recorded_fits, clean_env, configs_csv, tmp_path):
    _, first, _ = recorded_fits
    expected = first.pipeline.predict(pd.read_csv(configs_csv))
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, NAME, str(configs_csv)],
        env=clean_env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert not out["powerfit_imported_before_load"]
    np.testing.assert_allclose(out["pyfunc"], expected, rtol=1e-12)
    assert "convert float64 to int64" in out["floats_refused"]
    np.testing.assert_allclose(out["pyfunc_floats"], expected, rtol=1e-12)
    np.testing.assert_allclose(out["sklearn"], expected, rtol=1e-12)
    assert out["sklearn_type"] == "sklearn.pipeline.Pipeline"
    assert out["sklearn_steps"] == ["durations", "energy"]
    kind, message = out["error"]
    assert kind == "powerfit.exceptions.DataError"
    assert "row 2, column 'd_model'" in message

    # The MLflow command line, in the same environment (powerfit is installed in it).
    predictions = tmp_path / "predictions.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "mlflow", "models", "predict", "-m", f"models:/{NAME}/1",
            "-i", str(configs_csv), "-t", "csv", "-o", str(predictions),
            "--env-manager", "local",
        ],
        env=clean_env, cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(predictions.read_text())["predictions"]
    np.testing.assert_allclose(served, expected, rtol=1e-12)
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
