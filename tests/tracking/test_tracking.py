"""powerfit.tracking: fits recorded in a real MLflow SQLite store, registry, history."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from powerfit.exceptions import DataError

GPU = "NVIDIA A100 80GB PCIe"
NAME = "powerfit-nvidia-a100-80gb-pcie-transformer"
CONFIGS = pd.DataFrame(
    {
        "batch_size": [64, 64, 32],
        "seq_len": [320, 320, 128],
        "d_model": [512, 768, 256],
        "n_heads": [8, 12, 4],
        "n_layers": [6, 12, 4],
    }
)


@pytest.fixture(scope="module")
def a100_fit(ingested_store):
    """The fit of the A100 Transformer data, not recorded."""
    from powerfit.tracking.fitting import fit_coefficients

    return fit_coefficients(ingested_store, GPU, "transformer")


def test_fitting_twice_gives_same_coefficients_and_two_versions(recorded_fits):
    _, first, second = recorded_fits
    assert (first.model_name, first.version, second.version) == (NAME, 1, 2)
    assert first.coefficients == second.coefficients
    assert set(first.laws) == {
        "qkv_projections", "attention_scores", "attention_output", "final_projection"
    }  # fmt: skip
    assert any("attention_softmax" in note for note in first.notes)
    assert first.promoted and not second.promoted  # equal MAPE is not better
    assert second.champion_version == 1
    np.testing.assert_array_equal(
        first.pipeline.predict(CONFIGS), second.pipeline.predict(CONFIGS)
    )


def test_run_records_params_metrics_artifacts_and_model(recorded_fits):
    from mlflow import MlflowClient

    uri, first, _ = recorded_fits
    client = MlflowClient(uri)
    run = client.get_run(first.run_id)
    params, metrics = run.data.params, run.data.metrics
    assert params["gpu"] == GPU and params["arch"] == "transformer"
    assert params["skipped_operations"] == "attention_softmax"
    assert params["store_url"].startswith("sqlite:///")
    assert params["stratify"] == "model,n_layers" and params["test_size"] == "0.33"
    assert len(params["data.sha256"]) == 64
    import_hashes = [k for k in params if k.startswith("data.import_")]
    assert len(import_hashes) == 2 and all(len(params[k]) == 64 for k in import_hashes)
    assert params["model.energy__solver"] == "nnls"
    for op in first.laws:
        for key in ("eta_max", "k", "alpha", "r2"):
            assert np.isfinite(metrics[f"law.{op}.{key}"])
        assert metrics[f"law.{op}.eta_max"] == pytest.approx(first.laws[op].eta_max_)
        assert f"h.{op}" in metrics
    assert metrics["h"] == pytest.approx(first.coefficients["h"])
    assert 0.9 < metrics["test_r2"] < 1 and 0 < metrics["test_mape"] < 0.2
    assert metrics["test_mae_j"] > 0
    names = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"coefficients.json", "plots"} <= names
    plots = {a.path for a in client.list_artifacts(first.run_id, "plots")}
    assert "plots/predicted_vs_measured.png" in plots
    assert {f"plots/law_{op}.png" for op in first.laws} <= plots
    document = json.loads(
        open(client.download_artifacts(first.run_id, "coefficients.json")).read()
    )
    assert document["laws"]["qkv_projections"]["eta_max"] == pytest.approx(
        first.laws["qkv_projections"].eta_max_
    )
    version = client.get_model_version(NAME, "1")
    assert version.tags["powerfit.gpu"] == GPU
    assert version.tags["powerfit.data_sha256"] == params["data.sha256"]


def test_logged_model_is_skops_with_only_powerfit_types_trusted(recorded_fits):
    import mlflow
    import yaml

    from powerfit.tracking.locations import using_tracking_uri

    uri, first, _ = recorded_fits
    with using_tracking_uri(uri):
        folder = mlflow.artifacts.download_artifacts(first.model_uri)
    with open(f"{folder}/MLmodel") as f:
        meta = yaml.safe_load(f)
    flavor = meta["flavors"]["sklearn"]
    assert flavor["serialization_format"] == "skops"
    assert flavor["skops_trusted_types"]
    assert all(t.startswith("powerfit.") for t in flavor["skops_trusted_types"])
    requirements = open(f"{folder}/requirements.txt").read()
    assert "powerfit==" in requirements and "scikit-learn==" in requirements
    assert "signature" in meta and "saved_input_example_info" in meta


def test_artifacts_stay_next_to_the_tracking_database(recorded_fits):
    from mlflow import MlflowClient

    uri, first, _ = recorded_fits
    run = MlflowClient(uri).get_run(first.run_id)
    folder = uri[len("sqlite:///") :].rsplit("/", 1)[0]
    assert run.info.artifact_uri.startswith(f"file://{folder}/mlartifacts/powerfit/")


def test_history_lists_every_version(recorded_fits):
    from powerfit.tracking import history

    uri, first, _ = recorded_fits
    table = history(tracking_uri=uri)
    assert list(table["version"]) == [1, 2]
    assert list(table["aliases"]) == ["champion", ""]
    assert table["data_sha256"].nunique() == 1
    assert table["created"].dt.tz is not None
    assert table.loc[0, "law.qkv_projections.eta_max"] == pytest.approx(
        first.coefficients["law.qkv_projections.eta_max"]
    )
    assert history("a100", "transformer", tracking_uri=uri).shape[0] == 2
    assert history(GPU, "lstm", tracking_uri=uri).empty


def test_compare_predicts_with_every_version(recorded_fits):
    from powerfit.tracking import compare

    uri, first, _ = recorded_fits
    table = compare(CONFIGS, tracking_uri=uri)
    np.testing.assert_array_equal(table[f"{NAME}/1"], table[f"{NAME}/2"])
    np.testing.assert_allclose(table[f"{NAME}/1"], first.pipeline.predict(CONFIGS))
    with pytest.raises(DataError, match=r"row 2, column 'n_heads'"):
        compare(CONFIGS.assign(n_heads=[8, 0, 4]), tracking_uri=uri)


def test_champion_is_decided_on_the_same_evidence(a100_fit, tracking_uri, monkeypatch):
    """Forced promotion (--promote) is tested in tests/cli/test_fit.py.

    issue 16, findings 2 and 7: an insane fit is never champion; a version claiming
    a lower MAPE on another test set does not win; a stale champion loses to a fit
    of a campaign with 15 % more power, scored on the same held-out runs.
    """
    import copy
    import dataclasses

    import mlflow
    from mlflow import MlflowClient

    from powerfit.tracking.physics import check_physics
    from powerfit.tracking.recording import log_fit
    from powerfit.tracking.registry import REASON_TAG

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////nonexistent/elsewhere.db")
    negative = copy.deepcopy(a100_fit.model)
    negative[-1].intercept_ = -25.0
    insane = dataclasses.replace(
        a100_fit, model=negative, physics=check_physics(negative, a100_fit.X_train), notes=[]
    )
    first = log_fit(insane, tracking_uri=tracking_uri)
    assert not first.promoted and first.champion_version is None
    assert any("physics check failed" in note for note in first.notes)
    sane = log_fit(dataclasses.replace(a100_fit, notes=[]), tracking_uri=tracking_uri)
    assert sane.promoted and sane.champion_version == 2
    # Worse on the same runs, though its own stored MAPE claims 1 %.
    scaled = copy.deepcopy(a100_fit.model)
    scaled[-1].coef_ = scaled[-1].coef_ * 1.3
    metrics = a100_fit.metrics | {"test_mape": 0.01}
    liar = dataclasses.replace(a100_fit, model=scaled, metrics=metrics, notes=[])
    third = log_fit(liar, tracking_uri=tracking_uri)
    assert not third.promoted and third.champion_version == 2
    # A new campaign: 15 % more power. Refitted on it, the new version wins there.
    more = 1.15
    model = copy.deepcopy(a100_fit.model).fit(a100_fit.X_train, a100_fit.y_train * more)
    campaign = dataclasses.replace(
        a100_fit,
        model=model,
        y_train=a100_fit.y_train * more,
        y_test=a100_fit.y_test * more,
        metrics=a100_fit.metrics | {"test_mape": a100_fit.metrics["test_mape"] + 0.01},
        data=a100_fit.data | {"sha256": "f" * 64},
        notes=[],
    )
    fourth = log_fit(campaign, tracking_uri=tracking_uri)
    assert fourth.promoted and fourth.champion_version == 4
    client = MlflowClient(tracking_uri)
    reasons = {v: client.get_model_version(NAME, str(v)).tags[REASON_TAG] for v in (1, 3, 4)}
    assert reasons[1].startswith("not promoted: the physics check failed")
    assert reasons[3].startswith("not promoted: held-out MAPE")
    assert reasons[4].startswith("promoted: held-out MAPE") and "same" in reasons[4]
    assert client.get_model_version(NAME, "1").tags["powerfit.physics"].startswith("failed")
    assert any(note.startswith("champion: promoted") for note in fourth.notes)
    # The caller's tracking URI is left as it was.
    assert mlflow.get_tracking_uri() == "sqlite:////nonexistent/elsewhere.db"


def test_versions_say_what_they_are_and_can_be_diffed(recorded_fits, capsys):
    from mlflow import MlflowClient

    from powerfit.cli import main
    from powerfit.tracking import compare, history
    from powerfit.tracking.versions import diff, resolve_version

    uri, first, _ = recorded_fits
    client = MlflowClient(uri)
    run = client.get_run(first.run_id)
    sha = first.fit.data["sha256"]
    assert run.info.run_name == f"{GPU} / transformer / tf32 / paper / data {sha[:12]}"
    tags = client.get_model_version(NAME, "1").tags
    assert (tags["powerfit.energy_model"], tags["powerfit.precision"]) == ("paper", "tf32")
    assert tags["powerfit.physics"].startswith("passed")
    assert "split.json" in {a.path for a in client.list_artifacts(first.run_id)}
    table = history(tracking_uri=uri)
    assert list(table["energy_model"]) == ["paper", "paper"]
    assert table["champion_reason"].str.contains("held-out").iloc[1]
    assert resolve_version("@champion", tracking_uri=uri) == (NAME, 1)
    assert resolve_version(f"models:/{NAME}/2", tracking_uri=uri) == (NAME, 2)
    changes = diff(1, f"{NAME}@champion", tracking_uri=uri)
    assert list(changes.columns) == ["section", "key", f"{NAME}/1 (a)", f"{NAME}/1 (b)", "change"]
    changes = diff(1, 2, tracking_uri=uri)
    rows = changes.set_index("key")
    assert rows.loc["law.qkv_projections.eta_max", "section"] == "coefficient"
    assert rows.loc["law.qkv_projections.eta_max", "change"] == ""
    assert rows.loc["data_sha256", f"{NAME}/1"] == sha
    assert rows.loc["aliases", "change"] == "changed"
    assert {"version", "data", "coefficient", "metric"} <= set(changes["section"])
    only = compare(CONFIGS, tracking_uri=uri, versions=[2])
    assert [c for c in only.columns if c.startswith(NAME)] == [f"{NAME}/2"]
    with pytest.raises(DataError, match="no registered powerfit model version '7'"):
        compare(CONFIGS, tracking_uri=uri, versions=[7])
    assert main(["history", "--tracking-uri", uri, "--diff", "1", "2"]) == 0
    out = capsys.readouterr().out
    assert "law.qkv_projections.alpha" in out and f"model {NAME}: version 1 → 2" in out
    assert main(["history", "--tracking-uri", uri, "--wide"]) == 0  # laws: --wide only
    out = capsys.readouterr().out
    assert "qkv_projections" in out and "paper" in out


def test_step_model_is_fitted_recorded_and_loaded(ingested_store, a100_fit, tracking_uri):
    import mlflow

    from powerfit.tracking.energy_models import step_energy_model
    from powerfit.tracking.fitting import fit_coefficients
    from powerfit.tracking.recording import log_fit

    fit = fit_coefficients(ingested_store, GPU, "transformer", energy_model="step")
    # Fitted on measured step durations, then corrected: far better than the paper's model.
    assert fit.model[-1].fit_target_ == "duration"
    assert fit.metrics["test_mape"] < 0.06 < a100_fit.metrics["test_mape"]  # monotone: 5.1 %
    assert "model" in fit.X_train.columns and "n_params" not in fit.X_train.columns
    result = log_fit(fit, tracking_uri=tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    loaded = mlflow.pyfunc.load_model(result.model_uri)
    inputs = {c.name: c.required for c in loaded.metadata.get_input_schema().inputs}
    assert not inputs["model"] and inputs["d_model"]
    configs = CONFIGS.assign(model=["bert", "gpt2", "bert"])
    np.testing.assert_allclose(loaded.predict(configs), fit.model.predict(configs), rtol=1e-12)
    np.testing.assert_allclose(loaded.predict(CONFIGS), fit.model.predict(CONFIGS), rtol=1e-12)
    with pytest.raises(DataError, match=r"row 2, column 'd_model'"):
        loaded.predict(CONFIGS.assign(d_model=[512, -1, 256]))
    with pytest.raises(DataError, match="covers transformer and lstm"):
        step_energy_model({GPU: fit.laws}, arch="gru")


@pytest.mark.postgres
def test_fits_are_versioned_in_a_postgresql_tracking_store(
    a100_fit, postgres_schema_url, tmp_path, monkeypatch
):
    # A lab's shared MLflow database: a real PostgreSQL server (own schema).
    import mlflow

    from powerfit.tracking import history
    from powerfit.tracking.recording import log_fit

    monkeypatch.setenv("POWERFIT_HOME", str(tmp_path / "home"))  # artifacts go there
    first = log_fit(a100_fit, tracking_uri=postgres_schema_url)
    second = log_fit(a100_fit, tracking_uri=postgres_schema_url)
    assert (first.version, second.version) == (1, 2)
    assert first.promoted and second.champion_version == 1
    table = history(tracking_uri=postgres_schema_url)
    assert list(table["version"]) == [1, 2] and list(table["aliases"]) == ["champion", ""]
    mlflow.set_tracking_uri(postgres_schema_url)
    loaded = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    np.testing.assert_allclose(
        loaded.predict(CONFIGS), a100_fit.model.predict(CONFIGS), rtol=1e-12
    )
    assert (tmp_path / "home" / "mlartifacts" / "powerfit").is_dir()


def test_no_measurements_says_what_the_store_holds(ingested_store):
    from powerfit.tracking.fitting import fit_coefficients

    with pytest.raises(DataError, match=r"no run measurements .* It holds: .*A100.*lstm"):
        fit_coefficients(ingested_store, "NVIDIA GeForce RTX 2080 Ti", "lstm")


def test_non_converged_law_is_an_error(store, tmp_path):
    from powerfit.exceptions import ConvergenceError
    from powerfit.tracking.fitting import _fit_laws

    rng = np.random.default_rng(0)
    ops = pd.DataFrame(
        {
            "operation": "qkv_projections",
            "flops": np.logspace(9, 12, 20),
            "efficiency": rng.uniform(0.1, 0.5, 20),
        }
    )
    with pytest.raises(ConvergenceError, match="qkv_projections"):
        _fit_laws(ops, "transformer", None, {"max_nfev": 1, "n_starts": 1})


def test_default_locations(monkeypatch, tmp_path):
    from powerfit.tracking.locations import (
        artifact_location,
        default_artifact_root,
        resolve_tracking_uri,
    )

    monkeypatch.setenv("POWERFIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = resolve_tracking_uri()
    assert uri == f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    assert (tmp_path / "home").is_dir()
    assert default_artifact_root() == tmp_path / "home" / "mlartifacts"
    assert artifact_location(uri) == (tmp_path / "home" / "mlartifacts" / "powerfit").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example.invalid:5000")
    assert resolve_tracking_uri() == "http://example.invalid:5000"
    assert resolve_tracking_uri(tmp_path / "x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ValueError, match="relative"):
        resolve_tracking_uri("sqlite:///relative.db")
