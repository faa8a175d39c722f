"""Tests of powerfit.tracking.verify: a model's files checked against the logged digest."""

from __future__ import annotations

import pytest

from powerfit.tracking.flavor import UnsafeModelError
from powerfit.tracking.verify import DIGEST_TAG, verify_model

pytestmark = pytest.mark.slow


@pytest.fixture
def logged(ingested_store, tracking_uri):
    from powerfit.tracking import fit_and_log

    url = ingested_store.engine.url.render_as_string(hide_password=False)
    return fit_and_log(url, "NVIDIA A100 80GB PCIe", "transformer", tracking_uri=tracking_uri)


def _artifact_folder(result):
    """The local artifact folder of a registered model version."""
    from pathlib import Path
    from urllib.parse import urlparse

    from mlflow import MlflowClient

    client = MlflowClient(result.tracking_uri)
    location = client.get_model_version_download_uri(result.model_name, str(result.version))
    return Path(urlparse(location).path)


def test_a_logged_model_verifies_and_its_digest_is_a_version_tag(logged, tmp_path):
    from mlflow import MlflowClient

    tags = MlflowClient(logged.tracking_uri).get_model_version(logged.model_name, "1").tags
    assert len(tags[DIGEST_TAG]) == 64
    folder = verify_model(
        f"models:/{logged.model_name}@champion", logged.tracking_uri, tmp_path / "a"
    )
    assert (folder / "MLmodel").is_file()


def test_an_edited_mlmodel_fails_verification(logged, tmp_path):
    mlmodel = _artifact_folder(logged) / "MLmodel"
    text = mlmodel.read_text()
    mlmodel.write_text(
        text.replace("loader_module: powerfit.tracking.flavor", "loader_module: mlflow.sklearn")
    )
    assert mlmodel.read_text() != text
    with pytest.raises(UnsafeModelError, match="changed since they were logged"):
        verify_model(f"models:/{logged.model_name}/1", logged.tracking_uri, tmp_path / "b")


def test_uris_that_are_not_registered_models_are_refused(tmp_path):
    with pytest.raises(UnsafeModelError, match="models:/NAME/VERSION"):
        verify_model("runs:/abc/model", f"sqlite:///{tmp_path}/mlflow.db")
