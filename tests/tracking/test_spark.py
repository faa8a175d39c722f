"""Registered models scored in Apache Spark through ``mlflow.pyfunc.spark_udf``.

A real local Spark (one core, no UI) runs the UDF in its Python workers: the paper's
energy model and the step-time model of real configurations, each loaded there from
the MLflow registry through powerfit's JSON loader. Skipped without Java or pyspark
(``pip install 'powerfit[spark]'``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs Java (no `java` on PATH, no JAVA_HOME)", allow_module_level=True)
pytest.importorskip("pyspark", reason="pyspark is not installed (extra 'spark')")

CONFIGS = pd.DataFrame(
    {
        "batch_size": [64, 64, 32, 128],
        "seq_len": [320, 320, 128, 512],
        "d_model": [512, 768, 256, 1024],
        "n_heads": [8, 12, 4, 16],
        "n_layers": [6, 12, 4, 24],
    }
)


@pytest.fixture(scope="module")
def spark():
    """A local Spark session (one core, small memory, no UI), stopped at the end."""
    from pyspark.sql import SparkSession

    saved = {k: os.environ.get(k) for k in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")}
    os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[1]")
        .appName("powerfit-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "512m")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _score(spark, model_uri: str, frame: pd.DataFrame) -> np.ndarray:
    """Score ``frame`` in Spark with the registered model (a struct of its columns)."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type="double", env_manager="local")
    scored = spark.createDataFrame(frame).withColumn("y", udf(F.struct(*frame.columns)))
    return scored.toPandas()["y"].to_numpy()


def test_registered_energy_model_scores_in_spark(spark, recorded_fits):
    import mlflow

    uri, first, _ = recorded_fits
    mlflow.set_tracking_uri(uri)
    energy_j = _score(spark, f"models:/{first.model_name}@champion", CONFIGS)
    np.testing.assert_allclose(energy_j, first.pipeline.predict(CONFIGS), rtol=1e-9)


def test_registered_step_time_model_scores_in_spark(spark, data_home, tracking_uri):
    import mlflow

    from powerfit.datasets.neusight2025 import neusight_training_steps
    from powerfit.steps.regressor import StepTimeRegressor
    from powerfit.tracking import log_step_time_model

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
    X = steps.assign(config=steps["config"].map(texts))[["gpu", "config", "batch_size", "seq_len"]]
    model = StepTimeRegressor().fit(X, steps["measured_s"])
    result = log_step_time_model(model, tracking_uri=tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    rows = pd.concat([X, X.head(2).assign(gpu="Tesla T4")], ignore_index=True)
    step_s = _score(spark, result.model_uri, rows)
    np.testing.assert_allclose(step_s, model.predict(rows), rtol=1e-9)
