"""Fused attention (FlashAttention-2 as PyTorch SDPA runs it): FLOPs, bytes and a law per GPU.

**Counts** (:func:`fused_attention_flops_bytes`). One call over ``batch`` sequences,
``heads`` query heads sharing ``kv_heads`` key/value heads (GQA; MQA is ``kv_heads`` = 1),
``seq_q`` queries, ``seq_k`` keys, head dimension ``head_dim`` (any, not only 64/128):

* forward FLOP = 4·B·H·P·D, with P the (query, key) pairs scored: S_q·S_k, or under a
  causal mask (top-left aligned, as ``is_causal`` in PyTorch) Σ_i min(i + 1, S_k) ≈ S²/2
  (the causal halving); backward = 2.5 × forward (the five products of the
  recomputing backward against the forward's two). The same convention as the
  FlashAttention papers and the published figures the laws are fitted on.
* bytes: the forward reads Q, K, V and writes O and the row log-sum-exp (FP32); the
  backward reads Q, K, V, O, dO and the log-sum-exp, writes dQ (accumulated in FP32:
  read and written once more) and dK, dV, computed per query head and summed over the
  group under GQA (as flash-attn does). The S×S score matrix is never stored.

**Law** (:class:`FusedAttentionLaws`). The efficiency η = FLOP / (t·peak) [-] of a pass
(peak: the GPU's dense FP16/BF16 tensor-core peak) is::

    η_fwd = e · D/(D + d0) · L/(L + s0),   η_bwd = r · η_fwd,   L = P / S_q

``e`` ≤ 1 [-] the efficiency of long rows of a wide head, ``d0`` [-] the per-score
cost (softmax, exponentials) in units of head dimension, ``s0`` [keys] the per-row-block
fixed cost (loading Q, writing O) in units of keys visited, ``L`` the mean keys a query
row visits (S_k, ≈ S_k/2 when causal: short causal calls are less efficient), ``r`` the
backward's efficiency relative to the forward. A forward+backward figure is timed as
the sum of both. The coefficients are fitted per GPU on published FlashAttention-2
throughput (:func:`powerfit.datasets.flashattn.fetch_flashattn`), on log efficiency with
a robust loss; a GPU fits ``e`` always, ``r`` when it has both passes, ``d0`` with two
head dims and ``s0`` with three sequence lengths (and :data:`MIN_ROWS_FULL` figures);
the rest are the medians of the GPUs that fit them all.

**Transfer** to a GPU without figures, by its tensor-core peak: FlashAttention-2 runs
Ampere's ``mma.sync`` instructions on every generation, whose rate per SM and clock is
the A100's (:data:`MMA_SYNC_RATE`), so its roof is ``min(peak, rate · SMs · clock)``
(:func:`mma_share`); the level relative to that roof falls with the tensor rate per SM
and cycle (the softmax's exponentials run at a fixed rate per cycle beside it:
:meth:`FusedAttentionLaws.transferred`); ``r``, ``d0``, ``s0`` are the others' medians.
Leave-one-GPU-out residuals (:func:`leave_one_gpu_out`) give the interval of each origin
(:meth:`FusedAttentionLaws.half_width`).

**Kernels** (:data:`powerfit.kernels.attention_kernels.ATTENTION_KERNELS`, ``estimate
--attention-kernel``). ``fa2`` (default): FlashAttention-2, what PyTorch SDPA's
FLASH_ATTENTION backend and transformers' ``flash_attention_2`` run. ``cudnn``: SDPA's
CUDNN_ATTENTION backend. ``triton``: the Triton FlashAttention of 2022–2023 (Tillet's
kernel, flash-attn's ``flash_attn_triton``, llm-foundry MPT's ``attn_impl: triton``),
fitted on the A100 figures of the FlashAttention-2 paper (Fig. 4: about half
FlashAttention-2's throughput forward and backward), transferred to other GPUs by the
same ``mma.sync`` roof as FlashAttention-2 (the Triton of that time emitted ``mma.sync``
on Hopper too). Triton's 2024 tutorial kernel (TMA, ``wgmma``) is another kernel and is
not this law.

**Precision.** FP16 and BF16 (and the products of AMP) run FlashAttention-2 at the
tensor-core peak. FP32 and TF32 tensors make SDPA run the memory-efficient kernel, not
flash (FlashAttention needs half precision): those calls are timed at the FP32 peak
with the ``mem-efficient`` laws (xFormers' cutlass kernel, fitted on its FP16 figures;
the per-score cost ``d0`` scaled by the FP32/FP16 peak ratio, the softmax costing the
same cycles beside slower multiply-adds) as an **assumption** (no FP32 figure was
published), flagged by the origin ``assumed-fp32``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from powerfit.kernels.attention_kernels import (
    KERNEL_NAMES,
    attention_kernels,
    check_attention_kernel,
)

__all__ = [
    "ATTENTION_COLUMNS",
    "FUSED_ATTENTION_OPS",
    "FusedAttentionLaws",
    "attention_saved_bytes",
    "fused_attention_flops_bytes",
    "fused_attention_latency",
    "fused_attention_row",
    "leave_one_gpu_out",
    "load_fused_attention_laws",
]

#: Operator names of fused-attention rows in a step graph -> whether it is the backward.
FUSED_ATTENTION_OPS = {"attention": False, "attention_bwd": True}

#: Columns of a step graph that describe a fused attention (0 on other rows): sequences,
#: query heads, key/value heads, query and key lengths, head dimension [-], causal (0/1).
ATTENTION_COLUMNS = ("batch", "heads", "kv_heads", "seq_q", "seq_kv", "head_dim", "causal")

#: Kernel families whose transfer to another GPU follows the ``mma.sync`` roof
#: (:meth:`FusedAttentionLaws.transferred`); other families take the median level.
_MMA_SYNC_FAMILIES = ("fa2", "triton")

#: Figures (and at least two sequence lengths and head dims) a GPU needs to fit every
#: coefficient of its law; below, only the level ``e`` (and ``r``).
MIN_ROWS_FULL = 10

#: Bounds of the law's coefficients (lower, upper).
BOUNDS = {"e": (0.01, 1.0), "r": (0.2, 2.0), "d0": (0.1, 1e3), "s0": (1.0, 1e5)}
_NAMES = tuple(BOUNDS)
_PASS_FACTOR = {"fwd": 1.0, "bwd": 2.5, "fwd+bwd": 3.5}
_HALF = {"fp16", "bf16", "amp-fp16", "amp-bf16"}
_FULL = {"fp32", "tf32"}


def _pairs(seq_q: Any, seq_k: Any, causal: Any) -> np.ndarray:
    """(query, key) pairs scored per head: S_q·S_k, or Σ_i min(i+1, S_k) when causal."""
    sq, sk = np.asarray(seq_q, float), np.asarray(seq_k, float)
    m = np.minimum(sq, sk)
    tri = m * (m + 1.0) / 2.0 + np.maximum(sq - sk, 0.0) * sk
    return np.where(np.asarray(causal, bool), tri, sq * sk)


def fused_attention_flops_bytes(
    batch: Any,
    heads: Any,
    kv_heads: Any,
    seq_q: Any,
    seq_k: Any,
    head_dim: Any,
    causal: Any,
    backward: Any,
    bytes_per_element: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """FLOPs and bytes of one fused-attention call (forward or backward).

    Parameters
    ----------
    batch, heads, kv_heads, seq_q, seq_k, head_dim : int or array-like
        Sequences, query heads, key/value heads (``heads`` must be a multiple), queries
        and keys per sequence, head dimension [-].
    causal : bool or array-like
        Causal mask (top-left aligned).
    backward : bool or array-like
        The backward call (dQ, dK, dV) instead of the forward.
    bytes_per_element : float, default 2
        Element width of Q, K, V, O [B] (2 for FP16/BF16, 4 for FP32).

    Returns
    -------
    flop : numpy.ndarray
        [FLOP] (see the module notes for the convention).
    bytes : numpy.ndarray
        [B] moved to and from memory at least.

    Raises
    ------
    ValueError
        A size not > 0, or ``heads`` not a multiple of ``kv_heads``.

    Examples
    --------
    >>> f, b = fused_attention_flops_bytes(1, 32, 8, 4096, 4096, 128, True, False)
    >>> float(f) == 4 * 32 * (4096 * 4097 / 2) * 128  # [FLOP]
    True
    """
    names = ("batch", "heads", "kv_heads", "seq_q", "seq_k", "head_dim")
    values = [np.asarray(v, float) for v in (batch, heads, kv_heads, seq_q, seq_k, head_dim)]
    for name, v in zip(names, values, strict=True):
        if not np.all(np.isfinite(v) & (v > 0)):
            raise ValueError(f"fused attention: {name} must be > 0, got {v!r}")
    b, h, hkv, sq, sk, d = values
    if not np.all(np.mod(h, hkv) == 0):
        raise ValueError("fused attention: heads must be a multiple of kv_heads (GQA groups)")
    back = np.asarray(backward, bool)
    fwd_flop = 4.0 * b * h * _pairs(sq, sk, causal) * d
    flop = np.where(back, 2.5 * fwd_flop, fwd_flop)
    w = np.asarray(bytes_per_element, float)
    q = b * h * sq * d  # elements of Q (and O, dO, dQ)
    kv = b * hkv * sk * d  # elements of K (and V)
    lse = 4.0 * b * h * sq  # FP32 log-sum-exp per query row
    fwd_bytes = w * (2 * q + 2 * kv) + lse
    # Q, O, dO, K, V read; dQ written, and its FP32 accumulator read and written; dK, dV
    # per query head (written, then read to sum over the GQA group, then written)
    bwd_bytes = w * (3 * q + 2 * kv + q) + 8.0 * q + 2 * lse
    bwd_bytes = bwd_bytes + w * 2 * (b * h * sk * d) * np.where(h > hkv, 2.0, 1.0)
    bwd_bytes = bwd_bytes + np.where(h > hkv, w * 2 * kv, 0.0)
    return flop, np.where(back, bwd_bytes, fwd_bytes)


def fused_attention_row(
    batch: int,
    heads: int,
    kv_heads: int,
    seq_q: int,
    seq_k: int,
    head_dim: int,
    causal: bool,
    backward: bool,
    precision: str,
) -> dict:
    """The columns of one fused-attention row of a step graph (op, shape, flop, bytes).

    Parameters are those of :func:`fused_attention_flops_bytes`; ``precision`` the row's
    (``fp16``/``bf16``: FlashAttention-2; ``fp32``/``tf32``: the memory-efficient kernel).

    Returns
    -------
    dict
        ``op`` (``attention`` or ``attention_bwd``), ``precision``, the
        :data:`ATTENTION_COLUMNS`, the generic shape (``B`` = batch·heads, ``M`` =
        seq_q, ``N`` = seq_k, ``K`` = head_dim, ``H`` = 0), ``flop`` [FLOP] and
        ``bytes`` [B].

    Examples
    --------
    >>> row = fused_attention_row(2, 32, 8, 1024, 1024, 128, True, False, "bf16")
    >>> row["op"], row["kv_heads"], row["B"]
    ('attention', 8, 64)
    """
    _check_precision(precision)
    width = 2.0 if precision in _HALF else 4.0
    flop, moved = fused_attention_flops_bytes(
        batch, heads, kv_heads, seq_q, seq_k, head_dim, causal, backward, width
    )
    return {
        "op": "attention_bwd" if backward else "attention",
        "precision": precision,
        "batch": batch,
        "heads": heads,
        "kv_heads": kv_heads,
        "seq_q": seq_q,
        "seq_kv": seq_k,
        "head_dim": head_dim,
        "causal": int(bool(causal)),
        "B": batch * heads,
        "M": seq_q,
        "N": seq_k,
        "K": head_dim,
        "H": 0,
        "flop": float(flop),
        "bytes": float(moved),
    }


def fused_attention_latency(
    rows: pd.DataFrame, gpu: str, specs_only: bool = False, laws: Any = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Latency [s] of the fused-attention rows of a step graph, their source and notes.

    Parameters
    ----------
    rows : pandas.DataFrame
        Rows of op ``attention``/``attention_bwd`` with :data:`ATTENTION_COLUMNS` and
        ``precision``.
    gpu : str
        GPU name.
    specs_only : bool, default False
        Time as if the GPU's own figures were never seen (the transfer).
    laws : FusedAttentionLaws, optional
        Default: the bundled ones (:func:`load_fused_attention_laws`); without them,
        the roofline at the precision's peak.

    Returns
    -------
    latency : numpy.ndarray
        [s].
    source : numpy.ndarray of str
        ``fused attention laws``, ``fused attention assumed`` (FP32 tensors: the
        memory-efficient kernel) or ``roofline``.
    notes : list of str
        What was transferred or assumed.
    """
    from powerfit.hardware.gpus import get_gpu

    out = np.full(len(rows), np.nan)
    source = np.full(len(rows), "fused attention laws", dtype=object)
    notes: list[str] = []
    if laws is None:
        try:
            laws = load_fused_attention_laws()
        except ValueError:
            spec = get_gpu(gpu)
            fp32 = spec.peak_flops["fp32"]
            peak = rows.precision.map(lambda p: spec.peak_flops.get(p, fp32)).to_numpy(float)
            out = np.maximum(
                rows.flop.to_numpy(float) / peak,
                rows["bytes"].to_numpy(float) / spec.memory_bandwidth,
            )
            source[:] = "roofline"
            return (
                out,
                source,
                ["no fused-attention laws bundled: fused attention by the roofline"],
            )
    backward = rows["op"].map(FUSED_ATTENTION_OPS).to_numpy(bool)
    rows = _with_attention_columns(rows, backward)
    precisions = rows["precision"].astype(str).to_numpy()
    kernels = attention_kernels(rows)
    for precision, kernel in sorted(set(zip(precisions, kernels, strict=True))):
        m = (precisions == precision) & (kernels == kernel)
        d = rows[m]
        t, origin = laws.time(
            gpu,
            d["batch"].to_numpy(float),
            d["heads"].to_numpy(float),
            d["kv_heads"].to_numpy(float),
            d["seq_q"].to_numpy(float),
            d["seq_kv"].to_numpy(float),
            d["head_dim"].to_numpy(float),
            d["causal"].to_numpy(bool),
            backward[m],
            precision=precision,
            specs_only=specs_only,
            family=kernel,
        )
        out[m] = t
        if origin == "assumed-fp32":
            source[m] = "fused attention assumed"
            notes.append(
                f"{precision} fused attention ({int(m.sum())} rows): SDPA runs the "
                "memory-efficient kernel, timed at the fp32 peak by its fp16 efficiency "
                "(no fp32 figure published)"
            )
        elif origin == "transfer":
            notes.append(
                f"{precision} fused attention ({int(m.sum())} rows): {KERNEL_NAMES[kernel]} "
                "law transferred from the other GPUs' published figures by tensor-core peak"
            )
    return out, source, notes


def attention_saved_bytes(
    kind: str,
    batch: Any,
    heads: Any,
    kv_heads: Any,
    seq_q: Any,
    seq_k: Any,
    head_dim: Any,
    bytes_per_element: float = 2.0,
    dropout: bool = False,
) -> np.ndarray:
    """Bytes one attention call keeps for its backward, its inputs included [B].

    The activation-memory hook of an attention kind (what activation checkpointing of
    the attention core frees):

    * ``sdpa``, ``flash``, ``mem-efficient`` (fused): Q, K, V, the output O and the
      FP32 row log-sum-exp (the backward recomputes the scores; dropout keeps only a
      random seed);
    * ``eager``: Q, K, V, the softmax output P (B·H·S_q·S_k elements: softmax's
      gradient needs its output) and, with dropout, the dropped probabilities and a
      one-byte mask per score.

    Parameters
    ----------
    kind : {'eager', 'sdpa', 'flash', 'mem-efficient'}
    batch, heads, kv_heads, seq_q, seq_k, head_dim : int or array-like
        As :func:`fused_attention_flops_bytes`.
    bytes_per_element : float, default 2
        Element width of the activations [B].
    dropout : bool, default False
        Attention dropout in training.

    Examples
    --------
    >>> fused = attention_saved_bytes("sdpa", 1, 32, 8, 8192, 8192, 128)
    >>> eager = attention_saved_bytes("eager", 1, 32, 8, 8192, 8192, 128)
    >>> bool(eager > 20 * fused)  # the T×T probabilities dominate at 8 k tokens
    True
    """
    b, h, hkv, sq, sk, d = (
        np.asarray(v, float) for v in (batch, heads, kv_heads, seq_q, seq_k, head_dim)
    )
    w = float(bytes_per_element)
    inputs = w * (b * h * sq * d + 2 * b * hkv * sk * d)
    if kind in ("sdpa", "flash", "mem-efficient"):
        return inputs + w * b * h * sq * d + 4.0 * b * h * sq
    if kind == "eager":
        scores = b * h * sq * sk
        return inputs + w * scores + (w + 1.0) * scores * float(bool(dropout))
    raise ValueError(f"attention kind must be eager, sdpa, flash or mem-efficient, got {kind!r}")


def _with_attention_columns(rows: pd.DataFrame, backward: np.ndarray) -> pd.DataFrame:
    """``rows`` with :data:`ATTENTION_COLUMNS`, read from the generic shape if absent.

    Without them, ``B, M, N, K`` are (batch·heads, seq_q, seq_kv, head_dim) (the step
    graph's convention), one head per batch entry with its own keys, and causality is
    read from the row's ``flop`` (a causal call counts about half the pairs).
    """
    if all(c in rows for c in ATTENTION_COLUMNS):
        return rows
    if not all(c in rows for c in ("B", "M", "N", "K", "flop")):
        missing = [c for c in ATTENTION_COLUMNS if c not in rows]
        raise ValueError(f"fused-attention rows lack column(s) {missing}")
    B, M, N, K = (rows[c].to_numpy(float) for c in ("B", "M", "N", "K"))
    full = 4.0 * B * M * N * K * np.where(backward, 2.5, 1.0)
    causal = rows["flop"].to_numpy(float) < 0.75 * full
    return rows.assign(
        batch=B, heads=1.0, kv_heads=1.0, seq_q=M, seq_kv=N, head_dim=K, causal=causal
    )


def _check_precision(precision: str) -> None:
    if precision not in _HALF | _FULL:
        raise ValueError(
            f"fused attention: precision {precision!r} not supported; expected one of "
            f"{sorted(_HALF | _FULL)}"
        )


def _efficiency(p: dict, D: np.ndarray, L: np.ndarray, passes: np.ndarray) -> np.ndarray:
    fwd = p["e"] * D / (D + p["d0"]) * L / (L + p["s0"])
    bwd = p["r"] * fwd
    both = 3.5 / (1.0 / fwd + 2.5 / bwd)
    return np.where(passes == "fwd", fwd, np.where(passes == "bwd", bwd, both))


def _features(figures: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    S = figures.seq_len.to_numpy(float)
    causal = figures.is_causal.astype(bool).to_numpy()
    L = _pairs(S, S, causal) / S
    return figures.head_dim.to_numpy(float), L, figures.pass_name.to_numpy(str)


def usable_figures(figures: pd.DataFrame, family: str = "fa2") -> pd.DataFrame:
    """The half-precision figures of one kernel family a law can be fitted on.

    Named GPU, known pass and causality, sequence length, head dim and throughput,
    FP16/BF16 (FP8 is another peak); maxima and ranges (no shape) are left out.
    """
    f = figures
    keep = (
        (f.family == family)
        & f.gpu.notna()
        & f.pass_name.notna()
        & f.is_causal.notna()
        & f.tflops.notna()
        & f.seq_len.notna()
        & f.head_dim.notna()
        & f.precision_name.isin(["fp16", "bf16"])
    )
    return f[keep].reset_index(drop=True)


def _fit_one(d: pd.DataFrame, peak: float, prior: dict | None) -> dict:
    """Coefficients of one GPU's law; ``prior`` fixes what its figures cannot identify."""
    D, L, passes = _features(d)
    y = np.log(d.tflops.to_numpy(float) * 1e12 / peak)
    names = set(passes)
    both = {"fwd", "bwd"} <= names or ("fwd+bwd" in names and len(names) > 1)
    enough = len(d) >= MIN_ROWS_FULL
    free = ["e"]
    if both or prior is None:
        free.append("r")
    if (enough and len(set(D)) >= 2) or prior is None:
        free.append("d0")
    if (enough and len(set(d.seq_len)) >= 3) or prior is None:
        free.append("s0")
    fixed = {n: (prior or {}).get(n, 1.0) for n in _NAMES if n not in free}
    lo = np.log([BOUNDS[n][0] for n in free])
    hi = np.log([BOUNDS[n][1] for n in free])
    start = {"e": 0.6, "r": 0.8, "d0": 10.0, "s0": 200.0}

    def unpack(x):
        return {**fixed, **{n: float(np.exp(v)) for n, v in zip(free, x, strict=True)}}

    def residual(x):
        return np.log(_efficiency(unpack(x), D, L, passes)) - y

    from scipy.optimize import least_squares  # here: timing needs no SciPy

    x0 = np.clip(np.log([start[n] for n in free]), lo + 1e-9, hi - 1e-9)
    res = least_squares(residual, x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.1)
    law = unpack(res.x)
    law["n_rows"] = len(d)
    law["fitted"] = free
    return law


#: FP16 ``mma.sync`` throughput of one SM per clock [FLOP/cycle]: the A100's dense FP16 peak
#: over its SMs and boost clock (NVIDIA A100 data sheet: 312e12 / (108 · 1.41e9) ≈ 2048).
MMA_SYNC_RATE = 2048.0


def mma_share(gpu: str) -> float:
    """Share of the FP16 tensor-core peak that FlashAttention-2's instructions can reach [-].

    FlashAttention-2 issues Ampere's ``mma.sync`` on every generation; Hopper's and
    Blackwell's peaks need other instructions (``wgmma``, ``tcgen05``). Its roof is
    ``min(peak, MMA_SYNC_RATE · SMs · boost clock)``; this returns that roof over the peak.
    """
    from powerfit.hardware.gpus import get_gpu

    spec = get_gpu(gpu)
    if not spec.sm_count or not spec.boost_clock_hz:
        raise ValueError(f"{spec.name}: SM count and boost clock needed to transfer a law")
    roof = MMA_SYNC_RATE * spec.sm_count * spec.boost_clock_hz
    return float(min(1.0, roof / _peak(spec.name)))


#: The call at which laws are compared for transfer: forward, head dim 128, 4096 keys
#: per query row (non-causal) [-].
REFERENCE_CALL = {"head_dim": 128.0, "keys": 4096.0}


def _reference(law: dict) -> float:
    """Forward efficiency [-] of a law at :data:`REFERENCE_CALL`."""
    D, L = REFERENCE_CALL["head_dim"], REFERENCE_CALL["keys"]
    return float(law["e"] * D / (D + law["d0"]) * L / (L + law["s0"]))


def _tensor_rate(gpu: str) -> float:
    """FlashAttention-2's tensor roof per SM and cycle [FLOP/cycle]."""
    from powerfit.hardware.gpus import get_gpu

    spec = get_gpu(gpu)
    return mma_share(gpu) * _peak(spec.name) / (spec.sm_count * spec.boost_clock_hz)


def _peak(gpu: str, precision: str = "fp16") -> float:
    from powerfit.hardware.gpus import get_gpu

    spec = get_gpu(gpu)
    if precision not in spec.peak_flops:
        raise ValueError(f"{spec.name} has no {precision} peak in the catalogue")
    return float(spec.peak_flops[precision])


class FusedAttentionLaws:
    """Fused-attention efficiency laws per (GPU, kernel family), with transfer by peak.

    Parameters
    ----------
    laws : dict of (str, str) to dict, optional
        (GPU catalogue name, family) -> coefficients (``e, r, d0, s0``).
    residuals : dict, optional
        Log-ratio RMS of the leave-one-GPU-out and own-GPU evidence (``half_width``).

    Examples
    --------
    >>> laws = load_fused_attention_laws()  # doctest: +SKIP
    >>> laws.time("h100", 4, 32, 8, 4096, 4096, 128, True, False)  # doctest: +SKIP
    """

    def __init__(self, laws: dict | None = None, residuals: dict | None = None) -> None:
        self.laws = dict(laws or {})
        self.residuals = dict(residuals or {})

    # ------------------------------------------------------------------- fit
    @classmethod
    def fit(
        cls,
        figures: pd.DataFrame,
        families: tuple[str, ...] = ("fa2", "cudnn", "mem-efficient", "triton"),
    ):
        """Fit one law per (GPU, family) on :func:`fetch_flashattn` figures.

        GPUs with enough figures are fitted first (all coefficients); the others then
        fit their level with the rest fixed at those GPUs' medians.
        """
        laws: dict[tuple[str, str], dict] = {}
        for family in families:
            d = usable_figures(figures, family)
            groups = {g: x for g, x in d.groupby("gpu")}

            def passes(x):
                names = set(x.pass_name)
                return {"fwd", "bwd"} <= names or ("fwd+bwd" in names and len(names) > 1)

            rich = [
                g
                for g, x in groups.items()
                if len(x) >= MIN_ROWS_FULL
                and x.seq_len.nunique() >= 2
                and x.head_dim.nunique() >= 2
                and passes(x)
            ]
            for g in rich:
                laws[(g, family)] = _fit_one(groups[g], _peak(g), None)
            prior = _medians([laws[(g, family)] for g in rich])
            for g, x in groups.items():
                if g not in rich:
                    laws[(g, family)] = _fit_one(x, _peak(g), prior or None)
        return cls(laws)

    def without_gpus(self, gpus) -> FusedAttentionLaws:
        """The same laws, minus those of ``gpus`` (for leave-one-GPU-out)."""
        drop = set(gpus)
        return FusedAttentionLaws({k: v for k, v in self.laws.items() if k[0] not in drop})

    # -------------------------------------------------------------- transfer
    def transferred(self, gpu: str, family: str = "fa2") -> dict:
        """Coefficients for ``gpu`` from the other GPUs' laws of ``family``.

        ``r, d0, s0``: the other GPUs' medians. The level: each other GPU's forward
        efficiency at :data:`REFERENCE_CALL`, relative to its ``mma.sync`` roof
        (:func:`mma_share`), follows ``1/η = a + b·ρ`` over the tensor rate per SM and
        cycle ρ = roof / (SMs · clock) [FLOP/cycle] (the exponentials of the softmax run
        on the SM's special-function units at a fixed rate per cycle: the faster the
        tensor cores of an SM, the larger their share of the time), ``a``, ``b ≥ 0`` by
        least squares (the median level with fewer than three GPUs); ``e`` is set so that
        this GPU's law reaches the predicted η at the reference call. This rule is that
        of the kernels issuing ``mma.sync`` (``fa2``, ``triton``); other families take
        the other GPUs' median coefficients, as an assumption.
        """
        others = {g: c for (g, f), c in self.laws.items() if f == family and g != gpu}
        if not others:
            raise ValueError(f"no {family} fused-attention law of another GPU to transfer")
        law = _medians(list(others.values()))
        if family not in _MMA_SYNC_FAMILIES:  # other kernels: the median level, as an assumption
            return law
        rel = np.array([_reference(c) / mma_share(g) for g, c in others.items()])
        rho = np.array([_tensor_rate(g) for g in others])
        target = float(np.median(rel))
        if len(others) >= 3 and np.ptp(rho) > 0:
            b, a = np.polyfit(rho, 1.0 / rel, 1)
            if b < 0:
                b, a = 0.0, float(np.mean(1.0 / rel))
            target = 1.0 / (a + b * _tensor_rate(gpu))
        eta = target * mma_share(gpu)
        law["e"] = float(np.clip(eta / _reference({**law, "e": 1.0}), *BOUNDS["e"]))
        return law

    def law(self, gpu: str, family: str = "fa2", specs_only: bool = False) -> tuple[dict, str]:
        """The coefficients for ``gpu`` and their origin (``'fit'`` or ``'transfer'``)."""
        from powerfit.hardware.gpus import get_gpu

        name = get_gpu(gpu).name
        if not specs_only and (name, family) in self.laws:
            return self.laws[(name, family)], "fit"
        return self.transferred(name, family), "transfer"

    # ---------------------------------------------------------------- predict
    def time(
        self,
        gpu: str,
        batch: Any,
        heads: Any,
        kv_heads: Any,
        seq_q: Any,
        seq_k: Any,
        head_dim: Any,
        causal: Any,
        backward: Any,
        precision: str = "bf16",
        specs_only: bool = False,
        family: str | None = None,
    ) -> tuple[np.ndarray, str]:
        """Latency [s] of fused-attention calls on ``gpu``, and the law's origin.

        ``precision``: ``fp16``/``bf16``/``amp-*`` run FlashAttention-2 (PyTorch SDPA's
        FLASH_ATTENTION backend, its first choice) at the FP16 tensor-core peak (origin
        ``fit`` or ``transfer``), or the kernel ``family`` names (one of
        :data:`~powerfit.kernels.attention_kernels.ATTENTION_KERNELS`: ``cudnn`` SDPA's
        CUDNN_ATTENTION backend, ``triton`` the Triton FlashAttention); ``fp32``/``tf32``
        the memory-efficient kernel at the FP32 peak (origin ``assumed-fp32``) whatever
        ``family``. The latency is ``max(FLOP/(peak·η), bytes/bandwidth)``.
        """
        _check_precision(precision)
        if family is not None and family != "mem-efficient":
            check_attention_kernel(family)
        if precision in _HALF:
            family, peak_name, width, tag = family or "fa2", "fp16", 2.0, None
        else:
            family, peak_name, width, tag = "mem-efficient", "fp32", 4.0, "assumed-fp32"
        from powerfit.hardware.gpus import get_gpu

        spec = get_gpu(gpu)
        flop, moved = fused_attention_flops_bytes(
            batch, heads, kv_heads, seq_q, seq_k, head_dim, causal, backward, width
        )
        law, origin = self.law(gpu, family, specs_only)
        if tag == "assumed-fp32":
            # d0 is the per-score cost (softmax) in head-dim MACs at the FP16 peak: the
            # same cost in the FP32 kernel's (slower) MACs is smaller by the peak ratio
            ratio = _peak(spec.name, "fp32") / _peak(spec.name, "fp16")
            law = {**law, "d0": law["d0"] * ratio}
        sq = np.asarray(seq_q, float) * np.ones_like(flop)
        L = _pairs(sq, seq_k, causal) / sq
        D = np.asarray(head_dim, float) * np.ones_like(flop)
        passes = np.where(np.asarray(backward, bool) * np.ones(flop.shape, bool), "bwd", "fwd")
        eta = _efficiency(law, D, L, passes)
        t = np.maximum(flop / (_peak(spec.name, peak_name) * eta), moved / spec.memory_bandwidth)
        return t, tag or origin

    def half_width(self, origin: str, family: str = "fa2") -> float:
        """Log half-width q [-] of a 90 % interval for a law of this origin (evidence).

        From the bundled residuals of ``family`` (FlashAttention-2 by default):
        ``fit`` the GPU's own law, ``transfer`` leave-one-GPU-out, ``assumed-fp32``
        twice the transfer's (the memory-efficient kernel's, whatever ``family``).
        """
        if origin == "assumed-fp32":
            family = "fa2"
        key = {"fit": "own", "transfer": "logo"}.get(origin, "logo")
        if family != "fa2":
            key = f"{family}_{key}"
        q = self.residuals.get(key, {}).get("half_width")
        if q is None:
            return float("nan")
        return float(q) * (2.0 if origin == "assumed-fp32" else 1.0)

    # --------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict:
        """Plain JSON-able data (see :func:`load_fused_attention_laws`)."""
        return {
            "format": "powerfit-fused-attention/1",
            "laws": [
                {"gpu": g, "family": f, "coefficients": c}
                for (g, f), c in sorted(self.laws.items())
            ],
            "residuals": self.residuals,
        }

    @classmethod
    def from_dict(cls, data: dict) -> FusedAttentionLaws:
        """Rebuild from :meth:`to_dict`'s output (JSON only)."""
        if data.get("format") != "powerfit-fused-attention/1":
            raise ValueError(f"not powerfit fused-attention laws: format {data.get('format')!r}")
        laws = {(e["gpu"], e["family"]): dict(e["coefficients"]) for e in data["laws"]}
        return cls(laws, data.get("residuals"))


def _medians(laws: list[dict]) -> dict:
    if not laws:
        return {}
    return {n: float(np.median([c[n] for c in laws])) for n in _NAMES}


def leave_one_gpu_out(figures: pd.DataFrame, family: str = "fa2") -> pd.DataFrame:
    """Each figure predicted by its GPU's own law and by the others' (transfer) [-].

    Returns
    -------
    pandas.DataFrame
        The usable figures with ``own`` and ``logo``: predicted / published throughput.
    """
    d = usable_figures(figures, family)
    laws = FusedAttentionLaws.fit(figures, families=(family,))
    D, L, passes = _features(d)
    own = np.full(len(d), np.nan)
    logo = np.full(len(d), np.nan)
    for gpu, idx in d.groupby("gpu").indices.items():
        eff = d.tflops.to_numpy(float)[idx] * 1e12 / _peak(gpu)
        p = laws.laws[(gpu, family)]
        own[idx] = _efficiency(p, D[idx], L[idx], passes[idx]) / eff
        blind = FusedAttentionLaws.fit(figures[figures.gpu != gpu], families=(family,))
        if not blind.laws:
            continue  # no other GPU to transfer from
        q = blind.transferred(gpu, family)
        logo[idx] = _efficiency(q, D[idx], L[idx], passes[idx]) / eff
    return d.assign(own=own, logo=logo)


def load_fused_attention_laws() -> FusedAttentionLaws:
    """The bundled laws (``powerfit/data/attention/fused.json``), read once per process.

    The same object is returned each time: do not modify it (fit new laws instead).
    """
    return _bundled_laws()


@lru_cache(maxsize=1)
def _bundled_laws() -> FusedAttentionLaws:
    text = resources.files("powerfit").joinpath("data", "attention", "fused.json")
    try:
        return FusedAttentionLaws.from_dict(json.loads(text.read_text()))
    except FileNotFoundError:
        raise ValueError(
            "no bundled fused-attention laws; build them with "
            "experiments/build_half_precision_laws.py"
        ) from None
