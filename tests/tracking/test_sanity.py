"""Fits that are physically sane, and inputs never dropped silently (issue 16, 2 and 4)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from powerfit.tracking.energy_models import model_input_columns
from powerfit.tracking.inputs import _select_inputs
from powerfit.tracking.physics import check_physics

GPU = "NVIDIA A100 80GB PCIe"


@pytest.fixture(scope="module")
def a100_fit(ingested_store):
    from powerfit.tracking.fitting import fit_coefficients

    return fit_coefficients(ingested_store, GPU, "transformer")


class _Edited:
    """The ingested store, with its run measurements edited (a view; nothing written)."""

    def __init__(self, store, edit):
        self._store, self._edit = store, edit

    def run_measurements(self, *args, **kwargs):
        return self._edit(self._store.run_measurements(*args, **kwargs).copy())

    def __getattr__(self, name):
        return getattr(self._store, name)


class _Decreasing:
    """A fitted model whose energy goes down with seq_len: physically wrong."""

    def predict(self, X):
        return 100.0 * X["n_layers"] * X["batch_size"] / X["seq_len"] ** 0.5 + 1.0


def test_default_fit_is_sane_and_says_so(a100_fit):
    physics = a100_fit.physics
    assert physics.passed and physics.problems == []
    assert physics.min_energy_j > 0 and physics.n_points > 1000
    # The grid covers the whole domain: from 1 to twice the largest value of the data.
    assert physics.domain["n_layers"][0] == 1
    assert physics.domain["seq_len"][-1] >= 2 * a100_fit.X_train["seq_len"].max()
    assert a100_fit.metrics["physics.passed"] == 1.0
    assert a100_fit.coefficients["h"] >= 0
    assert (a100_fit.model.predict(a100_fit.X_train) > 0).all()


def test_negative_energy_is_caught(a100_fit):
    model = copy.deepcopy(a100_fit.model)
    model[-1].intercept_ = -25.0  # what a free intercept did on a lab's data
    physics = check_physics(model, a100_fit.X_train)
    assert not physics.passed and physics.min_energy_j < 0
    assert "must be > 0" in physics.problems[0] and "n_layers=1" in physics.problems[0]
    assert "np." not in physics.summary()


def test_energy_decreasing_with_tokens_is_caught(a100_fit):
    physics = check_physics(_Decreasing(), a100_fit.X_train)
    assert not physics.passed
    assert any(p.startswith("energy decreases with seq_len") for p in physics.problems)
    assert physics.summary().startswith("failed: ")


def test_insane_fit_is_never_promoted(a100_fit, tracking_uri):
    from mlflow import MlflowClient

    from powerfit.tracking.registry import decide_champion

    model = copy.deepcopy(a100_fit.model)
    model[-1].intercept_ = -25.0
    insane = copy.copy(a100_fit)
    insane.physics = check_physics(model, a100_fit.X_train)
    client = MlflowClient(tracking_uri)
    for force in (False, True):
        decision = decide_champion(client, "no-such-model", 1, insane, force=force)
        assert not decision.promoted and decision.champion is None
        assert decision.reason.startswith("not promoted: the physics check failed")
    sane = decide_champion(client, "no-such-model", 1, a100_fit)
    assert sane.promoted and "first physically sane" in sane.reason


def _runs(n=40):
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "n_layers": rng.choice([2, 4, 6], n).astype(float),
            "batch_size": 32.0,
            "seq_len": 256.0,
            "d_model": 512.0,
            "n_heads": 8.0,
            "d_ff": 2048.0,
            "vocab_size": 30522.0,
            "model": "bert",
            "energy_j": rng.uniform(10, 20, n),
        }
    )


def test_rows_lacking_an_optional_input_are_left_out_with_a_note():
    # issue 16, finding 4: six rows without vocab_size removed it from the whole fit.
    required, optional = model_input_columns("transformer", "step")
    runs = _runs()
    runs.loc[:5, "vocab_size"] = np.nan
    kept, present, notes = _select_inputs(runs, required, optional)
    assert "vocab_size" in present and len(kept) == len(runs) - 6
    assert kept["vocab_size"].notna().all()
    assert any("6 of 40 runs lack the optional input vocab_size" in n for n in notes)


def test_rarely_given_optional_input_is_not_used_with_a_note():
    required, optional = model_input_columns("transformer", "step")
    runs = _runs()
    runs.loc[5:, "vocab_size"] = np.nan
    kept, present, notes = _select_inputs(runs, required, optional)
    assert "vocab_size" not in present and len(kept) == len(runs)
    assert any("vocab_size is given in only 5 of 40 runs: not used" in n for n in notes)


def test_rows_lacking_a_required_input_or_energy_are_left_out_with_a_note():
    required, optional = model_input_columns("transformer", "step")
    runs = _runs()
    runs.loc[[3, 7], "seq_len"] = np.nan
    runs.loc[9, "energy_j"] = np.nan
    kept, present, notes = _select_inputs(runs, required, optional)
    assert len(kept) == len(runs) - 3
    assert "1 of 40 runs have no measured energy: left out" in notes
    assert any("2 of 39 runs lack a required input (seq_len (2))" in n for n in notes)
    assert set(present) == {"d_ff", "vocab_size", "model"}


def test_fit_keeps_a_partly_given_input_and_counts_the_rows_left_out(ingested_store):
    from powerfit.tracking.fitting import fit_coefficients

    def edit(runs):
        runs["d_ff"] = 4.0 * runs["d_model"]
        runs.loc[runs.index[:25], "d_ff"] = np.nan
        runs.loc[runs.index[30:33], "seq_len"] = np.nan
        return runs

    fit = fit_coefficients(_Edited(ingested_store, edit), GPU, "transformer")
    n_all = len(ingested_store.run_measurements(GPU, "transformer"))
    assert "d_ff" in fit.X_train.columns
    assert len(fit.X_train) + len(fit.X_test) == n_all - 28
    assert any("25 of" in n and "d_ff" in n for n in fit.notes)
    assert any("3 of" in n and "seq_len" in n for n in fit.notes)
    assert fit.data["n_run_rows"] == n_all - 28


@pytest.mark.slow
@pytest.mark.parametrize("gpu", [GPU, "NVIDIA GeForce RTX 2080 Ti"])
def test_step_model_is_physically_sane_on_the_published_data(ingested_store, gpu):
    # issue 16, finding 2: the step model's boosted correction learned energies that
    # fall with longer sequences (45.4 J at seq_len 256, 36.1 J at 512) on the A100.
    from powerfit.tracking.fitting import fit_coefficients

    fit = fit_coefficients(ingested_store, gpu, "transformer", energy_model="step")
    assert fit.physics.passed, fit.physics.summary()
    assert fit.physics.min_energy_j > 0 and fit.physics.n_points > 1000
    regressor = fit.model[-1]
    assert regressor.correction_ is not None  # sane with the correction, not without it
    assert fit.metrics["test_mape"] < 0.08  # 5.2 % (A100), 1.3 % (RTX) on its split
