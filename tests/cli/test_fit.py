"""``powerfit fit`` on the ingested published data, into a real MLflow SQLite store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from powerfit.cli import main
from powerfit.exceptions import DataError


def _store_url(ingested_store) -> str:
    return ingested_store.engine.url.render_as_string(hide_password=False)


def test_fit_json_then_text(ingested_store, tracking_uri, capsys):
    common = ["fit", "--gpu", "a100", "--arch", "transformer", "--db", _store_url(ingested_store),
              "--tracking-uri", tracking_uri, "--register", "my-model"]  # fmt: skip
    assert main([*common, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["model_name"], out["version"], out["promoted"]) == ("my-model", 1, True)
    assert out["model_uri"] == "models:/my-model/1"
    assert 0 < out["metrics"]["test_mape"] < 0.2
    assert "law.qkv_projections.eta_max" in out["coefficients"]
    assert any("attention_softmax" in note for note in out["notes"])

    assert main([*common, "--promote"]) == 0
    text = capsys.readouterr().out
    assert "qkv_projections" in text and "MAPE" in text
    assert "registered my-model version 2 (now champion)" in text


def test_fit_unknown_selection_explains_the_store(ingested_store, tracking_uri, capsys):
    code = main(["fit", "--gpu", "rtx2080ti", "--arch", "lstm",
                 "--db", _store_url(ingested_store), "--tracking-uri", tracking_uri])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "powerfit fit: error: no run measurements" in err
    assert "It holds:" in err and "NVIDIA A100 80GB PCIe / transformer" in err


# ------------------------------------------------------------ a lab with steps only
@pytest.fixture(scope="module")
def steps_only_store(data_home, tmp_path_factory):
    """A store holding the published training steps (A100 tf32, RTX 2080 Ti fp32), no
    operation measurements: a lab that measured only whole steps."""
    from powerfit.store import open_store

    path = tmp_path_factory.mktemp("steps-only") / "powerfit.db"
    with open_store(path) as opened:
        processed = data_home / "mayaki2025" / "processed"
        opened.ingest(processed / "SubsetDataForTransformer_energyModel.csv")
        yield opened


def test_steps_only_store_names_laws_from_and_measure_ops(steps_only_store, tracking_uri, capsys):
    code = main(["fit", "--gpu", "a100", "--db", _store_url(steps_only_store),
                 "--tracking-uri", tracking_uri])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "no operation measurements" in err
    assert "--laws-from PROFILE" in err and "mayaki2025-a100: tf32 laws" in err
    assert "powerfit measure ops" in err


def test_laws_from_fits_the_energy_model_on_steps_alone(steps_only_store):
    from powerfit.paper.profiles import load_profile
    from powerfit.tracking.fitting import fit_coefficients, version_tags

    stages: list[str] = []
    fit = fit_coefficients(
        steps_only_store, "a100", "transformer", laws_from="mayaki2025-a100",
        progress=stages.append,
    )  # fmt: skip
    profile = load_profile("mayaki2025-a100")
    assert {op: law.coefficients_ for op, law in fit.laws.items()} == {
        op: dict(zip(("eta_max", "k", "alpha"), law, strict=True))
        for op, law in profile.laws.items()
    }
    assert fit.data["n_operation_rows"] == 0 and fit.data["laws_from"] == "mayaki2025-a100"
    assert not any(key.startswith("law.") for key in fit.metrics)  # nothing fitted on ops
    assert 0 < fit.metrics["test_mape"] < 0.2 and fit.physics.passed
    tags = version_tags(fit)
    assert tags["powerfit.laws_from"] == "mayaki2025-a100"
    assert tags["powerfit.laws_precision"] == tags["powerfit.precision"] == "tf32"
    assert stages[0] == "reading the store" and "fitting the efficiency laws" not in stages
    # the same steps with laws fitted elsewhere give another data hash
    other = fit_coefficients(steps_only_store, "a100", laws_from="mayaki2025-rtx2080ti",
                             precision="tf32")  # fmt: skip
    assert other.data["sha256"] != fit.data["sha256"]


def test_laws_from_refuses_a_precision_mismatch_by_name(steps_only_store, tracking_uri, capsys):
    from powerfit.tracking.fitting import fit_coefficients

    code = main(["fit", "--gpu", "rtx2080ti", "--laws-from", "mayaki2025-a100",
                 "--db", _store_url(steps_only_store),
                 "--tracking-uri", tracking_uri])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "holds tf32 laws but the run measurements" in err and "are fp32" in err
    assert "mayaki2025-rtx2080ti: fp32 laws" in err and "--precision fp32" in err
    # an explicit precision reuses them anyway, on the RTX's own tf32-less peak: refused
    with pytest.raises(DataError, match="has no tf32 peak"):
        fit_coefficients(steps_only_store, "rtx2080ti", laws_from="mayaki2025-a100",
                         precision="fp32")  # fmt: skip
    fit = fit_coefficients(steps_only_store, "a100", laws_from="mayaki2025-rtx2080ti",
                           precision="tf32")  # fmt: skip
    assert any("fp32 laws of profile mayaki2025-rtx2080ti reused for tf32 steps" in n
               for n in fit.notes)  # fmt: skip
    assert any("applied to NVIDIA A100 80GB PCIe as fractions of its fp32 peak" in n
               for n in fit.notes)  # fmt: skip
    with pytest.raises(DataError, match="laws of lstm operations, not transformer"):
        fit_coefficients(steps_only_store, "a100", laws_from="mayaki2025-lstm-a100")


def test_fit_laws_from_records_the_profile(steps_only_store, tracking_uri, capsys):
    from mlflow import MlflowClient

    code = main(["fit", "--gpu", "a100", "--laws-from", "mayaki2025-a100", "--json",
                 "--db", _store_url(steps_only_store),
                 "--tracking-uri", tracking_uri])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out)
    assert out["laws_from"] == "mayaki2025-a100"
    tags = MlflowClient(tracking_uri).get_model_version(out["model_name"], "1").tags
    assert tags["powerfit.laws_from"] == "mayaki2025-a100"


# --------------------------------------------------------------- runs on several GPUs
def test_runs_on_several_gpus_are_fitted_per_gpu(ingested_store, data_home, tmp_path):
    """A step on 4 GPUs costs 4 × one GPU's step: its energy is not one GPU's."""
    from powerfit.store import open_store
    from powerfit.tracking.fitting import fit_coefficients

    runs = ingested_store.run_measurements("a100", "transformer")
    columns = ["gpu", "arch", "model", "n_layers", "batch_size", "seq_len", "d_model",
               "n_heads", "precision", "duration_s", "energy_j"]  # fmt: skip
    frame = runs[columns].copy()
    four = np.arange(len(frame)) % 2 == 1
    frame["gpu_count"] = np.where(four, 4, 1)
    frame["energy_j"] = np.where(four, 4, 1) * frame["energy_j"]
    path = tmp_path / "steps.csv"
    frame.to_csv(path, index=False)
    with open_store(tmp_path / "powerfit.db") as store:
        store.ingest(data_home / "mayaki2025" / "processed" / "dataForTransformerHEF.csv")
        store.ingest(path)
        fit = fit_coefficients(store, "a100", "transformer")
    baseline = fit_coefficients(ingested_store, "a100", "transformer")
    assert any("ran on several GPUs" in note and "divided by their GPU count" in note
               for note in fit.notes)  # fmt: skip
    assert np.allclose(np.sort(fit.y_train), np.sort(baseline.y_train))
    assert fit.metrics["test_mape"] == pytest.approx(baseline.metrics["test_mape"], rel=1e-6)


# ------------------------------------------------------------------------- progress
@pytest.mark.slow
def test_fit_shows_progress_on_a_terminal_only(
    ingested_store, tracking_uri, tmp_path, cli_on_terminal
):
    args = ["fit", "--gpu", "a100", "--db", _store_url(ingested_store),
            "--tracking-uri", tracking_uri]  # fmt: skip
    code, out, terminal = cli_on_terminal(args, tmp_path)
    assert code == 0, terminal
    from powerfit.tracking.recording import RECORDING_STAGES

    assert "recording in MLflow" in terminal and "|" in terminal  # a tqdm bar
    for stage in RECORDING_STAGES:  # the recording (~5 s) shows each of its sub-steps
        assert stage in terminal
    assert "registered" in out
    code, out, terminal = cli_on_terminal([*args, "--json"], tmp_path)
    assert code == 0, terminal
    assert json.loads(out)["version"] == 2  # stdout is pure JSON
    assert "recording in MLflow" not in terminal  # and --json shows no progress
