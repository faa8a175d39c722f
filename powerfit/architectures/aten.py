"""ATen operators as the step graph names them (NeuSight's operator vocabulary).

:func:`map_op` turns one ATen call recorded on the meta device
(:mod:`powerfit.architectures.trace`) into a row of the step graph: ``linear``
(``mm``/``addmm``, and the grouped products of mixture-of-experts layers), ``bmm``,
and memory-bound operators acting on a B×H tensor (H the last dimension of the
largest tensor the call reads or writes): ``softmax``, ``ln`` (every normalisation
kernel), ``gelu`` (GELU, SiLU), ``relu``, ``tanh`` (and the other transcendental
functions), ``add``/``mul``/``div``/``pow`` of two tensors, their ``…u`` forms of a
tensor and a scalar, and ``addu`` for every copy, gather, reduction, fill and the
loss (a read and a write). Views, metadata and allocations launch no kernel and are
dropped. Activation gradients and dropout are a ``mul`` (they read two tensors and
write one), as in :mod:`powerfit.steps.graph`.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["KIND_ELEMENTWISE", "KIND_PRODUCT", "KIND_REDUCED", "map_op", "numel"]

#: ATen operators that launch no kernel (views, metadata, allocation).
_NO_KERNEL = frozenset(
    {
        "view",
        "_unsafe_view",
        "reshape",
        "_reshape_alias",
        "t",
        "transpose",
        "permute",
        "expand",
        "unsqueeze",
        "squeeze",
        "slice",
        "select",
        "detach",
        "alias",
        "as_strided",
        "split",
        "split_with_sizes",
        "chunk",
        "unbind",
        "narrow",
        "lift_fresh",
        "view_as",
        "unflatten",
        "empty",
        "empty_like",
        "empty_strided",
        "new_empty",
        "new_empty_strided",
        "arange",
        "scalar_tensor",
        "_local_scalar_dense",
        "is_same_size",
        "sym_size",
        "sym_stride",
        "sym_numel",
        "sym_storage_offset",
        "_to_copy_meta",
        "set_",
        "resize_",
        "clone_meta",
        "lift_fresh_copy",
        "_has_compatible_shallow_copy_type",
        "diagonal",
        "movedim",
        "real",
        "view_as_real",
        "view_as_complex",
        "unfold",
        "_conj",
        "conj",
        "resolve_conj",
        "resolve_neg",
    }
)

#: Operators whose output is smaller than the input they sweep.
_REDUCTIONS = frozenset(
    {
        "sum",
        "mean",
        "amax",
        "amin",
        "max",
        "min",
        "var",
        "var_mean",
        "std",
        "norm",
        "linalg_vector_norm",
        "nll_loss_forward",
        "nll_loss2d_forward",
        "all",
        "any",
        "argmax",
        "logsumexp",
        "cumsum",
        "histc",
        "bincount",
    }
)

_TRANSCENDENTAL = frozenset({"exp", "log", "sin", "cos", "erf", "sigmoid", "log1p", "expm1"})
_UNARY = frozenset(
    {"neg", "abs", "reciprocal", "rsqrt", "sqrt", "sign", "floor", "ceil", "round", "clamp"}
)
_COMPARE = frozenset(
    {
        "eq",
        "ne",
        "ge",
        "gt",
        "le",
        "lt",
        "maximum",
        "minimum",
        "where",
        "masked_fill",
        "logical_and",
        "logical_or",
        "logical_not",
        "bitwise_and",
        "bitwise_or",
        "bitwise_not",
        "sub",
        "rsub",
        "add",
    }
)
_BACKWARD_ACT = frozenset(
    {
        "gelu_backward",
        "silu_backward",
        "threshold_backward",
        "tanh_backward",
        "sigmoid_backward",
        "native_dropout_backward",
        "hardtanh_backward",
    }
)
_SOFTMAX = frozenset(
    {"_softmax", "_log_softmax", "_softmax_backward_data", "_log_softmax_backward_data"}
)
_NORM = frozenset(
    {
        "native_layer_norm",
        "native_layer_norm_backward",
        "_fused_rms_norm",
        "_fused_rms_norm_backward",
        "native_group_norm",
        "native_group_norm_backward",
    }
)

#: Row classes: which precision a row takes (product, normalisation/softmax, element-wise).
KIND_PRODUCT, KIND_REDUCED, KIND_ELEMENTWISE = "mm", "red", "elt"


def numel(shape: Any) -> int:
    return int(math.prod(int(s) for s in shape))


def _bh(shape: Any) -> tuple[int, int]:
    shape = tuple(int(s) for s in shape)
    if not shape:
        return 1, 1
    h = shape[-1] or 1
    return max(1, numel(shape) // h), h


def map_op(name: str, args: tuple, out: Any) -> tuple[str, str, tuple[int, ...]] | None:
    """(op, kind, dims) of one ATen call, or None when it launches no kernel."""
    import torch

    base = name[:-1] if name.endswith("_") and not name.startswith("_") else name
    if base in _NO_KERNEL:
        return None
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    outs = [
        o
        for o in (out if isinstance(out, (tuple, list)) else (out,))
        if isinstance(o, torch.Tensor)
    ]
    if not tensors and not outs:
        return None
    if base in ("mm", "addmm"):
        a, b = (tensors[-2], tensors[-1])
        m, k = a.shape
        n = b.shape[1]
        return "linear", KIND_PRODUCT, (1, int(m), int(n), int(k), 0)
    if base in ("bmm", "baddbmm"):
        a, b = tensors[-2], tensors[-1]
        bb, m, k = a.shape
        n = b.shape[2]
        return "bmm", KIND_PRODUCT, (int(bb), int(m), int(n), int(k), 0)
    if base in ("_grouped_mm", "grouped_mm", "grouped_mm_fallback"):
        a, w = tensors[0], tensors[1]
        rows = numel(a.shape[:-1])
        k = int(a.shape[-1])
        n = int(w.shape[-1])
        return "linear", KIND_PRODUCT, (1, rows, n, k, 0)
    # the tensor the kernel sweeps: a reduction's input, every other kernel's output
    # (never "the largest", which could switch from a table to the activations
    # between two batch sizes)
    if base in _REDUCTIONS or not outs:
        biggest = max(tensors or outs, key=lambda t: t.numel())
    else:
        biggest = max(outs, key=lambda t: t.numel())
    if biggest.numel() <= 1:
        return None
    b, h = _bh(biggest.shape)
    dims = (b, 0, 0, 0, h)
    big = [t for t in tensors if t.numel() > 1]
    if base in _SOFTMAX:
        return "softmax", KIND_REDUCED, dims
    if base in _NORM:
        return "ln", KIND_REDUCED, dims
    if base == "native_dropout":
        return "mul", KIND_ELEMENTWISE, dims
    if base in _BACKWARD_ACT:
        return "mul", KIND_ELEMENTWISE, dims
    if base in ("gelu", "silu"):
        return "gelu", KIND_ELEMENTWISE, dims
    if base in ("relu", "threshold", "hardtanh"):
        return "relu", KIND_ELEMENTWISE, dims
    if base in ("tanh",) or base in _TRANSCENDENTAL:
        return "tanh", KIND_ELEMENTWISE, dims
    if base == "mul":
        return ("mul" if len(big) >= 2 else "mulu"), KIND_ELEMENTWISE, dims
    if base == "div":
        return ("div" if len(big) >= 2 else "divu"), KIND_ELEMENTWISE, dims
    if base == "pow":
        return ("pow" if len(big) >= 2 else "powu"), KIND_ELEMENTWISE, dims
    if base in _COMPARE:
        return ("add" if len(big) >= 2 else "addu"), KIND_ELEMENTWISE, dims
    if base in _UNARY:
        return "mulu", KIND_ELEMENTWISE, dims
    # copies, gathers, reductions, fills, the loss: read and write once
    return "addu", KIND_ELEMENTWISE, dims
