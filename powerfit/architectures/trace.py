"""One training step of any model transformers knows, traced on the meta device.

:func:`trace_step` reads a ``config.json`` through transformers' own config class
(``CONFIG_MAPPING[model_type]``; never ``trust_remote_code``, nothing downloaded),
instantiates the training model class on PyTorch's ``meta`` device (no weights, no
GPU), and runs one training step — forward, loss, backward — under PyTorch's dispatch
machinery:

* a :class:`~torch.utils._python_dispatch.TorchDispatchMode` records every ATen
  operator that runs (its shapes, phase and the module it ran in, by
  :class:`torch.utils.module_tracker.ModuleTracker`), forward and backward;
* a :class:`~torch.overrides.TorchFunctionMode` catches
  ``torch.nn.functional.scaled_dot_product_attention`` and runs it as **one** fused
  node forward and one backward (:class:`_FusedAttention`), with batch, heads,
  key/value heads, sequence lengths, head width and causality, as FlashAttention
  and PyTorch's memory-efficient kernels run it;
* ``saved_tensors_hooks`` count the activations the forward keeps for the backward
  (parameters excluded), per layer.

Layers are traced once per kind: the model is built whole (its parameter count is
the instantiated model's), then each stack of layers (a ``ModuleList`` of one class)
is cut to the shortest prefix that holds every kind of layer it has (kinds told
apart by class, parameter shapes and attention type: sliding/full windows, dense or
mixture-of-experts feed-forward...), traced, and each traced layer's operators
counted as many times as the full stack has layers of its kind.

Backward operators are named after the forward call that created their autograd
node (its scope is left on the node), so ``model.layers.*.mlp.gate_proj.mm`` names
both the forward product and its two gradient products.

The batch is symbolic: the step is traced at batch 2 and 3 and every dimension of
every operator is checked to be either constant or proportional to the batch, so the
trace holds for any batch (:func:`powerfit.steps.graph.traced_step_graph`). The
precision is applied afterwards: half-precision steps are traced in bf16 (they run
the casts half precision runs), the others in FP32, and each row gets its precision
from its kind (product, normalisation/softmax, element-wise) as
:data:`powerfit.architectures.model.PRECISIONS` says.

Mixture-of-experts layers run with transformers' ``grouped_mm`` experts: the
experts' products are one grouped product of (tokens × top-k) rows, timed as a perfectly
balanced routing.

Needs the ``hf`` extra (``pip install 'powerfit[hf]'``: ``torch`` and ``transformers``).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from typing import Any

from powerfit.architectures.aten import (
    KIND_PRODUCT,
    map_op,
    numel,
)
from powerfit.architectures.attention_kinds import (
    HALF_PRECISIONS,
    configured_attention,
    fuse_eager_cores,
    fused_by_substitution,
    resolve_attention,
)
from powerfit.architectures.fallbacks import fallback_note, reference_fallbacks
from powerfit.architectures.linear_attention import LINEAR_ATTENTION_NOTE, fused_linear_attention
from powerfit.architectures.traced import ATTENTION_KINDS, TRACE_VERSION, TracedStep
from powerfit.exceptions import DataError, PowerfitError

__all__ = [
    "ATTENTION_KINDS",
    "TRACE_VERSION",
    "MissingExtraError",
    "TracedStep",
    "configured_attention",
    "require_hf",
    "trace_step",
]


class MissingExtraError(PowerfitError, ImportError):
    """An optional dependency is not installed (the message names the extra)."""


def require_hf() -> tuple[Any, Any]:
    """Import ``torch`` and ``transformers``, or say which extra installs them.

    Raises
    ------
    MissingExtraError
        (an ImportError) naming the ``hf`` extra when either is missing.
    """
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingExtraError(
            f"tracing a Hugging Face model needs torch and transformers ({exc.name} is "
            "missing): pip install 'powerfit[hf]'"
        ) from exc
    return torch, transformers


def library_versions() -> dict[str, str]:
    """Versions of torch and transformers installed (without importing them)."""
    out = {}
    for name in ("torch", "transformers"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


# -- reading the config ------------------------------------------------------------------


def _field_in(message: str, config: Mapping[str, Any]) -> str | None:
    """The config field a transformers error message names, if any."""
    names = sorted((k for k in config if isinstance(k, str)), key=len, reverse=True)
    for name in names:
        if f"`{name}`" in message or f"'{name}'" in message or name in message.split():
            return name
    lowered = message.lower()
    for name in names:
        if len(name) > 3 and (name in message or name.replace("_", " ") in lowered):
            return name
    return None


def _refusal(exc: BaseException, config: Mapping[str, Any], source: str) -> DataError:
    message = " ".join(str(exc).split()) or type(exc).__name__
    return DataError(
        f"transformers refuses this config: {message[:300]}",
        source=source,
        column=_field_in(message, config),
    )


#: Most layers a traced config may ask for [-] (the model is built whole on the meta
#: device: about 2 ms a layer; real models have at most a few hundred).
MAX_TRACED_LAYERS = 1000
_MAX_INT = 2**31 - 1


def _check_counts(data: Mapping[str, Any], source: str, depth: int = 0) -> None:
    """Counts a model could not be built with refused by name (before building it)."""
    for name, value in data.items():
        if isinstance(value, Mapping) and depth < 2:  # e.g. text_config
            _check_counts(value, source, depth + 1)
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        top = MAX_TRACED_LAYERS if "layers" in str(name) else _MAX_INT
        if value > top:
            raise DataError(f"must be ≤ {top:,}, got {value:,}", source=source, column=str(name))


def load_hf_config(data: Mapping[str, Any], source: str = "config") -> Any:
    """Build transformers' own config object from a ``config.json``'s content.

    Only the config class transformers ships for the ``model_type`` is used (an
    ``auto_map`` pointing at remote code is ignored, never run).

    Raises
    ------
    DataError
        An unknown ``model_type``, or a config transformers refuses (the field named
        where its message names one).
    """
    _torch, _transformers = require_hf()
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    model_type = data.get("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        raise DataError(
            f"model_type {model_type!r} is not one transformers "
            f"{library_versions()['transformers']} knows",
            source=source,
            column="model_type",
        )
    _check_counts(data, source)
    clean = {k: v for k, v in data.items() if k not in ("auto_map", "model_type")}
    try:
        return CONFIG_MAPPING[model_type].from_dict(clean)
    except Exception as exc:  # transformers raises ValueError, TypeError, KeyError...
        raise _refusal(exc, data, source) from exc


def _model_class(config: Any, data: Mapping[str, Any]) -> Any:
    """The training model class of a config: its ``architectures`` entry when it is
    one of transformers' LM classes for that model type, else the first of causal
    LM, sequence-to-sequence LM, pretraining, masked LM."""
    import transformers
    from transformers.models.auto import modeling_auto as ma

    model_type = config.model_type
    tables = (
        ma.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        ma.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
        ma.MODEL_FOR_PRETRAINING_MAPPING_NAMES,
        ma.MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )
    allowed: list[str] = []
    for table in tables:
        name = table.get(model_type)
        if isinstance(name, (list, tuple)):
            allowed.extend(name)
        elif name:
            allowed.append(name)
    archs = data.get("architectures") or []
    chosen = next((a for a in archs if isinstance(a, str) and a in allowed), None)
    masked = ma.MODEL_FOR_MASKED_LM_MAPPING_NAMES.get(model_type)
    if chosen is None and masked and not getattr(config, "is_decoder", False):
        chosen = masked if isinstance(masked, str) else masked[0]  # an encoder: masked LM
    if chosen is None:
        chosen = allowed[0] if allowed else None
    if chosen is None:
        raise DataError(
            f"transformers has no language-model class for model_type {model_type!r}",
            column="model_type",
        )
    return getattr(transformers, chosen)


def _language_model(config: Any, data: Mapping[str, Any]) -> tuple[Any, Any, str | None]:
    """The config to build, its training class, and a note where that is not the whole model.

    A multimodal config (a ``text_config`` inside: Llama 4, Qwen 3.5, Emu3...) whose
    model type has no language-model class taking the whole config is traced as its
    language model: the text sub-config and that model type's LM class (text in, text
    out; the vision or audio towers are neither run nor counted, and the note says so).
    A model type whose class takes the whole config (Gemma 3, Mistral 3, LLaVA) is built
    whole, as before.
    """
    try:
        text = config.get_text_config()
    except (AttributeError, ValueError):  # no text part, or several: build it whole
        text = config
    try:
        cls = _model_class(config, data)
    except DataError:
        if text is config:
            raise
        cls = None
    if text is config or (cls is not None and isinstance(config, cls.config_class)):
        return config, cls, None
    if cls is not None and isinstance(text, cls.config_class):
        lm = cls  # the model type's LM class takes the text config (Llama 4, Emu3)
    else:
        lm = _model_class(text, {"model_type": text.model_type})
    whole = next(iter(data.get("architectures") or []), type(config).__name__)
    return (
        text,
        lm,
        f"{whole} is multimodal: traced its language model ({lm.__name__}, text in, "
        "text out); its vision or audio towers are in neither the step nor the "
        "parameter count",
    )


# -- tracing -----------------------------------------------------------------------------


def _signature(module: Any) -> tuple:
    """What makes two layers of a stack cost the same: classes, shapes, attention type."""
    parts: list[Any] = [type(module).__name__]
    for name, sub in module.named_modules():
        attrs = tuple(
            (a, repr(getattr(sub, a)))
            for a in ("attention_type", "sliding_window", "is_sliding", "layer_type", "use_rope")
            if hasattr(sub, a) and not callable(getattr(sub, a))
        )
        parts.append((name, type(sub).__name__, attrs))
    parts.extend((n, tuple(p.shape)) for n, p in module.named_parameters())
    return tuple(parts)


def _stacks(model: Any) -> list[tuple[Any, str, list[Any]]]:
    """(parent, attribute, layers) of each ModuleList of ≥ 2 modules of one class."""
    import torch

    out = []
    for _name, mod in model.named_modules():
        for attr, child in mod.named_children():
            if (
                isinstance(child, torch.nn.ModuleList)
                and len(child) >= 2
                and len({type(m) for m in child}) == 1
                and sum(p.numel() for p in child[0].parameters()) > 0
            ):
                out.append((mod, attr, list(child)))
    # keep the outermost lists (a layer's own lists of experts are inside a layer)
    layer_ids = {id(m) for _p, _a, layers in out for m in layers}
    return [
        (p, a, layers)
        for p, a, layers in out
        if not any(id(m) in layer_ids for m in _ancestors(model, p))
    ]


def _ancestors(model: Any, target: Any) -> list[Any]:
    """Modules on the path from the model to ``target`` (inclusive)."""
    path: list[Any] = []

    def walk(mod: Any, trail: list[Any]) -> bool:
        if mod is target:
            path.extend([*trail, mod])
            return True
        return any(walk(c, [*trail, mod]) for c in mod.children())

    walk(model, [])
    return path


#: Key of the scope a forward call leaves on the autograd nodes it creates.
_TAG = "powerfit_scope"


class _Recorder:
    """Shared state of one trace: the nodes, the module scope, saved activations."""

    def __init__(
        self,
        layer_names: dict[str, tuple[int, int]],
        param_storages: set[int],
        linear_names: set[str],
        attn_names: set[str],
    ) -> None:
        self.nodes: list[tuple] = []
        self.linear_names = linear_names
        self.attn_names = attn_names
        self.tracker: Any = None
        self.layer_names = layer_names
        self.param_storages = param_storages
        self.saved: dict[int, tuple[Any, int, bool]] = {}
        # the saved tensors themselves, held until the trace ends: a storage freed
        # early (a node off the loss's graph) must not lend its address to another
        self.held: list[Any] = []
        self.largest = 0
        self.largest_outside_cores = 0
        self.backward = False

    def scope(self) -> tuple[str, tuple[int, int] | None, bool]:
        """(module path, layer (stack, index) or None, in an attention core).

        In the backward pass, the scope of the forward call that created the autograd
        node running (:meth:`tag`), where known; else the module tracker's.
        """
        if self.backward:
            import torch

            node = torch._C._current_autograd_node()
            if node is not None and _TAG in node.metadata:
                return node.metadata[_TAG]
        parents = self.tracker.parents if self.tracker is not None else {"Global"}
        deepest = max(parents, key=lambda p: (p.count("."), p))
        layer = None
        for p in parents:
            if p in self.layer_names:
                layer = self.layer_names[p]
                break
        core = deepest not in self.linear_names and any(p in self.attn_names for p in parents)
        return deepest.split(".", 1)[-1] if "." in deepest else deepest, layer, core

    def tag(self, out: Any) -> None:
        """Mark the autograd nodes a forward call created with its scope."""
        import torch

        outs = out if isinstance(out, (tuple, list)) else (out,)
        stack = [o.grad_fn for o in outs if isinstance(o, torch.Tensor) and o.grad_fn]
        scope = None
        while stack:
            node = stack.pop()
            if node is None or _TAG in node.metadata:
                continue
            scope = scope or self.scope()
            node.metadata[_TAG] = scope
            stack.extend(f for f, _ in node.next_functions)

    def add(self, name: str, op: str, kind: str, dims: tuple[int, ...], core: bool = False):
        path, layer, in_core = self.scope()
        phase = "backward" if self.backward else "forward"
        self.nodes.append((phase, layer, f"{path}.{name}", op, kind, dims, core or in_core))

    def pack(self, t: Any) -> Any:
        try:
            key = t.untyped_storage()._cdata
        except Exception:  # pragma: no cover - tensors without storage
            return t
        if key in self.param_storages or key in self.saved:
            return t
        _path, layer, core = self.scope()
        self.held.append(t)
        self.saved[key] = (layer, t.untyped_storage().nbytes() // max(1, t.element_size()), core)
        return t


def _fused_attention_function(recorder: _Recorder):
    import torch

    class _FusedAttention(torch.autograd.Function):
        """SDPA as one fused kernel forward and one backward (shapes only)."""

        @staticmethod
        def forward(ctx, q, k, v, causal, dv):  # type: ignore[override]
            ctx.save_for_backward(q, k, v)
            ctx.meta = (causal,)
            out = q.new_empty((*q.shape[:-1], dv))
            ctx.out = out.shape
            recorder.add("sdpa", "attention", KIND_PRODUCT, _attn_dims(q, k, dv, causal))
            # the kernel also keeps its output and the row log-sum-exp for the backward
            recorder.pack(out)
            return out

        @staticmethod
        def backward(ctx, grad):  # type: ignore[override]
            q, k, v = ctx.saved_tensors
            (causal,) = ctx.meta
            recorder.add(
                "sdpa_grad", "attention_bwd", KIND_PRODUCT, _attn_dims(q, k, v.shape[-1], causal)
            )
            return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), None, None

    return _FusedAttention


def _attn_dims(q: Any, k: Any, dv: int, causal: bool) -> tuple[int, ...]:
    """(B·heads, Tq, Tkv, head dim, 0, heads, kv heads, causal) of a fused attention."""
    batch = numel(q.shape[:-3]) if q.dim() > 3 else 1
    heads, tq, d = (int(s) for s in q.shape[-3:])
    kv_heads, tk = int(k.shape[-3]), int(k.shape[-2])
    return (batch * heads, tq, tk, d, 0, heads, kv_heads, int(bool(causal)))


def _modes(recorder: _Recorder, causal_model: bool):
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    fused = _fused_attention_function(recorder)
    sdpa = torch.nn.functional.scaled_dot_product_attention

    class Functions(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is sdpa:
                q, k, v = args[:3]
                mask = kwargs.get("attn_mask", args[3] if len(args) > 3 else None)
                causal = bool(kwargs.get("is_causal", False)) or (
                    mask is not None and causal_model and q.shape[-2] == k.shape[-2]
                )
                out = fused.apply(q, k, v, causal, int(v.shape[-1]))
            else:
                out = func(*args, **kwargs)
            if not recorder.backward:
                recorder.tag(out)
            return out

    class Dispatch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = func.overloadpacket.__name__
            if name == "_local_scalar_dense" and args[0].dtype == torch.bool:
                # a data-dependent check (no padding? packed sequences?) on the meta
                # device: answered as for a plain batch of whole, unpadded sequences
                return True
            out = func(*args, **kwargs)
            flat = list(args) + [v for v in kwargs.values() if isinstance(v, torch.Tensor)]
            mapped = map_op(name, tuple(flat), out)
            if mapped is not None:
                op, kind, dims = mapped
                recorder.add(name, op, kind, (*dims, 0, 0, 0))
            for o in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(o, torch.Tensor):
                    n = o.numel()
                    recorder.largest = max(recorder.largest, n)
                    if n > recorder.largest_outside_cores and not recorder.scope()[2]:
                        recorder.largest_outside_cores = n
            return out

    return Functions(), Dispatch()


def _inputs(model: Any, batch: int, seq: int) -> dict[str, Any]:
    import inspect

    import torch

    params = inspect.signature(model.forward).parameters
    ids = torch.zeros((batch, seq), dtype=torch.long, device="meta")
    kw: dict[str, Any] = {"input_ids": ids}
    if "labels" in params:
        kw["labels"] = ids
    if "next_sentence_label" in params:
        kw["next_sentence_label"] = torch.zeros((batch,), dtype=torch.long, device="meta")
    if "decoder_input_ids" in params and getattr(model.config, "is_encoder_decoder", False):
        kw["decoder_input_ids"] = ids
    if "use_cache" in params:
        kw["use_cache"] = False
    return kw


def _run(model: Any, batch: int, seq: int, names: tuple, causal: bool):
    import torch
    from torch.utils.module_tracker import ModuleTracker

    rec = _Recorder(*names)
    functions, dispatch = _modes(rec, causal)
    kw = _inputs(model, batch, seq)
    with ModuleTracker() as tracker:
        rec.tracker = tracker
        with torch.autograd.graph.saved_tensors_hooks(rec.pack, lambda t: t):
            with functions, dispatch:
                out = model(**kw)
        loss = out.loss if getattr(out, "loss", None) is not None else out[0]
        if loss.dim():
            loss = loss.sum()
        rec.backward = True
        with functions, dispatch:
            loss.backward()
    rec.held.clear()
    return rec


def _is_moe(config: Any) -> bool:
    """Whether a config has a mixture of experts."""
    return any(
        (getattr(config, name, 0) or 0) > 1
        for name in ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
    )


def _prepare(data: Mapping[str, Any], source: str, attention: str, precision: str, ampere: bool):
    torch, _tf = require_hf()
    config, model_cls, language_note = _language_model(load_hf_config(data, source), data)
    named = configured_attention(data)[0]
    kind, notes = resolve_attention(model_cls, attention, precision, ampere, named)
    notes = [*([language_note] if language_note else []), *notes]
    fuse = fused_by_substitution(model_cls, kind)
    impl = "eager" if kind == "eager" or fuse else "sdpa"
    extra: dict[str, Any] = {"attn_implementation": impl}
    half = precision in HALF_PRECISIONS
    can_set = getattr(model_cls, "_can_set_experts_implementation", None)
    if can_set is not None and can_set() and _is_moe(config):
        # the experts' products as one grouped product (static shapes on the meta
        # device; its kernel takes bf16 only)
        extra["experts_implementation"] = "grouped_mm"
        half = True
    # traced in the precision's width: half-precision steps run the casts they run
    extra["dtype"] = torch.bfloat16 if half else torch.float32
    try:
        with torch.device("meta"):
            model = model_cls._from_config(config, **extra)
    except Exception as exc:
        raise _refusal(exc, data, source) from exc
    model.train()
    if getattr(model, "loss_type", "") is None and model_cls.__name__.endswith(
        ("CausalLM", "LMHeadModel")
    ):
        model.loss_type = "ForCausalLM"  # transformers' fallback, without its warning
    return model, kind, notes, fuse


def trace_step(
    data: Mapping[str, Any],
    seq_len: int,
    *,
    attention: str = "auto",
    precision: str = "fp32",
    ampere: bool = True,
    source: str = "config",
    per_kind: bool = True,
) -> TracedStep:
    """Trace one training step of a ``config.json`` on the meta device.

    Parameters
    ----------
    data : mapping
        The content of a ``config.json``.
    seq_len : int
        Tokens per sequence [-] (the decoder's too for an encoder-decoder).
    attention : {'auto', 'eager', 'sdpa', 'flash'}
        Attention kind (:func:`resolve_attention`); with every kind but ``eager``,
        linear attention is traced as its fused kernels run it
        (:mod:`powerfit.architectures.linear_attention`).
    precision : str
        Precision of the step: half precision (fp16, bf16, AMP) is traced in bf16,
        the rest in FP32, and it resolves the attention kind.
    ampere : bool, default True
        The GPU is an Ampere or newer (fused attention kernels; see
        :func:`resolve_attention`).
    source : str
        Where the config comes from (named in errors).
    per_kind : bool, default True
        Trace each stack's shortest prefix holding every kind of layer and repeat it
        (False: trace every layer, as a check).

    Returns
    -------
    TracedStep

    Raises
    ------
    DataError
        A config transformers refuses or cannot run (the field named where known).
    ImportError
        Without the ``hf`` extra.
    """
    require_hf()
    model, kind, notes, fuse = _prepare(data, source, attention, precision, ampere)
    scans = attention != "eager"  # linear attention as its fused kernels run it
    try:
        return _trace_model(model, data, seq_len, kind, notes, source, per_kind, fuse, scans)
    except DataError:
        if not per_kind:
            raise
        # a model that reaches layers by absolute index (shared key/value caches...)
        # cannot be cut to one layer per kind: trace every layer
        model, kind, notes, fuse = _prepare(data, source, attention, precision, ampere)
        return _trace_model(model, data, seq_len, kind, notes, source, False, fuse, scans)


def _trace_model(
    model: Any,
    data: Mapping[str, Any],
    seq_len: int,
    kind: str,
    notes: list[str],
    source: str,
    per_kind: bool,
    fuse: bool = False,
    scans: bool = True,
) -> TracedStep:
    """Trace a model built on the meta device (see :func:`trace_step`).

    ``fuse``: its eager attention cores become fused attentions
    (:func:`~powerfit.architectures.attention_kinds.fuse_eager_cores`); ``scans``: its
    linear attention runs as its fused kernels'
    (:func:`~powerfit.architectures.linear_attention.fused_linear_attention`).
    """
    import torch

    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    cfg = model.config
    d_model = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "d_model", 0) or 1)
    stacks = _stacks(model)
    layer_names: dict[str, tuple[int, int]] = {}
    weights: dict[tuple[int, int], float] = {}
    n_layers = 0
    root = type(model).__name__
    fqn = {id(m): n for n, m in model.named_modules()}
    for s, (parent, attr, layers) in enumerate(stacks):
        sigs = [_signature(m) for m in layers]
        need = set(sigs)
        k = next(i + 1 for i in range(len(sigs)) if set(sigs[: i + 1]) == need)
        k = k if per_kind else len(layers)
        n_layers += len(layers)
        for i in range(k):
            traced_same = sum(1 for j in range(k) if sigs[j] == sigs[i])
            weights[(s, i)] = sigs.count(sigs[i]) / traced_same
            layer_names[f"{root}.{fqn[id(layers[i])]}"] = (s, i)
        parent._modules[attr] = torch.nn.ModuleList(layers[:k])
    param_storages = {p.untyped_storage()._cdata for p in model.parameters()}
    linear_names, attn_names = set(), set()
    for name, mod in model.named_modules():
        tracker_name = f"{root}.{name}" if name else root
        if isinstance(mod, torch.nn.Linear) or type(mod).__name__ == "Conv1D":
            linear_names.add(tracker_name)
        elif "attention" in type(mod).__name__.lower():
            attn_names.add(tracker_name)
    names = (layer_names, param_storages, linear_names, attn_names)
    causal = not bool(getattr(cfg, "is_encoder_decoder", False)) and (
        type(model).__name__.endswith(("CausalLM", "LMHeadModel"))
    )

    fallbacks: dict[str, str] = {}
    chunked: set[str] = set()

    def run(batch: int) -> _Recorder:
        try:
            with reference_fallbacks() as found, fused_linear_attention(model, scans) as swapped:
                rec = _run(model, batch, seq_len, names, causal)
            fallbacks.update(found)
            chunked.update(swapped)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(
                f"cannot trace a training step of {type(model).__name__}: "
                f"{' '.join(str(exc).split())[:300]}",
                source=source,
                column=_field_in(str(exc), data),
            ) from exc
        for p in model.parameters():
            p.grad = None
        return rec

    recs = [run(2), run(3)]
    if len(recs[0].nodes) != len(recs[1].nodes):
        # a model caching something (a cast) on its first call: compare steady steps
        recs[0] = run(2)
    if fuse:
        kv = next(
            (
                int(v)
                for k in ("num_key_value_heads", "n_head_kv", "num_kv_heads")
                if isinstance(v := getattr(cfg, k, None), int) and v > 0
            ),
            None,
        )
        found = [fuse_eager_cores(r, b, causal, kv) for r, b in zip(recs, (2, 3), strict=True)]
        if not all(found) or found[0] != found[1]:
            recs = [run(2), run(3)]
            notes = [n for n in notes if "has no SDPA attention" not in n]
            notes.append(
                f"{type(model).__name__}: no eager attention core found to time as a fused "
                f"{kind} kernel (no attention, or one of another shape): timed as traced, eager"
            )
            kind = "eager"
    if note := fallback_note(fallbacks):
        notes = [*notes, note]
    if chunked:
        notes = [*notes, LINEAR_ATTENTION_NOTE.format(names=", ".join(sorted(chunked)))]
    nodes = _merge(recs[0], recs[1], weights)
    acts = _activations(recs, weights)
    return TracedStep(
        model_type=str(cfg.model_type),
        model_class=type(model).__name__,
        n_parameters=int(n_params),
        d_model=d_model,
        seq_len=int(seq_len),
        attention=kind,
        nodes=nodes,
        activations=acts,
        layers=n_layers,
        causal=causal,
        warnings=notes,
    )


def _merge(r2: _Recorder, r3: _Recorder, weights: dict) -> list[list[Any]]:
    """Nodes of the two traces paired, checked batch-linear, merged by name and shape."""
    if len(r2.nodes) != len(r3.nodes):
        raise DataError(
            f"the step runs different operators at batch 2 and 3 ({len(r2.nodes)} and "
            f"{len(r3.nodes)}): its batch cannot be scaled"
        )
    merged: dict[tuple, list[Any]] = {}
    for a, b in zip(r2.nodes, r3.nodes, strict=True):
        phase, layer, name, op, kind, d2, core = a
        if (phase, name, op) != (b[0], b[2], b[3]):
            raise DataError(f"the step's operators differ at batch 2 and 3 ({name} vs {b[2]})")
        d3 = b[5]
        for x, y in zip(d2, d3, strict=True):
            if x != y and 2 * y != 3 * x:
                raise DataError(f"{name}: a dimension neither fixed nor proportional to batch")
        count = weights.get(layer, 1.0) if layer is not None else 1.0
        recompute = (
            "" if layer is None or phase != "forward" else ("attention" if core else "full")
        )
        if layer is not None:
            name = _layer_name(name)
        key = (name, phase, op, kind, tuple(d2), tuple(d3), recompute)
        if key in merged:
            merged[key][6] += count
        else:
            merged[key] = [name, phase, op, kind, list(d2), list(d3), count, recompute]
    return list(merged.values())


def _layer_name(name: str) -> str:
    """Layer indices replaced by ``*`` (``model.layers.0.mlp`` → ``model.layers.*.mlp``)."""
    return ".".join("*" if part.isdigit() else part for part in name.split("."))


def _activations(recs: list[_Recorder], weights: dict) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {
        k: [0.0, 0.0]
        for k in ("layers", "attention_core", "largest_layer", "other", "largest_temporary")
    }
    for i, rec in enumerate(recs):
        per_layer: dict[Any, float] = {}
        for layer, size, core in rec.saved.values():
            if layer is None:
                out["other"][i] += size
                continue
            w = weights.get(layer, 1.0)
            per_layer[layer] = per_layer.get(layer, 0.0) + size
            out["layers"][i] += w * size
            if core:
                out["attention_core"][i] += w * size
        out["largest_layer"][i] = max(per_layer.values(), default=0.0)
        out["largest_temporary"][i] = float(rec.largest)
    return out
