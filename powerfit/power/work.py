"""What a measured step sustains: its fractions of compute peak and DRAM bandwidth.

The board power law (:mod:`powerfit.power.board`) is fitted on measurements whose
``u_c`` (achieved FLOP/s over the compute peak at their precision) and ``u_m``
(achieved DRAM bytes/s over the bandwidth), per GPU, follow from the measured
throughput and the work of one sample or token:

* :func:`training_fractions` — single-GPU training steps (Zeus 2023, FP32 assumed):
  BERT-base from its operator graph (:func:`powerfit.steps.graph.training_step_graph`
  without the pre-training head; SQuAD at 384 tokens, Sentiment140 at 128, assumed),
  the other workloads counted on PyTorch's meta device (:data:`ZEUS_WORK`,
  ``experiments/zeus_work.py``: powerfit's graphs are of Transformers only);
* :func:`serving_fractions` — serving (ML.ENERGY 2026): a decode step reads the
  dense weights once per data-parallel replica, the routed experts its batch reaches
  and every running sequence's KV cache (:func:`decode_step_bytes`, architectures in
  :data:`DECODE_ARCH`), and does 2 FLOP per active parameter and token, output
  tokens and the prompt tokens prefilled per request (:data:`PROMPT_TOKENS` per
  ``output_len_mean`` output tokens); text-to-image
  does 2 FLOP per parameter and latent token per denoising step plus its attention
  over the joint sequence (:func:`diffusion_attention_flop`; ×2 with classifier-free
  guidance) and reads its weights once per step. Text-to-video is not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "BERT_BASE",
    "BERT_SEQ",
    "DECODE_ARCH",
    "DIFFUSION_ATTENTION",
    "ZEUS_WORK",
    "DecodeArch",
    "decode_arch",
    "decode_context",
    "decode_step_bytes",
    "diffusion_attention_flop",
    "serving_fractions",
    "training_fractions",
]

#: Work of one training step of the Zeus workloads without a graph in powerfit:
#: (FLOP per sample, DRAM bytes per sample, DRAM bytes per step) [FLOP, B, B], FP32,
#: forward + backward + an Adam step, counted on PyTorch's meta device by
#: ``experiments/zeus_work.py`` (FLOP by ``FlopCounterMode``: products and
#: convolutions; bytes: every tensor each operator reads and writes, as powerfit's
#: graphs count them): ResNet-50 at 224², ShuffleNet-v2 1× of
#: weiaicunzai/pytorch-cifar100 at 32², DeepSpeech2 of SeanNaren/deepspeech.pytorch
#: (2 convolutions, 5 bi-LSTM of 1,024) on a 12.3 s utterance (LibriSpeech's mean),
#: NeuMF of guoyang9/NCF (factor 32, MLP 256-128-64-32). The models are those of
#: the repositories Zeus trained; the utterance length and the optimizer are assumed.
ZEUS_WORK: dict[str, tuple[float, float, float]] = {
    "imagenet/resnet50": (2.43e10, 7.801e08, 2.25e09),
    "cifar100/shufflenetv2": (5.27e08, 3.768e07, 1.2e08),
    "librispeech/deepspeech2": (3.569e11, 3.629e09, 1.279e12),
    "movielens-1m/ncf": (2.584e05, 2.056e04, 1.348e08),
}

#: Tokens per sequence of the BERT workloads (SQuAD: the usual 384; Sentiment140:
#: 128, assumed) [-].
BERT_SEQ = {"squad/bert_base_uncased": 384, "sentiment140/bert_base_uncased": 128}

BERT_BASE = {
    "model_type": "bert",
    "num_hidden_layers": 12,
    "hidden_size": 768,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "vocab_size": 30522,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
}

#: Bytes per weight by precision [B].
WEIGHT_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "mxfp4": 0.53, "fp32": 4.0}


def _bert_work(workload: str, batch: int) -> tuple[float, float]:
    """(FLOP, bytes) of one BERT-base training step from its graph, head left out."""
    from powerfit.architectures.hf import from_hf_config
    from powerfit.steps.graph import training_step_graph

    g = training_step_graph(
        from_hf_config(BERT_BASE), int(batch), BERT_SEQ[workload], "fp32", "adamw"
    )
    g = g[~g.name.str.startswith(("head.", "loss."))]
    c = g["count"].to_numpy()
    return float(np.sum(g.flop.to_numpy() * c)), float(np.sum(g["bytes"].to_numpy() * c))


def _peak(spec: Any, precision: str) -> float:
    if precision == "mxfp4":  # H100: W4A16 kernels compute in BF16; B200: FP8 at least
        return spec.peak_flops.get("fp8" if "B200" in spec.name else "bf16")
    return spec.peak_flops.get(precision, spec.peak_flops["bf16"])


def training_fractions(frame: pd.DataFrame) -> pd.DataFrame:
    """``u_c`` and ``u_m`` of single-GPU FP32 training steps (Zeus workloads).

    Parameters
    ----------
    frame : pandas.DataFrame
        ``gpu`` (NVML name), ``workload`` (``dataset/network`` as in Zeus),
        ``batch_size`` [-] and ``throughput`` [samples/s].

    Returns
    -------
    pandas.DataFrame
        A copy with ``flop_step`` [FLOP], ``bytes_step`` [B], ``step_s`` [s],
        ``u_c``, ``u_m`` [-] (clipped to [0, 1]), ``u_c_raw``, ``u_m_raw`` (not
        clipped: above 1 the work or the samples per epoch are wrong) and ``tdp_w`` [W].

    Raises
    ------
    ValueError
        A workload whose work per sample is not known (named).
    """
    from powerfit.hardware.gpus import get_gpu

    z = frame.copy()
    unknown = sorted(set(z.workload) - set(ZEUS_WORK) - set(BERT_SEQ))
    if unknown:
        raise ValueError(f"no work per sample known for workload(s) {unknown}")
    flop, byts = [], []
    cache: dict[tuple[str, int], tuple[float, float]] = {}
    for w, b in zip(z.workload, z.batch_size, strict=True):
        if w in ZEUS_WORK:
            f, bs, bstep = ZEUS_WORK[w]
            flop.append(f * b)
            byts.append(bs * b + bstep)
        else:
            if (w, int(b)) not in cache:
                cache[(w, int(b))] = _bert_work(w, int(b))
            flop.append(cache[(w, int(b))][0])
            byts.append(cache[(w, int(b))][1])
    z["flop_step"], z["bytes_step"] = flop, byts
    z["step_s"] = z.batch_size / z.throughput
    specs = {g: get_gpu(g) for g in z.gpu.unique()}
    peak = z.gpu.map(lambda g: specs[g].peak_flops["fp32"])
    bw = z.gpu.map(lambda g: specs[g].memory_bandwidth)
    z["tdp_w"] = z.gpu.map(lambda g: specs[g].power_limit_w)
    z["u_c_raw"] = z.flop_step / (peak * z.step_s)
    z["u_m_raw"] = z.bytes_step / (bw * z.step_s)
    z["u_c"] = np.clip(z.u_c_raw, 0.0, 1.0)
    z["u_m"] = np.clip(z.u_m_raw, 0.0, 1.0)
    return z


@dataclass(frozen=True)
class DecodeArch:
    """What one decode step of a served LLM reads besides its weights (HF ``config.json``).

    Attributes
    ----------
    layers : int
        Layers holding a KV cache over the whole context [-].
    kv_elems : int
        KV-cache elements per token and layer [-]: 2 · KV heads · head dim (GQA), or
        the latent width (MLA: DeepSeek's 512 + 64, read once for keys and values).
    window_layers : int
        Layers whose cache is a sliding window [-] (gemma-3: 5 of 6; gpt-oss: 1 of 2).
    window : int
        Their window [tokens].
    experts, top_k : int
        Routed experts per MoE layer and experts per token (0, 0: dense) [-].
    """

    layers: int
    kv_elems: int
    window_layers: int = 0
    window: int = 0
    experts: int = 0
    top_k: int = 0


#: Decode architecture of the ML.ENERGY v3 LLMs, by a part of their model id, first
#: match (from each model's published ``config.json``). Nemotron-Nano v2 is a hybrid:
#: only its attention layers (6 of 62 in 12B, 4 of 56 in 9B) hold a KV cache; its
#: Mamba-2 state (fixed per sequence) is left out.
DECODE_ARCH: tuple[tuple[str, DecodeArch], ...] = (
    ("Llama-3.1-8B", DecodeArch(32, 2048)),
    ("-70B", DecodeArch(80, 2048)),
    ("Llama-3.1-405B", DecodeArch(126, 2048)),
    ("Llama-4-Scout-17B-16E", DecodeArch(48, 2048, experts=16, top_k=1)),
    ("Llama-4-Maverick-17B-128E", DecodeArch(48, 2048, experts=128, top_k=1)),
    ("Qwen3-Coder-480B-A35B", DecodeArch(62, 2048, experts=160, top_k=8)),
    ("235B-A22B", DecodeArch(94, 1024, experts=128, top_k=8)),
    ("30B-A3B", DecodeArch(48, 1024, experts=128, top_k=8)),
    ("Qwen3-8B", DecodeArch(36, 2048)),
    ("Qwen3-VL-8B", DecodeArch(36, 2048)),
    ("Qwen3-14B", DecodeArch(40, 2048)),
    ("Qwen3-32B", DecodeArch(64, 2048)),
    ("Qwen3-VL-32B", DecodeArch(64, 2048)),
    ("DeepSeek-", DecodeArch(61, 576, experts=256, top_k=8)),
    ("gemma-3-12b", DecodeArch(8, 4096, window_layers=40, window=1024)),
    ("gemma-3-27b", DecodeArch(10, 4096, window_layers=52, window=1024)),
    ("gpt-oss-120b", DecodeArch(18, 1024, window_layers=18, window=128, experts=128, top_k=4)),
    ("gpt-oss-20b", DecodeArch(12, 1024, window_layers=12, window=128, experts=32, top_k=4)),
    ("Nemotron-Nano-12B", DecodeArch(6, 2048)),
    ("Nemotron-Nano-9B", DecodeArch(4, 2048)),
)

#: Prompt tokens of a served request, assumed (ML.ENERGY v3 publishes output lengths
#: only) [tokens]: the context of the KV cache and the prefill's FLOP.
PROMPT_TOKENS = 512.0

#: Bytes per KV-cache element (vLLM's default: the model's activation dtype, BF16) [B].
KV_BYTES = 2.0


def decode_arch(model_id: str) -> DecodeArch | None:
    """The :data:`DECODE_ARCH` entry of a model id (None when not known)."""
    for key, arch in DECODE_ARCH:
        if key in model_id:
            return arch
    return None


def decode_step_bytes(
    arch: DecodeArch | None,
    total_params: float,
    active_params: float,
    weight_bytes: float,
    batch: float,
    context: float,
    data_parallel: int = 1,
) -> float:
    """DRAM bytes of one decode step of ``batch`` sequences, over all GPUs [B].

    * Weights: the dense part ``D`` (attention, shared experts, embeddings) once per
      data-parallel replica; of the routed experts ``X`` those the ``batch`` tokens
      route to, ``X·(1 − (1 − k/E)^batch)`` (uniform routing), with ``D`` and ``X``
      from ``total = D + X`` and ``active = D + X·k/E``. Without ``arch`` (or dense),
      every active parameter ``total·(1 − (1 − active/total)^batch)``.
    * KV cache: every sequence reads its cache, ``context`` tokens (``window`` on the
      windowed layers) × ``kv_elems`` × :data:`KV_BYTES` per layer.
    """
    b = max(float(batch), 1.0)
    if arch is not None and arch.experts > 0 and arch.top_k > 0:
        share = arch.top_k / arch.experts
        experts = (total_params - active_params) / (1.0 - share)
        dense = max(total_params - experts, 0.0)
        weights = dense * max(int(data_parallel), 1) + experts * (1 - (1 - share) ** b)
    elif arch is not None:
        weights = total_params * max(int(data_parallel), 1)
    else:
        share = active_params / total_params
        weights = total_params * (1 - (1 - share) ** b)
    kv = 0.0
    if arch is not None and np.isfinite(context):
        per_seq = arch.layers * context + arch.window_layers * min(context, arch.window)
        kv = b * per_seq * arch.kv_elems * KV_BYTES
    return weights * weight_bytes + kv


def decode_context(len_mean: float, len_sq_mean: float) -> float:
    """Mean context a running sequence reads in a decode step [tokens]:
    :data:`PROMPT_TOKENS` + E[L²] / (2·E[L]) (a request of output length ``L`` runs
    ``L`` steps at mean position ``L/2``; NaN without the lengths)."""
    if not (np.isfinite(len_mean) and len_mean > 0):
        return float("nan")
    sq = len_sq_mean if np.isfinite(len_sq_mean) else len_mean**2
    return PROMPT_TOKENS + sq / (2.0 * len_mean)


#: Attention of the text-to-image transformers (their ``config.json``), by a part of the
#: model id: (layers attending over all tokens, hidden width, text tokens in the joint
#: sequence) [-]. SANA's linear attention is in its parameters' 2 FLOP per token.
DIFFUSION_ATTENTION: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("PixArt-Sigma-XL", (28, 1152, 0)),
    ("HunyuanDiT", (40, 1408, 0)),
    ("FLUX.1", (57, 3072, 512)),
    ("stable-diffusion-3.5-large", (38, 2432, 333)),
    ("stable-diffusion-3.5-medium", (24, 1536, 333)),
)


def diffusion_attention_flop(model_id: str, image_tokens: float) -> float:
    """Attention FLOP per image token of one denoising pass [FLOP]:
    ``layers · 4 · T · hidden`` over the joint sequence of ``T`` tokens (scores and
    weighted values, 2 FLOP per multiply-add), 0 for a model not in
    :data:`DIFFUSION_ATTENTION`."""
    for key, (layers, hidden, text) in DIFFUSION_ATTENTION:
        if key in model_id:
            t = image_tokens + text
            return layers * 4.0 * t * hidden * t / image_tokens
    return 0.0


def serving_fractions(frame: pd.DataFrame) -> pd.DataFrame:
    """``u_c`` and ``u_m`` per GPU of serving measurements (ML.ENERGY; no video).

    Parameters
    ----------
    frame : pandas.DataFrame
        ``gpu``, ``kind`` (``llm`` or ``image``), ``model_id``, ``precision`` (of
        the weights), ``total_params``, ``active_params`` [-], ``batch_size`` [-],
        ``throughput`` [tokens/s or images/s], ``num_gpus`` [-], for LLMs optionally
        ``output_len_mean``, ``output_len_sq_mean`` [tokens, tokens²] and
        ``data_parallel`` [-] (KV-cache traffic, replicated weights,
        :func:`decode_step_bytes`, and prefill FLOP), and, for images, ``width``,
        ``height`` [px] and ``inference_steps`` [-].

    Returns
    -------
    pandas.DataFrame
        A copy with ``u_c``, ``u_m`` [-] (clipped to [0, 1]), ``u_m_raw`` (not
        clipped) and ``tdp_w`` [W].
    """
    from powerfit.hardware.gpus import get_gpu

    m = frame.copy()
    for col, default in (
        ("output_len_mean", np.nan),
        ("output_len_sq_mean", np.nan),
        ("data_parallel", 1),
    ):
        if col not in m:
            m[col] = default
    specs = {g: get_gpu(g) for g in m.gpu.unique()}
    uc, um = [], []
    for r in m.itertuples(index=False):
        s = specs[r.gpu]
        wbytes = WEIGHT_BYTES.get(r.precision, 2.0)
        if r.kind == "llm":
            b = max(r.batch_size, 1e-9)
            step = decode_step_bytes(
                decode_arch(r.model_id),
                r.total_params,
                r.active_params,
                wbytes,
                b,
                decode_context(r.output_len_mean, r.output_len_sq_mean),
                int(r.data_parallel) if np.isfinite(r.data_parallel) else 1,
            )
            # each output token's decode, and each request's prompt prefilled once
            lm = r.output_len_mean
            prompts = PROMPT_TOKENS / lm if np.isfinite(lm) and lm > 0 else 0.0
            flop_s = 2 * r.active_params * r.throughput * (1.0 + prompts)
            bytes_s = r.throughput / b * step
        elif r.kind == "image":
            sana = "SANA" in r.model_id
            tokens = (r.width / (32 if sana else 16)) * (r.height / (32 if sana else 16))
            cfg = 1 if "FLUX" in r.model_id else 2
            per_token = 2 * r.total_params + diffusion_attention_flop(r.model_id, tokens)
            flop_s = per_token * tokens * r.inference_steps * cfg * r.throughput
            bytes_s = r.throughput / r.batch_size * r.inference_steps * r.total_params * wbytes
        else:
            raise ValueError(f"{r.model_id}: {r.kind} serving is not modelled")
        uc.append(flop_s / (r.num_gpus * _peak(s, r.precision)))
        um.append(bytes_s / (r.num_gpus * s.memory_bandwidth))
    m["u_c"] = np.clip(uc, 0.0, 1.0)
    m["u_m"] = np.clip(um, 0.0, 1.0)
    m["u_m_raw"] = um
    m["tdp_w"] = m.gpu.map(lambda g: specs[g].power_limit_w)
    return m
