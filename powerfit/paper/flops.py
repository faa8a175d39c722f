"""Analytic FLOP counts of the elementary operations of Transformer, LSTM and GRU layers.

Conventions
-----------
* One multiply-accumulate counts as 2 FLOP, as in the paper (Mayaki & Charpenay,
  2025, Table 7 and appendix 7.4) and in :class:`torch.utils.flop_counter.FlopCounterMode`.
* Every counter returns the FLOPs of **one layer, one forward pass of one batch**
  [FLOP]. Recurrent counters include the ``seq_len`` time steps; pass ``seq_len=1``
  for the per-time-step counts of the published LSTM data.
* Bias additions are not counted (they are O(tokens·d) and PyTorch's counter skips
  them too).
* Training-step FLOPs (forward + backward) are 3x the forward FLOPs:
  the backward pass of a matrix product computes two products of the same size
  (gradients with respect to the input and to the weights), and we use the same
  factor for element-wise operations. See :func:`training_flops`.
* The counters are vectorised: scalars, NumPy arrays and pandas Series are accepted
  and broadcast together; the result has the shape of the broadcast inputs (a float
  for scalars, a Series with the index of the first Series argument).

Transformer layer (W = batch_size·seq_len tokens, d = d_model, h = n_heads,
d_k = floor(d / h)):

==================  ======================================================
operation           FLOP
==================  ======================================================
qkv_projections     6·W·d²
attention_scores    2·batch·h·seq_len²·d_k   (Q·Kᵀ)
attention_softmax   5·batch·h·seq_len²       (max, subtract, exp, sum, divide)
attention_output    2·batch·h·seq_len²·d_k   (A·V)
final_projection    2·W·d²
ffn                 4·W·d·d_ff               (two linear maps, d_ff = 4·d by default)
==================  ======================================================

When h does not divide d, the two attention products use d_k = floor(d / h)
while the projections keep the full d, as in the published tables.

LSTM layer (B batch, T time steps, I input size, H hidden size), per layer:
``input_gates`` 8·B·I·H·T, ``hidden_gates`` 8·B·H²·T, ``activations`` 4·B·H·T,
``cell_update`` 3·B·H·T (c = f⊙c + i⊙g), ``hidden_update`` 2·B·H·T (h = o⊙tanh(c)).
The published LSTM data count one time step and 2·B·H for the cell update; the
published profile reproduces that convention itself.

GRU layer, with the same symbols: ``input_gates`` 6·B·I·H·T, ``hidden_gates``
6·B·H²·T, ``activations`` 3·B·H·T (two sigmoids and one tanh), ``candidate``
2·B·H·T (r⊙(W_hn·h) and its sum with the input part), ``hidden_update`` 3·B·H·T
(h' = n + z⊙(h − n)).

References
----------
.. [1] M. Zoubeirou a Mayaki and V. Charpenay, "Modeling Energy Consumption in Deep
   Learning Architectures Using Power Laws", ECAI 2025.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ARCHITECTURES",
    "OPERATIONS",
    "activations",
    "attention_output",
    "attention_scores",
    "attention_softmax",
    "candidate",
    "cell_update",
    "configuration_flops",
    "ffn",
    "final_projection",
    "hidden_gates",
    "hidden_update",
    "input_gates",
    "layer_flops",
    "qkv_projections",
    "training_flops",
]

#: Elementary operations of one layer of each architecture, in a fixed order.
OPERATIONS: dict[str, tuple[str, ...]] = {
    "transformer": (
        "qkv_projections",
        "attention_scores",
        "attention_softmax",
        "attention_output",
        "final_projection",
        "ffn",
    ),
    "lstm": ("input_gates", "hidden_gates", "activations", "cell_update", "hidden_update"),
    "gru": ("input_gates", "hidden_gates", "activations", "candidate", "hidden_update"),
}

#: Architectures with FLOP counters.
ARCHITECTURES: tuple[str, ...] = tuple(OPERATIONS)

#: Gates per recurrent cell: an LSTM has 4 (input, forget, cell, output), a GRU 3.
_GATES = {"lstm": 4, "gru": 3}
#: Element-wise FLOP per hidden unit and time step, per recurrent operation.
_ELEMENTWISE = {
    "lstm": {"activations": 4.0, "cell_update": 3.0, "hidden_update": 2.0},
    "gru": {"activations": 3.0, "candidate": 2.0, "hidden_update": 3.0},
}


def _positive(value: Any, name: str) -> Any:
    """Return ``value`` as float data, raising a ValueError naming ``name`` if not > 0."""
    if isinstance(value, pd.Series):
        arr = value.to_numpy(dtype=float, na_value=np.nan)
    else:
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be numeric, got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or infinity)")
    if not np.all(arr > 0):
        raise ValueError(f"{name} must be > 0, got {np.min(arr):g}")
    return arr


def _wrap(result: np.ndarray, *inputs: Any) -> Any:
    """Give ``result`` the container of the inputs: a float, an array or a Series."""
    for value in inputs:
        if isinstance(value, pd.Series):
            if np.shape(result) != value.shape:
                result = np.broadcast_to(result, value.shape).copy()
            return pd.Series(result, index=value.index)
    if np.ndim(result) == 0:
        return float(result)
    return result


def _head_dim(d_model: np.ndarray, n_heads: np.ndarray) -> np.ndarray:
    if np.any(n_heads > d_model):
        raise ValueError("n_heads must not exceed d_model (each head needs >= 1 dimension)")
    return np.floor(d_model / n_heads)


def qkv_projections(batch_size: Any, seq_len: Any, d_model: Any) -> Any:
    """FLOPs of the query, key and value projections of one Transformer layer.

    Parameters
    ----------
    batch_size : numeric
        Sequences per batch [-].
    seq_len : numeric
        Tokens per sequence [-].
    d_model : numeric
        Model (embedding) width [-].

    Returns
    -------
    numeric
        6·batch_size·seq_len·d_model² [FLOP].

    Examples
    --------
    >>> qkv_projections(64, 320, 512)
    32212254720.0
    """
    b, t, d = (
        _positive(batch_size, "batch_size"),
        _positive(seq_len, "seq_len"),
        _positive(d_model, "d_model"),
    )
    return _wrap(6.0 * b * t * d * d, batch_size, seq_len, d_model)


def attention_scores(batch_size: Any, seq_len: Any, d_model: Any, n_heads: Any) -> Any:
    """FLOPs of the attention scores Q·Kᵀ of one Transformer layer.

    Parameters
    ----------
    batch_size, seq_len, d_model : numeric
        As in :func:`qkv_projections`.
    n_heads : numeric
        Attention heads [-]; d_k = floor(d_model / n_heads).

    Returns
    -------
    numeric
        2·batch_size·n_heads·seq_len²·d_k [FLOP].

    Raises
    ------
    ValueError
        If an argument is not > 0 or finite, or n_heads > d_model.
    """
    b, t = _positive(batch_size, "batch_size"), _positive(seq_len, "seq_len")
    d, h = _positive(d_model, "d_model"), _positive(n_heads, "n_heads")
    return _wrap(2.0 * b * h * t * t * _head_dim(d, h), batch_size, seq_len, d_model, n_heads)


def attention_softmax(batch_size: Any, seq_len: Any, n_heads: Any) -> Any:
    """FLOPs of the row-wise softmax over the attention scores of one layer.

    Five FLOP per score (max, subtract, exp, sum, divide) over batch·heads·seq_len²
    scores.

    Parameters
    ----------
    batch_size, seq_len : numeric
        As in :func:`qkv_projections`.
    n_heads : numeric
        Attention heads [-].

    Returns
    -------
    numeric
        5·batch_size·n_heads·seq_len² [FLOP].
    """
    b, t = _positive(batch_size, "batch_size"), _positive(seq_len, "seq_len")
    h = _positive(n_heads, "n_heads")
    return _wrap(5.0 * b * h * t * t, batch_size, seq_len, n_heads)


def attention_output(batch_size: Any, seq_len: Any, d_model: Any, n_heads: Any) -> Any:
    """FLOPs of the attention-weighted values A·V of one Transformer layer.

    Same count as :func:`attention_scores`: 2·batch_size·n_heads·seq_len²·d_k [FLOP].
    """
    return attention_scores(batch_size, seq_len, d_model, n_heads)


def final_projection(batch_size: Any, seq_len: Any, d_model: Any) -> Any:
    """FLOPs of the output projection of the attention block of one layer.

    Returns
    -------
    numeric
        2·batch_size·seq_len·d_model² [FLOP].
    """
    b, t = _positive(batch_size, "batch_size"), _positive(seq_len, "seq_len")
    d = _positive(d_model, "d_model")
    return _wrap(2.0 * b * t * d * d, batch_size, seq_len, d_model)


def ffn(batch_size: Any, seq_len: Any, d_model: Any, d_ff: Any = None) -> Any:
    """FLOPs of the position-wise feed-forward network (two linear maps) of one layer.

    Parameters
    ----------
    batch_size, seq_len, d_model : numeric
        As in :func:`qkv_projections`.
    d_ff : numeric, optional
        Inner width [-]; 4·d_model when omitted.

    Returns
    -------
    numeric
        4·batch_size·seq_len·d_model·d_ff [FLOP].
    """
    b, t = _positive(batch_size, "batch_size"), _positive(seq_len, "seq_len")
    d = _positive(d_model, "d_model")
    f = 4.0 * d if d_ff is None else _positive(d_ff, "d_ff")
    return _wrap(4.0 * b * t * d * f, batch_size, seq_len, d_model, d_ff)


def _recurrent_arch(arch: str) -> str:
    if arch not in _GATES:
        raise ValueError(f"arch must be 'lstm' or 'gru' for a recurrent operation, got {arch!r}")
    return arch


def input_gates(
    batch_size: Any, input_size: Any, hidden_size: Any, seq_len: Any = 1, arch: str = "lstm"
) -> Any:
    """FLOPs of the input-to-hidden gate products of one recurrent layer.

    Parameters
    ----------
    batch_size : numeric
        Sequences per batch [-].
    input_size : numeric
        Width of the layer's input [-].
    hidden_size : numeric
        Width of the hidden state [-].
    seq_len : numeric, default 1
        Time steps [-].
    arch : {'lstm', 'gru'}
        4 gates for an LSTM, 3 for a GRU.

    Returns
    -------
    numeric
        2·gates·batch_size·input_size·hidden_size·seq_len [FLOP].

    Examples
    --------
    >>> input_gates(192, 256, 192)  # one time step of the published LSTM data
    75497472.0
    """
    gates = _GATES[_recurrent_arch(arch)]
    b, i = _positive(batch_size, "batch_size"), _positive(input_size, "input_size")
    h, t = _positive(hidden_size, "hidden_size"), _positive(seq_len, "seq_len")
    return _wrap(2.0 * gates * b * i * h * t, batch_size, input_size, hidden_size, seq_len)


def hidden_gates(batch_size: Any, hidden_size: Any, seq_len: Any = 1, arch: str = "lstm") -> Any:
    """FLOPs of the hidden-to-hidden gate products of one recurrent layer.

    Returns
    -------
    numeric
        2·gates·batch_size·hidden_size²·seq_len [FLOP] (gates: 4 LSTM, 3 GRU).
    """
    gates = _GATES[_recurrent_arch(arch)]
    b, h = _positive(batch_size, "batch_size"), _positive(hidden_size, "hidden_size")
    t = _positive(seq_len, "seq_len")
    return _wrap(2.0 * gates * b * h * h * t, batch_size, hidden_size, seq_len)


def _elementwise(op: str, batch_size: Any, hidden_size: Any, seq_len: Any, arch: str) -> Any:
    factors = _ELEMENTWISE[_recurrent_arch(arch)]
    if op not in factors:
        raise ValueError(f"a {arch.upper()} layer has no operation {op!r}")
    b, h = _positive(batch_size, "batch_size"), _positive(hidden_size, "hidden_size")
    t = _positive(seq_len, "seq_len")
    return _wrap(factors[op] * b * h * t, batch_size, hidden_size, seq_len)


def activations(batch_size: Any, hidden_size: Any, seq_len: Any = 1, arch: str = "lstm") -> Any:
    """FLOPs of the gate non-linearities: 4·B·H·T (LSTM) or 3·B·H·T (GRU) [FLOP]."""
    return _elementwise("activations", batch_size, hidden_size, seq_len, arch)


def cell_update(batch_size: Any, hidden_size: Any, seq_len: Any = 1) -> Any:
    """FLOPs of the LSTM cell update c = f⊙c + i⊙g: 3·B·H·T [FLOP]."""
    return _elementwise("cell_update", batch_size, hidden_size, seq_len, "lstm")


def candidate(batch_size: Any, hidden_size: Any, seq_len: Any = 1) -> Any:
    """FLOPs of the GRU candidate's reset product r⊙(W_hn·h) and sum: 2·B·H·T [FLOP]."""
    return _elementwise("candidate", batch_size, hidden_size, seq_len, "gru")


def hidden_update(batch_size: Any, hidden_size: Any, seq_len: Any = 1, arch: str = "lstm") -> Any:
    """FLOPs of the hidden-state update: 2·B·H·T (LSTM) or 3·B·H·T (GRU) [FLOP]."""
    return _elementwise("hidden_update", batch_size, hidden_size, seq_len, arch)


def layer_flops(arch: str, operations: Any = None, **config: Any) -> dict[str, Any]:
    """FLOPs of every elementary operation of one layer, one forward pass of one batch.

    Parameters
    ----------
    arch : {'transformer', 'lstm', 'gru'}
        Architecture.
    operations : sequence of str, optional
        Operations to count (default: all of ``arch``'s, see :data:`OPERATIONS`).
    **config
        Shape parameters. Transformer: ``batch_size``, ``seq_len``, ``d_model``,
        ``n_heads`` and optionally ``d_ff``. LSTM and GRU: ``batch_size``,
        ``input_size``, ``hidden_size`` and optionally ``seq_len`` (default 1).

    Returns
    -------
    dict of str to numeric
        Operation name (as in :data:`OPERATIONS`) to FLOPs [FLOP].

    Raises
    ------
    ValueError
        For an unknown architecture, a missing parameter or an invalid value.

    Examples
    --------
    >>> ops = layer_flops("transformer", batch_size=64, seq_len=320, d_model=512, n_heads=8)
    >>> round(ops["qkv_projections"] / 1e12, 4)
    0.0322
    """
    if arch not in OPERATIONS:
        raise ValueError(f"arch must be one of {', '.join(ARCHITECTURES)}, got {arch!r}")
    if arch == "transformer":
        required = ("batch_size", "seq_len", "d_model", "n_heads")
    else:
        required = ("batch_size", "input_size", "hidden_size")
    missing = [name for name in required if config.get(name) is None]
    if missing:
        raise ValueError(f"{arch} layer FLOPs need {', '.join(missing)}")
    wanted = OPERATIONS[arch] if operations is None else tuple(operations)
    unknown = [op for op in wanted if op not in OPERATIONS[arch]]
    if unknown:
        raise ValueError(f"unknown {arch} operation(s) {', '.join(map(repr, unknown))}")
    counters = _COUNTERS[arch]
    if arch != "transformer" and config.get("seq_len") is None:
        config = {**config, "seq_len": 1}
    out: dict[str, Any] = {}
    for op in wanted:
        if op == "attention_output" and "attention_scores" in out:
            out[op] = out["attention_scores"]  # same count: reuse it
        else:
            out[op] = counters[op](config)
    return out


_COUNTERS: dict[str, dict[str, Any]] = {
    "transformer": {
        "qkv_projections": lambda c: qkv_projections(c["batch_size"], c["seq_len"], c["d_model"]),
        "attention_scores": lambda c: attention_scores(
            c["batch_size"], c["seq_len"], c["d_model"], c["n_heads"]
        ),
        "attention_softmax": lambda c: attention_softmax(
            c["batch_size"], c["seq_len"], c["n_heads"]
        ),
        "attention_output": lambda c: attention_output(
            c["batch_size"], c["seq_len"], c["d_model"], c["n_heads"]
        ),
        "final_projection": lambda c: final_projection(
            c["batch_size"], c["seq_len"], c["d_model"]
        ),
        "ffn": lambda c: ffn(c["batch_size"], c["seq_len"], c["d_model"], c.get("d_ff")),
    },
    **{
        arch: {
            "input_gates": lambda c, a=arch: input_gates(
                c["batch_size"], c["input_size"], c["hidden_size"], c["seq_len"], arch=a
            ),
            "hidden_gates": lambda c, a=arch: hidden_gates(
                c["batch_size"], c["hidden_size"], c["seq_len"], arch=a
            ),
            "activations": lambda c, a=arch: activations(
                c["batch_size"], c["hidden_size"], c["seq_len"], arch=a
            ),
            "hidden_update": lambda c, a=arch: hidden_update(
                c["batch_size"], c["hidden_size"], c["seq_len"], arch=a
            ),
        }
        for arch in ("lstm", "gru")
    },
}

_COUNTERS["lstm"]["cell_update"] = lambda c: cell_update(
    c["batch_size"], c["hidden_size"], c["seq_len"]
)

_COUNTERS["gru"]["candidate"] = lambda c: candidate(
    c["batch_size"], c["hidden_size"], c["seq_len"]
)


def training_flops(forward_flops: Any) -> Any:
    """FLOPs of a training step (forward + backward) from the forward FLOPs.

    Parameters
    ----------
    forward_flops : numeric
        Forward-pass FLOPs [FLOP].

    Returns
    -------
    numeric
        3 · forward_flops [FLOP]: the backward pass of a matrix product costs two
        products of the forward size.
    """
    if isinstance(forward_flops, Mapping):
        return {name: training_flops(value) for name, value in forward_flops.items()}
    return forward_flops * 3.0


def configuration_flops(
    configs: pd.DataFrame,
    arch: str | None = None,
    *,
    per: str = "layer",
    training: bool = False,
    operations: Any = None,
) -> pd.DataFrame:
    """Per-operation FLOPs of many configurations of one architecture.

    Parameters
    ----------
    configs : pandas.DataFrame
        One configuration per row, with the canonical columns of ``arch`` (see
        :func:`layer_flops`; ``n_layers`` too when ``per='model'``).
    arch : {'transformer', 'lstm', 'gru'}, optional
        Architecture; read from a single-valued ``arch`` column when omitted.
    per : {'layer', 'model'}, default 'layer'
        FLOPs of one layer, or of the whole stack (× ``n_layers``).
    training : bool, default False
        Forward + backward FLOPs (see :func:`training_flops`) instead of forward only.
    operations : sequence of str, optional
        Operations to count (default: all of ``arch``'s, see :data:`OPERATIONS`).

    Returns
    -------
    pandas.DataFrame
        One column per operation [FLOP], same index as ``configs``.
    """
    if arch is None:
        if "arch" not in configs.columns or configs["arch"].nunique() != 1:
            raise ValueError("pass arch=..., or give configs a single-valued 'arch' column")
        arch = str(configs["arch"].iloc[0])
    names = ("batch_size", "seq_len", "d_model", "n_heads", "d_ff", "input_size", "hidden_size")
    kwargs = {}
    for name in names:
        if name in configs.columns:
            col = configs[name]
            kwargs[name] = None if col.isna().all() else _positive(col, name)
    ops = layer_flops(arch, operations=operations, **kwargs)
    frame = pd.DataFrame(ops, index=configs.index, copy=False)
    if per == "model":
        if "n_layers" not in configs.columns:
            raise ValueError("per='model' needs an 'n_layers' column")
        frame = frame.mul(_positive(configs["n_layers"], "n_layers"), axis=0)
    elif per != "layer":
        raise ValueError(f"per must be 'layer' or 'model', got {per!r}")
    return training_flops(frame) if training else frame
