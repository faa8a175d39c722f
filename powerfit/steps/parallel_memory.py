"""Per-GPU memory of a training run split over many GPUs, and whether it fits.

:func:`per_gpu_memory` adds, for the busiest GPU (the first pipeline stage, which holds
the embeddings and the most micro-batches in flight):

* **weights, gradients, optimizer states** of its shard: the stage's parameters / T
  (tensor parallel), in the precision's dtypes (FP32 and mixed precision: FP32
  weights and gradients, as PyTorch AMP keeps them; pure FP16/BF16: half; AdamW two
  states in the optimizer dtype, SGD none), divided by the data-parallel degree as
  ZeRO shards them: ``optimizer`` (ZeRO-1) the states, ``gradients`` (ZeRO-2) also
  the gradients, ``full`` (ZeRO-3 = FSDP FULL_SHARD) also the weights, plus two
  layers gathered in full (the one computing and the one prefetched);
* **activations** of Korthikanti et al. (2022, eq. 2, tensor parallel without sequence
  parallelism), per layer and micro-batch: ``(s·b·d·(10 + 24/T) + 5·h·s²·b/T) · a/2``
  bytes with a the activation dtype's bytes (the formula is FP16's, a = 2; the
  attention scores, probabilities and dropout mask materialised, as eager attention
  does), times the micro-batches in flight
  (1F1B: min(m, P) on the first stage); with activation checkpointing each layer keeps
  its input only, plus one layer's full activations during recomputation;
* the **logits** of a micro-batch (the last stage: s·b·V/T in FP32, twice with their
  gradient);
* a fixed **overhead** of 1 GiB (CUDA context, NCCL buffers) and 10 % allocator
  fragmentation (assumed, not fitted: no measured multi-GPU memory here).

All sizes in bytes [B].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from powerfit.architectures.model import PRECISIONS, ModelConfig

__all__ = ["SHARDINGS", "MemoryEstimate", "per_gpu_memory", "tensor_parallel_config"]

#: ZeRO stages by name: what is sharded over the data-parallel replicas.
SHARDINGS = ("none", "optimizer", "gradients", "full")

_SIZE = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2}
_OVERHEAD_B = 1024**3
_FRAGMENTATION = 0.10


@dataclass(frozen=True)
class MemoryEstimate:
    """Memory of the busiest GPU [B], by part, and the GPU's capacity."""

    parts: dict[str, float] = field(default_factory=dict)
    capacity_bytes: float = math.inf

    @property
    def total_bytes(self) -> float:
        """All parts [B]."""
        return float(sum(self.parts.values()))

    @property
    def fits_in_memory(self) -> bool:
        """Whether the total fits the GPU's memory."""
        return self.total_bytes <= self.capacity_bytes

    def to_dict(self) -> dict[str, Any]:
        """JSON: ``parts_gib``, ``total_gib``, ``capacity_gib``, ``fits_in_memory``."""
        gib = 1024**3
        return {
            "parts_gib": {k: v / gib for k, v in self.parts.items()},
            "total_gib": self.total_bytes / gib,
            "capacity_gib": self.capacity_bytes / gib,
            "fits_in_memory": self.fits_in_memory,
        }


def tensor_parallel_config(config: ModelConfig, tp: int) -> ModelConfig:
    """The slice of a model one GPU of a tensor-parallel group computes (Megatron).

    Attention heads, key/value heads (replicated when fewer than T), the feed-forward
    width and the vocabulary (vocab-parallel embedding and head) are split T ways;
    the hidden width, normalisations and residuals are not.

    Raises
    ------
    ValueError
        When T does not divide the attention heads (the numbers named).
    """
    if tp == 1:
        return config
    if config.n_heads % tp:
        raise ValueError(f"--tp {tp} does not divide the {config.n_heads} attention heads")
    heads = config.n_heads // tp
    kv = max(1, config.n_kv_heads // tp)
    if heads % kv:
        kv = 1
    return replace(
        config,
        n_heads=heads,
        n_kv_heads=kv,
        d_ff=max(1, math.ceil(config.d_ff / tp)),
        vocab_size=max(1, math.ceil(config.vocab_size / tp)),
    )


def _dtype_bytes(precision: str) -> tuple[int, int, int]:
    """(weights and gradients, activations, optimizer states) bytes per element."""
    _mm, elt, _red, opt = PRECISIONS[precision]
    weights = _SIZE[opt] if precision.startswith("amp") else _SIZE[elt]
    return weights, _SIZE[elt], _SIZE[opt]


def per_gpu_memory(
    config: ModelConfig,
    precision: str,
    micro_batch: int,
    seq_len: int,
    *,
    tp: int = 1,
    pp: int = 1,
    dp: int = 1,
    micro_batches: int = 1,
    sharding: str = "none",
    checkpointing: bool = False,
    optimizer: str = "adamw",
    capacity_bytes: float = math.inf,
) -> MemoryEstimate:
    """Memory of the busiest GPU of a split [B] (see the module notes).

    Parameters
    ----------
    config : ModelConfig
        The whole model.
    precision : str
        One of :data:`PRECISIONS`.
    micro_batch, seq_len : int
        Sequences per micro-batch and tokens per sequence [-].
    tp, pp, dp : int
        Tensor-, pipeline- and data-parallel degrees [-].
    micro_batches : int
        Micro-batches per replica and optimizer step [-] (gradient accumulation).
    sharding : {'none', 'optimizer', 'gradients', 'full'}
        ZeRO stage 0, 1, 2, 3 (FSDP FULL_SHARD).
    checkpointing : bool
        Activation checkpointing of every layer.
    optimizer : {'adamw', 'sgd', 'none'}
        Optimizer states: AdamW two per parameter.
    capacity_bytes : float
        The GPU's memory [B] (for :attr:`MemoryEstimate.fits_in_memory`).
    """
    if sharding not in SHARDINGS:
        raise ValueError(f"sharding must be one of {', '.join(SHARDINGS)}, got {sharding!r}")
    w_b, a_b, o_b = _dtype_bytes(precision)
    local = tensor_parallel_config(config, tp)
    total_params = local.n_parameters
    L = config.n_layers + config.n_decoder_layers
    stage_layers = math.ceil(L / pp)
    # the first stage: its layers and the embeddings (whole model when pp = 1)
    embed = local.vocab_size * local.d_model + local.max_positions * local.d_model
    layer_params = max(0.0, (total_params - embed) / max(L, 1))
    params = layer_params * stage_layers + (embed if pp > 1 else total_params - layer_params * L)
    states = {"adamw": 2, "sgd": 0, "none": 0}[optimizer] * o_b * params
    grads = w_b * params
    weights = w_b * params
    gathered = 0.0
    if sharding in ("optimizer", "gradients", "full"):
        states /= dp
    if sharding in ("gradients", "full"):
        grads /= dp
    if sharding == "full" and dp > 1:
        weights /= dp
        gathered = 2 * layer_params * w_b
    s, b, d, h = seq_len, micro_batch, config.d_model, config.n_heads
    per_layer = (s * b * d * (10 + 24 / tp) + 5 * h * s * s * b / tp) * a_b / 2
    in_flight = min(micro_batches, pp)
    if checkpointing:
        acts = s * b * d * a_b * stage_layers * in_flight + per_layer
    else:
        acts = per_layer * stage_layers * in_flight
    logits = 2 * s * b * local.vocab_size * 4
    parts = {
        "weights": weights,
        "gradients": grads,
        "optimizer_states": states,
        "gathered_weights": gathered,
        "activations": acts,
        "logits": logits,
    }
    parts["fragmentation"] = _FRAGMENTATION * sum(parts.values())
    parts["overhead"] = float(_OVERHEAD_B)
    return MemoryEstimate({k: float(v) for k, v in parts.items()}, float(capacity_bytes))
