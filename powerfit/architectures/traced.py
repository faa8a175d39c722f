"""A training step traced once (:class:`TracedStep`), and its JSON form, validated.

What :func:`powerfit.architectures.trace.trace_step` returns and
:mod:`powerfit.architectures.cache` stores: plain data (strings, integers, lists),
checked field by field when read back (:meth:`TracedStep.from_json`), never executed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from powerfit.architectures.aten import KIND_ELEMENTWISE, KIND_PRODUCT, KIND_REDUCED

__all__ = ["ATTENTION_KINDS", "TRACE_VERSION", "TracedStep"]

#: Version of the trace format (part of the cache key).
TRACE_VERSION = 5

#: ``--attention`` values.
ATTENTION_KINDS = ("auto", "eager", "sdpa", "flash")


@dataclass
class TracedStep:
    """One training step traced once, for any batch and precision.

    Attributes
    ----------
    model_type : str
        The config's ``model_type``.
    model_class : str
        The transformers class traced (e.g. ``LlamaForCausalLM``).
    n_parameters : int
        Trainable parameters of the instantiated (whole) model [-].
    d_model : int
        Hidden width [-] (rows of the optimizer's passes).
    seq_len : int
        Tokens per sequence the step was traced at [-].
    attention : str
        Attention kind traced: ``eager``, ``sdpa`` or ``flash``.
    nodes : list of list
        One node per distinct operator: ``[name, phase, op, kind, dims2, dims3,
        count, recompute]``: ``dims2``/``dims3`` its (B, M, N, K, H, heads, kv_heads,
        causal) at batch 2 and 3, ``count`` its runs per step (layers repeated),
        ``recompute`` ``"full"`` (a layer's forward operator), ``"attention"`` (the
        attention core, recomputed under selective checkpointing too) or ``""``.
    activations : dict
        Bytes per FP32 element saved for the backward, at batch 2 and 3 [element]:
        ``layers`` (all layers), ``layer_inputs`` (one input per layer),
        ``attention_core`` (saved by the attention cores), ``largest_layer`` (one
        layer), ``other`` (embeddings, head, loss), ``largest_temporary`` (the
        largest tensor produced) — each a pair (batch 2, batch 3).
    layers : int
        Layers of the whole model [-].
    warnings : list of str
        What the trace could not follow.
    """

    model_type: str
    model_class: str
    n_parameters: int
    d_model: int
    seq_len: int
    attention: str
    nodes: list[list[Any]]
    activations: dict[str, list[float]]
    layers: int
    causal: bool = True
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The trace as a JSON-serialisable dict."""
        return {
            "model_type": self.model_type,
            "model_class": self.model_class,
            "n_parameters": self.n_parameters,
            "d_model": self.d_model,
            "seq_len": self.seq_len,
            "attention": self.attention,
            "nodes": self.nodes,
            "activations": self.activations,
            "layers": self.layers,
            "causal": self.causal,
            "warnings": self.warnings,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TracedStep:
        """Rebuild a trace from :meth:`to_json`'s dict, checking every field.

        Raises
        ------
        ValueError
            A field missing or of the wrong type (a damaged or foreign cache file).
        """
        if not isinstance(data, Mapping):
            raise ValueError("a trace must be a JSON object")
        want = {
            "model_type": str,
            "model_class": str,
            "n_parameters": int,
            "d_model": int,
            "seq_len": int,
            "attention": str,
            "nodes": list,
            "activations": dict,
            "layers": int,
            "causal": bool,
            "warnings": list,
        }
        for key, typ in want.items():
            if not isinstance(data.get(key), typ) or isinstance(data.get(key), bool) is not (
                typ is bool
            ):
                raise ValueError(f"trace field {key!r} missing or not a {typ.__name__}")
        if data["attention"] not in ATTENTION_KINDS[1:]:
            raise ValueError(f"trace attention {data['attention']!r} unknown")
        for node in data["nodes"]:
            _check_node(node)
        for key, pair in data["activations"].items():
            if not (
                isinstance(key, str)
                and isinstance(pair, list)
                and len(pair) == 2
                and all(isinstance(v, (int, float)) and v >= 0 for v in pair)
            ):
                raise ValueError(f"trace activations {key!r} malformed")
        if not all(isinstance(w, str) for w in data["warnings"]):
            raise ValueError("trace warnings must be strings")
        return cls(**{k: data[k] for k in want})


_OPS = frozenset(
    {
        "linear",
        "bmm",
        "attention",
        "attention_bwd",
        "softmax",
        "ln",
        "gelu",
        "relu",
        "tanh",
        "add",
        "mul",
        "div",
        "pow",
        "addu",
        "mulu",
        "divu",
        "powu",
    }
)


def _check_node(node: Any) -> None:
    ok = (
        isinstance(node, list)
        and len(node) == 8
        and isinstance(node[0], str)
        and node[1] in ("forward", "backward")
        and node[2] in _OPS
        and node[3] in (KIND_PRODUCT, KIND_REDUCED, KIND_ELEMENTWISE)
        and all(
            isinstance(d, list)
            and len(d) == 8
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in d)
            for d in node[4:6]
        )
        and isinstance(node[6], (int, float))
        and node[6] > 0
        and node[7] in ("", "full", "attention")
    )
    if not ok:
        raise ValueError(f"trace node malformed: {str(node)[:80]}")
