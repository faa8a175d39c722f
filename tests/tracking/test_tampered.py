"""A tampered registered model never runs: every powerfit path verifies, then loads safely.

The attack (issue 26, finding 1): the version's ``MLmodel`` is edited so that the
``python_function`` and ``sklearn`` flavours point at a cloudpickle file whose
unpickling creates a canary file. ``powerfit fit`` (rescoring the champion on the same
evidence), ``powerfit history --compare``, :func:`powerfit.tracking.load_model` and
``powerfit serve`` must refuse the version in one line, and the canary must not exist.
"""

from __future__ import annotations

import pathlib
import pickle
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest

from powerfit.cli import main
from powerfit.tracking.flavor import UnsafeModelError

pytestmark = pytest.mark.slow

NAME = "powerfit-nvidia-a100-80gb-pcie-transformer"


class _Canary:
    """Unpickling this creates ``path`` (the payload an attacker would run)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _artifact_folder(tracking_uri: str, version: int) -> Path:
    from mlflow import MlflowClient

    location = MlflowClient(tracking_uri).get_model_version_download_uri(NAME, str(version))
    return Path(urlparse(location).path)


def _tamper(folder: Path, canary: Path) -> None:
    """Point both flavours of ``folder/MLmodel`` at a pickle that creates ``canary``."""
    (folder / "model.pkl").write_bytes(pickle.dumps(_Canary(canary)))
    mlmodel = folder / "MLmodel"
    text = mlmodel.read_text()
    text = text.replace("loader_module: powerfit.tracking.flavor", "loader_module: mlflow.sklearn")
    text = text.replace("data: powerfit_model.json", "model_path: model.pkl")
    text = text.replace("pickled_model: model.skops", "pickled_model: model.pkl")
    text = text.replace("serialization_format: skops", "serialization_format: cloudpickle")
    assert "cloudpickle" in text and "mlflow.sklearn" in text
    mlmodel.write_text(text)


@pytest.fixture
def tampered(ingested_store, tracking_uri, tmp_path):
    """Version 1 registered and champion, then tampered; (store URL, tracking URI, canary)."""
    url = ingested_store.engine.url.render_as_string(hide_password=False)
    assert (
        main(["fit", "--gpu", "a100", "--db", url, "--tracking-uri", tracking_uri, "--json"]) == 0
    )
    canary = tmp_path / "canary"
    _tamper(_artifact_folder(tracking_uri, 1), canary)
    return url, tracking_uri, canary


def test_the_tampered_pickle_would_run_if_loaded_by_mlflow(tampered):
    """The fixture is a real attack: MLflow's own loader runs the pickle."""
    import mlflow.sklearn

    _, uri, canary = tampered
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.sklearn.load_model(f"models:/{NAME}/1")
    except Exception:
        pass
    finally:
        mlflow.set_tracking_uri(None)
    assert canary.exists()


def test_fit_refuses_a_tampered_champion(tampered, capsys):
    url, uri, canary = tampered
    capsys.readouterr()
    assert main(["fit", "--gpu", "a100", "--db", url, "--tracking-uri", uri]) == 0
    out = capsys.readouterr()
    assert not canary.exists()
    assert f"{NAME} version 1: its files changed since they were logged" in out.out + out.err
    from mlflow import MlflowClient

    champion = MlflowClient(uri).get_model_version_by_alias(NAME, "champion")
    assert str(champion.version) == "1"  # not moved on evidence it could not check


def test_history_compare_refuses_a_tampered_version(tampered, tmp_path, capsys):
    _, uri, canary = tampered
    path = tmp_path / "configs.csv"
    pd.DataFrame(
        {"batch_size": [64], "seq_len": [320], "d_model": [512], "n_heads": [8], "n_layers": [6]}
    ).to_csv(path, index=False)
    capsys.readouterr()
    assert main(["history", "--tracking-uri", uri, "--compare", str(path)]) == 1
    err = capsys.readouterr().err
    assert not canary.exists()
    assert len(err.strip().splitlines()) == 1
    assert f"{NAME} version 1: its files changed since they were logged" in err


def test_load_model_refuses_and_leaves_nothing(tampered, tmp_path, monkeypatch):
    import tempfile

    from powerfit.tracking import load_model

    _, uri, canary = tampered
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    with pytest.raises(UnsafeModelError, match="version 1: its files changed"):
        load_model(f"models:/{NAME}@champion", uri)
    assert not canary.exists()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_load_model_builds_the_estimator_and_leaves_nothing(recorded_fits, tmp_path, monkeypatch):
    import tempfile

    from powerfit.tracking import load_model

    uri, first, _ = recorded_fits
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    model = load_model(f"models:/{NAME}/1", uri)
    configs = pd.DataFrame(
        {"batch_size": [64], "seq_len": [320], "d_model": [512], "n_heads": [8], "n_layers": [6]}
    )
    assert model.predict(configs) == pytest.approx(first.pipeline.predict(configs))
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_model_above_the_size_bound_is_refused_before_download(
    recorded_fits, tmp_path, monkeypatch
):
    import tempfile

    from powerfit.tracking import load_model, verify_model

    uri = recorded_fits[0]
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("POWERFIT_MAX_MODEL_BYTES", "1000")
    with pytest.raises(UnsafeModelError, match="version 1: its files hold more than"):
        load_model(f"models:/{NAME}/1", uri)
    with pytest.raises(UnsafeModelError, match="more than powerfit loads"):
        verify_model(f"models:/{NAME}/1", uri)
    keep = tmp_path / "keep"
    with pytest.raises(UnsafeModelError, match="more than powerfit loads"):
        verify_model(f"models:/{NAME}/1", uri, keep, max_bytes=1000)
    assert list((tmp_path / "tmp").iterdir()) == []
    assert list(keep.iterdir()) == []
    monkeypatch.setenv("POWERFIT_MAX_MODEL_BYTES", "lots")
    with pytest.raises(UnsafeModelError, match="POWERFIT_MAX_MODEL_BYTES='lots'"):
        load_model(f"models:/{NAME}/1", uri)


def test_an_unknown_version_is_one_clear_error(recorded_fits):
    from powerfit.exceptions import TrackingError
    from powerfit.tracking import load_model

    with pytest.raises(TrackingError, match=f"no registered model {NAME} version 9"):
        load_model(f"models:/{NAME}/9", recorded_fits[0])


def test_serve_refuses_a_tampered_version(tampered, capsys):
    _, uri, canary = tampered
    capsys.readouterr()
    assert main(["serve", f"models:/{NAME}@champion", "--tracking-uri", uri]) == 1
    err = capsys.readouterr().err
    assert not canary.exists()
    assert f"{NAME} version 1: its files changed since they were logged" in err


def test_serve_answers_requests_from_the_verified_copy(recorded_fits, tmp_path):
    """``powerfit serve`` verifies, serves MLflow's scoring server, and cleans up."""
    import json
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    uri, first, _ = recorded_fits
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "powerfit", "serve", f"models:/{NAME}/1", "--tracking-uri", uri,
         "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        configs = {"batch_size": 64, "seq_len": 320, "d_model": 512, "n_heads": 8, "n_layers": 6}
        body = json.dumps({"dataframe_records": [configs]}).encode()
        deadline = time.monotonic() + 90
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/invocations", body,
                    {"Content-Type": "application/json"},
                )  # fmt: skip
                with urllib.request.urlopen(request, timeout=10) as response:
                    answer = json.loads(response.read())
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "the server did not answer in 90 s"
                time.sleep(0.5)
        expected = first.pipeline.predict(pd.DataFrame([configs]))
        assert answer["predictions"] == pytest.approx(list(expected))
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert list(tmp.iterdir()) == []
