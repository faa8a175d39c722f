"""Models trained by the training-step benchmark, built from configuration columns.

``bert``
    Encoder: token + position embeddings, ``n_layers`` post-LN Transformer layers
    with bidirectional attention, a language-model head over every position.
``gpt2``
    Decoder: token + position embeddings, ``n_layers`` pre-LN layers with causal
    attention, a final LayerNorm, a language-model head.
``lstm``, ``gru``
    Token embedding of width ``input_size``, a stack of ``n_layers``
    :class:`torch.nn.LSTM` / :class:`torch.nn.GRU` layers of width ``hidden_size``
    (cuDNN on a GPU), a language-model head.

A Transformer layer is the paper's: one QKV projection d → 3d, attention over
``n_heads`` heads of width d / n_heads, a final projection d → d, a feed-forward
network d → d_ff → d with GELU, two LayerNorms; no dropout (its random masks would
add work that the FLOP counts leave out). Attention is
:func:`torch.nn.functional.scaled_dot_product_attention` (fused kernels, memory
linear in seq_len, what PyTorch's own Transformer layers use when training) or,
with ``attention='explicit'``, the three operations Q·Kᵀ, softmax and A·V as
:mod:`powerfit.paper.flops` counts them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "ATTENTIONS",
    "DEFAULT_VOCAB_SIZE",
    "MODELS",
    "RecurrentLM",
    "TransformerLM",
    "build_model",
    "model_arch",
]

#: Model families and their architecture (the ``arch`` column).
MODELS: dict[str, str] = {
    "bert": "transformer",
    "gpt2": "transformer",
    "lstm": "lstm",
    "gru": "gru",
}
#: Attention implementations of :class:`TransformerLM`.
ATTENTIONS: tuple[str, ...] = ("sdpa", "explicit")
#: Vocabulary size when a configuration has none.
DEFAULT_VOCAB_SIZE = 8192


def model_arch(model: str) -> str:
    """Architecture (``transformer``, ``lstm`` or ``gru``) of a model family."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    return MODELS[model]


class _Block(nn.Module):
    def __init__(
        self, d_model: int, n_heads: int, d_ff: int, *, causal: bool, pre_ln: bool, attention: str
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})")
        self.n_heads, self.causal, self.pre_ln, self.attention = n_heads, causal, pre_ln, attention
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ff1 = nn.Linear(d_model, d_ff)
        self.ff2 = nn.Linear(d_ff, d_model)
        self.ln1 = nn.LayerNorm(d_model)
        self.ln2 = nn.LayerNorm(d_model)

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        if self.attention == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        else:
            scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d // self.n_heads)
            if self.causal:
                mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
                scores = scores.masked_fill(mask, float("-inf"))
            out = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff2(F.gelu(self.ff1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_ln:
            x = x + self._attend(self.ln1(x))
            return x + self._ffn(self.ln2(x))
        x = self.ln1(x + self._attend(x))
        return self.ln2(x + self._ffn(x))


class TransformerLM(nn.Module):
    """A BERT-like (``style='bert'``) or GPT-2-like (``style='gpt2'``) language model.

    Parameters
    ----------
    vocab_size, n_layers, d_model, n_heads, d_ff, max_len : int
        Sizes [-]; ``n_heads`` must divide ``d_model``.
    style : {'bert', 'gpt2'}, default 'gpt2'
        Post-LN bidirectional encoder or pre-LN causal decoder.
    attention : {'sdpa', 'explicit'}, default 'sdpa'
        Attention implementation (see the module notes).
    """

    def __init__(
        self,
        vocab_size: int,
        n_layers: int,
        d_model: int,
        n_heads: int,
        d_ff: int,
        max_len: int,
        *,
        style: str = "gpt2",
        attention: str = "sdpa",
    ) -> None:
        super().__init__()
        if style not in ("bert", "gpt2"):
            raise ValueError(f"style must be 'bert' or 'gpt2', got {style!r}")
        if attention not in ATTENTIONS:
            raise ValueError(
                f"attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}"
            )
        gpt = style == "gpt2"
        self.tokens = nn.Embedding(vocab_size, d_model)
        self.positions = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(
            _Block(d_model, n_heads, d_ff, causal=gpt, pre_ln=gpt, attention=attention)
            for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model) if gpt else nn.Identity()
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (batch × seq_len × vocab_size) of a batch of token ids."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tokens(tokens) + self.positions(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


class RecurrentLM(nn.Module):
    """An LSTM or GRU language model: embedding, recurrent stack, head.

    Parameters
    ----------
    vocab_size, n_layers, input_size, hidden_size : int
        Sizes [-]; ``input_size`` is the embedding width.
    cell : {'lstm', 'gru'}, default 'lstm'
        Recurrent layer.
    """

    def __init__(
        self,
        vocab_size: int,
        n_layers: int,
        input_size: int,
        hidden_size: int,
        *,
        cell: str = "lstm",
    ) -> None:
        super().__init__()
        layers = {"lstm": nn.LSTM, "gru": nn.GRU}
        if cell not in layers:
            raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
        self.embedding = nn.Embedding(vocab_size, input_size)
        self.rnn = layers[cell](input_size, hidden_size, num_layers=n_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (batch × seq_len × vocab_size) of a batch of token ids."""
        out, _ = self.rnn(self.embedding(tokens))
        return self.head(out)


def _int(config: Mapping[str, Any], name: str, default: int | None = None) -> int:
    value = config.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if default is None:
            raise ValueError(f"a {config.get('model')} model needs {name}")
        return default
    if float(value) != int(value) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def build_model(config: Mapping[str, Any], *, attention: str = "sdpa") -> nn.Module:
    """Build the model of one configuration row.

    Parameters
    ----------
    config : mapping
        Canonical run columns: ``model`` (``bert``, ``gpt2``, ``lstm``, ``gru``),
        ``n_layers``, ``seq_len``, ``vocab_size`` (default
        :data:`DEFAULT_VOCAB_SIZE`); Transformers ``d_model``, ``n_heads`` and
        ``d_ff`` (default 4·d_model); LSTM/GRU ``hidden_size`` and ``input_size``
        (default ``hidden_size``).
    attention : {'sdpa', 'explicit'}, default 'sdpa'
        Attention implementation of a Transformer.

    Returns
    -------
    torch.nn.Module
        On the CPU, in FP32; maps token ids (batch × seq_len) to logits.

    Raises
    ------
    ValueError
        For an unknown model or a missing or invalid size, naming it.

    Examples
    --------
    >>> m = build_model({"model": "gpt2", "n_layers": 2, "d_model": 32, "n_heads": 4,
    ...                  "seq_len": 16, "vocab_size": 100})
    >>> m(torch.zeros(3, 16, dtype=torch.long)).shape
    torch.Size([3, 16, 100])
    """
    model = str(config.get("model"))
    arch = model_arch(model)
    vocab = _int(config, "vocab_size", DEFAULT_VOCAB_SIZE)
    layers = _int(config, "n_layers")
    if arch == "transformer":
        d = _int(config, "d_model")
        return TransformerLM(
            vocab,
            layers,
            d,
            _int(config, "n_heads"),
            _int(config, "d_ff", 4 * d),
            _int(config, "seq_len"),
            style=model,
            attention=attention,
        )
    hidden = _int(config, "hidden_size")
    return RecurrentLM(vocab, layers, _int(config, "input_size", hidden), hidden, cell=arch)
