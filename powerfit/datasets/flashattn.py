"""Published fused-attention throughput (FlashAttention 1/2/3, cuDNN, xFormers, Triton, eager).

:func:`fetch_flashattn` reads ``<data_home>/flashattn-published/fused_attention_published.csv``
(670 figures transcribed from papers, repository benchmark files and issue threads, each
with its ``source``), checks it against the copy's ``SHA256SUMS``, and returns a tidy
frame: the published columns, plus normalised ones the laws need:

* ``gpu``: the catalogue (NVML) name of the board (:data:`FLASHATTN_BOARDS`), None where
  the publication does not name the GPU;
* ``family``: the kernel family (:data:`KERNEL_FAMILIES`): ``fa1``, ``fa2`` (FlashAttention-2
  and PyTorch SDPA's FLASH_ATTENTION backend, which vendors it), ``fa3``, ``cudnn``,
  ``mem-efficient`` (xFormers' cutlass kernel, which SDPA's EFFICIENT_ATTENTION backend
  vendors), ``triton`` (the 2022–2023 Triton FlashAttention, Tillet's kernel that
  flash-attn's ``flash_attn_triton`` and llm-foundry's MPT ``attn_impl: triton`` run; it
  issues Ampere's ``mma.sync`` on every GPU), ``triton-tutorial`` (Triton's 2024 tutorial
  kernel, built with Hopper's TMA and ``wgmma``: another kernel), ``eager`` (unfused
  baselines), ``other``;
* ``precision_name`` (``fp16``, ``bf16``, ``fp8``), ``pass_name`` (``fwd``, ``bwd``,
  ``fwd+bwd``; None for maxima, ranges and unstated passes), ``is_causal`` (bool, None
  where unknown), ``q_heads``/``kv_heads`` (GQA rows publish "64 q / 8 kv"), and flags
  ``approximate`` ("approx" in the note: APPROXIMATE, or a label read approximately),
  ``derived`` (DERIVED), ``presumed`` (the pass or causality was presumed by the
  transcriber);
* ``flop``: the FLOPs of the row's work under the publications' convention (forward
  4·B·S²·H·D, halved when causal; backward 2.5×; forward+backward 3.5×) [FLOP], and
  ``time_s`` = flop / (tflops·1e12) [s] (or the published ``time_ms`` where there is one).

Units: ``tflops`` is in TFLOP/s as published; ``time_s`` in seconds.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from powerfit.datasets.home import checked_file, get_data_home, read_sha256sums

__all__ = ["FLASHATTN_BOARDS", "KERNEL_FAMILIES", "FlashAttnPublished", "fetch_flashattn"]

FILE = "fused_attention_published.csv"

#: Published ``board`` -> catalogue name. Boards whose form factor is not stated take the
#: variant the publications' own hardware sections imply (the SXM boards of DGX/HGX
#: servers); an unnamed Hopper GPU maps to None.
FLASHATTN_BOARDS = {
    "A100 80GB SXM4": "NVIDIA A100-SXM4-80GB",
    "A100 40GB (form factor not stated in E.6)": "NVIDIA A100-SXM4-40GB",
    "A100-SXM4-40GB": "NVIDIA A100-SXM4-40GB",
    "H100 80GB SXM5": "NVIDIA H100 80GB HBM3",
    "H100 (unstated)": "NVIDIA H100 80GB HBM3",
    "H100 PCIe": "NVIDIA H100 PCIe",
    "H200 (board unstated)": "NVIDIA H200",
    "B200": "NVIDIA B200",
    "B200 (board unstated)": "NVIDIA B200",
    "GeForce RTX 4090": "NVIDIA GeForce RTX 4090",
    "RTX A5000 24GB (workstation, GA102)": "NVIDIA RTX A5000",
    "H20 (148 TFLOPS dense FP16, 4 TB/s per issue)": "NVIDIA H20",
    "unstated": None,
}

#: Kernel families, by a pattern of the published ``kernel`` (first match wins).
KERNEL_FAMILIES = (
    ("eager", r"unfused baseline"),
    ("fa2", r"^FlashAttention-2|FLASH_ATTENTION|= ?FA2\)"),
    ("fa3", r"^FlashAttention-3"),
    ("fa1", r"^FlashAttention-1"),
    ("cudnn", r"cuDNN|CUDNN"),
    ("mem-efficient", r"xformers|memory_efficient"),
    ("triton-tutorial", r"Triton tutorial"),
    ("triton", r"Triton"),
    ("other", r"."),
)

_COLUMNS = (
    "gpu",
    "board",
    "kernel",
    "family",
    "version",
    "precision",
    "precision_name",
    "pass",
    "pass_name",
    "causal",
    "is_causal",
    "head_dim",
    "n_heads",
    "q_heads",
    "kv_heads",
    "batch",
    "seq_len",
    "tflops",
    "time_ms",
    "flop",
    "time_s",
    "approximate",
    "derived",
    "presumed",
    "flop_convention",
    "source",
    "note",
)


@dataclass(frozen=True)
class FlashAttnPublished:
    """The published fused-attention figures.

    Attributes
    ----------
    figures : pandas.DataFrame
        One row per published figure (see the module notes for the columns).
    path : pathlib.Path
        The dataset folder.
    """

    figures: pd.DataFrame
    path: Path


def _family(kernel: str) -> str:
    for name, pattern in KERNEL_FAMILIES:
        if re.search(pattern, kernel):
            return name
    return "other"  # pragma: no cover - the last pattern matches everything


def _heads(value: object) -> tuple[float, float]:
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    gqa = re.match(r"\s*(\d+)\s*q\s*/\s*(\d+)\s*kv", text)
    if gqa:
        return float(gqa.group(1)), float(gqa.group(2))
    if re.fullmatch(r"\s*\d+\s*", text):
        return float(text), float(text)
    return np.nan, np.nan


def fetch_flashattn(data_home: str | os.PathLike[str] | None = None) -> FlashAttnPublished:
    """Load the published fused-attention figures, checked against ``SHA256SUMS``.

    Parameters
    ----------
    data_home : path, optional
        See :func:`powerfit.datasets.home.get_data_home`; the file is in
        ``<data_home>/flashattn-published/``.

    Returns
    -------
    FlashAttnPublished

    Raises
    ------
    FileNotFoundError
        The folder or the file is missing.
    ValueError
        The checksum differs, a column is missing, or a value is malformed (the message
        names the file, line and column).
    """
    folder = get_data_home(data_home) / "flashattn-published"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} not found; set POWERFIT_DATA_HOME to the folder holding "
            "flashattn-published/"
        )
    path = checked_file(folder, FILE, read_sha256sums(folder))
    raw = pd.read_csv(path)
    needed = {"gpu", "board", "kernel", "precision", "pass", "causal", "head_dim", "n_heads"}
    needed |= {"batch", "seq_len", "tflops", "time_ms", "source", "note", "flop_convention"}
    missing = sorted(needed - set(raw.columns))
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    out = raw.rename(columns={"gpu": "gpu_published"}).copy()
    unknown = sorted(set(out.board.astype(str)) - set(FLASHATTN_BOARDS))
    if unknown:
        line = int(np.flatnonzero(out.board.astype(str) == unknown[0])[0]) + 2
        raise ValueError(f"{path}, line {line}: column 'board': unknown board {unknown[0]!r}")
    out["gpu"] = out.board.astype(str).map(FLASHATTN_BOARDS)
    out["family"] = out.kernel.astype(str).map(_family)
    precision = out.precision.astype(str).str.lower()
    out["precision_name"] = np.select(
        [precision.str.startswith("fp8"), precision.str.startswith("bf16")],
        ["fp8", "bf16"],
        "fp16",
    )
    passes = out["pass"].fillna("").astype(str)
    base = passes.str.replace(r"\s*\(presumed\)", "", regex=True).str.strip()
    out["pass_name"] = base.where(base.isin(["fwd", "bwd", "fwd+bwd"]), None)
    causal = out.causal.fillna("").astype(str).str.strip()
    out["is_causal"] = causal.map(
        lambda c: True if c.startswith("y") else (False if c.startswith("n") else None),
        na_action="ignore",
    )
    heads = out.n_heads.map(_heads)
    out["q_heads"] = [h[0] for h in heads]
    out["kv_heads"] = [h[1] for h in heads]
    for col in ("head_dim", "batch", "seq_len", "tflops", "time_ms"):
        values = pd.to_numeric(out[col], errors="coerce")
        bad = values.notna() & ~(values > 0)
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise ValueError(f"{path}, line {line}: column {col!r} must be > 0")
        out[col] = values
    note = out.note.fillna("").astype(str)
    out["approximate"] = note.str.contains("approx", case=False)
    out["derived"] = note.str.contains("DERIVED") | out.flop_convention.astype(str).str.contains(
        "DERIVED"
    )
    out["presumed"] = passes.str.contains("presumed") | causal.str.contains("presumed")
    factor = out.pass_name.map({"fwd": 1.0, "bwd": 2.5, "fwd+bwd": 3.5}).astype(float)
    halve = np.where(out.is_causal.eq(True), 0.5, 1.0)
    fwd = 4.0 * out.batch * out.seq_len**2 * out.q_heads * out.head_dim
    out["flop"] = fwd * halve * factor
    out["time_s"] = np.where(
        out.time_ms.notna(), out.time_ms * 1e-3, out.flop / (out.tflops * 1e12)
    )
    columns = ["gpu_published", *_COLUMNS]
    return FlashAttnPublished(out.loc[:, columns].reset_index(drop=True), folder)
