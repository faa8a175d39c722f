"""What one call of a generic GPU operator counts: its kind, FLOPs and bytes moved.

Operators are NeuSight's (Lee et al., ASPLOS 2025): matrix products (``bmm``,
``linear``; shape B, M, N, K), reductions (``softmax``, ``ln``) and element-wise
operators (shape B, H: a B×H tensor), with the aliases of :data:`OPERATOR_ALIASES`.
FLOPs follow the conventions of :mod:`powerfit.paper.flops` (a multiply-accumulate is
2 FLOP); memory-bound operators count per element the FLOPs of
:data:`_FLOP_PER_ELEMENT` (a convention: PyTorch's counter counts none), and bytes
count every tensor read and written once.
"""

from __future__ import annotations

from typing import Any

from powerfit.paper.flops import _positive, _wrap

__all__ = [
    "OPERATOR_ALIASES",
    "OPERATOR_KINDS",
    "matmul_bytes",
    "matmul_flops",
    "operator_bytes",
    "operator_flops",
    "operator_kind",
]

#: Generic operator kinds (NeuSight's names, Lee et al., ASPLOS 2025) -> family:
#: ``matmul`` (shape B, M, N, K), ``reduction`` and ``elementwise`` (shape B, H: a
#: B×H tensor). ``add``/``mul``/``div``/``pow`` take two tensors; ``addu``/``mulu``/
#: ``divu``/``powu`` a tensor and a scalar.
OPERATOR_KINDS: dict[str, str] = {
    "matmul": "matmul",
    "bmm": "matmul",
    "linear": "matmul",
    "softmax": "reduction",
    "ln": "reduction",
    "gelu": "elementwise",
    "relu": "elementwise",
    "tanh": "elementwise",
    "add": "elementwise",
    "mul": "elementwise",
    "div": "elementwise",
    "pow": "elementwise",
    "addu": "elementwise",
    "mulu": "elementwise",
    "divu": "elementwise",
    "powu": "elementwise",
}

#: Other names of the generic operators -> NeuSight's name.
OPERATOR_ALIASES: dict[str, str] = {
    "mm": "bmm",
    "layernorm": "ln",
    "layer_norm": "ln",
    "sub": "add",
    "subu": "addu",
}

#: Tensors read and written per output element by the element-wise and reduction
#: operators (two inputs and one output for a binary operator, one and one otherwise).
_TENSORS_MOVED = {"add": 3, "mul": 3, "div": 3, "pow": 3}

#: FLOP per element of the memory-bound operators: 1 for the arithmetic element-wise
#: operators, 5 for softmax (max, subtract, exp, sum, divide, as
#: :func:`~powerfit.paper.flops.attention_softmax`), 8 for LayerNorm (mean 1, variance 3,
#: normalise 2, scale and shift 2), 8 for GELU (tanh form), 4 for tanh, 1 for relu.
_FLOP_PER_ELEMENT = {"softmax": 5.0, "ln": 8.0, "gelu": 8.0, "tanh": 4.0}


def operator_kind(op: str) -> str:
    """Canonical name of a generic operator (NeuSight's), resolving aliases.

    Parameters
    ----------
    op : str
        E.g. ``'bmm'``, ``'linear'``, ``'matmul'``, ``'softmax'``, ``'layernorm'``.

    Returns
    -------
    str
        A key of :data:`OPERATOR_KINDS` (``'matmul'`` and ``'mm'`` resolve to ``'bmm'``).

    Raises
    ------
    ValueError
        For an unknown operator; the message lists the known ones.

    Examples
    --------
    >>> operator_kind("LayerNorm"), operator_kind("matmul")
    ('ln', 'bmm')
    """
    key = str(op).strip().lower()
    key = OPERATOR_ALIASES.get(key, key)
    if key == "matmul":
        key = "bmm"
    if key not in OPERATOR_KINDS:
        raise ValueError(f"unknown operator {op!r}; known: {', '.join(OPERATOR_KINDS)}")
    return key


def matmul_flops(B: Any, M: Any, N: Any, K: Any) -> Any:
    """FLOPs of B products of an (M×K) by a (K×N) matrix: 2·B·M·N·K [FLOP].

    ``linear`` (input M×K, weight K×N) is the case B = 1; bias not counted.

    Examples
    --------
    >>> matmul_flops(1, 1024, 4096, 1024)
    8589934592.0
    """
    b, m, n, k = (_positive(v, name) for v, name in zip((B, M, N, K), "BMNK", strict=True))
    return _wrap(2.0 * b * m * n * k, B, M, N, K)


def matmul_bytes(B: Any, M: Any, N: Any, K: Any, bytes_per_element: float = 4.0) -> Any:
    """Bytes a matrix product moves at least: read A and B, write C, once [B].

    ``bytes_per_element · B·(M·K + K·N + M·N)`` (``bmm``: both operands batched;
    for ``linear``, B = 1). FP32: 4 bytes an element.

    Examples
    --------
    >>> matmul_bytes(1, 1024, 1024, 1024)
    12582912.0
    """
    b, m, n, k = (_positive(v, name) for v, name in zip((B, M, N, K), "BMNK", strict=True))
    return _wrap(bytes_per_element * b * (m * k + k * n + m * n), B, M, N, K)


def operator_flops(
    op: str, B: Any, M: Any = None, N: Any = None, K: Any = None, H: Any = None
) -> Any:
    """FLOPs of one call of a generic operator [FLOP].

    Parameters
    ----------
    op : str
        Operator (see :data:`OPERATOR_KINDS`, :func:`operator_kind`).
    B, M, N, K : numeric
        Matrix products: B products of (M×K)·(K×N).
    H : numeric
        Memory-bound operators: the tensor is B×H.

    Returns
    -------
    numeric
        2·B·M·N·K for matrix products; ``flop_per_element · B·H`` otherwise (1 for
        the arithmetic element-wise operators and relu, 4 tanh, 8 GELU and
        LayerNorm, 5 softmax).

    Examples
    --------
    >>> operator_flops("softmax", 8, H=1024)
    40960.0
    """
    kind = operator_kind(op)
    if OPERATOR_KINDS[kind] == "matmul":
        return matmul_flops(B, M, N, K)
    b, h = _positive(B, "B"), _positive(H, "H")
    return _wrap(_FLOP_PER_ELEMENT.get(kind, 1.0) * b * h, B, H)


def operator_bytes(
    op: str,
    B: Any,
    M: Any = None,
    N: Any = None,
    K: Any = None,
    H: Any = None,
    bytes_per_element: float = 4.0,
) -> Any:
    """Bytes one call of a generic operator moves to and from memory, at least [B].

    Parameters
    ----------
    op : str
        Operator (see :data:`OPERATOR_KINDS`).
    B, M, N, K, H : numeric
        Shape, as in :func:`operator_flops`.
    bytes_per_element : float, default 4
        4 for FP32, 2 for FP16/BF16.

    Returns
    -------
    numeric
        Matrix products: :func:`matmul_bytes`. Binary element-wise operators
        (``add``, ``mul``, ``div``, ``pow``): 3·B·H elements (two read, one
        written); every other memory-bound operator: 2·B·H (one read, one
        written; LayerNorm's weight and bias, 2·H, are neglected).

    Examples
    --------
    >>> operator_bytes("add", 4, H=1000), operator_bytes("relu", 4, H=1000)
    (48000.0, 32000.0)
    """
    kind = operator_kind(op)
    if OPERATOR_KINDS[kind] == "matmul":
        return matmul_bytes(B, M, N, K, bytes_per_element)
    b, h = _positive(B, "B"), _positive(H, "H")
    return _wrap(bytes_per_element * _TENSORS_MOVED.get(kind, 2) * b * h, B, H)
