"""The ML.ENERGY Benchmark v3 (H100 and B200 serving), in ``fetch_*`` style.

:func:`fetch_mlenergy2026` returns the ``models/*.json.gz`` files of
``<data_home>/mlenergy2026/`` as one tidy frame in SI units, one row per measured
configuration, checked against the folder's ``SHA256SUMS``. Units: ``avg_power_watts``
is NVML board power **summed over the run's ``num_gpus``** (steady state); the frame
gives it as ``power_total_w`` and per GPU as ``power_w``. This is serving (forward
passes only), not training, and there are no idle rows.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from powerfit.datasets.home import check_sha256sums, get_data_home

__all__ = [
    "MLENERGY_GPUS",
    "MLEnergy2026",
    "fetch_mlenergy2026",
    "output_length_moments",
    "read_mlenergy_model_file",
]

#: ``gpu_model`` -> NVML name (H100 SXM 80GB HBM3 and B200 in the ML.ENERGY v3 setup).
MLENERGY_GPUS: dict[str, str] = {"H100": "NVIDIA H100 80GB HBM3", "B200": "NVIDIA B200"}

#: ``weight_precision`` -> powerfit's precision names.
_PRECISIONS = {"bfloat16": "bf16", "fp8": "fp8", "mxfp4": "mxfp4"}


@dataclass(frozen=True)
class MLEnergy2026:
    """The ML.ENERGY Benchmark v3 measurements.

    Attributes
    ----------
    power : pandas.DataFrame
        One row per configuration: ``gpu`` (NVML name), ``gpu_model`` (as published),
        ``file``, ``row`` (1-based index in the file's ``configurations``),
        ``model_id``, ``task``, ``kind`` (``llm``, ``image`` or ``video``),
        ``architecture``, ``total_params``, ``active_params`` [-], ``precision``
        (weights: ``bf16``, ``fp8``, ``mxfp4``), ``num_gpus`` [-], ``batch_size``
        [-] (LLM: the average running batch; diffusion: the batch), ``power_total_w``
        [W] (summed over the GPUs, as published), ``power_w`` [W] (per GPU),
        ``throughput`` [tokens/s, images/s or videos/s], ``width``, ``height``
        [px], ``frames``, ``inference_steps`` [-] (diffusion; NaN for LLMs),
        ``output_len_mean``, ``output_len_sq_mean`` [tokens, tokens²] (mean and mean
        square of the output length, from the configuration's histogram, bin centres;
        NaN for diffusion), ``data_parallel``, ``tensor_parallel``, ``expert_parallel``
        [-] (1 where not published).
    """

    power: pd.DataFrame


def _kind(task: str) -> str:
    if task == "text-to-image":
        return "image"
    if task == "text-to-video":
        return "video"
    return "llm"


def output_length_moments(config: dict[str, Any]) -> tuple[float, float]:
    """(mean, mean square) of a configuration's output lengths [tokens, tokens²].

    From ``output_length_distribution`` (histogram: ``bins`` edges, ``counts``) at the
    bin centres; from ``avg_output_len`` alone (no spread) without it; NaN without both.
    """
    dist = config.get("output_length_distribution")
    if isinstance(dist, dict) and dist.get("bins") and dist.get("counts"):
        edges = np.asarray(dist["bins"], dtype=float)
        counts = np.asarray(dist["counts"], dtype=float)
        if edges.size == counts.size + 1 and counts.sum() > 0:
            mid = 0.5 * (edges[1:] + edges[:-1])
            w = counts / counts.sum()
            return float(w @ mid), float(w @ mid**2)
    mean = float(config.get("avg_output_len", np.nan))
    return mean, mean**2


def read_mlenergy_model_file(path: str | os.PathLike[str]) -> pd.DataFrame:
    """One ``models/<org>__<model>__<task>.json.gz`` as a tidy frame (see :class:`MLEnergy2026`).

    Parses JSON only (no code runs, no other file is opened).

    Raises
    ------
    ValueError
        Invalid JSON or a missing field, named with the file and the configuration.
    """
    name = os.path.basename(os.fspath(path))
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            doc = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{name}: not a gzipped JSON file ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("configurations"), list):
        raise ValueError(f"{name}: no 'configurations' list")
    task = str(doc.get("task", ""))
    kind = _kind(task)
    rows: list[dict[str, Any]] = []
    for i, c in enumerate(doc["configurations"], start=1):
        try:
            if kind == "llm":
                batch = float(c["avg_batch_size"])
                throughput = float(c["output_throughput_tokens_per_sec"])
            elif kind == "image":
                batch = float(c["batch_size"])
                throughput = float(c["throughput_images_per_sec"])
            else:
                batch = float(c["batch_size"])
                throughput = float(c["throughput_videos_per_sec"])
            n = int(c["num_gpus"])
            par = c.get("parallelization") or {}
            len_mean, len_sq = output_length_moments(c) if kind == "llm" else (np.nan, np.nan)
            total = float(c["avg_power_watts"])
            rows.append(
                {
                    "gpu": MLENERGY_GPUS.get(str(c["gpu_model"]), str(c["gpu_model"])),
                    "gpu_model": str(c["gpu_model"]),
                    "file": name,
                    "row": i,
                    "model_id": str(doc["model_id"]),
                    "task": task,
                    "kind": kind,
                    "architecture": str(doc.get("architecture") or "Diffusion"),
                    "total_params": float(doc["total_params_billions"]) * 1e9,
                    "active_params": float(
                        doc.get("activated_params_billions") or doc["total_params_billions"]
                    )
                    * 1e9,
                    "precision": _PRECISIONS.get(
                        str(doc["weight_precision"]), str(doc["weight_precision"])
                    ),
                    "num_gpus": n,
                    "batch_size": batch,
                    "power_total_w": total,
                    "power_w": total / n if n > 0 else np.nan,
                    "throughput": throughput,
                    "width": float(c.get("image_width", c.get("video_width", np.nan))),
                    "height": float(c.get("image_height", c.get("video_height", np.nan))),
                    "frames": float(c.get("num_frames", np.nan)),
                    "inference_steps": float(c.get("inference_steps", np.nan)),
                    "output_len_mean": len_mean,
                    "output_len_sq_mean": len_sq,
                    "data_parallel": int(par.get("data_parallel", 1) or 1),
                    "tensor_parallel": int(par.get("tensor_parallel", 1) or 1),
                    "expert_parallel": int(par.get("expert_parallel", 1) or 1),
                }
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{name}: configuration {i}: missing or bad field {exc}") from None
    return pd.DataFrame(rows)


def fetch_mlenergy2026(data_home: str | os.PathLike[str] | None = None) -> MLEnergy2026:
    """The ML.ENERGY v3 measurements of ``<data_home>/mlenergy2026/models/``.

    Returns
    -------
    MLEnergy2026

    Raises
    ------
    FileNotFoundError
        The folder or a listed file is missing.
    ValueError
        A file whose digest differs from ``SHA256SUMS``, or that does not parse.
    """
    folder = get_data_home(data_home) / "mlenergy2026"
    names = sorted(
        f"models/{p.name}" for p in (folder / "models").glob("*.json.gz") if p.is_file()
    )
    check_sha256sums(folder, names)
    frames = [read_mlenergy_model_file(folder / n) for n in names]
    return MLEnergy2026(pd.concat(frames, ignore_index=True))
