"""Peak memory of one training step on one GPU: does the model fit?

:func:`step_memory` adds what the step holds at its peak, the end of the forward
pass (or, with checkpointing, the recomputation of one layer):

* **weights, gradients and optimizer states**, per parameter, by precision and
  optimizer (:data:`BYTES_PER_PARAMETER`): FP32/TF32 keep FP32 weights and gradients
  (4 + 4 B) and AdamW two FP32 moments (8 B); pure FP16/BF16 keep all of them in half
  precision (2 + 2 + 4 B); automatic mixed precision keeps FP32 master weights,
  gradients and moments as FP32 training (4 + 4 + 8 B) plus the half-precision copies
  of the weights autocast casts and keeps for the backward (2 B). SGD (no momentum)
  keeps no state.
* **activations**: the tensors the forward saves for the backward, counted on the
  traced step (:class:`powerfit.architectures.trace.TracedStep`; parameters
  excluded), in the precision's element-wise width. With ``full`` checkpointing each
  layer keeps only its input, and one layer's activations exist again while it is
  recomputed; with ``selective`` the attention cores' saved tensors are dropped (for
  eager attention the T×T scores and probabilities, for fused attention its output
  and log-sum-exp).
* **workspace**: the largest temporary tensor of the step twice (e.g. the logits
  and their gradient, in FP32 as transformers' loss upcasts them; in the step's
  element-wise precision with a fused loss, ``loss_kernel="fused"``), plus
  :data:`CONTEXT_BYTES` for the CUDA context, cuBLAS/cuDNN workspaces and allocator
  slack.

A split over many GPUs (:mod:`powerfit.steps.parallel`) is the same count for its
busiest GPU, the first pipeline stage:

* weights, gradients and optimizer states divided by ``tp · pp`` (Megatron's tensor
  and pipeline shards) and, as ZeRO shards them over ``sharding`` data-parallel
  replicas (:data:`SHARDINGS`): ``optimizer`` (ZeRO-1) the states, ``gradients``
  (ZeRO-2) also the gradients, ``full`` (ZeRO-3 = FSDP FULL_SHARD) also the weights,
  plus two layers' weights gathered whole (the one computing and the one prefetched)
  in the compute precision; under automatic mixed precision FSDP gathers the
  half-precision weights layer by layer (``MixedPrecision(param_dtype=bf16)``), so no
  whole half-precision copy of the model is kept (4 B of FP32 shard per parameter, and
  the two gathered layers at 2 B);
* the traced layers' activations of one micro-batch for the stage's ``ceil(L / pp)``
  layers, times the micro-batches in flight (1F1B: ``min(m, pp)`` on the first
  stage), divided by ``tp`` (heads and feed-forward width split; the layer inputs
  kept under full checkpointing are replicated, not divided); the embeddings', head's
  and loss's activations and the workspace divided by ``tp`` (vocabulary-parallel).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "BYTES_PER_PARAMETER",
    "CONTEXT_BYTES",
    "SHARDINGS",
    "memory_warning",
    "step_memory",
]

#: ZeRO stages by name: what is sharded over the data-parallel replicas.
SHARDINGS = ("none", "optimizer", "gradients", "full")

#: precision -> (weights, gradients, AdamW states) bytes per parameter [B].
BYTES_PER_PARAMETER: dict[str, tuple[float, float, float]] = {
    "fp32": (4.0, 4.0, 8.0),
    "tf32": (4.0, 4.0, 8.0),
    "fp16": (2.0, 2.0, 4.0),
    "bf16": (2.0, 2.0, 4.0),
    "amp-fp16": (4.0 + 2.0, 4.0, 8.0),
    "amp-bf16": (4.0 + 2.0, 4.0, 8.0),
}

#: CUDA context, library workspaces and allocator slack [B].
CONTEXT_BYTES = 0.5 * 1024**3

_ELEMENT = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "amp-fp16": 2, "amp-bf16": 2}


def _at(pair: Any, batch: int) -> float:
    """A count traced at batch 2 and 3, at ``batch`` (it is affine in the batch)."""
    b2, b3 = float(pair[0]), float(pair[1])
    return max(0.0, b2 + (b3 - b2) * (batch - 2))


def step_memory(
    trace: Any,
    batch_size: int,
    *,
    precision: str = "fp32",
    optimizer: str = "adamw",
    checkpointing: str = "none",
    capacity_bytes: float | None = None,
    sharding: int = 1,
    sharded: str = "full",
    tp: int = 1,
    pp: int = 1,
    in_flight: int = 1,
    loss_kernel: str = "torch",
) -> dict[str, Any]:
    """Peak memory of one training step on one GPU [B].

    Parameters
    ----------
    trace : TracedStep
        The traced step (:func:`powerfit.architectures.cache.cached_trace`).
    batch_size : int
        Sequences per step on this GPU [-].
    precision : str
        One of :data:`BYTES_PER_PARAMETER`'s keys.
    optimizer : {"adamw", "sgd", "none"}
        The parameter update.
    checkpointing : {"none", "full", "selective"}
        Activation checkpointing.
    capacity_bytes : float, optional
        The GPU's memory [B]; gives ``fits_in_memory`` and ``shortfall_bytes``.
    sharding : int, default 1
        Data-parallel replicas (ZeRO degree) the ``sharded`` parts are split over [-].
    sharded : {"none", "optimizer", "gradients", "full"}, default "full"
        What ZeRO shards (:data:`SHARDINGS`; ``full`` = ZeRO-3 / FSDP FULL_SHARD).
    tp, pp : int, default 1
        Tensor- and pipeline-parallel degrees [-].
    in_flight : int, default 1
        Micro-batches whose activations the GPU holds at once [-] (1F1B's first
        stage: ``min(m, pp)``); ``batch_size`` is then the micro-batch.
    loss_kernel : {"torch", "fused"}, default "torch"
        The cross-entropy's kernels (:data:`powerfit.kernels.loss_kernels.LOSS_KERNELS`): the
        workspace's two largest temporaries are FP32 (``torch``: the upcast logits and
        their gradient) or in the element-wise precision (``fused``).

    Returns
    -------
    dict
        ``weights_bytes``, ``gradients_bytes``, ``optimizer_bytes``,
        ``activations_bytes``, ``workspace_bytes``, ``total_bytes`` [B],
        ``memory_gb`` (total, 1 GB = 1e9 B) and, with a capacity,
        ``capacity_gb``, ``fits_in_memory`` and ``shortfall_gb``.

    Examples
    --------
    >>> from powerfit.architectures.trace import TracedStep
    >>> t = TracedStep("gpt2", "GPT2LMHeadModel", 10**9, 1024, 512, "sdpa", [],
    ...                {"layers": [0, 0], "other": [0, 0]}, 24)
    >>> step_memory(t, 1)["weights_bytes"]
    4000000000.0
    """
    if precision not in BYTES_PER_PARAMETER:
        raise ValueError(f"precision {precision!r} unknown")
    if optimizer not in ("adamw", "sgd", "none"):
        raise ValueError(f"optimizer must be adamw, sgd or none, got {optimizer!r}")
    for name, value in (("sharding", sharding), ("tp", tp), ("pp", pp), ("in_flight", in_flight)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if sharded not in SHARDINGS:
        raise ValueError(f"sharded must be one of {', '.join(SHARDINGS)}, got {sharded!r}")
    zero = SHARDINGS.index(sharded) if sharding > 1 else 0
    w, g, s = BYTES_PER_PARAMETER[precision]
    n = float(trace.n_parameters) / (tp * pp)
    gathered_width = w
    if zero >= 3 and precision.startswith("amp-"):
        # FSDP gathers the half-precision copy per layer: FP32 shards only
        w, gathered_width = 4.0, 2.0
    weights = n * w / (sharding if zero >= 3 else 1)
    grads = n * g / (sharding if zero >= 2 else 1)
    states = n * s / (sharding if zero >= 1 else 1) if optimizer == "adamw" else 0.0
    layers_total = max(int(trace.layers), 1)
    gathered = 2 * n * gathered_width / layers_total if zero >= 3 else 0.0
    acts = trace.activations
    size = _ELEMENT[precision]
    stage = math.ceil(layers_total / pp) / layers_total  # the first stage's share of layers
    layers = _at(acts.get("layers", (0, 0)), batch_size) * stage
    other = _at(acts.get("other", (0, 0)), batch_size)
    if checkpointing == "full":
        inputs = stage * float(trace.layers) * batch_size * trace.seq_len * trace.d_model
        kept = inputs * in_flight + _at(acts.get("largest_layer", (0, 0)), batch_size) / tp
    elif checkpointing == "selective":
        core = _at(acts.get("attention_core", (0, 0)), batch_size) * stage
        kept = (layers - core) * in_flight / tp
    else:
        kept = layers * in_flight / tp
    activations = size * (kept + other / tp)
    largest = _at(acts.get("largest_temporary", (0, 0)), batch_size) / tp
    if loss_kernel not in ("torch", "fused"):
        raise ValueError(f"loss_kernel must be torch or fused, got {loss_kernel!r}")
    workspace = 2 * (4 if loss_kernel == "torch" else size) * largest + CONTEXT_BYTES
    total = weights + grads + states + gathered + activations + workspace
    out: dict[str, Any] = {
        "weights_bytes": weights,
        "gradients_bytes": grads,
        "optimizer_bytes": states,
        "gathered_bytes": gathered,
        "activations_bytes": activations,
        "workspace_bytes": workspace,
        "total_bytes": total,
        "memory_gb": total / 1e9,
        "sharding": sharding,
        "sharded": sharded if sharding > 1 else "none",
    }
    if capacity_bytes:
        out["capacity_gb"] = capacity_bytes / 1e9
        out["fits_in_memory"] = bool(total <= capacity_bytes)
        out["shortfall_gb"] = max(0.0, (total - capacity_bytes) / 1e9)
    return out


def memory_warning(memory: dict[str, Any], gpu: str) -> str:
    """One line naming the shortfall of a step that does not fit on ``gpu``."""
    parts = ", ".join(
        f"{name} {memory[key] / 1e9:.1f}"
        for name, key in (
            ("weights", "weights_bytes"),
            ("gradients", "gradients_bytes"),
            ("optimizer", "optimizer_bytes"),
            ("activations", "activations_bytes"),
            ("workspace", "workspace_bytes"),
        )
    )
    return (
        f"does not fit in memory: the step needs {memory['memory_gb']:.1f} GB at its peak "
        f"({parts} GB), {gpu} has {memory['capacity_gb']:.1f} GB: "
        f"{memory['shortfall_gb']:.1f} GB short"
    )
