"""Model descriptions read from a Hugging Face ``config.json`` (no download).

:func:`from_hf_config` turns the ``config.json`` of a Transformer (a file, or the dict
it holds) into a :class:`~powerfit.architectures.model.ModelConfig`: the few numbers
that set the cost of a training step (layers, widths, heads, vocabulary, activation,
normalisation, experts...). :func:`powerfit.steps.graph.training_step_graph` builds the
operator graph of one training step from it.

Families read (``model_type``):

===================  ===========================================================
``bert``             encoder, post-LayerNorm, learned + token-type positions, GELU,
                     masked-LM head (dense + GELU + LayerNorm + decoder)
``gpt2``             decoder, pre-LayerNorm, learned positions, fused QKV, GELU
                     (``gelu_new``: the tanh approximation, eight element-wise
                     kernels in eager PyTorch); the GPT-3-style configs of NeuSight
                     are GPT-2 configs
``opt``              decoder, learned positions, ReLU, optional input/output
                     projections when ``word_embed_proj_dim`` ≠ ``hidden_size``
``gpt_neox``         decoder, fused QKV, rotary (``rotary_pct``), parallel residual
``llama``/``mistral``  decoder, RMSNorm, rotary, SwiGLU, grouped-query attention
``t5``/``switch_transformers``  encoder-decoder, RMSNorm (T5's LayerNorm has no mean
                     and no bias), relative position bias, ``d_kv`` head width,
                     Switch: a mixture of experts every ``*_sparse_step`` layers
===================  ===========================================================

Deliberate approximations (each well under 1 % of a step): Switch's router jitter
(two element-wise passes over the router's input) and its auxiliary losses are not
in the graph; Mistral's sliding window masks scores but leaves the products' sizes
unchanged in eager attention, so it is accepted.

Fields that change the cost of a step and that the graph does not model are refused
by name (:class:`~powerfit.exceptions.DataError` naming the file and the field), not
ignored: e.g. ``add_cross_attention`` in a GPT-2 config, ``layerdrop`` > 0,
``pretraining_tp`` > 1, ``reorder_and_upcast_attn``. Fields that do not change the
cost (dropout rates, initialisers, token ids...) are ignored.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from powerfit.architectures.model import ModelConfig
from powerfit.exceptions import DataError
from powerfit.files import read_input

__all__ = ["FAMILIES", "from_hf_config", "read_config_json"]

#: ``model_type`` values read, mapped to the family name used in :class:`ModelConfig`.
FAMILIES: dict[str, str] = {
    "bert": "bert",
    "gpt2": "gpt2",
    "opt": "opt",
    "gpt_neox": "gpt_neox",
    "llama": "llama",
    "mistral": "llama",
    "t5": "t5",
    "switch_transformers": "t5",
}

#: activation names of the configs, mapped to the activation the graph knows.
_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_python": "gelu",
    "gelu_new": "gelu_new",
    "gelu_fast": "gelu_new",
    "gelu_pytorch_tanh": "gelu",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
    "gated-gelu": "gelu",
    "gated-silu": "silu",
}


def read_config_json(
    source: str | os.PathLike[str] | Mapping[str, Any],
) -> tuple[dict[str, Any], str]:
    """The content of a ``config.json`` and its name.

    Parameters
    ----------
    source : path-like or mapping
        A ``config.json``, a model's folder holding one (a Hugging Face snapshot, as
        ``from_pretrained`` reads a local folder), or the dict itself. Nothing is
        downloaded: a Hub id that is not a local path is refused with that said.

    Raises
    ------
    DataError
        An unreadable file, a folder without ``config.json``, invalid JSON, or JSON
        that is not an object.
    """
    return _load(source)


def _load(source: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if isinstance(source, Mapping):
        return dict(source), "config"
    path = Path(source)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise DataError(
                "a folder without config.json: give a model's folder or its config.json",
                source=str(path),
            )
        path = path / "config.json"
    try:
        text = read_input(path, limit=_MAX_CONFIG_BYTES).decode("utf-8")
    except FileNotFoundError as exc:
        raise DataError(
            "cannot read the config: no such file (powerfit downloads nothing: give a "
            "local config.json or the model's folder)",
            source=str(path),
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text: {exc.reason}", source=str(path)) from None
    except OSError as exc:
        raise DataError(
            f"cannot read the config: {exc.strerror or exc}", source=str(path)
        ) from exc
    depth = _nesting(text)
    if depth > _MAX_DEPTH:
        raise DataError(
            f"JSON nested {depth} levels deep, more than a config holds ({_MAX_DEPTH})",
            source=str(path),
        )
    try:
        data = json.loads(text, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON: {exc}", source=str(path)) from exc
    except ValueError as exc:
        raise DataError(str(exc), source=str(path)) from None
    if not isinstance(data, dict):
        raise DataError("a config.json must hold a JSON object", source=str(path))
    return _finite(data, "", False, str(path)), str(path)


#: Largest config.json read [B] (real ones are a few kB).
_MAX_CONFIG_BYTES = 16 * 2**20
#: Deepest JSON nesting read (real configs nest 2–3 levels).
_MAX_DEPTH = 32
#: Largest count a field may hold [-]; layers at most :data:`_MAX_LAYERS`.
_MAX_INT = 2**31 - 1
_MAX_LAYERS = 100_000


def _nesting(text: str) -> int:
    """Deepest nesting of ``[`` and ``{`` outside strings (before parsing it)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


#: Fields that may hold an infinite bound: Mamba 2's Δt clamp range ``time_step_limit``
#: (``[0.0, Infinity]``: no upper bound), spelled as transformers writes it, a bare
#: ``Infinity`` (Python's json) or ``{"__float__": "Infinity"}`` (transformers 5).
_UNBOUNDED_FIELDS = frozenset({"time_step_limit"})
_INFINITIES = {"Infinity": math.inf, "-Infinity": -math.inf}


def _constant(name: str) -> float:
    """JSON's non-standard constants: the infinities kept for :func:`_finite`, NaN refused."""
    if name not in _INFINITIES:
        raise ValueError(f"{name} is not a number JSON allows; give a finite number")
    return _INFINITIES[name]


def _finite(value: Any, field: str, unbounded: bool, source: str) -> Any:
    """``value`` with transformers' float tags decoded; a non-finite number outside
    :data:`_UNBOUNDED_FIELDS` refused, naming its field."""
    if isinstance(value, dict):
        tag = value.get("__float__") if len(value) == 1 else None
        if not isinstance(tag, str):
            return {
                k: _finite(v, k, unbounded or k in _UNBOUNDED_FIELDS, source)
                for k, v in value.items()
            }
        if tag not in _INFINITIES:
            raise DataError(
                f"{tag} is not a number JSON allows; give a finite number",
                source=source,
                column=field,
            )
        value = _INFINITIES[tag]
    if isinstance(value, list):
        return [_finite(v, field, unbounded, source) for v in value]
    if isinstance(value, float) and math.isinf(value) and not unbounded:
        name = "Infinity" if value > 0 else "-Infinity"
        raise DataError(
            f"{name} is not a number JSON allows here; give a finite number",
            source=source,
            column=field,
        )
    return value


def _check_rates(r: _Reader) -> None:
    """Dropout probabilities (``*pdrop``, ``*dropout*``) must lie in [0, 1]."""
    for name, value in r.data.items():
        lowered = name.lower()
        if not ("pdrop" in lowered or "dropout" in lowered) or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue  # e.g. a layer list; read (and refused) by the family if used
        if not 0.0 <= value <= 1.0:
            raise DataError(
                f"a dropout probability must be in [0, 1], got {value!r}",
                source=r.source,
                column=name,
            )


def _check_heads(r: _Reader, config: ModelConfig) -> None:
    """The width must split evenly into heads where the head width is derived."""
    if r.has("head_dim", "d_kv") or config.d_model % config.n_heads == 0:
        return
    width = next((n for n in ("n_embd", "hidden_size", "d_model") if r.has(n)), "hidden_size")
    heads = next((n for n in ("n_head", "num_attention_heads", "num_heads") if r.has(n)), "n_head")
    raise DataError(
        f"{width}={config.d_model} is not divisible by {heads}={config.n_heads}",
        source=r.source,
        column=width,
    )


class _Reader:
    """Reads fields of one config, naming the file and the field in every error."""

    def __init__(self, data: dict[str, Any], source: str) -> None:
        self.data = data
        self.source = source

    def has(self, *names: str) -> bool:
        return any(self.data.get(n) is not None for n in names)

    def get(self, *names: str, default: Any = None) -> Any:
        for name in names:
            if self.data.get(name) is not None:
                return self.data[name]
        return default

    def int(self, *names: str, default: int | None = None) -> int:
        for name in names:
            value = self.data.get(name)
            if value is None:
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or (isinstance(value, float) and not math.isfinite(value))
                or value != int(value)
            ):
                raise DataError(
                    f"must be an integer, got {value!r}", source=self.source, column=name
                )
            if value < 0:
                raise DataError(f"must be ≥ 0, got {value!r}", source=self.source, column=name)
            top = _MAX_LAYERS if "layer" in name else _MAX_INT
            if value > top:
                shown = f"{value:g}" if value < 1e300 else f"a {len(str(int(value)))}-digit number"
                raise DataError(f"must be ≤ {top:,}, got {shown}", source=self.source, column=name)
            if value == 0 and "head" in name:
                raise DataError("must be ≥ 1, got 0", source=self.source, column=name)
            return int(value)
        if default is None:
            raise DataError(
                f"missing field (one of {', '.join(names)})", source=self.source, column=names[0]
            )
        return default

    def float(self, *names: str, default: float = 0.0) -> float:
        value = self.get(*names)
        if value is None:
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise DataError(
                f"must be a finite number, got {value!r}", source=self.source, column=names[0]
            )
        return float(value)

    def refuse(self, name: str, why: str, ok: Any = (None, False, 0, 0.0)) -> None:
        value = self.data.get(name)
        if value not in ok:
            raise DataError(
                f"{name}={value!r} changes the cost of a step and is not modelled ({why})",
                source=self.source,
                column=name,
            )

    def activation(self, *names: str, default: str) -> str:
        name = self.get(*names, default=default)
        if not isinstance(name, str) or name not in _ACTIVATIONS:
            raise DataError(
                f"activation {name!r} is not modelled; known: {', '.join(sorted(_ACTIVATIONS))}",
                source=self.source,
                column=names[0],
            )
        return _ACTIVATIONS[name]


def from_hf_config(source: str | os.PathLike[str] | Mapping[str, Any]) -> ModelConfig:
    """Read a Hugging Face ``config.json`` into a :class:`ModelConfig`.

    Parameters
    ----------
    source : str, path or mapping
        Path of a ``config.json``, or its content as a dict. Nothing is downloaded.

    Returns
    -------
    ModelConfig

    Raises
    ------
    DataError
        For an unreadable file, an unknown ``model_type``, a missing or malformed
        field, or a field that changes the cost and is not modelled (named).

    Examples
    --------
    >>> cfg = from_hf_config({"model_type": "gpt2", "n_layer": 12, "n_embd": 768,
    ...                       "n_head": 12, "vocab_size": 50257})
    >>> cfg.family, cfg.d_ff, cfg.d_kv
    ('gpt2', 3072, 64)
    """
    data, where = _load(source)
    r = _Reader(data, where)
    model_type = data.get("model_type")
    if model_type not in FAMILIES:
        raise DataError(
            f"model_type {model_type!r} is not modelled; known: {', '.join(sorted(FAMILIES))}",
            source=where,
            column="model_type",
        )
    family = FAMILIES[model_type]
    reader = {
        "bert": _bert,
        "gpt2": _gpt2,
        "opt": _opt,
        "gpt_neox": _neox,
        "llama": _llama,
        "t5": _t5,
    }[family]
    _check_rates(r)
    try:
        config = reader(r)
        _check_heads(r, config)
        return config
    except ZeroDivisionError:
        raise DataError("a width or count is 0 where it divides", source=where) from None
    except ValueError as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(str(exc), source=where) from exc


def _bert(r: _Reader) -> ModelConfig:
    r.refuse("add_cross_attention", "cross-attention in an encoder")
    r.refuse("is_decoder", "BERT as a causal decoder")
    pos = r.get("position_embedding_type", default="absolute")
    if pos != "absolute":
        r.refuse("position_embedding_type", "relative-key attention", ok=("absolute",))
    d = r.int("hidden_size")
    h = r.int("num_attention_heads")
    return ModelConfig(
        family="bert",
        n_layers=r.int("num_hidden_layers"),
        d_model=d,
        n_heads=h,
        n_kv_heads=h,
        d_kv=d // h,
        d_ff=r.int("intermediate_size", default=4 * d),
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=512),
        activation=r.activation("hidden_act", default="gelu"),
        norm="layernorm",
        positional="learned",
        tie_word_embeddings=bool(r.get("tie_word_embeddings", default=True)),
        causal=False,
        pre_norm=False,
        type_vocab_size=r.int("type_vocab_size", default=2),
        embed_proj_dim=d,
        qkv_fused=False,
        bias=True,
        attention_dropout=r.float("attention_probs_dropout_prob", default=0.1),
        hidden_dropout=r.float("hidden_dropout_prob", default=0.1),
        pooler="BertForPreTraining" in (r.get("architectures", default=[]) or []),
    )


def _gpt2(r: _Reader) -> ModelConfig:
    r.refuse("add_cross_attention", "cross-attention in a decoder-only model")
    r.refuse("reorder_and_upcast_attn", "attention scores upcast to fp32 in a separate path")
    d = r.int("n_embd", "hidden_size")
    h = r.int("n_head", "num_attention_heads")
    vocab = r.int("padded_vocab_size", "vocab_size")
    return ModelConfig(
        family="gpt2",
        n_layers=r.int("n_layer", "num_hidden_layers"),
        d_model=d,
        n_heads=h,
        n_kv_heads=h,
        d_kv=d // h,
        d_ff=r.int("n_inner", default=4 * d),
        vocab_size=vocab,
        max_positions=r.int("n_positions", "n_ctx", default=1024),
        activation=r.activation("activation_function", default="gelu_new"),
        norm="layernorm",
        positional="learned",
        tie_word_embeddings=bool(r.get("tie_word_embeddings", default=True)),
        causal=True,
        pre_norm=True,
        embed_proj_dim=d,
        qkv_fused=True,
        bias=True,
        attention_dropout=r.float("attn_pdrop", default=0.1),
        hidden_dropout=r.float("resid_pdrop", default=0.1),
    )


def _opt(r: _Reader) -> ModelConfig:
    r.refuse("layerdrop", "layers skipped at random during training")
    r.refuse("_remove_final_layer_norm", "no final LayerNorm")
    if r.get("enable_bias", default=True) is not True:
        r.refuse("enable_bias", "linear maps without biases", ok=(True,))
    d = r.int("hidden_size")
    h = r.int("num_attention_heads")
    return ModelConfig(
        family="opt",
        n_layers=r.int("num_hidden_layers"),
        d_model=d,
        n_heads=h,
        n_kv_heads=h,
        d_kv=d // h,
        d_ff=r.int("ffn_dim", default=4 * d),
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=2048),
        activation=r.activation("activation_function", default="relu"),
        norm="layernorm",
        positional="learned",
        tie_word_embeddings=bool(r.get("tie_word_embeddings", default=True)),
        causal=True,
        pre_norm=bool(r.get("do_layer_norm_before", default=True)),
        embed_proj_dim=r.int("word_embed_proj_dim", default=d),
        qkv_fused=False,
        bias=True,
        attention_dropout=r.float("attention_dropout", default=0.0),
        hidden_dropout=r.float("dropout", default=0.1),
    )


def _neox(r: _Reader) -> ModelConfig:
    d = r.int("hidden_size")
    h = r.int("num_attention_heads")
    head = d // h
    pct = r.float("rotary_pct", default=0.25)
    if not 0 < pct <= 1:
        raise DataError(f"must be in (0, 1], got {pct}", source=r.source, column="rotary_pct")
    return ModelConfig(
        family="gpt_neox",
        n_layers=r.int("num_hidden_layers"),
        d_model=d,
        n_heads=h,
        n_kv_heads=h,
        d_kv=head,
        d_ff=r.int("intermediate_size", default=4 * d),
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=2048),
        activation=r.activation("hidden_act", default="gelu"),
        norm="layernorm",
        positional="rotary",
        tie_word_embeddings=bool(r.get("tie_word_embeddings", default=False)),
        causal=True,
        pre_norm=True,
        embed_proj_dim=d,
        rotary_dim=max(2, int(head * pct)),
        parallel_residual=bool(r.get("use_parallel_residual", default=True)),
        qkv_fused=True,
        bias=bool(r.get("attention_bias", default=True)),
        attention_dropout=r.float("attention_dropout", default=0.0),
        hidden_dropout=r.float("hidden_dropout", default=0.0),
    )


def _llama(r: _Reader) -> ModelConfig:
    r.refuse("num_local_experts", "a mixture of experts in a Llama-style model")
    if bool(r.get("mlp_bias", default=False)) != bool(r.get("attention_bias", default=False)):
        r.refuse("mlp_bias", "biases in the feed-forward but not the attention, or back")
    tp = r.get("pretraining_tp", default=1)
    if tp != 1:
        r.refuse("pretraining_tp", "linear maps split into slices", ok=(1,))
    # Mistral's sliding window only masks scores in eager/SDPA attention: the products
    # keep their full size, so it does not change the graph.
    d = r.int("hidden_size")
    h = r.int("num_attention_heads")
    head = r.int("head_dim", default=d // h)
    return ModelConfig(
        family="llama",
        n_layers=r.int("num_hidden_layers"),
        d_model=d,
        n_heads=h,
        n_kv_heads=r.int("num_key_value_heads", default=h),
        d_kv=head,
        d_ff=r.int("intermediate_size"),
        vocab_size=r.int("vocab_size"),
        max_positions=r.int("max_position_embeddings", default=2048),
        activation=r.activation("hidden_act", default="silu"),
        gated_ffn=True,
        norm="rmsnorm",
        positional="rotary",
        tie_word_embeddings=bool(r.get("tie_word_embeddings", default=False)),
        causal=True,
        pre_norm=True,
        embed_proj_dim=d,
        rotary_dim=head,
        qkv_fused=False,
        bias=bool(r.get("attention_bias", default=False)),
        attention_dropout=r.float("attention_dropout", default=0.0),
        hidden_dropout=0.0,
    )


def _t5(r: _Reader) -> ModelConfig:
    proj = r.get("feed_forward_proj", default="relu")
    gated = isinstance(proj, str) and proj.startswith("gated-")
    act_name = proj[len("gated-") :] if gated else proj
    if act_name not in _ACTIVATIONS:
        raise DataError(
            f"feed_forward_proj {proj!r} is not modelled",
            source=r.source,
            column="feed_forward_proj",
        )
    if r.has("is_gated_act") and bool(r.get("is_gated_act")) != gated:
        raise DataError(
            f"is_gated_act={r.get('is_gated_act')!r} contradicts feed_forward_proj={proj!r}",
            source=r.source,
            column="is_gated_act",
        )
    d = r.int("d_model")
    h = r.int("num_heads")
    n_enc = r.int("num_layers")
    n_experts = r.int("num_experts", default=0)
    step = 0
    if n_experts > 1:
        enc_step = r.int("encoder_sparse_step", default=1)
        dec_step = r.int("decoder_sparse_step", default=enc_step)
        if enc_step != dec_step:
            raise DataError(
                f"encoder_sparse_step={enc_step} differs from decoder_sparse_step={dec_step}: "
                "one step for both stacks is modelled",
                source=r.source,
                column="decoder_sparse_step",
            )
        step = enc_step
        r.refuse("router_type", "a router other than top-1 tokens", ok=(None, "tokens_masked"))
    return ModelConfig(
        family="t5",
        n_layers=n_enc,
        d_model=d,
        n_heads=h,
        n_kv_heads=h,
        d_kv=r.int("d_kv", default=d // h),
        d_ff=r.int("d_ff"),
        vocab_size=r.int("vocab_size"),
        max_positions=0,
        activation=_ACTIVATIONS[act_name],
        gated_ffn=gated,
        norm="rmsnorm",
        positional="relative",
        tie_word_embeddings=bool(r.get("tie_word_embeddings", default=True)),
        n_experts=n_experts if n_experts > 1 else 0,
        experts_per_token=1,
        expert_capacity=r.int("expert_capacity", default=0) if n_experts > 1 else 0,
        sparse_step=step,
        is_encoder_decoder=bool(r.get("is_encoder_decoder", default=True)),
        n_decoder_layers=r.int("num_decoder_layers", default=n_enc),
        causal=False,
        pre_norm=True,
        embed_proj_dim=d,
        qkv_fused=False,
        bias=False,
        attention_dropout=r.float("dropout_rate", default=0.1),
        hidden_dropout=r.float("dropout_rate", default=0.1),
    )
