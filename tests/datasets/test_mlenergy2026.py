"""Tests of powerfit.datasets.mlenergy2026 on the shared copy of ML.ENERGY v3."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from powerfit.datasets.mlenergy2026 import fetch_mlenergy2026, read_mlenergy_model_file


@pytest.fixture(scope="module")
def ml(data_home):
    if not (data_home / "mlenergy2026").is_dir():
        pytest.skip(
            "needs the mlenergy2026 data set (github.com/ml-energy/leaderboard, "
            "laid out as its README says): set POWERFIT_DATA_HOME to a folder "
            "holding mlenergy2026/"
        )
    return fetch_mlenergy2026(data_home).power


def test_power_is_divided_over_the_gpus(ml):
    assert len(ml) == 1858
    assert np.allclose(ml.power_w * ml.num_gpus, ml.power_total_w)
    h100 = ml[ml.gpu == "NVIDIA H100 80GB HBM3"]
    assert 200 < h100.power_w.min() and h100.power_w.max() <= 700  # README: ≈ 230–690 W
    assert set(ml.kind) == {"llm", "image", "video"}
    assert np.all(ml.throughput > 0)


def test_a_bad_file_is_named(tmp_path):
    path = tmp_path / "org__model__gpqa.json.gz"
    path.write_bytes(gzip.compress(b'{"task": "gpqa", "configurations": [{"num_gpus": 1}]}'))
    with pytest.raises(ValueError, match=r"org__model__gpqa.json.gz: configuration 1"):
        read_mlenergy_model_file(path)
    path.write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="not a gzipped JSON"):
        read_mlenergy_model_file(path)


def test_output_lengths_and_parallelism(ml):
    llm = ml[ml.kind == "llm"]
    assert np.all(np.isfinite(llm.output_len_mean))
    assert np.all(llm.output_len_sq_mean >= llm.output_len_mean**2 * (1 - 1e-9))
    assert np.all((llm.data_parallel >= 1) & (llm.tensor_parallel >= 1))
    assert (llm.expert_parallel > 1).any()
    assert ml[ml.kind != "llm"].output_len_mean.isna().all()
