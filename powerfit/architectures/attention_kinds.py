"""Which attention a traced step runs, and fused attention for classes that run only eager.

:func:`resolve_attention` turns ``--attention`` (and what a ``config.json`` names for its
training code, :func:`configured_attention`) into the kind traced; a class transformers
runs only eager (no SDPA) that is asked for a fused kind is traced eager and its
attention cores replaced by fused attentions (:func:`fuse_eager_cores`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from powerfit.architectures.aten import KIND_PRODUCT
from powerfit.architectures.traced import ATTENTION_KINDS

__all__ = [
    "HALF_PRECISIONS",
    "MPT_ATTN_IMPL",
    "configured_attention",
    "fuse_eager_cores",
    "fused_by_substitution",
    "resolve_attention",
]

#: Precisions whose attention runs in half precision (fused kernels need it).
HALF_PRECISIONS = ("fp16", "bf16", "amp-fp16", "amp-bf16")

#: ``attn_config.attn_impl`` of an MPT ``config.json`` (llm-foundry's training code) ->
#: (attention kind, fused-attention kernel) it runs; ``torch`` is eager.
MPT_ATTN_IMPL = {"triton": ("flash", "triton"), "flash": ("flash", "fa2")}


def configured_attention(data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(attention kind, kernel) a ``config.json`` names for its training code, else (None, None).

    Only MPT's configs name one: ``attn_config.attn_impl`` is what llm-foundry runs
    (``triton``: the Triton FlashAttention, ``flash``: FlashAttention-2, ``torch``:
    eager, as transformers' ``MptForCausalLM`` always runs).

    Examples
    --------
    >>> configured_attention({"model_type": "mpt", "attn_config": {"attn_impl": "triton"}})
    ('flash', 'triton')
    >>> configured_attention({"model_type": "llama"})
    (None, None)
    """
    if data.get("model_type") != "mpt" or not isinstance(data.get("attn_config"), Mapping):
        return None, None
    return MPT_ATTN_IMPL.get(data["attn_config"].get("attn_impl"), (None, None))


def _has_attention(model_cls: Any) -> bool:
    """Whether the model's modeling file defines an attention module (Mamba's does not)."""
    import sys

    module = sys.modules.get(model_cls.__module__)
    return any(
        isinstance(obj, type) and key.endswith("Attention")
        for key, obj in vars(module or object()).items()
    )


def resolve_attention(
    model_cls: Any,
    attention: str,
    precision: str,
    ampere: bool = True,
    named: str | None = None,
) -> tuple[str, list[str]]:
    """The attention kind a step runs, and why where it differs from the one asked.

    ``auto`` is what transformers runs for that model and precision: SDPA's fused
    kernels (FlashAttention, memory-efficient) where the model class supports SDPA,
    the step is in half precision (fp16, bf16, with or without AMP) and the GPU is an
    Ampere or newer (``ampere``); eager elsewhere (FP32 steps, as the measured FP32
    steps that calibrate them ran; older GPUs; models without SDPA) — unless the
    config names its training code's attention (``named``,
    :func:`configured_attention`: MPT's ``attn_config.attn_impl``), which ``auto``
    then follows in half precision on an Ampere or newer GPU. ``flash`` needs half
    precision and an Ampere or newer GPU, otherwise it falls back (SDPA, or eager)
    with a warning. ``sdpa`` asked for explicitly is fused in every precision
    (PyTorch's memory-efficient kernel runs FP32).

    A model class transformers runs only eager (no SDPA) keeps the fused kind asked
    for: its eager attention core is traced and then timed as one fused kernel forward
    and one backward (as training code that fuses it runs, e.g. llm-foundry's MPT;
    :func:`fused_by_substitution`), with a note that says so.
    """
    if attention not in ATTENTION_KINDS:
        raise ValueError(f"attention must be one of {', '.join(ATTENTION_KINDS)}")
    notes: list[str] = []
    name = model_cls.__name__
    sdpa = bool(getattr(model_cls, "_supports_sdpa", False))
    flash = bool(
        getattr(model_cls, "_supports_flash_attn", False)
        or getattr(model_cls, "_supports_flash_attn_2", False)
    )
    half = precision in HALF_PRECISIONS
    if attention == "auto":
        if named is None or not (half and ampere):
            kind = "sdpa" if sdpa and half and ampere else "eager"
            if kind == "eager" and half and ampere and _has_attention(model_cls):
                notes.append(
                    f"{name} has no SDPA attention in transformers: timed as its eager "
                    "attention (the T×T scores written to memory); --attention flash times "
                    "one fused kernel, as training code that fuses it runs"
                )
            return kind, notes
        notes.append(f"the config's attn_config.attn_impl runs {named} attention")
        attention = named
    fallback = "sdpa" if sdpa else "eager"
    if attention == "flash":
        if not half:
            notes.append(
                f"flash attention runs in fp16/bf16 only, not {precision}: falls back to "
                f"{fallback}"
            )
            return fallback, notes
        if not ampere:
            notes.append(f"flash attention needs an Ampere or newer GPU: falls back to {fallback}")
            return fallback, notes
        if not flash and sdpa:
            notes.append(f"{name} does not support flash attention: falls back to sdpa")
            return "sdpa", notes
    if attention != "eager" and not sdpa:
        notes.append(
            f"{name} has no SDPA attention in transformers: traced eager, its attention core is "
            f"timed as one fused {attention} kernel, as training code that fuses it runs"
        )
    return attention, notes


def fused_by_substitution(model_cls: Any, kind: str) -> bool:
    """Whether a fused ``kind`` is traced eager and then substituted: the class has no
    SDPA, through which the tracer sees a fused attention (:func:`fuse_eager_cores`)."""
    return kind != "eager" and not getattr(model_cls, "_supports_sdpa", False)


def fuse_eager_cores(rec: Any, batch: int, causal: bool, kv_heads: int | None) -> int:
    """Replace a trace's eager attention cores by fused attentions; the number replaced.

    A core is a pair of batched products inside an attention module, scores
    ``(B·H, Sq, Sk, D)`` then context ``(B·H, Sq, D, Sk)``. Its operators that touch an
    Sq×Sk tensor (the products; scale, bias, mask, softmax, dropout and casts over rows
    of Sk elements, a multiple of batch·Sq rows; forward and backward) and the tensors it
    saves of a multiple of Sq·Sk elements are dropped; one ``attention`` node and
    one ``attention_bwd`` node take their place (heads ``B·H / batch``, ``kv_heads``
    from the config or the heads, ``causal`` as the model), saving the output and the
    row log-sum-exp as a fused kernel does. 0 when the pattern is not there (the trace
    is then left unchanged).
    """
    fwd = [n for n in rec.nodes if n[0] == "forward" and n[6] and n[3] == "bmm"]
    if not fwd or len(fwd) % 2:
        return 0
    cores = []
    for a, b in zip(fwd[::2], fwd[1::2], strict=True):
        bh, sq, sk, d = (int(x) for x in a[5][:4])
        if a[1] != b[1] or tuple(int(x) for x in b[5][:4]) != (bh, sq, d, sk) or bh % batch:
            return 0
        cores.append((a[1], a[2].rsplit(".", 1)[0], bh, sq, sk, d))
    shapes = {(layer, bh, sq, sk) for layer, _path, bh, sq, sk, _d in cores}
    square = {(sq, sk) for _l, _b, sq, sk in shapes} | {(sk, sq) for _l, _b, sq, sk in shapes}

    def touches(node: tuple) -> bool:
        _phase, layer, _name, op, kind, dims, core = node
        if not core:
            return False
        if kind == KIND_PRODUCT:
            B, M, N, K = (int(x) for x in dims[:4])
            pairs = {(M, N), (M, K), (K, N)}
            return op == "bmm" and any(
                layer == lay and B == bh and bool(pairs & square) for lay, bh, _q, _k in shapes
            )
        rows, width = int(dims[0]), int(dims[4])
        return any(
            layer == lay and width == k and rows % (batch * q) == 0 and rows > 0
            for lay, _b, q, k in shapes
        )

    nodes = [n for n in rec.nodes if not touches(n)]
    for layer, path, bh, sq, sk, d in cores:
        heads = bh // batch
        kv = kv_heads if kv_heads and heads % kv_heads == 0 else heads
        dims = (bh, sq, sk, d, 0, heads, kv, int(causal))
        nodes.append(("forward", layer, f"{path}.sdpa", "attention", KIND_PRODUCT, dims, True))
        nodes.append(
            ("backward", layer, f"{path}.sdpa_grad", "attention_bwd", KIND_PRODUCT, dims, True)
        )
    rec.nodes = nodes
    for key, (layer, size, core) in list(rec.saved.items()):
        if core and any(
            layer == lay and size % (q * k) == 0 and size >= batch * q * k
            for lay, _b, q, k in shapes
        ):
            del rec.saved[key]
    for i, (layer, _path, bh, sq, _sk, d) in enumerate(cores):
        # the kernel's output and its FP32 row log-sum-exp (two half-precision elements)
        rec.saved[-1 - i] = (layer, bh * sq * d + 2 * bh * sq, True)
    rec.largest = rec.largest_outside_cores
    return len(cores)
