"""Vidur's FP16 operator profiles (Agrawal et al., MLSys 2024): one decoder layer's operators.

:func:`fetch_vidur2024` reads ``<data_home>/vidur2024/compute/<gpu>/<org>__<model>.mlp.csv.gz``
(upstream ``data/profiling/compute/<gpu>/<org>/<model>/mlp.csv`` of github.com/microsoft/vidur
at the commit in :data:`VIDUR2024_COMMIT`), checks every file against the copy's
``SHA256SUMS`` and returns one tidy row per (profile row, operator): FP16 tensor-core
latencies of one decoder layer's operators (forward, inference mode) at 1-4096 tokens
and tensor-parallel degree 1-8, in seconds (the CSVs hold milliseconds).

What the operators compute (the dataset README): with d = ``n_embd``, h = ``n_head``,
h_kv = ``n_kv_head``, d_h = d/h, F = ``n_expanded_embd``, M = ``num_tokens``, t = ``tp``:

* ``attn_pre_proj`` (M×d)·(d×(h + 2·h_kv)·d_h/t), the fused QKV projection;
* ``attn_post_proj`` (M×h·d_h/t)·(h·d_h/t×d);
* ``mlp_up_proj`` (M×d)·(d×g·F/t), g = 2 for a gated MLP (gate and up fused);
* ``mlp_down_proj`` (M×F/t)·(F/t×d);
* memory-bound: ``input_layernorm``, ``post_attention_layernorm`` (over d), ``attn_rope``
  (q and k), ``mlp_act`` (SiLU-and-mul when gated, else GELU), ``add`` (M×d), ``emb``.

The network profiles of the same copy are :mod:`powerfit.datasets.vidur2024_network`'s.
This module imports nothing of powerfit's stages: turning rows into operator shapes is
:func:`powerfit.kernels.half.vidur_operator_frame`'s job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from powerfit.datasets.home import checked_file, get_data_home, read_sha256sums

__all__ = ["VIDUR2024_COMMIT", "VIDUR2024_GPUS", "VIDUR2024_OPS", "Vidur2024", "fetch_vidur2024"]

#: Upstream commit of github.com/microsoft/vidur the copy is pinned to.
VIDUR2024_COMMIT = "7d47513363ec447a741ac5e47241580b47724fbf"

#: Vidur's device folder -> the catalogue (NVML) name of the board. Vidur's node configs
#: put the A100 and H100 in DGX nodes (8 GPUs on NVSwitch), hence the SXM boards.
VIDUR2024_GPUS = {
    "a100": "NVIDIA A100-SXM4-80GB",
    "h100": "NVIDIA H100 80GB HBM3",
    "a40": "NVIDIA A40",
}

#: The timed operators of one decoder layer (the ``time_stats.<op>.*`` columns).
VIDUR2024_OPS = (
    "emb",
    "input_layernorm",
    "attn_pre_proj",
    "attn_rope",
    "attn_post_proj",
    "post_attention_layernorm",
    "mlp_up_proj",
    "mlp_act",
    "mlp_down_proj",
    "add",
)

_SHAPE = {
    "n_head": "n_head",
    "n_kv_head": "n_kv_head",
    "n_embd": "n_embd",
    "n_expanded_embd": "n_expanded_embd",
    "vocab_size": "vocab_size",
    "use_gated_mlp": "use_gated_mlp",
    "num_tokens": "num_tokens",
    "num_tensor_parallel_workers": "tp",
}

#: Columns of :attr:`Vidur2024.operators`, in order.
VIDUR2024_COLUMNS = (
    "gpu",
    "device",
    "model",
    "op",
    "precision",
    *_SHAPE.values(),
    "latency_s",
    "latency_min_s",
    "latency_mean_s",
    "latency_std_s",
    "source",
)


@dataclass(frozen=True)
class Vidur2024:
    """Vidur's FP16 compute profiles, pinned and checked.

    Attributes
    ----------
    operators : pandas.DataFrame
        One row per (profile row, operator), columns :data:`VIDUR2024_COLUMNS`: ``gpu``
        (catalogue name, :data:`VIDUR2024_GPUS`), ``device`` (Vidur's folder), ``model``
        (``org/name``), ``op`` (:data:`VIDUR2024_OPS`), ``precision`` (``fp16``), the
        layer's shape (``n_head, n_kv_head, n_embd, n_expanded_embd, vocab_size,
        use_gated_mlp``), ``num_tokens`` M [-], ``tp`` (tensor-parallel degree) [-],
        ``latency_s`` (median of 20 runs) [s], ``latency_min_s``, ``latency_mean_s``,
        ``latency_std_s`` [s], ``source`` (file, relative to the dataset folder).
    commit : str
        Upstream commit.
    path : pathlib.Path
        The dataset folder.
    """

    operators: pd.DataFrame
    commit: str
    path: Path


def _read_profile(path: Path, relative: str, device: str, model: str) -> pd.DataFrame:
    raw = pd.read_csv(path)
    missing = [c for c in _SHAPE if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    products = [f"time_stats.{op}.median" for op in ("attn_pre_proj", "mlp_down_proj")]
    if not any(c in raw for c in products):
        raise ValueError(f"{path}: no operator columns (expected e.g. {products[0]!r})")
    shape = raw[list(_SHAPE)].rename(columns=_SHAPE)
    for col in ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "num_tokens", "tp"):
        values = pd.to_numeric(shape[col], errors="coerce")
        bad = ~(values > 0)
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise ValueError(f"{path}, line {line}: column {col!r} must be a number > 0")
        shape[col] = values.astype("int64")
    shape["use_gated_mlp"] = shape["use_gated_mlp"].astype(str).str.lower() == "true"
    frames = []
    for op in VIDUR2024_OPS:
        if f"time_stats.{op}.median" not in raw:
            continue  # an operator the layer has not (Phi-2: no post-attention norm)
        stats = {}
        for stat in ("median", "min", "mean", "std"):
            column = f"time_stats.{op}.{stat}"
            values = pd.to_numeric(raw[column], errors="coerce") if column in raw else np.nan
            stats[stat] = values
        median = stats["median"]
        bad = ~(median > 0)
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            column = f"time_stats.{op}.median"
            raise ValueError(f"{path}, line {line}: column {column!r} must be > 0 [ms]")
        part = shape.copy()
        part.insert(0, "precision", "fp16")
        part.insert(0, "op", op)
        part.insert(0, "model", model)
        part.insert(0, "device", device)
        part.insert(0, "gpu", VIDUR2024_GPUS[device])
        part["latency_s"] = median.to_numpy(float) * 1e-3
        part["latency_min_s"] = np.asarray(stats["min"], float) * 1e-3
        part["latency_mean_s"] = np.asarray(stats["mean"], float) * 1e-3
        part["latency_std_s"] = np.asarray(stats["std"], float) * 1e-3
        part["source"] = relative
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


def fetch_vidur2024(
    data_home: str | os.PathLike[str] | None = None,
    gpus: tuple[str, ...] | None = None,
) -> Vidur2024:
    """Load Vidur's FP16 operator profiles (``compute/``), checked against ``SHA256SUMS``.

    Parameters
    ----------
    data_home : path, optional
        See :func:`powerfit.datasets.home.get_data_home`; the files are in
        ``<data_home>/vidur2024/``.
    gpus : tuple of str, optional
        Vidur's device folders to read (``'a100'``, ``'h100'``, ``'a40'``); default all.

    Returns
    -------
    Vidur2024

    Raises
    ------
    FileNotFoundError
        The dataset folder, its ``SHA256SUMS`` or a listed file is missing.
    ValueError
        A checksum or the commit differs, a device folder is unknown, or a CSV lacks a
        column or holds a bad value (the message names the file, line and column).

    Examples
    --------
    >>> data = fetch_vidur2024(gpus=("a40",))  # doctest: +SKIP
    >>> data.operators.groupby("op").latency_s.median()  # doctest: +SKIP
    """
    folder = get_data_home(data_home) / "vidur2024"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} not found; set POWERFIT_DATA_HOME to the folder holding vidur2024/"
        )
    unknown = set(gpus or ()) - set(VIDUR2024_GPUS)
    if unknown:
        known = list(VIDUR2024_GPUS)
        raise ValueError(f"unknown Vidur device(s) {sorted(unknown)}; known: {known}")
    sums = read_sha256sums(folder)
    commit = checked_file(folder, "COMMIT", sums).read_text().strip()
    if commit != VIDUR2024_COMMIT:
        raise ValueError(
            f"{folder / 'COMMIT'}: commit {commit} differs from the pinned {VIDUR2024_COMMIT}"
        )
    frames = []
    for relative in sorted(sums):
        parts = relative.split("/")
        if len(parts) != 3 or parts[0] != "compute" or not parts[2].endswith(".mlp.csv.gz"):
            continue
        device = parts[1]
        if device not in VIDUR2024_GPUS:
            raise ValueError(f"{folder / relative}: unknown Vidur device folder {device!r}")
        if gpus is not None and device not in gpus:
            continue
        model = parts[2].removesuffix(".mlp.csv.gz").replace("__", "/", 1)
        path = checked_file(folder, relative, sums)
        frames.append(_read_profile(path, relative, device, model))
    if frames:
        operators = pd.concat(frames, ignore_index=True)
    else:
        operators = pd.DataFrame(columns=list(VIDUR2024_COLUMNS))
    return Vidur2024(operators.loc[:, list(VIDUR2024_COLUMNS)], commit, folder)
