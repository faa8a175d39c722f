"""The dataset loader: local files, checksums, and the download path (local server)."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from powerfit.datasets import MAYAKI2025_FILES, fetch_mayaki2025, get_data_home


def test_published_tables(mayaki):
    assert len(mayaki.transformer_operations) == 3000
    assert len(mayaki.lstm_operations) == 11400
    assert len(mayaki.transformer_energy) == 1576
    assert len(mayaki.lstm_energy) == 741


def test_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("POWERFIT_DATA_HOME", str(tmp_path))
    assert get_data_home() == tmp_path
    monkeypatch.delenv("POWERFIT_DATA_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert get_data_home() == tmp_path / "cache" / "powerfit"


def test_missing_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="POWERFIT_DATA_HOME"):
        fetch_mayaki2025(tmp_path, download_if_missing=False)


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
    data = fetch_mayaki2025(home)
    assert len(data.lstm_operations) == 11400
    downloaded = sorted(p.name for p in (home / "mayaki2025" / "processed").iterdir())
    assert downloaded == sorted(f for f, _s, _u in MAYAKI2025_FILES.values())  # no .part left
    assert data.paths["lstm_energy"].parent == home / "mayaki2025" / "processed"


def test_download_with_wrong_content_keeps_nothing(mirror, tmp_path):
    (mirror / "data" / "dataForTransformerHEF.csv").write_text("tampered\n")
    home = tmp_path / "home"
    with pytest.raises(ValueError, match="downloaded SHA-256"):
        fetch_mayaki2025(home)
    assert not any(Path(home).rglob("dataForTransformerHEF.csv*"))


def test_download_failure_names_the_url(mirror, tmp_path):
    (mirror / "data" / "processed" / "dataForLstmHEF.csv").unlink()
    with pytest.raises(OSError, match=r"cannot download http://127\.0\.0\.1:\d+/data/processed"):
        fetch_mayaki2025(tmp_path / "home")


# ------------------------------------------------------------------- NeuSight 2025
@pytest.fixture(scope="module")
def neusight_home(data_home):
    if not (data_home / "neusight2025").is_dir():
        pytest.skip("neusight2025 not found under the data home")
    return data_home


def test_neusight_operators_in_si_units(neusight_home):
    from powerfit.datasets import NEUSIGHT2025_COLUMNS, NEUSIGHT2025_COMMIT, fetch_neusight2025

    data = fetch_neusight2025(neusight_home, ops=("ln", "bmm"))
    ops = data.operators
    assert tuple(ops.columns) == NEUSIGHT2025_COLUMNS
    assert set(ops["op"]) == {"ln", "bmm"}
    assert set(ops["precision"]) == {"fp32"}
    assert set(ops["collection"]) == {"train", "test"}
    assert data.commit == NEUSIGHT2025_COMMIT
    # The first row of test/bmm.csv.gz: 0.2386 ms on the L4, shape 192·(96×196)·(196×196).
    first = ops[(ops["source"] == "ops/test/bmm.csv.gz")].iloc[0]
    assert first["gpu"] == "NVIDIA L4"
    assert first["latency_s"] == pytest.approx(0.2385919988155365e-3)
    assert (first["B"], first["M"], first["N"], first["K"]) == (192, 96, 196, 196)
    bmm = ops[ops["op"] == "bmm"]
    assert bmm["H"].isna().all() and ln_rows_have_h(ops)
    assert len(data.devices) == 9
    assert data.devices["NVIDIA L4"]["Mem_Bw"] == 300
    assert {"bert_large", "gpt2_large", "opt_13"} <= set(data.models)
    train = data.steps[data.steps["mode"] == "train"]
    assert set(train["gpu"]) == {"NVIDIA A100 80GB PCIe", "Tesla V100-PCIE-32GB"}
    assert (data.steps["e2e_latency_s"] > 0).all()


def ln_rows_have_h(ops):
    ln = ops[ops["op"] == "ln"]
    return bool(ln["H"].notna().all() and ln["M"].isna().all())


def test_neusight_checksums_and_missing_folder(neusight_home, tmp_path):
    from powerfit.datasets import fetch_neusight2025

    with pytest.raises(FileNotFoundError, match="POWERFIT_DATA_HOME"):
        fetch_neusight2025(tmp_path)
    copy = tmp_path / "neusight2025"
    shutil.copytree(neusight_home / "neusight2025", copy)
    device = copy / "devices" / "Tesla_T4.json"
    device.chmod(0o644)
    device.write_text(device.read_text().replace("320", "321"))
    with pytest.raises(ValueError, match=r"Tesla_T4\.json: SHA-256"):
        fetch_neusight2025(tmp_path, collections=("test",), ops=("ln",))
