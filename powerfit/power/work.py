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
* :func:`serving_fractions` — serving (ML.ENERGY 2026): LLM decoding moves the
  weights it touches once per iteration and does 2 FLOP per active parameter and
  token; text-to-image does 2 FLOP per parameter and latent token per denoising step
  (×2 with classifier-free guidance; attention left out, ≈ 10 % at 4,096 tokens).
  Text-to-video is not modelled (attention over ~30 k tokens dominates its FLOP).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["BERT_BASE", "BERT_SEQ", "ZEUS_WORK", "serving_fractions", "training_fractions"]

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


def serving_fractions(frame: pd.DataFrame) -> pd.DataFrame:
    """``u_c`` and ``u_m`` per GPU of serving measurements (ML.ENERGY; no video).

    Parameters
    ----------
    frame : pandas.DataFrame
        ``gpu``, ``kind`` (``llm`` or ``image``), ``model_id``, ``precision`` (of
        the weights), ``total_params``, ``active_params`` [-], ``batch_size`` [-],
        ``throughput`` [tokens/s or images/s], ``num_gpus`` [-] and, for images,
        ``width``, ``height`` [px] and ``inference_steps`` [-].

    Returns
    -------
    pandas.DataFrame
        A copy with ``u_c``, ``u_m`` [-] (clipped to [0, 1]) and ``tdp_w`` [W].
    """
    from powerfit.hardware.gpus import get_gpu

    m = frame.copy()
    specs = {g: get_gpu(g) for g in m.gpu.unique()}
    uc, um = [], []
    for r in m.itertuples(index=False):
        s = specs[r.gpu]
        wbytes = WEIGHT_BYTES.get(r.precision, 2.0)
        if r.kind == "llm":
            share = r.active_params / r.total_params
            touched = r.total_params * (1 - (1 - share) ** max(r.batch_size, 1.0))
            flop_s = 2 * r.active_params * r.throughput
            bytes_s = r.throughput / max(r.batch_size, 1e-9) * touched * wbytes
        elif r.kind == "image":
            sana = "SANA" in r.model_id
            tokens = (r.width / (32 if sana else 16)) * (r.height / (32 if sana else 16))
            cfg = 1 if "FLUX" in r.model_id else 2
            flop_s = 2 * r.total_params * tokens * r.inference_steps * cfg * r.throughput
            bytes_s = r.throughput / r.batch_size * r.inference_steps * r.total_params * wbytes
        else:
            raise ValueError(f"{r.model_id}: {r.kind} serving is not modelled")
        uc.append(flop_s / (r.num_gpus * _peak(s, r.precision)))
        um.append(bytes_s / (r.num_gpus * s.memory_bandwidth))
    m["u_c"] = np.clip(uc, 0.0, 1.0)
    m["u_m"] = np.clip(um, 0.0, 1.0)
    m["tdp_w"] = m.gpu.map(lambda g: specs[g].power_limit_w)
    return m
