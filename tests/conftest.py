"""Shared fixtures. Each fixture here is used by several test modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_home() -> Path:
    """Data home holding mayaki2025/ (``POWERFIT_DATA_HOME``, else ../shared/data)."""
    from powerfit.datasets import get_data_home

    home = get_data_home()
    if os.environ.get("POWERFIT_DATA_HOME") is None:
        home = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (home / "mayaki2025" / "processed").is_dir():
        pytest.skip(f"published data not found under {home}; set POWERFIT_DATA_HOME")
    return home


@pytest.fixture(scope="session")
def mayaki(data_home):
    """The four published tables (:class:`powerfit.datasets.Mayaki2025`)."""
    from powerfit.datasets import fetch_mayaki2025

    return fetch_mayaki2025(data_home, download_if_missing=False)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a real PostgreSQL server from POWERFIT_TEST_POSTGRES_URL; skip without it."""
    url = os.environ.get("POWERFIT_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("POWERFIT_TEST_POSTGRES_URL is not set")
    return url
