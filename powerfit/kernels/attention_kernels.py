"""Which fused-attention kernel a step runs (``--attention-kernel``): names and checks.

Each kernel is timed by its own law family (:mod:`powerfit.kernels.attention`):
``fa2`` FlashAttention-2 (the default: PyTorch SDPA's FLASH_ATTENTION backend,
transformers' ``flash_attention_2``), ``cudnn`` (SDPA's CUDNN_ATTENTION backend) and
``triton`` (the Triton FlashAttention of 2022–2023, llm-foundry MPT's
``attn_impl: triton``). A step graph names the kernel of each fused-attention row in
its column ``attention_kernel``. Light to import (the command line reads
:data:`ATTENTION_KERNELS` for its choices): NumPy is imported where it is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "ATTENTION_KERNELS",
    "KERNEL_NAMES",
    "attention_kernels",
    "check_attention_kernel",
    "kernel_run",
    "resolve_kernel",
]

#: Fused-attention kernels a half-precision step can run (``--attention-kernel``), each
#: timed by its own law family; ``fa2`` is the default.
ATTENTION_KERNELS = ("fa2", "cudnn", "triton")

#: What each :data:`ATTENTION_KERNELS` entry is, in words.
KERNEL_NAMES = {"fa2": "FlashAttention-2", "cudnn": "cuDNN", "triton": "Triton FlashAttention"}


def attention_kernels(rows: pd.DataFrame) -> np.ndarray:
    """The fused-attention kernel of each row (column ``attention_kernel``; ``fa2`` if absent).

    Raises
    ------
    ValueError
        A kernel that is not one of :data:`ATTENTION_KERNELS`.
    """
    import numpy as np

    if "attention_kernel" not in rows:
        return np.full(len(rows), "fa2", dtype=object)
    kernels = rows["attention_kernel"].astype(str).replace("", "fa2").to_numpy(dtype=object)
    for kernel in set(kernels):
        check_attention_kernel(kernel)
    return kernels


def kernel_run(attention: str | None, precision: str, kernel: str) -> str | None:
    """The fused-attention kernel a step runs, as reported with an estimate.

    None when its attention is not fused (``attention`` ``eager``, or None: a
    hand-written graph), ``mem-efficient`` for FP32/TF32 tensors (SDPA's kernel for
    them, whatever ``kernel``), else ``kernel``.
    """
    check_attention_kernel(kernel)
    if attention in (None, "eager"):
        return None
    return "mem-efficient" if precision in ("fp32", "tf32") else kernel


def check_attention_kernel(kernel: str) -> str:
    """``kernel`` if it is one of :data:`ATTENTION_KERNELS`.

    Raises
    ------
    ValueError
        Another name, with the choices.
    """
    if kernel not in ATTENTION_KERNELS:
        raise ValueError(
            f"attention kernel must be one of {', '.join(ATTENTION_KERNELS)}, got {kernel!r}"
        )
    return kernel


def resolve_kernel(data: Mapping[str, Any] | None, kernel: str | None) -> str:
    """The fused-attention kernel of a step: ``kernel`` if given, else the one the
    ``config.json`` ``data`` names for its training code
    (:func:`powerfit.architectures.attention_kinds.configured_attention`: MPT's
    ``attn_config.attn_impl``), else ``fa2``; checked (:func:`check_attention_kernel`).
    """
    if kernel is None and data is not None:
        from powerfit.architectures.attention_kinds import configured_attention

        kernel = configured_attention(data)[1]
    return check_attention_kernel(kernel or "fa2")
