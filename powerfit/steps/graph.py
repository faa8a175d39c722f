"""The operator graph of one training step: every operator it runs, with its FLOPs and bytes.

:func:`training_step_graph` lists every operator that one training step of a
:class:`~powerfit.architectures.model.ModelConfig` runs, as eager PyTorch runs it on one GPU: the
embeddings, each attention and feed-forward product, the normalisations, softmax,
activations, dropout, the LM head and the loss (forward); two products for each
forward product and the gradients of the memory-bound operators (backward); the
optimizer's element-wise passes over the parameters (optimizer); and, with activation
checkpointing, a second forward of the layers (recompute). One row is one operator of
one layer; ``count`` says how many times the step runs it.

Operator names and shapes follow NeuSight (Lee et al., ASPLOS 2025), whose operator
measurements time them:

* ``linear``: input M×K times weight K×N, ``B`` = 1 (FLOP = 2·M·N·K);
* ``bmm``: B batched (M×K)·(K×N) products (FLOP = 2·B·M·N·K);
* memory-bound operators act on a B×H tensor: ``softmax`` (over H), ``ln``
  (LayerNorm over H), ``gelu``, ``relu``, ``tanh``, ``add``/``mul``/``div``/``pow`` (two
  tensors) and ``addu``/``mulu``/``divu``/``powu`` (a tensor and a scalar).

Operators NeuSight did not measure are mapped to the closest measured one, by the
tensors they read and write:

==========================  ==================================================
operator                    mapped to
==========================  ==================================================
embedding lookup            ``addu`` (read and write tokens × width)
embedding gradient          ``addu`` over the table (zeroing) + ``add`` over tokens
dropout                     ``mul`` (tensor × mask); backward two ``mul``
RMSNorm                     ``ln`` (one reduction over H, same traffic)
SiLU                        ``gelu`` (one transcendental per element)
GELU tanh approximation     its eight eager kernels (``mulu powu mulu add mulu
                            tanh addu mul``), as HF's ``gelu_new`` runs
masks, position bias        ``add`` over the scores; GPT-2's ``torch.where`` mask has
                            a ``mulu`` gradient, OPT's clamp ``torch.max`` three ``mul``
                            and a ``mulu``
head split/merge copies     ``addu`` (``contiguous``, ``repeat_kv``, rotary halves)
rotary embedding            ``mul``, ``mul``, ``add`` and one ``addu`` copy, on q and k
activation gradients        ``mul`` (reads x and dy, writes dx)
LayerNorm gradient          ``ln`` + ``addu`` (dγ, dβ reductions)
softmax gradient            ``softmax`` + ``mul`` + ``mulu``
power gradient (``powu``)   ``powu`` + ``mul`` + ``mulu``
bias gradient               ``addu`` over the output (a column reduction)
residual fork gradient      ``add`` (autograd sums the two gradient streams)
loss (cross-entropy)        ``softmax`` over the vocabulary (log-softmax), forward and
                            backward
AdamW step                  eight passes over the parameters as ``torch.optim.AdamW``
                            (foreach) runs them: ``mulu`` (decay), ``add`` (lerp of the
                            first moment), ``mulu``, ``mul`` (addcmul, second moment),
                            ``powu`` (sqrt), ``divu``, ``addu`` (eps), ``div`` (addcdiv)
SGD step (no momentum)      one ``add`` over the parameters
==========================  ==================================================

The gradients' kernels were chosen so that their latencies match, within about 10 %,
the backward/forward latency ratios NeuSight traced per node (A100, BERT-large,
GPT-2 large, OPT-1.3B): ≈ 2.7 for softmax and attention dropout, 1.8 for dropout,
1.7 for LayerNorm, 1.4 for GELU and tanh, 3.2 for ``pow``, 4.9 for OPT's clamp.

FLOP and bytes of every row are :func:`powerfit.kernels.counts.operator_flops` and
:func:`powerfit.kernels.counts.operator_bytes` (memory-bound operators: a convention, PyTorch's
counter counts none: per element 1 for the arithmetic ones, 5 for softmax, 8 for a
normalisation and GELU, 4 for tanh); ``bytes`` counts every tensor read and written
once.

Precision: ``fp32`` (CUDA cores), ``tf32`` (products on tensor cores, tensors in
FP32), ``fp16``/``bf16`` (everything in half precision), ``amp-fp16``/``amp-bf16``
(automatic mixed precision: products and element-wise operators in half precision,
softmax, normalisations, the loss and the optimizer in FP32).

The forward operators and the parameters they own are the model's
(:mod:`powerfit.architectures.model`); this module adds their gradients, the optimizer
and recomputation. The time of a graph is :mod:`powerfit.steps.latency`'s, its energy
and a whole run's :mod:`powerfit.training`'s.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from powerfit.architectures.model import PRECISIONS, ModelConfig, _Builder, _Row
from powerfit.kernels.counts import operator_bytes, operator_flops

__all__ = ["GRAPH_COLUMNS", "training_step_graph"]

#: Columns of :func:`training_step_graph`'s frame.
GRAPH_COLUMNS = (
    "name",
    "phase",
    "op",
    "precision",
    "B",
    "M",
    "N",
    "K",
    "H",
    "flop",
    "bytes",
    "count",
    "params",
)

MATMUL_OPS = frozenset({"linear", "bmm"})

_BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2}


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def training_step_graph(
    config: ModelConfig,
    batch_size: int,
    seq_len: int,
    precision: str = "fp32",
    optimizer: str = "adamw",
    checkpointing: bool = False,
    *,
    loss: bool = True,
    decoder_seq_len: int | None = None,
) -> pd.DataFrame:
    """The operators of one training step, one row per operator of one layer.

    Parameters
    ----------
    config : ModelConfig
        The model (see :func:`powerfit.architectures.hf.from_hf_config`).
    batch_size : int
        Sequences per step [-].
    seq_len : int
        Tokens per sequence [-] (the encoder's for an encoder-decoder).
    precision : str, default "fp32"
        One of :data:`PRECISIONS` (see the module notes).
    optimizer : {"adamw", "sgd", "none"}, default "adamw"
        The parameter update after the backward pass ("none": forward and backward
        only, as NeuSight's measured steps).
    checkpointing : bool, default False
        Activation checkpointing of every layer: the layers' forward runs again
        during the backward pass (rows of phase ``recompute``).
    loss : bool, default True
        Include the cross-entropy loss (NeuSight's traced steps end at the logits).
    decoder_seq_len : int, optional
        Decoder tokens per sequence of an encoder-decoder [-] (default ``seq_len``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`GRAPH_COLUMNS`: ``name``, ``phase`` (forward, backward,
        recompute, optimizer), ``op`` (NeuSight's operator names), ``precision``,
        ``B, M, N, K`` (products; 0 elsewhere), ``H`` (memory-bound operators act on a
        B×H tensor; 0 for products), ``flop`` and ``bytes`` of **one** run of the
        operator [FLOP, B], ``count`` (runs per step) and ``params`` (parameters the
        forward operator owns, per run; 0 elsewhere).

    Examples
    --------
    >>> from powerfit.architectures.hf import from_hf_config
    >>> cfg = from_hf_config({"model_type": "gpt2", "n_layer": 2, "n_embd": 64,
    ...                       "n_head": 4, "vocab_size": 100, "n_positions": 32})
    >>> g = training_step_graph(cfg, 2, 16)
    >>> sorted(g.phase.unique())
    ['backward', 'forward', 'optimizer']
    >>> int((g.flop * g["count"])[g.op.isin(["linear", "bmm"])].sum())
    20889600
    """
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
    batch = _int(batch_size, "batch_size")
    t = _int(seq_len, "seq_len")
    t_dec = t if decoder_seq_len is None else _int(decoder_seq_len, "decoder_seq_len")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if optimizer not in ("adamw", "sgd", "none"):
        raise ValueError(f"optimizer must be adamw, sgd or none, got {optimizer!r}")
    if config.max_positions and config.positional == "learned" and t > config.max_positions:
        raise ValueError(
            f"seq_len {t} exceeds the model's {config.max_positions} learned positions"
        )
    b = _Builder(config, precision)
    c = config
    if c.is_encoder_decoder:
        b.embeddings("encoder.embed", batch, t)
        b.stack("encoder", batch, t, c.n_layers, causal=False)
        b.norm("encoder.final_norm", batch * t, 1, block=False)
        b.dropout("encoder.final_dropout", batch * t, c.d_model, c.hidden_dropout, 1, block=False)
        b.embeddings("decoder.embed", batch, t_dec, tokens_table=False)
        b.stack("decoder", batch, t_dec, c.n_decoder_layers, causal=True, t_enc=t)
        b.norm("decoder.final_norm", batch * t_dec, 1, block=False)
        b.dropout(
            "decoder.final_dropout", batch * t_dec, c.d_model, c.hidden_dropout, 1, block=False
        )
        b.head(batch, t_dec, loss)
    else:
        b.embeddings("embed", batch, t)
        b.stack("decoder" if c.causal else "encoder", batch, t, c.n_layers, causal=c.causal)
        if c.pre_norm:
            b.norm("final_norm", batch * t, 1, block=False)
        b.head(batch, t, loss)
    return _frame(b, optimizer, checkpointing)


def _flop_bytes(op: str, B: int, M: int, N: int, K: int, H: int, dtype: str, reads=None):
    """FLOP and bytes of one call [FLOP, B], as :mod:`powerfit.paper.flops` counts them.

    ``reads``: the B×H tensors the call reads when it reads more (or fewer) than its
    operator does (e.g. AdamW's ``addcdiv`` as a ``div`` of three tensors).
    """
    size = _BYTES[dtype]
    if op in MATMUL_OPS:
        return float(operator_flops(op, B, M, N, K)), float(
            operator_bytes(op, B, M, N, K, bytes_per_element=size)
        )
    if reads is None:
        moved = float(operator_bytes(op, B, H=H, bytes_per_element=size))
    else:  # ``reads`` tensors read, one written
        moved = size * float(B) * H * (reads + 1)
    return float(operator_flops(op, B, H=H)), moved


def _backward(row: _Row, builder: _Builder) -> list[tuple[str, str, int, int, int, int, int, int]]:
    """(suffix, op, B, M, N, K, H, reads) of the gradient operators of a forward row."""
    if row.op == "linear":
        out = [
            ("grad_input", "linear", 1, row.M, row.K, row.N, 0, None),
            ("grad_weight", "linear", 1, row.K, row.N, row.M, 0, None),
        ]
        if isinstance(row.grad, tuple) and row.grad[1]:
            out.append(("grad_bias", "addu", row.M, 0, 0, 0, row.N, None))
        return out
    if row.op == "bmm":
        return [
            ("grad_a", "bmm", row.B, row.M, row.K, row.N, 0, None),
            ("grad_b", "bmm", row.B, row.K, row.N, row.M, 0, None),
        ]
    if row.grad is not None:
        return [(f"grad{i}", op, bb, 0, 0, 0, h, r) for i, (op, bb, h, r) in enumerate(row.grad)]
    default = {
        "ln": [("grad", "ln", 2), ("grad_affine", "addu", None)],
        "softmax": [
            ("grad", "softmax", 2),
            ("grad_mul", "mul", None),
            ("grad_scale", "mulu", None),
        ],
        "mulu": [("grad", "mulu", None)],
        "divu": [("grad", "divu", None)],
        "powu": [("grad", "powu", None), ("grad_mul", "mul", None), ("grad_scale", "mulu", None)],
        "addu": [],
        "add": [],
        "mul": [("grad_a", "mul", None), ("grad_b", "mul", None)],
        "tanh": [("grad", "mul", None)],
        "gelu": [("grad", "mul", None)],
        "relu": [("grad", "mul", None)],
    }[row.op]
    return [(s, op, row.B, 0, 0, 0, row.H, r) for s, op, r in default]


_ADAMW = ("mulu", "add", "mulu", "mul", "powu", "divu", "addu", "div")


def _optimizer_rows(add, n_params: int, width: int, optimizer: str, opt: str, elt: str) -> None:
    """The optimizer's passes over ``n_params`` parameters as rows of ``width``."""
    if optimizer == "none" or not n_params:
        return
    rows = math.ceil(n_params / width)
    passes = _ADAMW if optimizer == "adamw" else ("add",)
    for i, op in enumerate(passes):
        reads = 3 if op == "div" else None
        add(
            f"optimizer.{optimizer}.{i}.{op}",
            "optimizer",
            op,
            rows,
            0,
            0,
            0,
            width,
            1,
            opt,
            0,
            reads,
        )
    if opt != elt:  # mixed precision: copy the FP32 master weights to half
        add("optimizer.cast", "optimizer", "addu", rows, 0, 0, 0, width, 1, elt)


def _frame(b: _Builder, optimizer: str, checkpointing: bool) -> pd.DataFrame:
    records = []

    def add(name, phase, op, B, M, N, K, H, count, dtype, params=0, reads=None):
        flop, nbytes = _flop_bytes(op, B, M, N, K, H, dtype, reads)
        records.append((name, phase, op, dtype, B, M, N, K, H, flop, nbytes, count, params))

    for r in b.rows:
        add(r.name, "forward", r.op, r.B, r.M, r.N, r.K, r.H, r.count, r.dtype, r.params, r.reads)
    if checkpointing:
        for r in b.rows:
            if r.recompute:
                add(
                    r.name,
                    "recompute",
                    r.op,
                    r.B,
                    r.M,
                    r.N,
                    r.K,
                    r.H,
                    r.count,
                    r.dtype,
                    0,
                    r.reads,
                )
    for r in reversed(b.rows):
        for suffix, op, B, M, N, K, H, reads in _backward(r, b):
            dtype = r.dtype if op in MATMUL_OPS or r.op in ("ln", "softmax") else b.elt_dtype
            add(f"{r.name}.{suffix}", "backward", op, B, M, N, K, H, r.count, dtype, 0, reads)
    n_params = sum(r.params * r.count for r in b.rows)
    _optimizer_rows(add, n_params, b.c.d_model, optimizer, b.opt, b.elt_dtype)
    frame = pd.DataFrame.from_records(records, columns=list(GRAPH_COLUMNS))
    for col in ("B", "M", "N", "K", "H", "count", "params"):
        frame[col] = frame[col].astype("int64")
    return frame


#: ``checkpointing`` values: what the backward pass recomputes.
CHECKPOINTING = ("none", "full", "selective")


def checkpointing_mode(value: bool | str | None) -> str:
    """``none``, ``full`` or ``selective`` from a flag or a name (True means full)."""
    if value is None or value is False:
        return "none"
    if value is True:
        return "full"
    if value not in CHECKPOINTING:
        raise ValueError(f"checkpointing must be one of {', '.join(CHECKPOINTING)}, got {value!r}")
    return str(value)


def traced_step_graph(
    trace: Any,
    batch_size: int,
    precision: str = "fp32",
    optimizer: str = "adamw",
    checkpointing: bool | str = "none",
    attention_kernel: str = "fa2",
    loss_kernel: str = "torch",
) -> pd.DataFrame:
    """The step graph of a traced step (:class:`powerfit.architectures.trace.TracedStep`).

    The same frame as :func:`training_step_graph` (columns :data:`GRAPH_COLUMNS`)
    plus :data:`powerfit.kernels.attention.ATTENTION_COLUMNS`, for any batch and
    precision: the trace holds every operator's dimensions at batch 2 and 3, each
    fixed or proportional to the batch. Fused attentions are rows ``attention`` and
    ``attention_bwd`` (B = batch·heads, M, N the query and key lengths, K the head
    width), counted by :func:`powerfit.kernels.attention.fused_attention_flops_bytes`
    and timed by the fused-attention laws (:mod:`powerfit.kernels.attention`).

    Parameters
    ----------
    trace : TracedStep
        From :func:`powerfit.architectures.cache.cached_trace`.
    batch_size : int
        Sequences per step [-].
    precision : str, default "fp32"
        One of :data:`PRECISIONS`: products take its matrix precision, normalisations
        and softmax its reduction precision, the rest its element-wise precision.
    optimizer : {"adamw", "sgd", "none"}
        The parameter update (over the model's parameters, as :func:`training_step_graph`).
    checkpointing : {"none", "full", "selective"} or bool
        ``full``: every layer's forward runs again in the backward; ``selective``: only
        the attention cores (scores, softmax, context; or the fused attention), as
        Megatron and torchtitan do.
    attention_kernel : str, default "fa2"
        The kernel of the fused attentions (one of
        :data:`powerfit.kernels.attention_kernels.ATTENTION_KERNELS`): column
        ``attention_kernel`` of the attention rows ("" on the others), which picks the
        law that times them.
    loss_kernel : {"torch", "fused"}, default "torch"
        The cross-entropy's kernels
        (:data:`powerfit.kernels.loss_kernels.LOSS_KERNELS`,
        :func:`powerfit.kernels.loss_kernels.fuse_loss_nodes`).
        ``frame.attrs["loss_fused"]`` says whether a fused loss replaced the traced one.
    """
    from powerfit.kernels.attention import ATTENTION_COLUMNS, fused_attention_flops_bytes
    from powerfit.kernels.attention_kernels import check_attention_kernel
    from powerfit.kernels.loss_kernels import check_loss_kernel, fuse_loss_nodes

    check_attention_kernel(attention_kernel)

    batch = _int(batch_size, "batch_size")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if optimizer not in ("adamw", "sgd", "none"):
        raise ValueError(f"optimizer must be adamw, sgd or none, got {optimizer!r}")
    mode = checkpointing_mode(checkpointing)
    check_loss_kernel(loss_kernel)
    mm, elt, red, opt = PRECISIONS[precision]
    dtype_of = {"mm": mm, "elt": elt, "red": red}
    nodes = list(trace.nodes)
    fused_loss = False
    if loss_kernel == "fused":
        nodes, fused_loss = fuse_loss_nodes(nodes, trace.model_class)
    if mode != "none":
        keep = ("full", "attention") if mode == "full" else ("attention",)
        nodes += [[n[0], "recompute", *n[2:]] for n in nodes if n[1] == "forward" and n[7] in keep]
    n = len(nodes)
    d2 = np.array([x[4] for x in nodes], dtype=np.int64).reshape(n, 8)
    d3 = np.array([x[5] for x in nodes], dtype=np.int64).reshape(n, 8)
    dims = d2 + (d3 - d2) * (batch - 2)
    op = np.array([x[2] for x in nodes], dtype=object)
    dtype = np.array([dtype_of[x[3]] for x in nodes], dtype=object)
    attn = np.isin(op, ["attention", "attention_bwd"])
    dtype[attn & (dtype == "tf32")] = "fp32"  # fused kernels do not use TF32
    size = np.array([_BYTES[d] for d in dtype], dtype=float)
    B, M, N, K, H = (dims[:, i] for i in range(5))
    flop = np.zeros(n)
    moved = np.zeros(n)
    mat = np.isin(op, list(MATMUL_OPS))
    flop[mat] = 2.0 * B[mat] * M[mat] * N[mat] * K[mat]
    moved[mat] = size[mat] * B[mat] * (M[mat] * K[mat] + K[mat] * N[mat] + M[mat] * N[mat])
    heads, kv_heads, causal = dims[:, 5], dims[:, 6], dims[:, 7]
    batch_col = np.where(attn, B // np.maximum(heads, 1), 0)
    if attn.any():
        f, b = fused_attention_flops_bytes(
            batch_col[attn],
            heads[attn],
            kv_heads[attn],
            M[attn],
            N[attn],
            K[attn],
            causal[attn],
            op[attn] == "attention_bwd",
            size[attn],
        )
        flop[attn], moved[attn] = f, b
    mem = ~(mat | attn)
    for name in set(op[mem]):  # one vectorised count per memory-bound operator
        rows = mem & (op == name)
        flop[rows] = operator_flops(name, B[rows], H=H[rows])
        moved[rows] = operator_bytes(name, B[rows], H=H[rows], bytes_per_element=size[rows])
    frame = pd.DataFrame(
        {
            "name": [x[0] for x in nodes],
            "phase": [x[1] for x in nodes],
            "op": op,
            "precision": dtype,
            "B": B,
            "M": M,
            "N": N,
            "K": K,
            "H": H,
            "flop": flop,
            "bytes": moved,
            "count": np.array([x[6] for x in nodes], dtype=float),
            "params": np.zeros(n, dtype=np.int64),
        }
    )
    extra = dict(
        zip(ATTENTION_COLUMNS, (batch_col, heads, kv_heads, M, N, K, causal), strict=True)
    )
    for col, values in extra.items():
        frame[col] = np.where(attn, values, 0).astype(np.int64)
    frame["attention_kernel"] = np.where(attn, attention_kernel, "")
    records: list[tuple] = []

    def add(name, phase, op, B, M, N, K, H, count, dtype, params=0, reads=None):
        f, b = _flop_bytes(op, B, M, N, K, H, dtype, reads)
        records.append((name, phase, op, dtype, B, M, N, K, H, f, b, count, params))

    _optimizer_rows(add, trace.n_parameters, trace.d_model, optimizer, opt, elt)
    if records:
        tail = pd.DataFrame.from_records(records, columns=list(GRAPH_COLUMNS))
        for col in ATTENTION_COLUMNS:
            tail[col] = 0
        tail["attention_kernel"] = ""
        frame = pd.concat([frame, tail], ignore_index=True)
    for col in ("B", "M", "N", "K", "H", "params"):
        frame[col] = frame[col].astype("int64")
    frame.attrs["loss_fused"] = fused_loss
    return frame
