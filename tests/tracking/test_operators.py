"""Operator latency laws fitted from the store and recorded in MLflow (real SQLite stores)."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from powerfit.exceptions import DataError
from powerfit.kernels.model import OPERATOR_COLUMNS
from powerfit.store import open_store


def _slice(source: Path, target: Path, rows: int, *, every: int = 1, start: int = 0) -> Path:
    """``rows`` data rows (one in ``every`` from ``start``) of a gzipped CSV, gzipped again."""
    frame = pd.read_csv(source).iloc[start::every].head(rows)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    target.write_bytes(gzip.compress(buffer.getvalue().encode()))
    return target


@pytest.fixture(scope="module")
def bmm_file(data_home) -> Path:
    path = data_home / "neusight2025" / "ops" / "test" / "bmm.csv.gz"
    if not path.is_file():
        pytest.skip(
            pytest.skip(
                "needs the neusight2025 data set (github.com/sitar-lab/NeuSight, see "
                "powerfit/datasets/neusight2025.py): set POWERFIT_DATA_HOME to a folder "
                "holding neusight2025/"
            )
        )
    return path


def test_operator_laws_are_fitted_from_the_store_and_recorded(tmp_path, bmm_file, tracking_uri):
    import mlflow
    from mlflow import MlflowClient

    from powerfit.tracking.locations import using_tracking_uri
    from powerfit.tracking.operators import fit_operator_laws
    from powerfit.tracking.verify import DIGEST_TAG, verify_model

    db = tmp_path / "store.db"
    with open_store(db) as store:
        store.ingest(_slice(bmm_file, tmp_path / "bmm.csv.gz", 300, every=40))
        rows = store.operator_measurements(precision="fp32")
    result = fit_operator_laws(db, tracking_uri=tracking_uri)

    assert result.model_name == "powerfit-operators-fp32" and result.version == 1
    assert result.precision == "fp32" and result.n_rows == len(rows)
    assert result.gpus == sorted(rows["gpu"].unique())
    # In-sample latency MAPE, per (GPU, op) and over all rows, is recorded and sane.
    error = np.abs(result.model.predict(rows[list(OPERATOR_COLUMNS)]) / rows["duration_s"] - 1)
    assert result.metrics["mape"] == pytest.approx(float(error.mean()))
    assert result.metrics["mape"] < 0.5

    client = MlflowClient(tracking_uri)
    run = client.get_run(result.run_id)
    assert run.data.params["precision"] == "fp32"
    assert run.data.params["n_rows"] == str(len(rows))
    assert run.data.params["gpus"] == ",".join(result.gpus)
    for (gpu, op), law in result.model.laws_.items():
        slug = gpu.lower().replace(" ", "-")
        assert run.data.metrics[f"law.{slug}.{op}.eta_max"] == pytest.approx(law["eta_max"])
    version = client.get_model_version(result.model_name, "1")
    assert version.tags["powerfit.precision"] == "fp32" and version.tags[DIGEST_TAG]
    kind = client.get_registered_model(result.model_name).tags["powerfit.kind"]
    assert kind == "operator-model"

    # Loaded back through the JSON pyfunc loader: the same predictions as in memory.
    with using_tracking_uri(tracking_uri):
        verify_model(result.model_uri)
        loaded = mlflow.pyfunc.load_model(result.model_uri)
    assert loaded.loader_module == "powerfit.tracking.flavor"
    X = rows[list(OPERATOR_COLUMNS)]
    np.testing.assert_allclose(loaded.predict(X), result.model.predict(X), rtol=1e-12)
    laws = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=result.run_id, artifact_path="operator_laws.json", tracking_uri=tracking_uri,
        dst_path=str(tmp_path / "dl"))).read_text())  # fmt: skip
    assert laws["precision"] == "fp32" and len(laws["laws"]) == len(result.model.laws_)

    # A second fit is a second version of the same registered model.
    again = fit_operator_laws(db, tracking_uri=tracking_uri)
    assert again.version == 2 and again.model_name == result.model_name


def test_operator_fit_refuses_mixed_precisions_and_empty_selections(tmp_path, bmm_file):
    from powerfit.tracking.operators import fit_operator_laws

    db = tmp_path / "store.db"
    with open_store(db) as store:
        store.ingest(_slice(bmm_file, tmp_path / "a.csv.gz", 40, every=97))
        fp16 = tmp_path / "fp16.csv"  # powerfit's own operation format, generic operators
        fp16.write_text(
            "gpu,arch,operation,batch_size,m,n,k,precision,flops,duration_s\n"
            "Tesla T4,generic,bmm,4,256,256,256,fp16,134217728,1e-4\n"
        )
        store.ingest(fp16)
    with pytest.raises(DataError, match="mix precisions"):
        fit_operator_laws(db, precision=None, tracking_uri=str(tmp_path / "unused.db"))
    with pytest.raises(DataError, match="no operator measurements"):
        fit_operator_laws(db, precision="bf16", tracking_uri=str(tmp_path / "unused.db"))


def test_cli_fit_operators(tmp_path, bmm_file, tracking_uri, capsys):
    from powerfit.cli import main

    db = tmp_path / "store.db"
    with open_store(db) as store:
        store.ingest(_slice(bmm_file, tmp_path / "bmm.csv.gz", 120, every=97))
        gpus = sorted(store.operator_measurements()["gpu"].unique())
    args = ["fit", "--operators", "--gpu", gpus[0], "--db", str(db)]
    assert main([*args, "--tracking-uri", tracking_uri, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["gpus"] == gpus[:1] and out["precision"] == "fp32" and out["version"] == 1
    assert out["model_name"] == "powerfit-operators-fp32"
    assert 0 <= out["metrics"]["mape"] < 1.0
    # NeuSight's rows were timed one call at a time: said so, recorded, and loaded back
    more = ["--call-timing", "isolated", "--tracking-uri", tracking_uri, "--json"]
    assert main([*args, *more]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["version"] == 2
    import mlflow
    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri).get_run(out["run_id"])
    assert run.data.params["model.call_timing"] == "isolated"
    laws = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=out["run_id"], artifact_path="operator_laws.json", tracking_uri=tracking_uri,
        dst_path=str(tmp_path / "dl"))).read_text())  # fmt: skip
    assert laws["call_timing"] == "isolated"
