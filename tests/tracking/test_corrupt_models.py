"""A corrupt skops file or a ``!!python`` tag in ``MLmodel``: one line, no code (issue 26, 7).

``powerfit history --compare`` loads every version through the verified, allowlisted
loader: a changed file is refused by its digest, and even with the digest forged
(someone who can write the tracking database too) neither ``MLmodel`` nor the skops
file is read, so nothing in them runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest

from powerfit.cli import main

pytestmark = pytest.mark.slow

NAME = "powerfit-nvidia-a100-80gb-pcie-transformer"


def _folder(tracking_uri: str) -> Path:
    from mlflow import MlflowClient

    location = MlflowClient(tracking_uri).get_model_version_download_uri(NAME, "1")
    return Path(urlparse(location).path)


def _corrupt_skops(folder: Path, canary: Path) -> None:
    (folder / "model.skops").write_bytes(b"PK\x03\x04 not a zip at all")


def _python_tag(folder: Path, canary: Path) -> None:
    mlmodel = folder / "MLmodel"
    mlmodel.write_text(
        mlmodel.read_text()
        + f"metadata: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path ['{canary}']]\n"  # noqa: E501
    )


@pytest.fixture
def recorded(ingested_store, tracking_uri, tmp_path):
    url = ingested_store.engine.url.render_as_string(hide_password=False)
    assert main(["fit", "--gpu", "a100", "--db", url, "--tracking-uri", tracking_uri]) == 0
    configs = tmp_path / "configs.csv"
    pd.DataFrame(
        {"batch_size": [64], "seq_len": [320], "d_model": [512], "n_heads": [8], "n_layers": [6]}
    ).to_csv(configs, index=False)
    return tracking_uri, configs


@pytest.mark.parametrize("damage", [_corrupt_skops, _python_tag])
def test_history_compare_refuses_in_one_line(recorded, tmp_path, capsys, damage):
    uri, configs = recorded
    canary = tmp_path / "canary"
    damage(_folder(uri), canary)
    capsys.readouterr()
    assert main(["history", "--tracking-uri", uri, "--compare", str(configs)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{NAME} version 1: its files changed since they were logged" in err
    assert not canary.exists()


@pytest.mark.parametrize("damage", [_corrupt_skops, _python_tag])
def test_with_a_forged_digest_nothing_of_it_is_read(recorded, tmp_path, capsys, damage):
    from mlflow import MlflowClient

    from powerfit.tracking.flavor import artifact_digest
    from powerfit.tracking.verify import DIGEST_TAG, download_model

    uri, configs = recorded
    canary = tmp_path / "canary"
    damage(_folder(uri), canary)
    (tmp_path / "copy").mkdir()
    import mlflow

    mlflow.set_tracking_uri(uri)
    try:
        copy = download_model(f"models:/{NAME}/1", tmp_path / "copy")
    finally:
        mlflow.set_tracking_uri(None)
    MlflowClient(uri).set_model_version_tag(NAME, "1", DIGEST_TAG, artifact_digest(copy))
    capsys.readouterr()
    code = main(["history", "--tracking-uri", uri, "--compare", str(configs), "--json"])
    assert code == 0, capsys.readouterr().err
    assert not canary.exists()
    assert json.loads(capsys.readouterr().out)[0][f"{NAME}/1"] > 0  # its prediction
