"""Tests of powerfit.datasets.zeus2023 on the shared copy of the Zeus traces."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from powerfit.datasets.zeus2023 import ZEUS_GPUS, fetch_zeus2023


@pytest.fixture(scope="module")
def zeus_home(data_home):
    if not (data_home / "zeus2023").is_dir():
        pytest.skip(
            "needs the zeus2023 data set (github.com/ml-energy/zeus, laid out as "
            "its README says): set POWERFIT_DATA_HOME to a folder holding zeus2023/"
        )
    return data_home


def test_fetch_zeus2023_reads_every_gpu_in_si_units(zeus_home):
    z = fetch_zeus2023(zeus_home).power
    assert len(z) == 476 + 453 + 410 + 270
    assert set(z.gpu) == set(ZEUS_GPUS.values())
    assert np.all(z.power_w > 0) and np.all(z.epoch_s > 0) and np.all(z.throughput > 0)
    # NVML averages sit under the limit, but for 22 A40 rows at low limits (≤ 1.21x)
    assert np.all(z.power_w <= z.power_limit_w * 1.25)
    assert np.mean(z.power_w <= z.power_limit_w * 1.05) > 0.98
    assert z.row.min() == 1 and set(z.precision) == {"fp32"}


def test_fetch_zeus2023_refuses_a_modified_file(zeus_home, tmp_path):
    shutil.copytree(zeus_home / "zeus2023", tmp_path / "zeus2023")
    target = tmp_path / "zeus2023" / "summary_power_p100.csv.gz"
    target.chmod(0o644)
    target.write_bytes(target.read_bytes() + b"\0")
    with pytest.raises(ValueError, match=r"summary_power_p100\.csv\.gz: SHA-256 differs"):
        fetch_zeus2023(tmp_path)
