"""The train/test protocols of the paper suite: how measured steps are split, by name.

A :class:`Protocol` splits the measured training steps into a training and a test set,
once or per seed: rows at random, configurations at random
(:func:`configuration_ids`), or a held-out group (a threshold, a GPU, a value). The
named sets are :data:`TRANSFORMER_PROTOCOLS`, :data:`EXTRA_PROTOCOLS`,
:data:`LSTM_PROTOCOLS` and :data:`LSTM_EXTRA_PROTOCOLS` (see
:mod:`powerfit.evaluation.paper`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CONFIGURATION_COLUMNS",
    "EXTRA_PROTOCOLS",
    "LSTM_EXTRA_PROTOCOLS",
    "LSTM_PROTOCOLS",
    "TRANSFORMER_PROTOCOLS",
    "Protocol",
    "configuration_ids",
]

A100 = "NVIDIA A100 80GB PCIe"
RTX = "NVIDIA GeForce RTX 2080 Ti"


@dataclass(frozen=True)
class Protocol:
    """A named way to split measurements into training and test rows.

    Attributes
    ----------
    name : str
    description : str
    split : callable
        ``split(runs, seed) -> (train_mask, test_mask)`` of boolean arrays.
    seeds : int
        Repetitions (1 for a deterministic held-out group).
    """

    name: str
    description: str
    split: Callable[[pd.DataFrame, int], tuple[np.ndarray, np.ndarray]]
    seeds: int = 1


def _random_split(runs: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    parts = [runs[c].astype(str) for c in ("model", "n_layers", "gpu") if c in runs.columns]
    strata = parts[0].str.cat(parts[1:], sep="-") if parts else None
    if strata is not None and strata.value_counts().min() < 2:
        strata = None
    index = np.arange(len(runs))
    _, test = train_test_split(index, test_size=0.33, stratify=strata, random_state=seed)
    return _masks(len(runs), test)


def _masks(n_rows: int, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) boolean masks from the indices of the test rows."""
    mask = np.zeros(n_rows, dtype=bool)
    mask[test] = True
    return ~mask, mask


#: Columns that identify a configuration (with the GPU): rows equal on all of them
#: are repeated measurements of one configuration.
CONFIGURATION_COLUMNS = (
    "gpu", "arch", "model", "n_layers", "batch_size", "seq_len", "d_model", "n_heads",
    "d_ff", "vocab_size", "input_size", "hidden_size", "precision",
)  # fmt: skip


def configuration_ids(runs: pd.DataFrame) -> np.ndarray:
    """Index of each row's configuration (rows equal on :data:`CONFIGURATION_COLUMNS`).

    Parameters
    ----------
    runs : pandas.DataFrame
        Output of :func:`~powerfit.evaluation.paper.load_runs`.

    Returns
    -------
    numpy.ndarray of int
        Same value for the rows of one configuration, 0 … n_configurations − 1.

    Examples
    --------
    >>> import pandas as pd
    >>> runs = pd.DataFrame({"gpu": ["a", "a", "b"], "batch_size": [8, 8, 8]})
    >>> configuration_ids(runs).tolist()
    [0, 0, 1]
    """
    columns = [c for c in CONFIGURATION_COLUMNS if c in runs.columns]
    if not columns:
        return np.arange(len(runs))
    return runs.groupby(columns, dropna=False, sort=False).ngroup().to_numpy()


def _configuration_split(runs: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """67/33 split of the configurations: repeats of one never straddle the split."""
    from sklearn.model_selection import GroupShuffleSplit

    groups = configuration_ids(runs)
    splitter = GroupShuffleSplit(n_splits=1, test_size=0.33, random_state=seed)
    _, test = next(splitter.split(np.zeros(len(runs)), groups=groups))
    return _masks(len(runs), test)


def _held_out(test: Callable[[pd.DataFrame], Any], train_gpu: str | None = None):
    def split(runs: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
        held = np.asarray(test(runs), dtype=bool)
        train = ~held
        if train_gpu is not None:
            train &= (runs["gpu"] == train_gpu).to_numpy()
        return train, held

    return split


def _num(column: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda runs: pd.to_numeric(runs[column], errors="coerce")


#: The five protocols of issue #6 and ``random-configs`` (Transformer energy data).
TRANSFORMER_PROTOCOLS: tuple[Protocol, ...] = (
    Protocol("random", "67/33 split stratified by family and layers", _random_split, 5),
    Protocol(
        "random-configs",
        "67/33 split of the configurations (repeats stay on one side)",
        _configuration_split,
        5,
    ),
    Protocol(
        "layers-12",
        "train 4/6-layer models, test 12-layer models",
        _held_out(lambda r: _num("n_layers")(r) >= 12),
    ),
    Protocol(
        "dmodel-1024",
        "train d_model < 1024, test d_model >= 1024",
        _held_out(lambda r: _num("d_model")(r) >= 1024),
    ),
    Protocol(
        "seq-1280",
        "train seq_len < 1280, test seq_len = 1280",
        _held_out(lambda r: _num("seq_len")(r) >= 1280),
    ),
    Protocol(
        "gpu-rtx",
        "train on the A100 only, test the RTX 2080 Ti",
        _held_out(lambda r: r["gpu"] == RTX, train_gpu=A100),
    ),
)


def _few_shot(gpu: str, train_gpu: str, n_configurations: int):
    """Train on ``train_gpu`` plus ``n_configurations`` of ``gpu``; test the rest of ``gpu``."""

    def split(runs: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
        ids = configuration_ids(runs)
        on_gpu = (runs["gpu"] == gpu).to_numpy()
        configurations = np.unique(ids[on_gpu])
        if len(configurations) <= n_configurations:  # nothing left to test
            return np.ones(len(runs), dtype=bool), np.zeros(len(runs), dtype=bool)
        measured = np.random.default_rng(seed).choice(
            configurations, n_configurations, replace=False
        )
        picked = on_gpu & np.isin(ids, measured)
        return (runs["gpu"] == train_gpu).to_numpy() | picked, on_gpu & ~picked

    return split


def _value_group(name: str, column: str, value: Any, what: str) -> Protocol:
    return Protocol(
        name,
        f"hold out {what}",
        _held_out(lambda r: _num(column)(r) == value),
    )


#: Held-out groups a sceptical reader would choose (not used to design the model).
EXTRA_PROTOCOLS: tuple[Protocol, ...] = (
    *(_value_group(f"batch-{b}", "batch_size", b, f"batch_size = {b}") for b in (160, 256, 320)),
    *(_value_group(f"heads-{h}", "n_heads", h, f"n_heads = {h}") for h in (2, 4, 8, 12)),
    Protocol("family-bert", "hold out BERT", _held_out(lambda r: r["model"] == "bert")),
    Protocol("family-gpt2", "hold out GPT-2", _held_out(lambda r: r["model"] == "gpt2")),
    Protocol(
        "small-models",
        "hold out d_model < 384",
        _held_out(lambda r: _num("d_model")(r) < 384),
    ),
    Protocol(
        "short-seq",
        "hold out seq_len = 256",
        _held_out(lambda r: _num("seq_len")(r) <= 256),
    ),
    Protocol(
        "layers-4",
        "hold out the 4-layer models",
        _held_out(lambda r: _num("n_layers")(r) == 4),
    ),
    Protocol(
        "gpu-rtx-10",
        "train on the A100 and 10 RTX 2080 Ti configurations, test the other RTX ones",
        _few_shot(RTX, A100, 10),
        5,
    ),
)

#: Protocols for the LSTM energy data.
LSTM_PROTOCOLS: tuple[Protocol, ...] = (
    Protocol("random", "67/33 random split", _random_split, 5),
    Protocol(
        "random-configs",
        "67/33 split of the configurations (repeats stay on one side)",
        _configuration_split,
        5,
    ),
    Protocol(
        "hidden-640",
        "train hidden_size < 640, test hidden_size = 640",
        _held_out(lambda r: _num("hidden_size")(r) >= 640),
    ),
)

#: Held-out LSTM groups a sceptical reader would choose: the edges of each
#: configuration column and one interior hidden size.
LSTM_EXTRA_PROTOCOLS: tuple[Protocol, ...] = (
    Protocol(
        "hidden-64", "hold out hidden_size = 64", _held_out(lambda r: _num("hidden_size")(r) <= 64)
    ),
    _value_group("hidden-384", "hidden_size", 384, "hidden_size = 384"),
    Protocol(
        "input-640", "hold out input_size = 640", _held_out(lambda r: _num("input_size")(r) >= 640)
    ),
    Protocol(
        "batch-128", "hold out batch_size = 128", _held_out(lambda r: _num("batch_size")(r) <= 128)
    ),
    Protocol(
        "batch-512", "hold out batch_size = 512", _held_out(lambda r: _num("batch_size")(r) >= 512)
    ),
)
