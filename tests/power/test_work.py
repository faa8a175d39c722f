"""Tests of powerfit.power.work: the decode traffic of served LLMs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from powerfit.power.work import (
    KV_BYTES,
    PROMPT_TOKENS,
    DecodeArch,
    decode_arch,
    decode_context,
    decode_step_bytes,
    serving_fractions,
)

LLAMA_8B = DecodeArch(32, 2048)


def _llama_8b_rows(**columns) -> pd.DataFrame:
    """ML.ENERGY-shaped rows of Llama-3.1-8B served in bf16 on one H100."""
    return pd.DataFrame(
        {
            "gpu": "NVIDIA H100 80GB HBM3",
            "kind": "llm",
            "model_id": "meta-llama/Llama-3.1-8B-Instruct",
            "precision": "bf16",
            "total_params": 8e9,
            "active_params": 8e9,
            "num_gpus": 1,
            **columns,
        }
    )


def test_kv_cache_reads_grow_with_batch_times_context():
    w = decode_step_bytes(LLAMA_8B, 8e9, 8e9, 2.0, 1, 0.0)
    assert w == pytest.approx(16e9)  # the weights once
    one = decode_step_bytes(LLAMA_8B, 8e9, 8e9, 2.0, 64, 1000.0) - w
    assert one == pytest.approx(64 * 1000 * 32 * 2048 * KV_BYTES)
    assert decode_step_bytes(LLAMA_8B, 8e9, 8e9, 2.0, 128, 1000.0) - w == pytest.approx(2 * one)


def test_sliding_windows_cap_what_their_layers_read():
    arch = DecodeArch(1, 100, window_layers=5, window=10)
    kv = decode_step_bytes(arch, 1.0, 1.0, 0.0, 1, 1000.0)
    assert kv == pytest.approx((1000 + 5 * 10) * 100 * KV_BYTES)


def test_routed_experts_are_read_as_the_batch_touches_them():
    # Maverick-like: 400 B total, 17 B active, 128 experts, top-1
    arch = DecodeArch(48, 2048, experts=128, top_k=1)
    x = (400e9 - 17e9) / (1 - 1 / 128)
    dense = 400e9 - x
    one = decode_step_bytes(arch, 400e9, 17e9, 1.0, 1, 0.0)
    assert one == pytest.approx(17e9)  # one token reads the active parameters
    b64 = decode_step_bytes(arch, 400e9, 17e9, 1.0, 64, 0.0)
    assert b64 == pytest.approx(dense + x * (1 - (127 / 128) ** 64))
    assert b64 < 0.5 * 400e9  # far from every expert at batch 64, unlike top-k/E = 17/400
    assert decode_step_bytes(arch, 400e9, 17e9, 1.0, 1e5, 0.0) == pytest.approx(400e9)
    # data-parallel replicas each read the dense part
    dp = decode_step_bytes(arch, 400e9, 17e9, 1.0, 64, 0.0, data_parallel=4)
    assert dp - b64 == pytest.approx(3 * dense)


def test_context_is_token_weighted():
    assert np.isnan(decode_context(np.nan, np.nan))
    # every request 100 tokens: mean position 50 after the prompt
    assert decode_context(100.0, 100.0**2) == pytest.approx(PROMPT_TOKENS + 50)
    # long requests weigh more: half at 10, half at 190 tokens
    assert decode_context(100.0, (10**2 + 190**2) / 2) == pytest.approx(PROMPT_TOKENS + 90.5)


def test_every_ml_energy_llm_has_an_architecture():
    for mid in (
        "meta-llama/Llama-3.1-8B-Instruct",
        "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8",
        "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8",
        "Qwen/Qwen3-Coder-30B-A3B-Instruct",
        "deepseek-ai/DeepSeek-V3.1",
        "google/gemma-3-27b-it",
        "openai/gpt-oss-120b",
        "nvidia/NVIDIA-Nemotron-Nano-12B-v2-VL-BF16",
    ):
        assert decode_arch(mid) is not None, mid
    assert decode_arch("Qwen/Qwen3-8B").layers == 36
    assert decode_arch("Qwen/Qwen3-VL-30B-A3B-Instruct").experts == 128


def test_decode_utilisation_rises_with_batch_when_the_cache_is_read():
    rows = _llama_8b_rows(
        batch_size=[8.0, 512.0],
        throughput=[1070.0, 9800.0],  # ML.ENERGY v3, H100 (tokens/s)
        output_len_mean=400.0,
        output_len_sq_mean=400.0**2 * 2,
    )
    with_kv = serving_fractions(rows)
    weights_only = serving_fractions(rows.drop(columns=["output_len_mean", "output_len_sq_mean"]))
    assert np.all(with_kv.u_m >= weights_only.u_m)
    assert with_kv.u_m.iloc[1] > 2 * weights_only.u_m.iloc[1]
    assert np.all((with_kv.u_m > 0) & (with_kv.u_m <= 1))


def test_diffusion_attention_is_counted_over_the_joint_sequence():
    from powerfit.power.work import diffusion_attention_flop

    # PixArt-Sigma at 1024 px: 4,096 latent tokens, 28 layers of width 1,152
    per_token = diffusion_attention_flop("PixArt-alpha/PixArt-Sigma-XL-2-1024-MS", 4096)
    assert per_token == pytest.approx(28 * 4 * 4096 * 1152)
    assert per_token > 0.3 * 2 * 0.6e9  # not negligible beside 2 FLOP per parameter
    # joint text tokens attend too; linear attention (SANA) is in the parameters
    sd = diffusion_attention_flop("stabilityai/stable-diffusion-3.5-large", 4096)
    assert sd == pytest.approx(38 * 4 * (4096 + 333) ** 2 * 2432 / 4096)
    assert diffusion_attention_flop("Efficient-Large-Model/SANA1.5_1.6B_1024px", 1024) == 0.0


def test_prefill_adds_the_prompts_flop():
    rows = _llama_8b_rows(
        batch_size=[64.0],
        throughput=[5000.0],
        output_len_mean=[PROMPT_TOKENS],  # as many prompt as output tokens
        output_len_sq_mean=[PROMPT_TOKENS**2],
    )
    decode_only = serving_fractions(rows.drop(columns=["output_len_mean", "output_len_sq_mean"]))
    assert serving_fractions(rows).u_c.iloc[0] == pytest.approx(2 * decode_only.u_c.iloc[0])
