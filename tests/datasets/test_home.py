"""Tests of powerfit.datasets.home: where the data sets live."""

from __future__ import annotations

from powerfit.datasets.home import get_data_home


def test_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("POWERFIT_DATA_HOME", str(tmp_path))
    assert get_data_home() == tmp_path
    monkeypatch.delenv("POWERFIT_DATA_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert get_data_home() == tmp_path / "cache" / "powerfit"
