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
  and their gradient, in FP32 as the loss upcasts them), plus
  :data:`CONTEXT_BYTES` for the CUDA context, cuBLAS/cuDNN workspaces and allocator
  slack.

``sharding`` divides the weights, gradients and optimizer states by the number of
GPUs they are sharded over (ZeRO-3/FSDP full sharding; 1 on one GPU).
"""

from __future__ import annotations

from typing import Any

__all__ = ["BYTES_PER_PARAMETER", "CONTEXT_BYTES", "step_memory"]

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
        GPUs the weights, gradients and optimizer states are sharded over [-].

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
    if not isinstance(sharding, int) or sharding < 1:
        raise ValueError(f"sharding must be a positive integer, got {sharding!r}")
    w, g, s = BYTES_PER_PARAMETER[precision]
    n = float(trace.n_parameters) / sharding
    weights, grads = n * w, n * g
    states = n * s if optimizer == "adamw" else 0.0
    acts = trace.activations
    size = _ELEMENT[precision]
    layers = _at(acts.get("layers", (0, 0)), batch_size)
    other = _at(acts.get("other", (0, 0)), batch_size)
    if checkpointing == "full":
        inputs = float(trace.layers) * batch_size * trace.seq_len * trace.d_model
        kept = inputs + _at(acts.get("largest_layer", (0, 0)), batch_size)
    elif checkpointing == "selective":
        kept = layers - _at(acts.get("attention_core", (0, 0)), batch_size)
    else:
        kept = layers
    activations = size * (kept + other)
    workspace = 2 * 4 * _at(acts.get("largest_temporary", (0, 0)), batch_size) + CONTEXT_BYTES
    total = weights + grads + states + activations + workspace
    out: dict[str, Any] = {
        "weights_bytes": weights,
        "gradients_bytes": grads,
        "optimizer_bytes": states,
        "activations_bytes": activations,
        "workspace_bytes": workspace,
        "total_bytes": total,
        "memory_gb": total / 1e9,
        "sharding": sharding,
    }
    if capacity_bytes:
        out["capacity_gb"] = capacity_bytes / 1e9
        out["fits_in_memory"] = bool(total <= capacity_bytes)
        out["shortfall_gb"] = max(0.0, (total - capacity_bytes) / 1e9)
    return out
