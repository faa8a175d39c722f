"""One optimizer step split over many GPUs: data, tensor and pipeline parallel, ZeRO sharding.

:func:`make_split` checks a split of N GPUs into T (tensor) × P (pipeline) × dp (data)
and a global batch into micro-batches (dp = N / (T·P), gradient accumulation
m = batch / (dp · micro-batch)), refusing an impossible one with the numbers.
:func:`parallel_step_time` times the step of the busiest GPU:

* **compute**: the step graph of the slice one GPU computes (heads, key/value heads,
  FFN width and vocabulary / T) for one micro-batch, built as ``estimate --hf-config``
  builds one GPU's: the ``config.json`` sliced (:func:`sliced_hf_config`) and traced on
  the meta device (:func:`powerfit.steps.graph.traced_step_graph`, ``--attention auto``:
  SDPA's fused kernels where transformers uses them; the half-precision and fused
  attention laws), or, for a configuration whose slice cannot be traced (GPT-2's head
  width follows its head count; no ``hf`` extra), the hand-written graph of
  :func:`tensor_parallel_config`; timed by the operator laws
  (:mod:`powerfit.steps.latency`, with the GPU's calibration where given), split into
  per-layer, embedding and head parts; pipeline stage s runs its layers (L / P,
  the first one more when P does not divide L) plus the embeddings (first) or the
  head (last);
* **tensor parallel** (Megatron, no sequence parallelism): two all-reduces of the
  micro-batch's activations (s·b·d elements) per layer in the forward pass, two in
  the backward pass (two more when checkpointing recomputes the forward), one for the
  vocab-parallel embedding and one for the head's input gradient: on the critical
  path, added to each micro-batch;
* **pipeline** 1F1B: ``Σ_s t_s + (m − 1) · max_s t_s`` (with equal stages
  ``(m + P − 1) · t``; the bubble is ``(P − 1) / (m + P − 1)`` of it), each micro-batch
  also sending its activations forward and their gradients back between stages
  (send/recv laws);
* **data parallel**: the gradients of the GPU's shard (``bytes`` of the optimizer's
  dtype) reduced over the dp replicas in 25 MB buckets as DDP does, each bucket
  launched when the backward pass of the last micro-batch has produced it and after the
  previous bucket: only what runs past the end of the backward pass is **exposed**
  (the rest overlaps it). ZeRO-1 (``optimizer``) and ZeRO-2 (``gradients``)
  reduce-scatter the gradients the same way and all-gather the updated weights after
  the optimizer (exposed); ZeRO-3 / FSDP FULL_SHARD (``full``) all-gathers each
  layer's weights before its forward and again before its backward (prefetched: one
  layer ahead, overlapping compute; the first layer's is exposed) and reduce-scatters
  its gradients in the backward pass, every micro-batch;
* **optimizer**: the optimizer passes over the GPU's parameters (divided by dp when
  sharded), timed by the same laws.

Collective times are :class:`powerfit.kernels.collectives.Network`'s (Vidur's laws per
node topology; between nodes the interconnect given). Ranks are placed as Megatron
places them: T innermost (one node when T ≤ GPUs per node), then dp, then P.
Not modelled: compute slowed by concurrent communication kernels, expert parallelism,
sequence or context parallelism, interleaved pipeline schedules.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from powerfit.architectures.model import PRECISIONS, ModelConfig
from powerfit.kernels.collectives import Network
from powerfit.kernels.loss_kernels import HAND_WRITTEN_LOSS_NOTE
from powerfit.steps.calibration import Calibration
from powerfit.steps.graph import checkpointing_mode, traced_step_graph, training_step_graph
from powerfit.steps.latency import operator_latency_sources, utilisation
from powerfit.steps.memory import SHARDINGS

__all__ = [
    "DDP_BUCKET_BYTES",
    "ComputeProfile",
    "ModelShape",
    "ParallelStep",
    "Split",
    "compute_profile",
    "make_split",
    "model_flop_per_sequence",
    "parallel_step_time",
    "sliced_hf_config",
    "tensor_parallel_config",
]

#: PyTorch DDP's default gradient bucket [B] (``bucket_cap_mb=25``).
DDP_BUCKET_BYTES = 25 * 1024**2

_SIZE = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2}
_LAYER = re.compile(r"\.(?:sparse_)?layer\.|\.\*\.")
_EMBED = re.compile(r"(?:^|\.)(?:embed|wte|wpe|rotary)")

#: model types whose attention reads ``head_dim`` from the config, so that a slice of
#: their heads keeps the head width (:func:`sliced_hf_config`); Qwen 3.5's text model
#: also splits its linear-attention heads (``linear_num_key_heads``/``_value_heads``,
#: whose widths the config names).
SLICEABLE = frozenset(
    {
        "llama",
        "mistral",
        "qwen2",
        "qwen3",
        "gemma",
        "gemma2",
        "olmo",
        "olmo2",
        "granite",
        "qwen3_5_text",
    }
)
#: Linear-attention head counts split like the attention heads.
_LINEAR_HEADS = ("linear_num_key_heads", "linear_num_value_heads")


@dataclass(frozen=True)
class ModelShape:
    """What a split needs of a model the hand-written graphs do not know (a traced one).

    Attributes
    ----------
    n_heads, n_layers, d_model : int
        Attention heads, layers and hidden width [-].
    """

    n_heads: int
    n_layers: int
    d_model: int
    n_decoder_layers: int = 0
    is_encoder_decoder: bool = False


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


def sliced_hf_config(data: Mapping[str, Any], tp: int) -> dict[str, Any] | None:
    """The ``config.json`` of the slice one GPU of a T-way tensor-parallel group runs.

    Heads, key/value heads (at least one), ``intermediate_size`` and ``vocab_size``
    divided by T, ``head_dim`` pinned to the whole model's (and linear-attention heads
    divided, :data:`_LINEAR_HEADS`); a multimodal config's ``text_config`` is sliced in
    place. None when the model type does not read ``head_dim`` (:data:`SLICEABLE`) or a
    field is missing.
    """
    if tp == 1:
        return dict(data)
    text = data.get("text_config")
    if isinstance(text, Mapping):
        sliced = sliced_hf_config(text, tp)
        return None if sliced is None else {**data, "text_config": sliced}
    need = ("hidden_size", "num_attention_heads", "intermediate_size", "vocab_size")
    if data.get("model_type") not in SLICEABLE or not all(
        isinstance(data.get(k), int) for k in need
    ):
        return None
    heads = int(data["num_attention_heads"])
    if heads % tp:
        raise ValueError(f"--tp {tp} does not divide the {heads} attention heads")
    kv = int(data.get("num_key_value_heads") or heads)
    out = dict(data)
    out.update(
        num_attention_heads=heads // tp,
        num_key_value_heads=max(1, kv // tp),
        intermediate_size=math.ceil(data["intermediate_size"] / tp),
        vocab_size=math.ceil(data["vocab_size"] / tp),
        head_dim=int(data.get("head_dim") or data["hidden_size"] // heads),
    )
    for key in _LINEAR_HEADS:
        if isinstance(data.get(key), int):
            if data[key] % tp:
                raise ValueError(f"--tp {tp} does not divide the {data[key]} {key}")
            out[key] = data[key] // tp
    return out


@dataclass(frozen=True)
class Split:
    """How N GPUs and a global batch are split.

    Attributes
    ----------
    n_gpus, tp, pp, dp : int
        GPUs, tensor-, pipeline- and data-parallel degrees (N = T·P·dp) [-].
    batch_size : int
        Sequences per optimizer step (global) [-].
    micro_batch : int
        Sequences per micro-batch on one replica [-].
    micro_batches : int
        Micro-batches per replica and step (gradient accumulation, the pipeline's m) [-].
    sharding : str
        ``none``, ``optimizer`` (ZeRO-1), ``gradients`` (ZeRO-2), ``full`` (ZeRO-3 / FSDP).
    gpus_per_node : int
        GPUs in each node [-].
    """

    n_gpus: int
    tp: int
    pp: int
    dp: int
    batch_size: int
    micro_batch: int
    micro_batches: int
    sharding: str = "none"
    gpus_per_node: int = 8

    @property
    def n_nodes(self) -> int:
        """Nodes used [-]."""
        return math.ceil(self.n_gpus / self.gpus_per_node)

    @property
    def bubble_fraction(self) -> float:
        """1F1B pipeline bubble (P − 1) / (m + P − 1) [-]."""
        return (self.pp - 1) / (self.micro_batches + self.pp - 1)

    def to_dict(self) -> dict[str, Any]:
        """The fields, with ``n_nodes`` and ``bubble_fraction``."""
        return {**asdict(self), "n_nodes": self.n_nodes, "bubble_fraction": self.bubble_fraction}


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def make_split(
    config: ModelConfig,
    n_gpus: int,
    batch_size: int,
    *,
    tp: int = 1,
    pp: int = 1,
    micro_batch: int | None = None,
    sharding: str = "none",
    gpus_per_node: int = 8,
) -> Split:
    """Check and build a :class:`Split`; refuse an impossible one, naming the numbers.

    ``micro_batch`` defaults to the whole per-replica batch without pipelining
    (no accumulation) and to 1 sequence with it.

    Raises
    ------
    ValueError
        N not a multiple of T·P, T not dividing the attention heads, P above the
        layers, a batch that does not divide into dp replicas or into micro-batches,
        an unknown sharding, or sharding without data parallelism to shard over.
    """
    n = _count(n_gpus, "--gpus")
    tp, pp = _count(tp, "--tp"), _count(pp, "--pp")
    batch = _count(batch_size, "--batch-size")
    g = _count(gpus_per_node, "--gpus-per-node")
    if sharding not in SHARDINGS:
        raise ValueError(f"--sharding must be one of {', '.join(SHARDINGS)}, got {sharding!r}")
    if n % (tp * pp):
        raise ValueError(f"--gpus {n} is not a multiple of tp·pp = {tp}·{pp} = {tp * pp}")
    if config.n_heads % tp:
        raise ValueError(f"--tp {tp} does not divide the {config.n_heads} attention heads")
    layers = config.n_layers + config.n_decoder_layers
    if pp > layers:
        raise ValueError(f"--pp {pp} exceeds the model's {layers} layers")
    if pp > 1 and config.is_encoder_decoder:
        raise ValueError("pipeline parallelism of encoder-decoder models is not modelled")
    dp = n // (tp * pp)
    if batch % dp:
        raise ValueError(
            f"--batch-size {batch} does not divide into dp = {n}/({tp}·{pp}) = {dp} replicas"
        )
    per_replica = batch // dp
    m = (
        (per_replica if pp == 1 else 1)
        if micro_batch is None
        else _count(micro_batch, "--micro-batch-size")
    )
    if per_replica % m:
        raise ValueError(
            f"the per-replica batch {batch}/{dp} = {per_replica} does not divide into "
            f"micro-batches of {m} (--micro-batch-size)"
        )
    return Split(n, tp, pp, dp, batch, m, per_replica // m, sharding, g)


@dataclass
class ParallelStep:
    """Time of one optimizer step of the busiest GPU [s], by part.

    ``busy_s``: the GPU's FLOP at the peak of each row's precision [s] (the step's
    utilisation is ``busy_s / step_time_s``); ``moved_b``: the bytes its operators
    move [B] (its memory utilisation is ``moved_b / (bandwidth · step_time_s)``).
    ``step_time_s`` = ``pipeline_s``
    (compute + tensor-parallel + pipeline send/recv over all micro-batches, with the
    bubble) + ``dp_exposed_s`` (the data
    parallel / ZeRO communication not hidden) + ``optimizer_s``.
    """

    split: Split
    step_time_s: float
    compute_s: float
    tp_comm_s: float
    pp_p2p_s: float
    pipeline_s: float
    bubble_s: float
    dp_comm_s: float
    dp_exposed_s: float
    optimizer_s: float
    model_flop: float
    gpu_flop: float
    busy_s: float
    graph: pd.DataFrame
    latency_s: np.ndarray
    notes: list[str] = field(default_factory=list)
    row_source: np.ndarray | None = None
    moved_b: float = 0.0

    def breakdown(self) -> dict[str, float]:
        """The parts [s] as JSON."""
        return {
            "compute_s": self.compute_s,
            "tp_comm_s": self.tp_comm_s,
            "pp_p2p_s": self.pp_p2p_s,
            "pipeline_s": self.pipeline_s,
            "bubble_s": self.bubble_s,
            "dp_comm_s": self.dp_comm_s,
            "dp_exposed_s": self.dp_exposed_s,
            "dp_overlapped_s": max(0.0, self.dp_comm_s - self.dp_exposed_s),
            "optimizer_s": self.optimizer_s,
        }


def _overlap(bucket_s: np.ndarray, window_s: float) -> float:
    """Time [s] the buckets run past a window they are produced evenly over.

    Bucket i is ready at ``window · (i + 1) / n`` and starts when ready and after
    bucket i − 1; the last ends at ``max_j (ready_j + Σ_{k ≥ j} c_k)``.
    """
    c = np.asarray(bucket_s, float)
    if not c.size:
        return 0.0
    n = c.size
    ready = window_s * np.arange(1, n + 1) / n
    tail = np.cumsum(c[::-1])[::-1]  # Σ_{k ≥ j} c_k
    return max(0.0, float(np.max(ready + tail)) - window_s)


def _bucket_times(
    net: Network, collective: str, nbytes: float, n: int, per_node: int
) -> np.ndarray:
    """Times [s] of a collective over ``nbytes`` [B] cut into DDP's 25 MB buckets."""
    if nbytes <= 0:
        return np.zeros(0)
    k = math.ceil(nbytes / DDP_BUCKET_BYTES)
    out = np.full(k, net.time(collective, DDP_BUCKET_BYTES, n, per_node))
    out[-1] = net.time(collective, nbytes - DDP_BUCKET_BYTES * (k - 1), n, per_node)
    return out


def _timed(
    graph: pd.DataFrame,
    gpu: str,
    operator_model: Any,
    specs_only: bool,
    calibration: Calibration | None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per-row latency [s] (calibrated: scale, plus the launch cost per call)."""
    lat, source, notes = operator_latency_sources(graph, gpu, operator_model, specs_only)
    if calibration is not None:
        lat = calibration.scale * lat + calibration.launch_s
    return lat, source, notes


@dataclass
class ComputeProfile:
    """One micro-batch of the slice one GPU of a tensor-parallel group computes [s].

    ``layer_f_s``/``layer_b_s``: one layer's forward and backward (with recomputation)
    time; ``embed_s``/``head_s``: the embeddings' and the head's (forward + backward);
    ``optimizer_s``: the optimizer over all ``local_params`` (the slice's parameters);
    ``flop``: the slice's forward, backward and recomputation FLOP of one micro-batch;
    ``busy_s``/``optimizer_busy_s``: their FLOP at the peak of each row's precision
    [s] (:func:`powerfit.steps.latency.utilisation` × time), for the step's utilisation;
    ``moved_b``/``optimizer_moved_b``: the bytes they move [B] (memory utilisation).
    """

    tp: int
    micro_batch: int
    n_layers: int
    layer_f_s: float
    layer_b_s: float
    embed_s: float
    head_s: float
    optimizer_s: float
    local_params: int
    flop: float
    busy_s: float
    optimizer_busy_s: float
    moved_b: float
    optimizer_moved_b: float
    graph: pd.DataFrame
    latency_s: np.ndarray
    row_source: np.ndarray
    notes: list[str]


def compute_profile(
    config: ModelConfig,
    gpu: str,
    tp: int,
    micro_batch: int,
    seq_len: int,
    *,
    precision: str = "fp32",
    optimizer: str = "adamw",
    checkpointing: bool | str = False,
    operator_model: Any = None,
    specs_only: bool = False,
    calibration: Calibration | None = None,
    loss: bool = True,
    hf_config: Mapping[str, Any] | None = None,
    attention: str = "auto",
    attention_kernel: str = "fa2",
    loss_kernel: str = "torch",
) -> ComputeProfile:
    """Time one micro-batch of a GPU's tensor-parallel slice (see :func:`parallel_step_time`).

    With ``hf_config`` (the model's ``config.json`` as a dict) the slice is traced
    (:func:`sliced_hf_config`, ``attention`` and ``attention_kernel`` as
    ``estimate --hf-config --attention --attention-kernel``, ``loss_kernel`` as
    ``--loss-kernel``);
    without it, or when the slice cannot be traced, the hand-written graph of
    ``config`` is (a note says so). ``checkpointing``: ``none``, ``full``,
    ``selective`` (traced only; the hand-written graph recomputes in full) or a bool.
    """
    mode = checkpointing_mode(checkpointing)
    graph, why, n_local = None, None, 0
    if hf_config is not None:
        graph, n_local, why = _traced_slice(
            hf_config,
            tp,
            micro_batch,
            seq_len,
            gpu,
            precision,
            optimizer,
            mode,
            attention,
            attention_kernel,
            loss_kernel,
        )
        if graph is not None and not loss:  # the loss runs outside every module: in the
            # scope of no module (Global) or of the model itself (its class's name)
            root = graph.name.str.match(r"^(?:Global|[A-Z]\w*)\.")
            graph = graph[~root].reset_index(drop=True)
    if graph is None:
        if not isinstance(config, ModelConfig):
            if why is None:
                raise ValueError("a traced model needs its config")
            raise ValueError(f"--tp {tp}: {why}, and it has no hand-written graph: use --tp 1")
        local = tensor_parallel_config(config, tp)
        graph = training_step_graph(
            local, micro_batch, seq_len, precision, optimizer, mode != "none", loss=loss
        )
        n_local = local.n_parameters
    lat, source, notes = _timed(graph, gpu, operator_model, specs_only, calibration)
    if why:
        notes = [f"{why}: the hand-written graph is used", *notes]
        if loss and loss_kernel == "fused":
            notes.append(HAND_WRITTEN_LOSS_NOTE)
    t_row = lat * graph["count"].to_numpy()
    is_layer = graph.name.str.contains(_LAYER).to_numpy()
    phase = graph.phase.to_numpy()
    is_opt = phase == "optimizer"
    fwd = phase == "forward"
    L = config.n_layers + config.n_decoder_layers
    rest = ~is_layer & ~is_opt
    embed = graph.name.str.contains(_EMBED).to_numpy()
    return ComputeProfile(
        tp=tp,
        micro_batch=micro_batch,
        n_layers=L,
        layer_f_s=float(t_row[is_layer & fwd].sum()) / L,
        layer_b_s=float(t_row[is_layer & ~fwd & ~is_opt].sum()) / L,
        embed_s=float(t_row[rest & embed].sum()),
        head_s=float(t_row[rest & ~embed].sum()),
        optimizer_s=float(t_row[is_opt].sum()),
        local_params=n_local,
        flop=float((graph.flop * graph["count"])[~is_opt].sum()),
        busy_s=_busy(graph, lat, t_row, ~is_opt, gpu),
        optimizer_busy_s=_busy(graph, lat, t_row, is_opt, gpu),
        moved_b=float((graph["bytes"] * graph["count"])[~is_opt].sum()),
        optimizer_moved_b=float((graph["bytes"] * graph["count"])[is_opt].sum()),
        graph=graph,
        latency_s=lat,
        row_source=source,
        notes=notes,
    )


def _traced_slice(
    data: Mapping[str, Any],
    tp: int,
    batch: int,
    seq: int,
    gpu: str,
    precision: str,
    optimizer: str,
    mode: str,
    attention: str,
    attention_kernel: str = "fa2",
    loss_kernel: str = "torch",
) -> tuple[pd.DataFrame | None, int, str | None]:
    """(traced graph of the slice, its parameters, None), or (None, 0, why the slice
    cannot be traced)."""
    from powerfit.architectures.cache import cached_trace
    from powerfit.architectures.trace import MissingExtraError
    from powerfit.exceptions import DataError
    from powerfit.hardware.gpus import get_gpu

    sliced = sliced_hf_config(data, tp)
    kind = data.get("model_type")
    if sliced is None:
        return (
            None,
            0,
            (
                f"tensor-parallel slices of {kind} are not traced (its head width follows its "
                "head count)"
            ),
        )
    ampere = "bf16" in get_gpu(gpu).peak_flops  # as estimate --hf-config
    try:
        trace, _hit = cached_trace(
            sliced, seq, attention=attention, precision=precision, ampere=ampere
        )
    except (MissingExtraError, DataError) as exc:
        return None, 0, str(exc)
    graph = traced_step_graph(
        trace, batch, precision, optimizer, mode, attention_kernel, loss_kernel
    )
    return graph, int(trace.n_parameters), None


def _busy(graph: pd.DataFrame, lat: np.ndarray, t_row: np.ndarray, mask: np.ndarray, gpu: str):
    """Time [s] the rows' FLOP take at their precision's peak."""
    if not mask.any():
        return 0.0
    rows = graph[mask].reset_index(drop=True)
    return utilisation(rows, lat[mask], gpu) * float(t_row[mask].sum())


@lru_cache(maxsize=256)
def model_flop_per_sequence(
    config: ModelConfig, seq_len: int, precision: str, loss: bool
) -> float:
    """Forward + backward FLOP of one sequence of the whole model [FLOP] (no recomputation)."""
    full = training_step_graph(config, 1, seq_len, precision, "none", False, loss=loss)
    return float((full.flop * full["count"]).sum())


def parallel_step_time(
    config: ModelConfig,
    gpu: str,
    split: Split,
    seq_len: int,
    *,
    precision: str = "fp32",
    optimizer: str = "adamw",
    checkpointing: bool | str = False,
    network: Network | None = None,
    operator_model: Any = None,
    specs_only: bool = False,
    calibration: Calibration | None = None,
    loss: bool = True,
    profile: ComputeProfile | None = None,
    hf_config: Mapping[str, Any] | None = None,
    attention: str = "auto",
    attention_kernel: str = "fa2",
    loss_kernel: str = "torch",
    flop_per_sequence: float | None = None,
) -> ParallelStep:
    """Time of one optimizer step of a split [s] (see the module notes).

    Parameters
    ----------
    config : ModelConfig
        The whole model.
    gpu : str
        GPU name.
    split : Split
        From :func:`make_split`.
    seq_len : int
        Tokens per sequence [-].
    precision, optimizer, checkpointing
        As :func:`powerfit.steps.graph.training_step_graph`.
    network : Network, optional
        The collectives (default ``Network(gpu, split.gpus_per_node)``).
    operator_model, specs_only, calibration
        As :func:`powerfit.steps.latency.operator_latency_sources`; the calibration
        scales every row and adds its launch cost per call.
    loss : bool, default True
        Include the loss (NeuSight's measured steps have none).
    profile : ComputeProfile, optional
        The micro-batch already timed (:func:`compute_profile` with the same
        arguments, ``split.tp`` and ``split.micro_batch``), e.g. shared by the planner's
        splits.
    hf_config, attention, attention_kernel, loss_kernel
        The ``config.json`` whose slice is traced, the attention kind, the
        fused-attention kernel and the loss's kernels (:func:`compute_profile`).
    flop_per_sequence : float, optional
        The whole model's forward and backward FLOP of one sequence [FLOP] for the MFU
        (default :func:`model_flop_per_sequence` of ``config``).
    """
    net = Network(gpu, split.gpus_per_node) if network is None else network
    T, P, dp, G = split.tp, split.pp, split.dp, split.gpus_per_node
    m, b, s = split.micro_batches, split.micro_batch, int(seq_len)
    prof = profile or compute_profile(
        config,
        gpu,
        T,
        b,
        s,
        precision=precision,
        optimizer=optimizer,
        checkpointing=checkpointing,
        operator_model=operator_model,
        specs_only=specs_only,
        calibration=calibration,
        loss=loss,
        hf_config=hf_config,
        attention=attention,
        attention_kernel=attention_kernel,
        loss_kernel=loss_kernel,
    )
    if (prof.tp, prof.micro_batch) != (T, b):
        raise ValueError("the profile was timed for another tensor-parallel degree or micro-batch")
    notes = list(prof.notes)
    L = prof.n_layers
    layer_f, layer_b = prof.layer_f_s, prof.layer_b_s
    sizes = [L // P + (1 if i < L % P else 0) for i in range(P)]
    stage_t = [n_l * (layer_f + layer_b) for n_l in sizes]
    stage_t[0] += prof.embed_s
    stage_t[-1] += prof.head_s
    # tensor parallel: all-reduces of the micro-batch's activations, on the critical path
    act_b = _SIZE[PRECISIONS[precision][1]]
    tp_bytes = b * s * config.d_model * act_b
    per_layer_ar = 6 if checkpointing_mode(checkpointing) == "full" else 4
    ar = net.time("all_reduce", tp_bytes, T, per_node=min(T, G))
    tp_stage = [n_l * per_layer_ar * ar for n_l in sizes]
    if T > 1:
        tp_stage[0] += ar
        tp_stage[-1] += ar
        if T > G:
            notes.append(f"tensor parallel over {T} GPUs spans nodes ({G} per node)")
    # pipeline send/recv of the activations and their gradients
    p2p = 0.0
    if P > 1:
        per_node = 2 if T * dp * 2 <= G else 1
        p2p = 2 * net.time("send_recv", tp_bytes / T, 2, per_node=per_node)
    per_mb = [a + c + (p2p if P > 1 else 0.0) for a, c in zip(stage_t, tp_stage, strict=False)]
    pipeline = float(sum(per_mb) + (m - 1) * max(per_mb))
    bubble = pipeline - m * max(per_mb)
    busiest = int(np.argmax(per_mb))
    # the busiest stage's parameters and gradients
    total_local = prof.local_params
    stage_params = total_local * sizes[busiest] / L if P > 1 else float(total_local)
    grad_b = _SIZE[PRECISIONS[precision][3]]
    grad_bytes = stage_params * grad_b
    dp_node = max(1, min(dp, G // T)) if T < G else 1
    window = sizes[busiest] * layer_b  # the last micro-batch's backward pass
    dp_comm = dp_exposed = 0.0
    if dp > 1:
        if split.sharding == "none":
            times = _bucket_times(net, "all_reduce", grad_bytes, dp, dp_node)
            dp_comm, dp_exposed = float(times.sum()), _overlap(times, window)
        elif split.sharding in ("optimizer", "gradients"):
            times = _bucket_times(net, "reduce_scatter", grad_bytes, dp, dp_node)
            gather = net.time("all_gather", grad_bytes, dp, dp_node)
            dp_comm = float(times.sum()) + gather
            dp_exposed = _overlap(times, window) + gather
        else:  # ZeRO-3 / FSDP: per layer, every micro-batch
            layer_bytes = grad_bytes / max(sizes[busiest], 1)
            ag = net.time("all_gather", layer_bytes, dp, dp_node)
            rs = net.time("reduce_scatter", layer_bytes, dp, dp_node)
            n_l = sizes[busiest]
            exposed_f = ag + max(0.0, n_l * ag - n_l * layer_f)
            exposed_b = max(0.0, n_l * (ag + rs) - n_l * layer_b)
            dp_comm = m * n_l * (2 * ag + rs)
            dp_exposed = m * (exposed_f + exposed_b)
    # the optimizer over the GPU's (sharded) parameters
    opt_t = prof.optimizer_s * stage_params / max(total_local, 1)
    if split.sharding != "none" and dp > 1:
        opt_t /= dp
    step = pipeline + dp_exposed + opt_t
    # FLOP: the whole model's forward + backward (no recomputation), and the GPU's own
    if flop_per_sequence is None:
        flop_per_sequence = model_flop_per_sequence(config, s, precision, loss)
    model_flop = flop_per_sequence * split.batch_size
    gpu_flop = prof.flop * m * sizes[busiest] / L
    share_opt = opt_t / prof.optimizer_s if prof.optimizer_s > 0 else 0.0
    busy = prof.busy_s * m * sizes[busiest] / L + prof.optimizer_busy_s * share_opt
    moved = prof.moved_b * m * sizes[busiest] / L + prof.optimizer_moved_b * share_opt
    return ParallelStep(
        split=split,
        step_time_s=float(step),
        compute_s=float(m * max(stage_t)),
        tp_comm_s=float(m * tp_stage[busiest]),
        pp_p2p_s=float(m * p2p),
        pipeline_s=pipeline,
        bubble_s=float(bubble),
        dp_comm_s=float(dp_comm),
        dp_exposed_s=float(dp_exposed),
        optimizer_s=float(opt_t),
        model_flop=model_flop,
        gpu_flop=gpu_flop,
        busy_s=float(busy),
        graph=prof.graph,
        latency_s=prof.latency_s,
        notes=list(dict.fromkeys(notes + net.notes)),
        row_source=prof.row_source,
        moved_b=float(moved),
    )
