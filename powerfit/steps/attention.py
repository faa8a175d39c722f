"""Fused attention (SDPA, FlashAttention) in a step graph: its FLOPs, bytes and time.

A traced step (:mod:`powerfit.architectures.trace`) holds each fused attention as one
row forward (op ``attention``) and one backward (``attention_bwd``), with columns
``batch``, ``heads``, ``kv_heads``, ``seq_q``, ``seq_kv``, ``head_dim`` and ``causal``.

Counts (FlashAttention-2's, Dao 2023): forward two products, 4·b·h·Tq·Tk·d FLOP;
backward five (the scores recomputed, dV, dP, dQ, dK), 2.5× the forward; a causal
mask halves both (only the blocks on or below the diagonal run). Bytes: forward reads
Q, K, V and writes O (and the row log-sum-exp), backward reads Q, K, V, O, dO and
writes dQ, dK, dV: the T×T score matrix never reaches memory.

.. note::
   **Placeholder timing.** :func:`fused_attention_latency` times these rows by the
   roofline (FLOP at the precision's peak, bytes at the bandwidth) until the
   fused-attention law per GPU (``powerfit.kernels``) is merged: swapping it in is the
   one marked line in :func:`fused_attention_latency`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "ATTENTION_COLUMNS",
    "FUSED_ATTENTION_OPS",
    "fused_attention_counts",
    "fused_attention_latency",
]

#: Ops of fused-attention rows.
FUSED_ATTENTION_OPS = frozenset({"attention", "attention_bwd"})

#: Extra columns of a traced step graph that describe fused attentions (0 elsewhere).
ATTENTION_COLUMNS = ("batch", "heads", "kv_heads", "seq_q", "seq_kv", "head_dim", "causal")


def fused_attention_counts(
    batch: np.ndarray,
    heads: np.ndarray,
    kv_heads: np.ndarray,
    seq_q: np.ndarray,
    seq_kv: np.ndarray,
    head_dim: np.ndarray,
    causal: np.ndarray,
    backward: np.ndarray,
    bytes_per_element: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """FLOP and bytes of fused attentions (arrays, one entry per call) [FLOP, B].

    Examples
    --------
    >>> f, b = fused_attention_counts(1, 1, 1, 1024, 1024, 64, 1, 0, 2)
    >>> float(f) == 4 * 1024 * 1024 * 64 / 2
    True
    """
    b, h, hkv = (np.asarray(x, float) for x in (batch, heads, kv_heads))
    tq, tk, d = (np.asarray(x, float) for x in (seq_q, seq_kv, head_dim))
    causal = np.asarray(causal, bool)
    backward = np.asarray(backward, bool)
    flop = 4.0 * b * h * tq * tk * d
    flop = np.where(causal, flop / 2.0, flop)
    flop = np.where(backward, 2.5 * flop, flop)
    q = b * h * tq * d
    kv = b * hkv * tk * d
    lse = b * h * tq
    fwd = 2 * q + 2 * kv + lse  # Q, K, V read; O written; log-sum-exp
    bwd = 3 * q + 2 * kv + lse + q + 2 * kv  # Q, O, dO, K, V, lse read; dQ, dK, dV written
    elements = np.where(backward, bwd, fwd)
    return flop, elements * np.asarray(bytes_per_element, float)


def fused_attention_latency(rows: pd.DataFrame, gpu: str, kernel: str = "sdpa") -> np.ndarray:
    """Latency of fused-attention rows [s].

    ``kernel``: ``sdpa`` (PyTorch's scaled_dot_product_attention: FlashAttention in
    half precision on Ampere and newer, the memory-efficient kernel otherwise) or
    ``flash`` (FlashAttention-2 itself); a traced graph says which in
    ``graph.attrs["attention"]``.

    PLACEHOLDER until the fused-attention law (``powerfit.kernels``) is merged: the
    roofline max(FLOP / peak, bytes / bandwidth), the peak being the catalogue's at
    the row's precision (the tensor cores in fp16/bf16), whatever the kernel. A lower
    bound.
    """
    from powerfit.hardware.gpus import get_gpu

    spec = get_gpu(gpu)
    fp32 = spec.peak_flops["fp32"]
    peak = rows.precision.map(lambda p: spec.peak_flops.get(p, fp32)).to_numpy(float)
    # --- swap for the per-GPU fused-attention law here ---------------------------
    return np.maximum(
        rows.flop.to_numpy() / peak, rows["bytes"].to_numpy() / spec.memory_bandwidth
    )
