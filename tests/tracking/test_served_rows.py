"""A served step-time model refuses oversized requests; spec files must be regular (issue 26)."""

from __future__ import annotations

import os
import threading
import time

import pandas as pd
import pytest

from powerfit.cli import main
from powerfit.tracking.flavor import (
    MAX_STEP_ROWS,
    SPEC_FILE,
    UnsafeModelError,
    _PyfuncModel,
    load_spec_folder,
)

CONFIG = '{"model_type": "gpt2", "n_layer": 2, "n_embd": 48, "n_head": 4, "vocab_size": 97}'


def _rows(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"gpu": ["a100"] * n, "config": [CONFIG] * n, "batch_size": [4] * n, "seq_len": [32] * n}
    )


def test_a_request_above_the_row_bound_is_refused_at_once(monkeypatch):
    from powerfit.steps.regressor import StepTimeRegressor

    served = _PyfuncModel(StepTimeRegressor())
    start = time.perf_counter()
    with pytest.raises(UnsafeModelError, match=r"100,000 rows in one request.*at most 1,000"):
        served.predict(_rows(100_000))
    assert time.perf_counter() - start < 5  # refused before any graph is built
    monkeypatch.setenv("POWERFIT_MAX_STEP_ROWS", "10")
    with pytest.raises(UnsafeModelError, match="at most 10 "):
        served.predict(_rows(11))
    monkeypatch.setenv("POWERFIT_MAX_STEP_ROWS", "none")
    with pytest.raises(UnsafeModelError, match="POWERFIT_MAX_STEP_ROWS='none'"):
        served.predict(_rows(1))
    assert MAX_STEP_ROWS == 1000


def test_serve_refuses_a_bad_max_rows(capsys):
    assert main(["serve", "models:/x/1", "--max-rows", "0"]) == 1
    assert "--max-rows 0: give a positive number" in capsys.readouterr().err


def test_a_spec_file_that_is_a_fifo_is_refused_not_read(tmp_path):
    os.mkfifo(tmp_path / SPEC_FILE)
    box = {}

    def load():
        try:
            load_spec_folder(tmp_path)
        except UnsafeModelError as exc:
            box["error"] = exc

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "blocked on a FIFO"
    assert "not a regular file (a FIFO" in str(box["error"])


def test_repeated_rows_are_scored_once_with_the_same_values(data_home):
    """The served model builds one graph per distinct row; the values are bit for bit equal."""
    import numpy as np

    from powerfit.datasets.neusight2025 import neusight_training_steps
    from powerfit.steps.regressor import StepTimeRegressor

    steps = neusight_training_steps(data_home)
    if steps.empty:
        pytest.skip(
            "needs the neusight2025 data set (github.com/sitar-lab/NeuSight): "
            "set POWERFIT_DATA_HOME to a folder holding neusight2025/"
        )
    texts = {p: open(p).read() for p in steps["config"].unique()}
    columns = ["gpu", "config", "batch_size", "seq_len"]
    X = steps.assign(config=steps["config"].map(texts))[columns].head(12)
    model = StepTimeRegressor().fit(X, steps["measured_s"].head(12))
    repeated = pd.concat([X, X.iloc[::-1], X], ignore_index=True)
    np.testing.assert_array_equal(_PyfuncModel(model).predict(repeated), model.predict(repeated))
