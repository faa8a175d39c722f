"""Tests of powerfit.datasets.flashattn: the published fused-attention figures, normalised."""

from __future__ import annotations

import shutil

import numpy as np
import pytest


@pytest.fixture(scope="module")
def flash_home(data_home):
    if not (data_home / "flashattn-published").is_dir():
        pytest.skip(
            "needs the flashattn-published data set (published FlashAttention and "
            "cuDNN figures, each row citing its source, laid out as its README "
            "says): set POWERFIT_DATA_HOME to a folder holding flashattn-published/"
        )
    return data_home


def test_figures_are_normalised_with_their_sources(flash_home):
    from powerfit.datasets.flashattn import fetch_flashattn

    f = fetch_flashattn(flash_home).figures
    assert len(f) == 670 and f.source.notna().all()
    assert {"NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "NVIDIA B200"} <= set(f.gpu.dropna())
    assert f.gpu.isna().sum() == 24  # the unnamed Hopper GPUs
    assert {"fa2", "fa3", "cudnn", "eager", "mem-efficient"} <= set(f.family)
    # the 2022-2023 Triton FlashAttention and Triton's 2024 Hopper tutorial kernel differ
    triton = f[f.family == "triton"]
    assert len(triton) and triton.kernel.str.contains("Tillet").all()
    assert (f[f.family == "triton-tutorial"].gpu == "NVIDIA H100 80GB HBM3").all()
    gqa = f[f.n_heads.astype(str).str.contains("kv")]
    assert (gqa.q_heads > gqa.kv_heads).all()
    # time from the FLOP convention: forward 4·B·S²·H·D, halved when causal, bwd 2.5×
    fa2 = f[(f.family == "fa2") & f.time_ms.isna() & (f.pass_name == "bwd") & f.batch.notna()]
    row = fa2[fa2.is_causal.eq(True)].iloc[0]
    fwd = 4 * row.batch * row.seq_len**2 * row.q_heads * row.head_dim
    assert row.flop == pytest.approx(fwd * 0.5 * 2.5)
    assert row.time_s == pytest.approx(row.flop / (row.tflops * 1e12))
    # a published time wins over the derived one
    timed = f[f.time_ms.notna()].iloc[0]
    assert timed.time_s == pytest.approx(timed.time_ms * 1e-3)
    assert (f.approximate.sum(), f.derived.sum()) == (104, 26)  # as the README counts them
    assert np.isfinite(f.time_s.dropna()).all()


def test_a_changed_file_is_refused(flash_home, tmp_path):
    from powerfit.datasets.flashattn import fetch_flashattn

    with pytest.raises(FileNotFoundError, match="flashattn-published"):
        fetch_flashattn(tmp_path)
    copy = tmp_path / "flashattn-published"
    shutil.copytree(flash_home / "flashattn-published", copy)
    path = copy / "fused_attention_published.csv"
    path.chmod(0o644)
    path.write_text(path.read_text().replace("A100 80GB SXM4", "A100 80GB SXM9", 1))
    with pytest.raises(ValueError, match="differs from the pinned"):
        fetch_flashattn(tmp_path)
