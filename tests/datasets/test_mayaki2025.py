"""Tests of powerfit.datasets.mayaki2025: the published tables, checksums and downloads."""

from __future__ import annotations

import functools
import gzip
import http.server
import shutil
import threading
from pathlib import Path

import pandas as pd
import pytest

from powerfit.datasets import mayaki2025 as module
from powerfit.datasets.mayaki2025 import (
    MAYAKI2025_FILES,
    embedded_dir,
    fetch_mayaki2025,
    mayaki2025_dir,
)


def test_published_tables(mayaki):
    assert len(mayaki.transformer_operations) == 3000
    assert len(mayaki.lstm_operations) == 11400
    assert len(mayaki.transformer_energy) == 1576
    assert len(mayaki.lstm_energy) == 741


def test_missing_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="POWERFIT_DATA_HOME"):
        fetch_mayaki2025(tmp_path, download_if_missing=False, embedded=False)


def test_embedded_copy_is_read_offline_and_equals_the_published_files(mayaki, tmp_path):
    offline = fetch_mayaki2025(tmp_path / "empty", download_if_missing=False)
    assert offline.embedded
    assert {p.parent for p in offline.paths.values()} == {embedded_dir()}
    assert not (tmp_path / "empty").exists()  # nothing written, nothing downloaded
    for attr in MAYAKI2025_FILES:
        pd.testing.assert_frame_equal(getattr(offline, attr), getattr(mayaki, attr))
    assert mayaki2025_dir(tmp_path / "empty") == embedded_dir()
    assert (embedded_dir() / "LICENSE").read_text().startswith("MIT License")


def test_data_home_files_come_before_the_embedded_copy(data_home):
    assert mayaki2025_dir(data_home) == data_home / "mayaki2025" / "processed"
    assert not fetch_mayaki2025(data_home, download_if_missing=False).embedded


def test_damaged_embedded_copy_is_refused(tmp_path, monkeypatch):
    damaged = tmp_path / "package"
    shutil.copytree(embedded_dir(), damaged)
    path = damaged / "dataForLstmHEF.csv.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-10]))
    monkeypatch.setattr(module, "embedded_dir", lambda: damaged)
    with pytest.raises(ValueError, match="installed package is damaged"):
        fetch_mayaki2025(tmp_path / "empty", download_if_missing=False)


def test_damaged_file_is_refused(data_home, tmp_path):
    folder = tmp_path / "mayaki2025" / "processed"
    shutil.copytree(data_home / "mayaki2025" / "processed", folder)
    path = folder / "dataForLstmHEF.csv"
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="SHA-256"):
        fetch_mayaki2025(tmp_path, download_if_missing=False)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirror(data_home, tmp_path, monkeypatch):
    """A local HTTP server with the repository's layout; POWERFIT_MAYAKI2025_URL set."""
    root = tmp_path / "mirror"
    source = data_home / "mayaki2025" / "processed"
    for filename, _sha, upstream in MAYAKI2025_FILES.values():
        (root / upstream).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / filename, root / upstream)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("POWERFIT_MAYAKI2025_URL", f"http://127.0.0.1:{server.server_port}/")
    try:
        yield root
    finally:
        server.shutdown()
        server.server_close()


def test_download_from_a_mirror(mirror, tmp_path):
    home = tmp_path / "home"
    data = fetch_mayaki2025(home, embedded=False)
    assert len(data.lstm_operations) == 11400
    downloaded = sorted(p.name for p in (home / "mayaki2025" / "processed").iterdir())
    assert downloaded == sorted(f for f, _s, _u in MAYAKI2025_FILES.values())  # no .part left
    assert data.paths["lstm_energy"].parent == home / "mayaki2025" / "processed"


def test_download_with_wrong_content_keeps_nothing(mirror, tmp_path):
    (mirror / "data" / "dataForTransformerHEF.csv").write_text("tampered\n")
    home = tmp_path / "home"
    with pytest.raises(ValueError, match="downloaded SHA-256"):
        fetch_mayaki2025(home, embedded=False)
    assert not any(Path(home).rglob("dataForTransformerHEF.csv*"))


def test_download_failure_names_the_url(mirror, tmp_path):
    (mirror / "data" / "processed" / "dataForLstmHEF.csv").unlink()
    with pytest.raises(OSError, match=r"cannot download http://127\.0\.0\.1:\d+/data/processed"):
        fetch_mayaki2025(tmp_path / "home", embedded=False)
