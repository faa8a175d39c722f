"""NeuSight's 4-GPU steps: options, units, a bad file named."""

from __future__ import annotations

import shutil

import pytest

from powerfit.datasets.neusight2025_parallel import neusight_parallel_steps
from powerfit.exceptions import DataError


def test_steps(neusight_labels):
    steps = neusight_parallel_steps(neusight_labels.parent)
    assert set(steps.option) == {"dp4", "tp4", "pp4_1"}
    assert (steps.dp * steps.tp * steps.pp == 4).all()
    assert steps.measured_s.between(0.1, 10).all()  # ms in the files, seconds here
    assert set(steps.gpu) == {"NVIDIA A100-SXM4-40GB"}


def test_damaged_label_is_named(neusight_labels, tmp_path):
    copy = tmp_path / "neusight2025"
    copy.mkdir()
    for name in ("SHA256SUMS", "COMMIT", "models", "parallel"):
        src = neusight_labels / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, copy / name)
    label = next((copy / "parallel").rglob("*tp4.json"))
    label.write_text('{"e2e_latency": -1}')
    with pytest.raises(ValueError, match=r"tp4\.json: SHA-256"):
        neusight_parallel_steps(tmp_path)


def test_unknown_option_is_named(neusight_labels, tmp_path):
    copy = tmp_path / "neusight2025"
    copy.mkdir()
    shutil.copytree(neusight_labels / "models", copy / "models")
    (copy / "parallel" / "X").mkdir(parents=True)
    (copy / "parallel" / "X" / "gpt2_large-train-1024-4-ep4.json").write_text("{}")
    (copy / "SHA256SUMS").write_text("00  ./parallel/X/gpt2_large-train-1024-4-ep4.json\n")
    with pytest.raises(DataError, match=r"ep4\.json: not <model>-train"):
        neusight_parallel_steps(tmp_path)
