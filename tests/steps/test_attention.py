"""Fused attention rows of a step graph (:mod:`powerfit.steps.attention`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from powerfit.hardware.gpus import get_gpu
from powerfit.steps.attention import fused_attention_counts, fused_attention_latency
from powerfit.steps.latency import operator_latency_sources


def test_counts_causal_halving_backward_and_gqa():
    args = dict(batch=2, heads=32, kv_heads=8, seq_q=4096, seq_kv=4096, head_dim=128)
    full, b_full = fused_attention_counts(**args, causal=0, backward=0, bytes_per_element=2)
    causal, _ = fused_attention_counts(**args, causal=1, backward=0, bytes_per_element=2)
    bwd, b_bwd = fused_attention_counts(**args, causal=1, backward=1, bytes_per_element=2)
    assert float(full) == 4 * 2 * 32 * 4096 * 4096 * 128
    assert float(causal) == float(full) / 2
    assert float(bwd) == 2.5 * float(causal)
    # Q and O of every head, K and V of the 8 key/value heads, the log-sum-exp: no T×T
    q = 2 * 32 * 4096 * 128
    kv = 2 * 8 * 4096 * 128
    assert float(b_full) == 2 * (2 * q + 2 * kv + 2 * 32 * 4096)
    assert float(b_bwd) > float(b_full)
    mha, _ = fused_attention_counts(
        **{**args, "kv_heads": 32}, causal=0, backward=0, bytes_per_element=2
    )
    assert float(mha) == float(full)  # GQA shares K/V, not the products


def _rows(precision="bf16"):
    f, b = fused_attention_counts(4, 16, 16, 2048, 2048, 64, 1, np.array([0, 1]), 2)
    return pd.DataFrame(
        {
            "name": ["attn", "attn.grad"],
            "phase": ["forward", "backward"],
            "op": ["attention", "attention_bwd"],
            "precision": [precision, precision],
            "B": [64, 64],
            "M": [2048, 2048],
            "N": [2048, 2048],
            "K": [64, 64],
            "H": [0, 0],
            "flop": f,
            "bytes": b,
            "count": [1.0, 1.0],
            "params": [0, 0],
        }
    )


def test_placeholder_latency_is_the_roofline_at_the_precision_peak():
    rows = _rows()
    spec = get_gpu("h100")
    t = fused_attention_latency(rows, "h100")
    expected = np.maximum(
        rows.flop / spec.peak_flops["bf16"], rows["bytes"] / spec.memory_bandwidth
    )
    assert t == pytest.approx(expected.to_numpy())
    assert t[1] == pytest.approx(2.5 * t[0])  # compute-bound


def test_step_latency_routes_fused_rows_to_their_own_timing():
    rows = _rows()
    lat, source, _notes = operator_latency_sources(rows, "h100")
    assert lat == pytest.approx(fused_attention_latency(rows, "h100"))
    assert list(source) == ["roofline", "roofline"]
