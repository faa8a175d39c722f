"""The operator graph of one training step, its time, energy and a whole run's.

:func:`training_step_graph` lists every operator that one training step of a
:class:`~powerfit.hf.ModelConfig` runs, as eager PyTorch runs it on one GPU: the
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

FLOP and bytes of every row are :func:`powerfit.flops.operator_flops` and
:func:`powerfit.flops.operator_bytes` (memory-bound operators: a convention, PyTorch's
counter counts none: per element 1 for the arithmetic ones, 5 for softmax, 8 for a
normalisation and GELU, 4 for tanh); ``bytes`` counts every tensor read and written
once.

Precision: ``fp32`` (CUDA cores), ``tf32`` (products on tensor cores, tensors in
FP32), ``fp16``/``bf16`` (everything in half precision), ``amp-fp16``/``amp-bf16``
(automatic mixed precision: products and element-wise operators in half precision,
softmax, normalisations, the loss and the optimizer in FP32).

Time: :func:`step_time` sums each row's latency predicted by an operator model (the
per-(GPU, operator) laws of :mod:`powerfit.operators`), or by a roofline
(:func:`roofline_latency`) when none is given. Only FP32 laws are bundled: in other
precisions the memory-bound rows are timed by the FP32 laws on their own bytes and the
matrix products by the roofline at their precision's peak plus the FP32 law's fixed
cost per call (:func:`operator_latency`). Energy: :func:`step_energy` multiplies
it by a bounded power law of the step's utilisation, fitted where energy was measured
and transferred elsewhere (:mod:`powerfit.power`). A whole run: :func:`run_energy`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from powerfit.flops import operator_bytes, operator_flops
from powerfit.hf import ModelConfig
from powerfit.operators import OPERATOR_COLUMNS, load_operator_model
from powerfit.operators import _frame as _checked_frame

__all__ = [
    "GRAPH_COLUMNS",
    "PRECISIONS",
    "ROW_SOURCES",
    "STEP_COLUMNS",
    "Calibration",
    "StepEstimate",
    "StepTimeRegressor",
    "bundled_operator_model",
    "calibrate_on_measured_steps",
    "compare_products",
    "estimate_step",
    "fit_calibration",
    "neusight_step_graph",
    "neusight_training_steps",
    "operator_latency",
    "operator_latency_sources",
    "parameter_count",
    "roofline_latency",
    "run_energy",
    "step_energy",
    "step_time",
    "traced_products",
    "training_step_graph",
    "utilisation",
]

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

#: precision -> (matmul precision, element-wise dtype, normalisation/softmax dtype,
#: optimizer dtype).
PRECISIONS: dict[str, tuple[str, str, str, str]] = {
    "fp32": ("fp32", "fp32", "fp32", "fp32"),
    "tf32": ("tf32", "fp32", "fp32", "fp32"),
    "fp16": ("fp16", "fp16", "fp16", "fp16"),
    "bf16": ("bf16", "bf16", "bf16", "bf16"),
    "amp-fp16": ("fp16", "fp16", "fp32", "fp32"),
    "amp-bf16": ("bf16", "bf16", "fp32", "fp32"),
}

_BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2}

_ACT_OP = {"gelu": "gelu", "relu": "relu", "silu": "gelu"}
_GELU_NEW = ("mulu", "powu", "mulu", "add", "mulu", "tanh", "addu", "mul")


@dataclass
class _Row:
    name: str
    op: str
    B: int
    M: int
    N: int
    K: int
    H: int
    count: int
    dtype: str
    params: int = 0
    # backward rule: None (default of the op), or a list of (op, B, H, reads) rows
    grad: Any = None
    recompute: bool = False
    reads: int | None = None


class _Builder:
    def __init__(self, config: ModelConfig, precision: str) -> None:
        self.c = config
        self.mm, self.elt_dtype, self.red, self.opt = PRECISIONS[precision]
        self.rows: list[_Row] = []

    # -- primitives ------------------------------------------------------------------
    def linear(self, name, tokens, k, n, count, *, bias=None, block=True, weight=True):
        bias = self.c.bias if bias is None else bias
        params = (k * n + (n if bias else 0)) if weight else 0
        self.rows.append(
            _Row(name, "linear", 1, tokens, n, k, 0, count, self.mm, params, recompute=block)
        )
        if bias:
            self.rows[-1].grad = ("linear", bias)

    def bmm(self, name, b, m, n, k, count):
        self.rows.append(_Row(name, "bmm", b, m, n, k, 0, count, self.mm, recompute=True))

    def elt(
        self, name, op, b, h, count, *, dtype=None, grad=None, block=True, params=0, reads=None
    ):
        row = _Row(
            name,
            op,
            b,
            0,
            0,
            0,
            h,
            count,
            dtype or self.elt_dtype,
            params,
            grad,
            block,
            reads=reads,
        )
        self.rows.append(row)

    def norm(self, name, tokens, count, *, block=True):
        c = self.c
        params = c.d_model * (2 if c.norm == "layernorm" else 1)
        self.elt(name, "ln", tokens, c.d_model, count, dtype=self.red, block=block, params=params)

    def dropout(self, name, b, h, p, count, *, block=True):
        if p > 0:
            grad = [("mul", b, h, 2), ("mul", b, h, 2)]
            self.elt(name, "mul", b, h, count, grad=grad, block=block, reads=2)

    def activation(self, name, tokens, width, count):
        act = self.c.activation
        if act == "gelu_new":
            for i, op in enumerate(_GELU_NEW):
                self.elt(f"{name}.{i}.{op}", op, tokens, width, count)
        else:
            self.elt(name, _ACT_OP[act], tokens, width, count, grad=[("mul", tokens, width, 2)])

    # -- blocks ----------------------------------------------------------------------
    def attention(self, prefix, batch, t_q, t_kv, count, *, causal, cross=False, bias_add=False):
        c = self.c
        h, hkv, dk, d = c.n_heads, c.n_kv_heads, c.d_kv, c.d_model
        wq, wkv = batch * t_q, batch * t_kv
        if c.qkv_fused and not cross:
            self.linear(f"{prefix}.qkv_proj", wq, d, (h + 2 * hkv) * dk, count)
        else:
            self.linear(f"{prefix}.q_proj", wq, d, h * dk, count)
            self.linear(f"{prefix}.k_proj", wkv, d, hkv * dk, count)
            self.linear(f"{prefix}.v_proj", wkv, d, hkv * dk, count)
        if c.family == "opt":
            self.elt(f"{prefix}.q_scale", "mulu", wq, h * dk, count)
        if c.positional == "rotary" and not cross:
            for who, heads in (("q", h), ("k", hkv)):
                width = heads * c.rotary_dim
                self.elt(
                    f"{prefix}.rope_{who}.mul",
                    "mul",
                    wq,
                    width,
                    2 * count,
                    reads=2,
                    grad=[("mul", wq, width, 2)],
                )
                self.elt(f"{prefix}.rope_{who}.add", "add", wq, width, count, grad=[])
                self.elt(f"{prefix}.rope_{who}.rotate", "addu", wq, width, count, grad=[])
        if hkv < h:
            self.elt(f"{prefix}.repeat_kv", "addu", wkv, h * dk, 2 * count, grad=[])
        self.bmm(f"{prefix}.scores", batch * h, t_q, t_kv, dk, count)
        rows = batch * h * t_q
        if c.family in ("bert", "gpt2", "gpt_neox", "llama"):
            self.elt(f"{prefix}.scale", "divu", rows, t_kv, count)
        if causal or bias_add or c.family == "bert":
            # GPT-2 masks with torch.where (its gradient is a kernel); the others add
            # a mask or a bias, whose gradient passes through.
            grad = [("mulu", rows, t_kv, None)] if c.family == "gpt2" else []
            self.elt(f"{prefix}.mask", "add", rows, t_kv, count, grad=grad)
        if c.family == "opt":
            # torch.max(scores, finfo.min): its gradient compares, selects and reduces
            grad = [("mul", rows, t_kv, 2)] * 3 + [("mulu", rows, t_kv, None)]
            self.elt(f"{prefix}.mask_clamp", "add", rows, t_kv, count, grad=grad)
        self.elt(f"{prefix}.softmax", "softmax", rows, t_kv, count, dtype=self.red)
        self.dropout(f"{prefix}.attn_dropout", rows, t_kv, c.attention_dropout, count)
        self.bmm(f"{prefix}.context", batch * h, t_q, dk, t_kv, count)
        self.elt(f"{prefix}.merge_heads", "addu", wq, h * dk, count, grad=[])
        self.linear(f"{prefix}.o_proj", wq, h * dk, d, count)
        self.dropout(f"{prefix}.dropout", wq, d, c.hidden_dropout, count)
        self.elt(f"{prefix}.residual", "add", wq, d, count, grad=[("add", wq, d, 2)])

    def ffn(self, prefix, tokens, count, *, tokens_expert=None, n_experts=0):
        c = self.c
        d, f = c.d_model, c.d_ff
        if n_experts:
            self.linear(f"{prefix}.router", tokens, d, n_experts, count, bias=False)
            self.elt(
                f"{prefix}.router_softmax", "softmax", tokens, n_experts, count, dtype=self.red
            )
            self.elt(f"{prefix}.dispatch", "addu", tokens, d, 2 * count, grad=[])
            t, n = tokens_expert, count * n_experts
        else:
            t, n = tokens, count
        if c.gated_ffn:
            self.linear(f"{prefix}.gate_proj", t, d, f, n)
            self.linear(f"{prefix}.up_proj", t, d, f, n)
            self.activation(f"{prefix}.act", t, f, n)
            self.elt(f"{prefix}.gate_mul", "mul", t, f, n, grad=[("mul", t, f, 2)] * 2)
        else:
            self.linear(f"{prefix}.fc1", t, d, f, n)
            self.activation(f"{prefix}.act", t, f, n)
        if c.family == "t5":
            self.dropout(f"{prefix}.act_dropout", t, f, c.hidden_dropout, n)
        self.linear(f"{prefix}.fc2", t, f, d, n)
        if n_experts:
            self.elt(
                f"{prefix}.router_scale", "mul", tokens, d, count, grad=[("mul", tokens, d, 2)]
            )
        self.dropout(f"{prefix}.dropout", tokens, d, c.hidden_dropout, count)
        self.elt(f"{prefix}.residual", "add", tokens, d, count, grad=[("add", tokens, d, 2)])

    def layer(self, prefix, batch, t, count, *, causal, t_enc=0, sparse=False):
        c = self.c
        w = batch * t
        if c.pre_norm:
            self.norm(f"{prefix}.attn_norm", w, count)
        self.attention(
            f"{prefix}.self_attn",
            batch,
            t,
            t,
            count,
            causal=causal,
            bias_add=c.positional == "relative",
        )
        if not c.pre_norm:
            self.norm(f"{prefix}.attn_norm", w, count)
        if t_enc:
            self.norm(f"{prefix}.cross_norm", w, count)
            self.attention(
                f"{prefix}.cross_attn",
                batch,
                t,
                t_enc,
                count,
                causal=False,
                cross=True,
                # T5 adds a (zero) position bias to the cross-attention scores too
                bias_add=c.positional == "relative",
            )
        if c.pre_norm:
            self.norm(f"{prefix}.ffn_norm", w, count)
        if sparse:
            per_seq = math.ceil(t * c.experts_per_token / c.n_experts)
            if c.expert_capacity:
                per_seq = min(per_seq, c.expert_capacity)
            self.ffn(
                f"{prefix}.moe", w, count, tokens_expert=batch * per_seq, n_experts=c.n_experts
            )
        else:
            self.ffn(f"{prefix}.ffn", w, count)
        if not c.pre_norm:
            self.norm(f"{prefix}.ffn_norm", w, count)

    def stack(self, prefix, batch, t, n_layers, *, causal, t_enc=0):
        c = self.c
        if c.n_experts and c.sparse_step:
            # Hugging Face's Switch: layer i is sparse when i % step == 1 (step 1: all).
            n_sparse = sum(
                1 for i in range(n_layers) if c.sparse_step == 1 or i % c.sparse_step == 1
            )
        else:
            n_sparse = 0
        if n_layers - n_sparse:
            self.layer(
                f"{prefix}.layer", batch, t, n_layers - n_sparse, causal=causal, t_enc=t_enc
            )
        if n_sparse:
            self.layer(
                f"{prefix}.sparse_layer",
                batch,
                t,
                n_sparse,
                causal=causal,
                t_enc=t_enc,
                sparse=True,
            )

    def embeddings(self, prefix, batch, t, *, tokens_table=True):
        c = self.c
        w = batch * t
        e = c.embed_proj_dim or c.d_model
        if tokens_table:
            self.elt(
                f"{prefix}.tokens",
                "addu",
                w,
                e,
                1,
                block=False,
                params=c.vocab_size * e,
                grad=[("addu", c.vocab_size, e, 0), ("add", w, e, 1)],
            )
        else:  # shared table (T5's decoder): lookup and gradient, no new parameters
            self.elt(f"{prefix}.tokens", "addu", w, e, 1, block=False, grad=[("add", w, e, 1)])
        if e != c.d_model:
            self.linear(f"{prefix}.project_in", w, e, c.d_model, 1, bias=False, block=False)
        d = c.d_model
        if c.positional == "learned":
            n_pos = c.max_positions or t
            offset = 2 if c.family == "opt" else 0
            self.elt(
                f"{prefix}.positions",
                "addu",
                t,
                d,
                1,
                block=False,
                params=(n_pos + offset) * d,
                grad=[("addu", n_pos + offset, d, 0)],
            )
            self.elt(f"{prefix}.add_positions", "add", w, d, 1, block=False, grad=[])
        if c.type_vocab_size:
            self.elt(
                f"{prefix}.token_types",
                "addu",
                w,
                d,
                1,
                block=False,
                params=c.type_vocab_size * d,
                grad=[("add", w, d, 1)],
            )
            self.elt(f"{prefix}.add_token_types", "add", w, d, 1, block=False, grad=[])
        if c.family == "bert":
            self.norm(f"{prefix}.norm", w, 1, block=False)
        if c.family != "llama":
            self.dropout(f"{prefix}.dropout", w, d, c.hidden_dropout, 1, block=False)
        if c.positional == "relative":
            # T5: one bias table lookup per stack, (1, heads, T, T), reused by every layer.
            self.elt(
                f"{prefix}.position_bias",
                "addu",
                c.n_heads * t,
                t,
                1,
                block=False,
                params=32 * c.n_heads,
                grad=[("add", c.n_heads * t, t, 1)],
            )

    def head(self, batch, t, loss):
        c = self.c
        w = batch * t
        d = c.d_model
        if c.pooler:
            self.linear("head.pooler", batch, d, d, 1, block=False)
            self.elt("head.pooler_act", "tanh", batch, d, 1, block=False)
            self.linear("head.next_sentence", batch, d, 2, 1, block=False)
        if c.family == "bert":
            self.linear("head.transform", w, d, d, 1, block=False)
            self.elt("head.act", "gelu", w, d, 1, grad=[("mul", w, d, 2)], block=False)
            self.norm("head.norm", w, 1, block=False)
        e = c.embed_proj_dim or d
        if e != d:
            self.linear("head.project_out", w, d, e, 1, bias=False, block=False)
        if c.family == "t5" and c.tie_word_embeddings:
            self.elt("head.rescale", "mulu", w, d, 1, block=False)
        # The LM head's weight is the embedding's when tied (its gradient still costs
        # a product); BERT's decoder has its own bias.
        self.linear(
            "head.lm_head",
            w,
            e,
            c.vocab_size,
            1,
            bias=c.family == "bert",
            block=False,
            weight=not c.tie_word_embeddings,
        )
        if c.family == "bert" and c.tie_word_embeddings:
            self.rows[-1].params = c.vocab_size
        if loss:
            self.elt(
                "loss.log_softmax",
                "softmax",
                w,
                c.vocab_size,
                1,
                dtype=self.red,
                block=False,
                grad=[("softmax", w, c.vocab_size, 2)],
            )


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
        The model (see :func:`powerfit.hf.from_hf_config`).
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
    >>> from powerfit.hf import from_hf_config
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
    """FLOP and bytes of one call [FLOP, B], as :mod:`powerfit.flops` counts them.

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
    if optimizer != "none" and n_params:
        width = b.c.d_model
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
                b.opt,
                0,
                reads,
            )
        if b.opt != b.elt_dtype:  # mixed precision: copy the FP32 master weights to half
            add("optimizer.cast", "optimizer", "addu", rows, 0, 0, 0, width, 1, b.elt_dtype)
    frame = pd.DataFrame.from_records(records, columns=list(GRAPH_COLUMNS))
    for col in ("B", "M", "N", "K", "H", "count", "params"):
        frame[col] = frame[col].astype("int64")
    return frame


def parameter_count(config: ModelConfig) -> int:
    """Trainable parameters of a model [-], as the graph's forward operators own them.

    Examples
    --------
    >>> from powerfit.hf import from_hf_config
    >>> cfg = from_hf_config({"model_type": "gpt2", "n_layer": 12, "n_embd": 768,
    ...                       "n_head": 12, "vocab_size": 50257})
    >>> parameter_count(cfg)  # GPT-2 small, as Hugging Face counts it
    124439808
    """
    b = _Builder(config, "fp32")
    if config.is_encoder_decoder:
        b.embeddings("encoder.embed", 1, 1)
        b.stack("encoder", 1, 1, config.n_layers, causal=False)
        b.norm("encoder.final_norm", 1, 1)
        b.embeddings("decoder.embed", 1, 1, tokens_table=False)
        b.stack("decoder", 1, 1, config.n_decoder_layers, causal=True, t_enc=1)
        b.norm("decoder.final_norm", 1, 1)
    else:
        b.embeddings("embed", 1, 1)
        b.stack("x", 1, 1, config.n_layers, causal=config.causal)
        if config.pre_norm:
            b.norm("final_norm", 1, 1)
    b.head(1, 1, loss=False)
    return int(sum(r.params * r.count for r in b.rows))


# --------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------


def _gpu(name: str):
    from powerfit.hardware import get_gpu

    return get_gpu(name)


def _row_peaks(graph: pd.DataFrame, spec: Any) -> np.ndarray:
    """Peak [FLOP/s] of each row: its precision's for products, FP32's elsewhere."""
    fp32 = spec.peak_flops["fp32"]
    peak = graph.precision.map(lambda p: spec.peak_flops.get(p, fp32)).to_numpy(float)
    return np.where(graph.op.isin(list(MATMUL_OPS)).to_numpy(), peak, fp32)


def roofline_latency(graph: pd.DataFrame, gpu: str) -> np.ndarray:
    """Roofline latency of each row of a graph [s]: max(FLOP / peak, bytes / bandwidth).

    Peak is the catalogue's dense peak at the row's precision
    (:func:`powerfit.hardware.peak_flops`; FP32 CUDA cores for memory-bound rows),
    bandwidth the catalogue's. A lower bound: no launch overhead, no
    efficiency loss.
    """
    spec = _gpu(gpu)
    bw = spec.memory_bandwidth
    if not bw:
        raise ValueError(f"no memory bandwidth known for {spec.name}")
    peak = _row_peaks(graph, spec)
    return np.maximum(graph.flop.to_numpy() / peak, graph["bytes"].to_numpy() / bw)


def _operator_frame(graph: pd.DataFrame, gpu: str) -> pd.DataFrame:
    X = graph.assign(gpu=gpu)
    return X[list(OPERATOR_COLUMNS)]


_BUNDLED: dict[str, Any] = {}


def bundled_operator_model(precision: str) -> Any:
    """The bundled operator model of a precision, or None (no bundle of that precision).

    Loaded once per process (:func:`powerfit.operators.load_operator_model`).
    """
    if precision not in _BUNDLED:
        try:
            _BUNDLED[precision] = load_operator_model(precision=precision)
        except ValueError:
            _BUNDLED[precision] = None
    return _BUNDLED[precision]


def _as_used(model: Any, specs_only: bool) -> Any:
    """A copy of an operator model reading (M×K)·(K×N) products, specs-only if asked.

    The graph's products are (M×K)·(K×N) (``matmul_layout='mkn'`` of
    :class:`powerfit.operators.OperatorTimeModel`); NeuSight's own files, which the
    laws were fitted on, write them (M×N)·(N×K). Both settings are read at predict
    time only, so a fitted model is copied, not refitted.
    """
    import copy

    twin = copy.copy(model)
    if hasattr(twin, "matmul_layout"):
        twin.matmul_layout = "mkn"
    if specs_only:
        if not hasattr(twin, "specs_only"):
            raise ValueError("this operator model has no specs_only mode")
        twin.specs_only = True
    return twin


def _model_for(precision: str, operator_model: Any) -> Any:
    """The operator model that times rows of ``precision`` (None: no laws of it)."""
    model = operator_model
    if model is None or getattr(model, "precision", precision) != precision:
        model = bundled_operator_model(precision)
    return model


#: Where a row's latency comes from (:func:`operator_latency_sources`).
ROW_SOURCES = ("laws", "fp32 bandwidth laws", "roofline")


def operator_latency_sources(
    graph: pd.DataFrame, gpu: str, operator_model: Any = None, specs_only: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Latency of one run of each row [s], where each comes from, and why.

    See :func:`operator_latency` for the parameters and the rules.

    Returns
    -------
    latency : numpy.ndarray
        Latency [s] of each row.
    source : numpy.ndarray of str
        Per row, one of :data:`ROW_SOURCES`: ``laws`` (the laws of its precision),
        ``fp32 bandwidth laws`` (a memory-bound row of a precision without laws,
        timed by the FP32 laws on its own bytes) or ``roofline``.
    notes : list of str
        One line per precision without laws, saying which rows fell back to what.
    """
    X = _operator_frame(graph, gpu).reset_index(drop=True)
    out = np.full(len(X), np.nan)
    source = np.full(len(X), "laws", dtype=object)
    notes: list[str] = []
    precisions = X["precision"].astype(str).to_numpy()
    products = X["op"].isin(list(MATMUL_OPS)).to_numpy()
    for precision in sorted(set(precisions)):
        mask = precisions == precision
        model = _model_for(precision, operator_model)
        if model is not None:
            out[mask] = np.asarray(_as_used(model, specs_only).predict(X.loc[mask]), dtype=float)
            continue
        fp32 = _model_for("fp32", operator_model)
        fp32 = None if fp32 is None else _as_used(fp32, specs_only)
        parts = []
        mm = np.flatnonzero(mask & products)
        if mm.size:
            rows = graph.iloc[mm]
            out[mm] = roofline_latency(rows, gpu)
            source[mm] = "roofline"
            spec = _gpu(gpu)
            peak = spec.peak_flops.get(precision)
            at = (
                f"the {precision} peak ({peak / 1e12:.4g} TFLOP/s)"
                if peak
                else f"the fp32 peak (no {precision} peak of {spec.name} in the catalogue)"
            )
            launch = _fixed_costs(fp32, rows, gpu)
            if launch is not None:
                out[mm] += launch
                at += " plus the fp32 laws' fixed cost per call (t0)"
            parts.append(f"{precision} matrix products ({mm.size} rows): roofline at {at}")
        mem = np.flatnonzero(mask & ~products)
        if mem.size:
            if fp32 is not None and hasattr(fp32, "predict_memory_bound"):
                out[mem] = fp32.predict_memory_bound(X.loc[mem])
                source[mem] = "fp32 bandwidth laws"
                parts.append(
                    f"{precision} memory-bound operators ({mem.size} rows): fp32 bandwidth "
                    f"laws on their own {precision} bytes"
                )
            else:
                out[mem] = roofline_latency(graph.iloc[mem], gpu)
                source[mem] = "roofline"
                parts.append(
                    f"{precision} memory-bound operators ({mem.size} rows): roofline "
                    "(no fp32 laws either)"
                )
        notes.append(f"no {precision} operator laws: " + "; ".join(parts))
    return out, source, notes


def _fixed_costs(fp32: Any, rows: pd.DataFrame, gpu: str) -> np.ndarray | None:
    """The FP32 matmul laws' fixed cost t0 [s] per call of each product row, or None.

    ``t0`` is the additive fixed cost of one call in the law ``t = t0 + max(compute,
    memory)`` (:mod:`powerfit.operators`), as NeuSight timed isolated calls: host
    dispatch, kernel launch and synchronisation, which a half-precision or TF32
    product pays as an FP32 one does (it is the same term the FP32 rows of a step
    get). None when the model has no such laws (any other operator model).
    """
    if fp32 is None or not hasattr(fp32, "law"):
        return None
    t0 = {}
    for op in rows["op"].unique():
        law, _origin = fp32.law(gpu, str(op))
        if "t0" not in law:
            return None
        t0[op] = float(law["t0"])
    return rows["op"].map(t0).to_numpy(float)


def operator_latency(
    graph: pd.DataFrame, gpu: str, operator_model: Any = None, specs_only: bool = False
) -> np.ndarray:
    """Latency of one run of each row of a graph [s].

    Parameters
    ----------
    graph : pandas.DataFrame
        From :func:`training_step_graph`.
    gpu : str
        GPU name (NVML's, as the operator model knows it).
    operator_model : object, optional
        An operator model with ``predict(X) -> latency [s]`` over the columns
        :data:`OPERATOR_COLUMNS` (:class:`powerfit.operators.OperatorTimeModel`). A
        model with a ``precision`` attribute predicts the rows of that precision only;
        the others (and all rows when no model is given) use the bundled model of
        their precision (:func:`powerfit.operators.load_operator_model`).
    specs_only : bool, default False
        Predict as if this GPU had never been measured (the model's transfer from
        specs).

    Notes
    -----
    Rows of a precision without laws (only FP32 laws are bundled; TF32, FP16 and BF16
    rows have none) are timed, with a ``RuntimeWarning`` that names them:

    * memory-bound operators by the FP32 laws on their own bytes
      (:meth:`powerfit.operators.OperatorTimeModel.predict_memory_bound`): their
      latency is bytes over the bandwidth at an efficiency that depends on the bytes
      and the row length, not on the arithmetic (TF32 rows are the FP32 kernels and
      get exactly the FP32 latencies; FP16/BF16 rows move half the bytes);
    * matrix products by the roofline max(FLOP / peak, bytes / bandwidth) at their
      precision's (tensor-core) peak, plus the FP32 matmul law's fixed cost ``t0``
      of the same GPU and operator (the launch cost is the host's, shared by every
      precision; the efficiency below the peak is not: tensor-core kernels were not
      measured). A lower bound of their time, hence the wide interval of such
      estimates (:func:`powerfit.step_evaluation.half_width_for`).

    Without FP32 laws (an operator model of another kind, or none bundled), all such
    rows use the roofline.
    """
    out, _source, notes = operator_latency_sources(graph, gpu, operator_model, specs_only)
    for note in notes:
        warnings.warn(note, RuntimeWarning, stacklevel=2)
    return out


def step_time(
    graph: pd.DataFrame,
    gpu: str,
    operator_model: Any = None,
    specs_only: bool = False,
    *,
    calibration: Calibration | None = None,
    phases: Iterable[str] | None = None,
) -> float:
    """Time of one training step [s]: the sum of its operators' latencies.

    Parameters
    ----------
    graph : pandas.DataFrame
        From :func:`training_step_graph`.
    gpu : str
        GPU name.
    operator_model : object, optional
        See :func:`operator_latency`.
    specs_only : bool, default False
        See :func:`operator_latency`.
    calibration : Calibration, optional
        Per-GPU correction fitted on measured steps (:func:`fit_calibration`).
    phases : iterable of str, optional
        Only these phases (e.g. ``("forward", "backward")`` for NeuSight's steps).
    """
    g = graph if phases is None else graph[graph.phase.isin(list(phases))]
    lat = operator_latency(g, gpu, operator_model, specs_only)
    total = float(np.sum(lat * g["count"].to_numpy()))
    if calibration is not None:
        total = calibration.apply(total, n_ops=float(g["count"].sum()))
    return total


@dataclass(frozen=True)
class Calibration:
    """Per-GPU correction of a summed step time: ``t = scale · Σ t_op + n_ops · launch``.

    ``scale`` ∈ [0.8, 1.25] absorbs a systematic bias of the operator laws on whole
    graphs; ``launch`` ∈ [0, 20 µs] is the host overhead per operator launch that
    isolated operator benchmarks do not see. Both bounds are physical: an operator
    law off by more than 25 % should be refitted, not calibrated, and a kernel
    launch of eager PyTorch costs a few µs. (A negative launch term, the fixed cost
    of an isolated call hidden when a step's kernels are queued back to back, fits
    the V100's three steps at ≈ −19 µs but did not lower the A100's
    leave-one-step-out error, 7.5 % against 7.1 %; it is not used.)

    ``mape_before``/``mape_after`` [%] are in-sample; ``mape_loo`` [%] is the
    leave-one-step-out error of the calibrated sums. ``used`` is False when the
    calibration did not beat the uncalibrated sum out of sample: it is then the
    identity (scale 1, no launch term) and only reported.
    """

    gpu: str
    scale: float = 1.0
    launch_s: float = 0.0
    n_steps: int = 0
    mape_before: float = float("nan")
    mape_after: float = float("nan")
    mape_loo: float = float("nan")
    used: bool = True

    BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "scale": (0.8, 1.25),
        "launch_s": (0.0, 20e-6),
    }

    def apply(self, summed_s: float, n_ops: float) -> float:
        return self.scale * summed_s + self.launch_s * n_ops


#: Fewest measured steps with which :func:`fit_calibration` fits the launch term besides
#: the scale (two coefficients, at least two degrees of freedom left to check them).
MIN_STEPS_FOR_LAUNCH = 4


def fit_calibration(
    gpu: str, summed_s: np.ndarray, n_ops: np.ndarray, measured_s: np.ndarray
) -> Calibration:
    """Fit :class:`Calibration` on measured steps (least relative squares, bounded).

    Parameters
    ----------
    gpu : str
        GPU name.
    summed_s, n_ops, measured_s : array-like
        Per measured step: the summed operator latencies [s], the operator launches
        [-] and the measured step time [s]. With fewer than
        :data:`MIN_STEPS_FOR_LAUNCH` steps only the scale is fitted.
    """
    from scipy.optimize import lsq_linear

    s = np.asarray(summed_s, float)
    n = np.asarray(n_ops, float)
    y = np.asarray(measured_s, float)
    if s.size == 0:
        raise ValueError("no measured steps to calibrate on")
    lo = [Calibration.BOUNDS["scale"][0], Calibration.BOUNDS["launch_s"][0]]
    hi = [Calibration.BOUNDS["scale"][1], Calibration.BOUNDS["launch_s"][1]]
    if s.size < MIN_STEPS_FOR_LAUNCH:  # too few steps for two coefficients: the scale alone
        hi[1] = lo[1] + 1e-12
    A = np.column_stack([s / y, n / y])
    fit = lsq_linear(A, np.ones_like(y), bounds=(lo, hi))
    scale, launch = (float(np.clip(v, a, b)) for v, a, b in zip(fit.x, lo, hi, strict=True))
    before = float(np.mean(np.abs(s - y) / y) * 100)
    after = float(np.mean(np.abs(scale * s + launch * n - y) / y) * 100)
    return Calibration(gpu, scale, launch, int(s.size), before, after)


# --------------------------------------------------------------------------------------
# Energy and a whole run
# --------------------------------------------------------------------------------------


def utilisation(graph: pd.DataFrame, latency_s: np.ndarray, gpu: str) -> float:
    """Time-weighted compute utilisation of a step [-]: Σ FLOP / (peak · Σ time)."""
    spec = _gpu(gpu)
    t = np.asarray(latency_s, float) * graph["count"].to_numpy()
    if t.sum() <= 0:
        return 0.0
    peak = _row_peaks(graph, spec)
    achieved = graph.flop.to_numpy() * graph["count"].to_numpy() / peak
    return float(np.clip(achieved.sum() / t.sum(), 0.0, 1.0))


def step_energy(
    graph: pd.DataFrame,
    gpu: str,
    latency_s: np.ndarray,
    step_s: float,
    power_model: Any = None,
) -> tuple[float, float, float, float]:
    """Energy of one step [J] with its interval: (energy, low, high, power [W]).

    ``power_model``: a :class:`powerfit.power.PowerFit` (``power(u)``,
    ``interval(u)``), or None for the bundled law of the GPU
    (:func:`powerfit.power.power_model_for`: fitted where energy was measured,
    transferred elsewhere; :func:`powerfit.power.prior_power` when nothing is
    bundled). The interval here is the power's only (the step time taken as exact).
    """
    pm = _power_model(gpu) if power_model is None else power_model
    u = utilisation(graph, latency_s, gpu)
    p = float(pm.power(u))
    lo, hi = (float(v) for v in pm.interval(u))
    return step_s * p, step_s * lo, step_s * hi, p


def _power_model(gpu: str) -> Any:
    """The bundled power law of a GPU, else the unfitted prior."""
    from powerfit.power import power_model_for, prior_power

    law = power_model_for(gpu)
    if law is None:
        spec = _gpu(gpu)
        law = prior_power(spec.name, float(spec.power_limit_w))
    return law


def run_energy(
    energy_j: float,
    *,
    steps: int | None = None,
    tokens: int | None = None,
    tokens_per_step: int | None = None,
    grid_intensity: float | None = None,
    pue: float = 1.0,
) -> dict[str, float]:
    """Energy [kWh] and emissions [kg CO₂] of a whole run.

    ``run_energy_kwh = N · energy_j / 3.6e6`` with N the steps (``steps``, or
    ``ceil(tokens / tokens_per_step)``); ``co2_kg = kWh · G / 1000 · PUE`` with G the
    grid's carbon intensity [gCO₂/kWh].

    Examples
    --------
    >>> run_energy(360.0, steps=10_000, grid_intensity=400, pue=1.2)
    {'steps': 10000, 'run_energy_kwh': 1.0, 'co2_kg': 0.48}
    """
    if (steps is None) == (tokens is None):
        raise ValueError("give exactly one of steps and tokens")
    if tokens is not None:
        if not tokens_per_step or tokens_per_step <= 0:
            raise ValueError("tokens needs tokens_per_step (batch_size · seq_len)")
        if tokens <= 0:
            raise ValueError(f"tokens must be positive, got {tokens}")
        steps = math.ceil(tokens / tokens_per_step)
    if steps is None or steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    if pue < 1.0:
        raise ValueError(f"pue must be ≥ 1, got {pue}")
    kwh = steps * energy_j / 3.6e6
    out: dict[str, float] = {"steps": int(steps), "run_energy_kwh": kwh}
    if grid_intensity is not None:
        if grid_intensity < 0:
            raise ValueError(f"grid_intensity must be ≥ 0, got {grid_intensity}")
        out["co2_kg"] = kwh * grid_intensity / 1000.0 * pue
    return out


@dataclass
class StepEstimate:
    """Time and energy of one step, with the graph and its per-row latencies."""

    step_time_s: float
    energy_j: float
    energy_interval_j: tuple[float, float]
    step_time_interval_s: tuple[float, float]
    power_w: float
    utilisation: float
    graph: pd.DataFrame
    latency_s: np.ndarray
    source: str
    warnings: list[str] = field(default_factory=list)
    #: the power law used: ``fitted`` (on this GPU's measured energy), ``transferred``
    #: (fractions of TDP from other GPUs) or ``prior`` (unfitted)
    power_source: str = "prior"
    #: the step's utilisation is outside the ones the power law was fitted on
    power_outside: bool = True
    #: per row, where its latency comes from (:data:`ROW_SOURCES`)
    row_source: np.ndarray | None = None

    def roofline_share(self) -> float:
        """Share [-] of the step time timed by the roofline (rows without laws)."""
        if self.row_source is None:
            return 1.0 if self.source == "roofline" else 0.0
        t = self.latency_s * self.graph["count"].to_numpy()
        total = float(t.sum())
        return float(t[self.row_source == "roofline"].sum() / total) if total > 0 else 0.0

    def breakdown(self, by: str = "op") -> pd.DataFrame:
        """Time per ``op``, ``phase`` or ``name`` [s], largest first."""
        t = self.graph.assign(time_s=self.latency_s * self.graph["count"].to_numpy())
        out = t.groupby(by, sort=False)[["time_s"]].sum()
        out["share"] = out.time_s / out.time_s.sum()
        return out.sort_values("time_s", ascending=False)


def estimate_step(
    config: ModelConfig,
    gpu: str,
    batch_size: int,
    seq_len: int,
    *,
    precision: str = "fp32",
    optimizer: str = "adamw",
    checkpointing: bool = False,
    operator_model: Any = None,
    specs_only: bool = False,
    calibration: Calibration | None = None,
    power_model: Any = None,
    relative_error: float = 0.15,
    half_width: float | None = None,
) -> StepEstimate:
    """Time [s] and energy [J] of one training step of a model on a GPU.

    The step time's interval is ``[t·e^−q, t·e^q]`` with ``q = half_width`` (a log
    half-width, e.g. from :func:`powerfit.step_evaluation.step_time_intervals`), or
    ``[t·(1 − r), t·(1 + r)]`` with ``r = relative_error`` when ``half_width`` is
    None. The energy interval is the step-time interval times the power interval.
    ``power_model``: see :func:`step_energy` (default: the bundled law of the GPU).
    """
    graph = training_step_graph(config, batch_size, seq_len, precision, optimizer, checkpointing)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lat, row_source, notes = operator_latency_sources(graph, gpu, operator_model, specs_only)
    notes = notes + [str(w.message) for w in caught]
    source = "roofline" if (row_source == "roofline").any() else "operator model"
    total = float(np.sum(lat * graph["count"].to_numpy()))
    if calibration is not None:
        summed = total
        total = calibration.apply(summed, n_ops=float(graph["count"].sum()))
        # rows share the calibrated total in proportion to their latencies
        lat = lat * (total / summed if summed > 0 else calibration.scale)
    pm = _power_model(gpu) if power_model is None else power_model
    e, lo, hi, p = step_energy(graph, gpu, lat, total, pm)
    u = utilisation(graph, lat, gpu)
    if getattr(pm, "prior", False):
        power_source = "prior"
    else:
        power_source = "fitted" if pm.fitted else "transferred"
    power_outside = bool(pm.outside(u))
    if half_width is None:
        t_lo, t_hi = total * (1 - relative_error), total * (1 + relative_error)
    else:
        t_lo, t_hi = total * math.exp(-half_width), total * math.exp(half_width)
    p_lo, p_hi = (lo / total, hi / total) if total > 0 else (0.0, 0.0)
    return StepEstimate(
        step_time_s=total,
        energy_j=e,
        energy_interval_j=(t_lo * p_lo, t_hi * p_hi),
        step_time_interval_s=(t_lo, t_hi),
        power_w=p,
        utilisation=u,
        graph=graph,
        latency_s=lat,
        source=source,
        warnings=notes,
        power_source=power_source,
        power_outside=power_outside,
        row_source=row_source,
    )


# --------------------------------------------------------------------------------------
# NeuSight's traced graphs (a check of the graph above)
# --------------------------------------------------------------------------------------

_LAYER0 = re.compile(r"'[\w.]*\.(?:h|layer|layers|block)\.0'")
_MODULE_CLASS = re.compile(r"<class '([\w.]+)'>\)\]\)")


def traced_products(trace: pd.DataFrame | str | Any, num_layer: int) -> pd.DataFrame:
    """The matrix products of a NeuSight traced step, with their counts.

    NeuSight traces one layer of the stack (``...h.0``, ``...layer.0``, ``...layers.0``)
    besides the embeddings and the head, and measures the step with ``num_layer``
    layers; the products of layer 0 are counted ``num_layer`` times.

    Parameters
    ----------
    trace : pandas.DataFrame or path
        A ``labels/<GPU>/<step>.csv.gz`` file (torch.fx nodes with ``input_shapes``).
    num_layer : int
        Layers of the measured model (the ``.json`` beside the trace) [-].

    Returns
    -------
    pandas.DataFrame
        Columns ``name, op, B, M, N, K, count, fw_ms, bw_ms``: ``linear`` (``nn.Linear``
        modules and ``addmm``: B = 1, M = tokens, K = in, N = out) and ``bmm``
        (``matmul``/``bmm``: B = the product of the batch dimensions).
    """
    import ast

    frame = trace if isinstance(trace, pd.DataFrame) else pd.read_csv(trace)
    rows = []
    for node in frame.itertuples(index=False):
        target = str(node.target)
        meta = str(node.meta)
        shapes = ast.literal_eval(node.input_shapes) if isinstance(node.input_shapes, str) else []
        out = ast.literal_eval(node.output_shape) if isinstance(node.output_shape, str) else ()
        kind = None
        if node.op == "call_module":
            classes = _MODULE_CLASS.findall(meta)
            if classes and classes[-1].endswith("Linear"):
                x = shapes[0]
                kind = ("linear", 1, int(np.prod(x[:-1])), int(out[-1]), int(x[-1]))
        elif node.op == "call_function" and ("addmm" in target or "built-in method mm " in target):
            a, w = shapes[-2], shapes[-1]
            kind = ("linear", 1, a[0], w[1], a[1])
        elif node.op == "call_function" and re.search(r"method (?:matmul|bmm) ", target):
            a, w = shapes[0], shapes[1]
            kind = ("bmm", int(np.prod(a[:-2])), a[-2], w[-1], a[-1])
        if kind is None:
            continue
        count = num_layer if _LAYER0.search(meta) else 1
        rows.append((node.Name, *kind, count, node.fw_latency, node.bw_latency))
    return pd.DataFrame(
        rows, columns=["name", "op", "B", "M", "N", "K", "count", "fw_ms", "bw_ms"]
    )


def compare_products(graph: pd.DataFrame, traced: pd.DataFrame) -> pd.DataFrame:
    """Forward products of a graph beside a trace's, by shape (op, B, M, N, K).

    Returns
    -------
    pandas.DataFrame
        One row per shape: ``count_graph``, ``count_trace`` (0 where absent).
    """
    key = ["op", "B", "M", "N", "K"]
    fwd = graph[(graph.phase == "forward") & graph.op.isin(list(MATMUL_OPS))]
    a = fwd.groupby(key)["count"].sum().rename("count_graph")
    b = traced.groupby(key)["count"].sum().rename("count_trace")
    both = pd.concat([a, b], axis=1).fillna(0).astype("int64").reset_index()
    return both


# --------------------------------------------------------------------------------------
# NeuSight's measured training steps: graphs and the per-GPU calibration
# --------------------------------------------------------------------------------------


def neusight_training_steps(data_home: Any = None) -> pd.DataFrame:
    """NeuSight's measured training steps (FP32, forward + backward, no optimizer).

    Parameters
    ----------
    data_home : path, optional
        Data home (default: :func:`powerfit.datasets.get_data_home`); the steps are
        read from ``<data_home>/neusight2025/labels/<GPU>/<model>-train-<T>-<B>.json``.

    Returns
    -------
    pandas.DataFrame
        ``gpu, model, seq_len, batch_size, num_layer, measured_s, trace, config``
        (``trace``: the traced graph's path or None; ``config``: the model's
        ``config.json``). Empty when the data are absent.
    """
    import json

    from powerfit.datasets import get_data_home

    folder = get_data_home(data_home) / "neusight2025"
    rows = []
    for path in sorted(folder.glob("labels/*/*-train-*.json")):
        model, _, seq, batch = path.stem.rsplit("-", 3)
        label = json.loads(path.read_text())
        trace = path.with_name(path.stem + ".csv.gz")
        rows.append(
            {
                "gpu": path.parent.name.replace("_", " "),
                "model": model,
                "seq_len": int(seq),
                "batch_size": int(batch),
                "num_layer": int(label.get("num_layer") or 0),
                "measured_s": float(label["e2e_latency"]) * 1e-3,
                "trace": trace if trace.exists() else None,
                "config": folder / "models" / f"{model}.json",
            }
        )
    columns = [
        "gpu",
        "model",
        "seq_len",
        "batch_size",
        "num_layer",
        "measured_s",
        "trace",
        "config",
    ]
    return pd.DataFrame(rows, columns=columns)


def neusight_step_graph(step: Any) -> pd.DataFrame:
    """The graph of one of :func:`neusight_training_steps`' rows, as NeuSight ran it.

    FP32, no optimizer step, no loss (the traced steps end at the logits); BERT with
    its pooler and next-sentence head (NeuSight traced ``BertForPreTraining``).
    """
    from dataclasses import replace

    from powerfit.hf import from_hf_config

    cfg = from_hf_config(step.config)
    if cfg.family == "bert":
        cfg = replace(cfg, pooler=True)
    return training_step_graph(
        cfg, int(step.batch_size), int(step.seq_len), "fp32", optimizer="none", loss=False
    )


def calibrate_on_measured_steps(
    gpu: str,
    operator_model: Any = None,
    specs_only: bool = False,
    data_home: Any = None,
) -> Calibration | None:
    """The per-GPU :class:`Calibration` fitted on NeuSight's measured steps of a GPU.

    Returns None when that GPU has no measured training step (or the data are absent).
    The calibration is used only when its leave-one-step-out error beats the
    uncalibrated sum (``used``); otherwise it is the identity, reported as fitted.
    """
    from powerfit.hardware import get_gpu

    name = get_gpu(gpu).name
    steps = neusight_training_steps(data_home)
    steps = steps[steps.gpu == name]
    if steps.empty:
        return None
    summed, n_ops = [], []
    for step in steps.itertuples(index=False):
        graph = neusight_step_graph(step)
        lat = operator_latency(graph, name, operator_model, specs_only)
        summed.append(float(np.sum(lat * graph["count"].to_numpy())))
        n_ops.append(float(graph["count"].sum()))
    s, n, y = np.array(summed), np.array(n_ops), steps.measured_s.to_numpy()
    cal = fit_calibration(name, s, n, y)
    if len(y) < 3:  # too few steps to check it out of sample: report, do not use
        return replace(cal, scale=1.0, launch_s=0.0, used=False)
    loo = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        other = fit_calibration(name, s[keep], n[keep], y[keep])
        loo.append(abs(other.apply(s[i], n[i]) - y[i]) / y[i])
    mape_loo = float(np.mean(loo) * 100)
    if mape_loo >= cal.mape_before:
        return replace(cal, scale=1.0, launch_s=0.0, mape_loo=mape_loo, used=False)
    return replace(cal, mape_loo=mape_loo)


# --------------------------------------------------------------------------------------
# A scikit-learn estimator of step time, the GPU an input column
# --------------------------------------------------------------------------------------

#: Columns :class:`StepTimeRegressor` reads (``precision`` optional, default fp32).
STEP_COLUMNS = ("gpu", "config", "batch_size", "seq_len")


def _config_of(value: Any) -> ModelConfig:
    import json

    from powerfit.hf import from_hf_config

    if isinstance(value, ModelConfig):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        return from_hf_config(json.loads(value))
    return from_hf_config(value)


def _step_sums(X: pd.DataFrame, optimizer: str, loss: bool, specs_only: bool):
    summed, n_ops = [], []
    for row in X.itertuples(index=False):
        precision = getattr(row, "precision", "fp32") if "precision" in X else "fp32"
        graph = training_step_graph(
            _config_of(row.config),
            int(row.batch_size),
            int(row.seq_len),
            precision,
            optimizer=optimizer,
            loss=loss,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lat = operator_latency(graph, _gpu(row.gpu).name, None, specs_only)
        summed.append(float(np.sum(lat * graph["count"].to_numpy())))
        n_ops.append(float(graph["count"].sum()))
    return np.array(summed), np.array(n_ops)


def _step_frame(X: Any) -> pd.DataFrame:
    return _checked_frame(X, STEP_COLUMNS)


class StepTimeRegressor(RegressorMixin, BaseEstimator):
    """Time of a training step [s] from (GPU, Hugging Face config, batch, sequence).

    The sum of the graph's operator latencies (:func:`step_time`, bundled operator
    laws), corrected per GPU by a :class:`Calibration` fitted in :meth:`fit` on
    measured steps of that GPU (GPUs without measured steps are predicted
    uncalibrated). One fitted estimator serves every GPU: the GPU is a column.

    Parameters
    ----------
    specs_only : bool, default False
        Predict as if no GPU had been measured (operator laws transferred from specs;
        no calibration).
    calibrate : bool, default True
        Fit the per-GPU calibration in :meth:`fit` (``fit`` does nothing else).
    optimizer : {"adamw", "sgd", "none"}, default "none"
        The step's optimizer (NeuSight's measured steps have none).
    loss : bool, default False
        Include the loss (NeuSight's measured steps end at the logits).

    Attributes
    ----------
    calibrations_ : dict of str to (float, float)
        GPU -> (scale, launch [s]).

    Notes
    -----
    ``X`` columns: ``gpu`` (name), ``config`` (a ``config.json`` path, its JSON text,
    or a :class:`~powerfit.hf.ModelConfig`), ``batch_size``, ``seq_len`` and
    optionally ``precision``.
    """

    def __init__(
        self,
        specs_only: bool = False,
        calibrate: bool = True,
        optimizer: str = "none",
        loss: bool = False,
    ) -> None:
        self.specs_only = specs_only
        self.calibrate = calibrate
        self.optimizer = optimizer
        self.loss = loss

    def fit(self, X: Any, y: Any) -> StepTimeRegressor:
        """Fit the per-GPU calibration on measured step times ``y`` [s]."""
        X = _step_frame(X)
        y = np.asarray(y, dtype=float)
        if y.shape != (len(X),) or not np.all(np.isfinite(y) & (y > 0)):
            raise ValueError("y must be one positive, finite step time [s] per row of X")
        self.calibrations_: dict[str, tuple[float, float]] = {}
        if self.calibrate and not self.specs_only:
            s, n = _step_sums(X, self.optimizer, self.loss, self.specs_only)
            gpus = np.array([_gpu(g).name for g in X["gpu"]])
            for gpu in sorted(set(gpus)):
                m = gpus == gpu
                cal = fit_calibration(gpu, s[m], n[m], y[m])
                self.calibrations_[gpu] = (cal.scale, cal.launch_s)
        self.n_features_in_ = len(STEP_COLUMNS)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Step time [s] of each row of X."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "calibrations_")
        X = _step_frame(X)
        s, n = _step_sums(X, self.optimizer, self.loss, self.specs_only)
        out = s.copy()
        for i, g in enumerate(X["gpu"]):
            scale, launch = self.calibrations_.get(_gpu(g).name, (1.0, 0.0))
            out[i] = scale * s[i] + launch * n[i]
        return out
