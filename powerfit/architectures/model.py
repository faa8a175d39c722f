"""A model as its training cost sees it: :class:`ModelConfig` and the operators of its layers.

:class:`ModelConfig` holds the few numbers that set the cost of a training step (layers,
widths, heads, vocabulary, activation, normalisation, experts...); it is read from a
Hugging Face ``config.json`` by :func:`powerfit.architectures.hf.from_hf_config`.

The forward operators of its layers — every product and memory-bound operator of the
embeddings, attention, feed-forward network, normalisations and head, each with the
parameters it owns, its element type under a training precision (:data:`PRECISIONS`)
and the rule its gradient follows — are enumerated here, once: the parameter count
(:func:`parameter_count`, :attr:`ModelConfig.n_parameters`) sums their parameters and
the step graph (:func:`powerfit.steps.graph.training_step_graph`) adds their backward
pass, the optimizer and recomputation. Operator names and shapes are NeuSight's (see
:mod:`powerfit.steps.graph`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["PRECISIONS", "ModelConfig", "parameter_count"]


@dataclass(frozen=True)
class ModelConfig:
    """The cost-relevant description of a Transformer.

    Attributes
    ----------
    family : str
        One of ``bert``, ``gpt2``, ``opt``, ``gpt_neox``, ``llama``, ``t5`` (see
        :mod:`powerfit.architectures.hf`; Mistral is ``llama``, Switch is ``t5`` with
        experts).
    n_layers : int
        Layers of the stack (the encoder's for an encoder-decoder) [-].
    d_model : int
        Hidden width [-].
    n_heads : int
        Attention (query) heads [-].
    n_kv_heads : int
        Key/value heads (grouped-query attention; ``n_heads`` without it) [-].
    d_kv : int
        Width of one head [-] (``d_model // n_heads`` unless the config says).
    d_ff : int
        Feed-forward inner width [-].
    vocab_size : int
        Vocabulary [-].
    max_positions : int
        Longest sequence of the position table or the config (0 when unbounded) [-].
    activation : str
        ``gelu``, ``gelu_new`` (tanh approximation as eager PyTorch runs it),
        ``relu`` or ``silu``.
    gated_ffn : bool
        Gated feed-forward (SwiGLU / GEGLU: three matrices instead of two).
    norm : str
        ``layernorm`` or ``rmsnorm``.
    positional : str
        ``learned``, ``rotary`` or ``relative``.
    tie_word_embeddings : bool
        Output layer shares the input embedding (one fewer parameter matrix to update).
    n_experts : int
        Experts of a mixture-of-experts feed-forward (0: dense) [-].
    experts_per_token : int
        Experts each token is routed to (top-k) [-].
    expert_capacity : int
        Most tokens an expert takes per sequence (0: unbounded) [-].
    sparse_step : int
        Every ``sparse_step``-th layer has experts (Switch: 2; 0 without experts) [-].
    is_encoder_decoder : bool
        Encoder-decoder (T5, Switch).
    n_decoder_layers : int
        Layers of the decoder of an encoder-decoder (0 otherwise) [-].
    causal : bool
        Decoder-only language model (causal mask).
    pre_norm : bool
        Normalisation before each sub-layer (GPT-2, OPT, Llama) rather than after (BERT).
    type_vocab_size : int
        Token-type embeddings (BERT) [-].
    embed_proj_dim : int
        Width of the embeddings when projected to ``d_model`` (OPT's
        ``word_embed_proj_dim``); equal to ``d_model`` without projection [-].
    rotary_dim : int
        Width of each head that is rotated (rotary only) [-].
    parallel_residual : bool
        Attention and feed-forward read the same input (GPT-NeoX).
    qkv_fused : bool
        One linear map computes Q, K and V (GPT-2, GPT-NeoX).
    bias : bool
        Linear maps have biases.
    attention_dropout : float
        Dropout rate on the attention probabilities [-].
    hidden_dropout : float
        Dropout rate on the residual branches and the embeddings [-].
    pooler : bool
        BERT's pooler and next-sentence head (``BertForPreTraining``): a tanh dense
        layer on the first token and a 2-way classifier.
    """

    family: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_kv: int
    d_ff: int
    vocab_size: int
    max_positions: int = 0
    activation: str = "gelu"
    gated_ffn: bool = False
    norm: str = "layernorm"
    positional: str = "learned"
    tie_word_embeddings: bool = True
    n_experts: int = 0
    experts_per_token: int = 1
    expert_capacity: int = 0
    sparse_step: int = 0
    is_encoder_decoder: bool = False
    n_decoder_layers: int = 0
    causal: bool = True
    pre_norm: bool = True
    type_vocab_size: int = 0
    embed_proj_dim: int = 0
    rotary_dim: int = 0
    parallel_residual: bool = False
    qkv_fused: bool = False
    bias: bool = True
    attention_dropout: float = 0.0
    hidden_dropout: float = 0.0
    pooler: bool = False

    def __post_init__(self) -> None:
        for name in ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_kv", "d_ff", "vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"ModelConfig.n_heads ({self.n_heads}) must be a multiple of "
                f"n_kv_heads ({self.n_kv_heads})"
            )
        if self.activation not in ("gelu", "gelu_new", "relu", "silu"):
            raise ValueError(f"ModelConfig.activation {self.activation!r} is not modelled")
        if self.norm not in ("layernorm", "rmsnorm"):
            raise ValueError(f"ModelConfig.norm must be layernorm or rmsnorm, got {self.norm!r}")
        if self.positional not in ("learned", "rotary", "relative"):
            raise ValueError(f"ModelConfig.positional {self.positional!r} is not modelled")
        if self.n_experts and not 1 <= self.experts_per_token <= self.n_experts:
            raise ValueError("ModelConfig.experts_per_token must be in [1, n_experts]")

    @property
    def n_parameters(self) -> int:
        """Trainable parameters [-] (weights, biases, norms, embeddings, experts)."""
        return parameter_count(self)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-serialisable)."""
        return asdict(self)


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


def parameter_count(config: ModelConfig) -> int:
    """Trainable parameters of a model [-], as the graph's forward operators own them.

    Examples
    --------
    >>> from powerfit.architectures.hf import from_hf_config
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
