"""Vidur's network table: bytes, seconds, topologies, the duplicate dropped, bad files named."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from powerfit.datasets.vidur2024_network import load_vidur_network
from powerfit.exceptions import DataError


@pytest.fixture(scope="module")
def home() -> Path:
    root = Path(os.environ.get("POWERFIT_DATA_HOME", ""))
    if not (root / "vidur2024" / "SHA256SUMS").exists():
        pytest.skip(
            "needs the vidur2024 data set (github.com/microsoft/vidur, laid out as "
            "its README says): set POWERFIT_DATA_HOME to a folder holding "
            "vidur2024/"
        )
    return root


def test_table_units_and_duplicates(home):
    frame = load_vidur_network(home)
    assert set(frame.collective) == {"all_reduce", "send_recv"}
    assert frame["bytes"].min() == 2048 and frame["bytes"].max() >= 64 * 2**20
    assert (frame.time_s > 0).all() and (frame.time_s < 1).all()
    assert (
        frame.attrs["duplicates"]
        and "h100_pairwise_nvlink/send_recv" in frame.attrs["duplicates"][0]
    )
    inter = frame[(frame.n_nodes > 1) & (frame.collective == "all_reduce")]
    assert set(inter.topology) == {"a100_dgx"}


def test_damaged_file_is_named(home, tmp_path):
    shutil.copytree(
        home / "vidur2024", tmp_path / "vidur2024", ignore=shutil.ignore_patterns("compute")
    )
    target = tmp_path / "vidur2024" / "network" / "h100_dgx" / "send_recv.csv.gz"
    target.write_bytes(b"not the file")
    with pytest.raises(DataError, match=r"send_recv.csv.gz.*SHA-256"):
        load_vidur_network(tmp_path)
