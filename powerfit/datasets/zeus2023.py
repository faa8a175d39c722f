"""The Zeus power traces (You, Chung & Chowdhury, NSDI 2023), in ``fetch_*`` style.

:func:`fetch_zeus2023` returns the ``summary_power_{gpu}.csv.gz`` tables of
``<data_home>/zeus2023/`` as one tidy frame in SI units: one GPU training one epoch
of a workload at a batch size and an NVML power limit, with the epoch's duration and
the board's average power (NVML). Files are checked against the folder's
``SHA256SUMS``.

Not published upstream (say so wherever these rows are used): the precision (very
likely FP32, PyTorch's default then; TF32 may have been on for the A40's products)
and the boards' exact variants (the V100 file's largest limit, 250 W, is the PCIe
board's TDP). The samples per epoch are the training sets' sizes
(:data:`ZEUS_SAMPLES_PER_EPOCH`, from the data sets' publications).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from powerfit.datasets.home import check_sha256sums, get_data_home

__all__ = ["ZEUS_GPUS", "ZEUS_SAMPLES_PER_EPOCH", "Zeus2023", "fetch_zeus2023"]

#: File suffix -> NVML name of the board (the variant is an assumption: see module notes).
ZEUS_GPUS: dict[str, str] = {
    "v100": "Tesla V100-PCIE-32GB",
    "a40": "NVIDIA A40",
    "rtx6000": "Quadro RTX 6000",
    "p100": "Tesla P100-PCIE-16GB",
}

#: Training samples in one epoch, per (dataset, network) [-]: ImageNet-1k 1,281,167
#: images; CIFAR-100 50,000; SQuAD v1.1 88,641 features at 384 tokens (stride 128);
#: Sentiment140 1,600,000 tweets; LibriSpeech train (960 h) 281,241 utterances;
#: MovieLens-1M 994,169 training ratings × (1 + 4 negatives). Zeus does not publish
#: them: where an epoch's throughput × FLOP per sample exceeds the FP32 peak (BERT on
#: Sentiment140), Zeus trained on fewer samples or in mixed precision.
ZEUS_SAMPLES_PER_EPOCH: dict[tuple[str, str], int] = {
    ("imagenet", "resnet50"): 1_281_167,
    ("cifar100", "shufflenetv2"): 50_000,
    ("squad", "bert_base_uncased"): 88_641,
    ("sentiment140", "bert_base_uncased"): 1_600_000,
    ("librispeech", "deepspeech2"): 281_241,
    ("movielens-1m", "ncf"): 4_970_845,
}

_COLUMNS = (
    "dataset",
    "network",
    "batch_size",
    "optimizer",
    "power_limit",
    "time_per_epoch",
    "average_power",
)


@dataclass(frozen=True)
class Zeus2023:
    """The Zeus power traces.

    Attributes
    ----------
    power : pandas.DataFrame
        One row per (GPU, workload, batch size, optimizer, power limit): ``gpu``
        (NVML name), ``file``, ``row`` (1-based data row in its file), ``dataset``,
        ``network``, ``workload`` (``dataset/network``), ``batch_size`` [-],
        ``optimizer``, ``power_limit_w`` [W], ``epoch_s`` [s], ``power_w`` [W]
        (average board power, NVML), ``samples_per_epoch`` [-], ``throughput``
        [samples/s], ``precision`` (``fp32``, assumed).
    """

    power: pd.DataFrame


def read_zeus_power_file(path: str | os.PathLike[str], gpu: str) -> pd.DataFrame:
    """One ``summary_power_{gpu}.csv.gz`` as published, with ``file`` and ``row`` columns.

    Raises
    ------
    ValueError
        A missing column (named with the file).
    """
    frame = pd.read_csv(path)
    missing = [c for c in _COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{os.fspath(path)}: missing columns {missing}")
    frame = frame.loc[:, list(_COLUMNS)].copy()
    frame.insert(0, "gpu", gpu)
    frame.insert(1, "file", os.path.basename(os.fspath(path)))
    frame.insert(2, "row", np.arange(1, len(frame) + 1))
    return frame


def tidy_zeus_power(raw: pd.DataFrame) -> pd.DataFrame:
    """The published columns renamed to SI ones, with samples per epoch and throughput."""
    out = pd.DataFrame(
        {
            "gpu": raw.gpu.astype(str),
            "file": raw.file.astype(str),
            "row": raw.row.astype(int),
            "dataset": raw.dataset.astype(str),
            "network": raw.network.astype(str),
            "batch_size": raw.batch_size.astype(int),
            "optimizer": raw.optimizer.astype(str).str.lower(),
            "power_limit_w": raw.power_limit.astype(float),
            "epoch_s": raw.time_per_epoch.astype(float),
            "power_w": raw.average_power.astype(float),
        }
    )
    out["workload"] = out.dataset + "/" + out.network
    keys = list(zip(out.dataset, out.network, strict=True))
    out["samples_per_epoch"] = [ZEUS_SAMPLES_PER_EPOCH.get(k, np.nan) for k in keys]
    out["throughput"] = out.samples_per_epoch / out.epoch_s
    out["precision"] = "fp32"
    return out


def fetch_zeus2023(data_home: str | os.PathLike[str] | None = None) -> Zeus2023:
    """The Zeus power traces of ``<data_home>/zeus2023/``, checked against ``SHA256SUMS``.

    Returns
    -------
    Zeus2023

    Raises
    ------
    FileNotFoundError
        The folder or a file is missing.
    ValueError
        A file whose digest differs, or whose columns are not the published ones.
    """
    folder = get_data_home(data_home) / "zeus2023"
    names = [f"summary_power_{k}.csv.gz" for k in ZEUS_GPUS]
    check_sha256sums(folder, names)
    raw = pd.concat(
        [
            read_zeus_power_file(folder / f"summary_power_{k}.csv.gz", g)
            for k, g in ZEUS_GPUS.items()
        ],
        ignore_index=True,
    )
    return Zeus2023(tidy_zeus_power(raw))
