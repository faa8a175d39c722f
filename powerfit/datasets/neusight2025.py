"""The data of NeuSight (Lee et al., ASPLOS 2025), in scikit-learn's ``fetch_*`` style.

:func:`fetch_neusight2025` returns NeuSight's FP32 operator measurements in one tidy
table (SI units: latency in seconds), the GPUs as NeuSight describes them, the Hugging
Face model configs and the measured whole steps. The files are looked for in
``<data_home>/neusight2025/`` (the layout of its README), pinned to the upstream commit
in its ``COMMIT`` file and checked against its ``SHA256SUMS``.

NeuSight's labels: :func:`neusight_training_steps` lists the measured training steps
(FP32, forward + backward, no optimizer) with their model's ``config.json``,
:func:`neusight_forward_steps` the measured forward (inference) steps alike, and
:func:`traced_products` reads the matrix products of a step's torch.fx trace. Turning
them into operator graphs and calibrations is :mod:`powerfit.steps`' job.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from powerfit.datasets.home import checked_file, get_data_home, read_sha256sums

__all__ = [
    "NEUSIGHT2025_COMMIT",
    "NeuSight2025",
    "fetch_neusight2025",
    "neusight_forward_steps",
    "neusight_training_steps",
    "traced_products",
]

#: Upstream commit of github.com/sitar-lab/NeuSight the copy is pinned to (its
#: ``COMMIT`` file must say the same).
NEUSIGHT2025_COMMIT = "6945927d9afcca2b9daf021f8395e53edc5b4eef"

#: Launch-geometry columns of NeuSight's operator CSVs -> our names.
_NEUSIGHT_GEOMETRY = {
    "Kernel Name": "kernel",
    "Warps per SM": "warps_per_sm",
    "Blocks per SM": "blocks_per_sm",
    "Grid x": "grid_x",
    "Grid y": "grid_y",
    "Grid z": "grid_z",
    "Block x": "block_x",
    "Block y": "block_y",
    "Block z": "block_z",
}

#: Columns of :attr:`NeuSight2025.operators`, in order.
NEUSIGHT2025_COLUMNS = (
    "gpu",
    "op",
    "precision",
    "B",
    "M",
    "N",
    "K",
    "H",
    "latency_s",
    "collection",
    "large",
    *_NEUSIGHT_GEOMETRY.values(),
    "source",
)


@dataclass(frozen=True)
class NeuSight2025:
    """NeuSight's measurements (Lee et al., ASPLOS 2025), pinned and checked.

    Attributes
    ----------
    operators : pandas.DataFrame
        One row per measured operator call, columns :data:`NEUSIGHT2025_COLUMNS`:
        ``gpu`` (NVML name), ``op`` (NeuSight's name: ``bmm``, ``linear``,
        ``softmax``, ``ln``, ``gelu``, ``relu``, ``tanh``, ``add``/``mul``/``div``/
        ``pow``, ``addu``/``mulu``/``divu``/``powu``), ``precision`` (``fp32``:
        TF32 was off), the shape ``B, M, N, K`` (matrix products; NaN ``H``) or
        ``B, H`` (memory-bound ops; NaN ``M, N, K``), ``latency_s`` [s] (the CSVs
        hold ms), ``collection`` (``train`` or ``test``), ``large`` (the
        large-shape sweep of the test collection), the kernel name and its launch
        geometry, and ``source`` (the file, relative to the dataset folder).
    devices : dict of str to dict
        NVML name -> NeuSight's device description (``Mem_Bw`` [GB/s], ``Num_Sm``,
        ``Freq`` [MHz], ``SingleFLOPs`` [GFLOP/s], ...), as published.
    models : dict of str to dict
        Model name -> Hugging Face ``config.json``.
    steps : pandas.DataFrame
        Measured whole steps: ``gpu``, ``model``, ``mode`` (``train``/``inf``),
        ``seq_len``, ``batch_size``, ``num_layer``, ``e2e_latency_s``,
        ``fw_latency_s``, ``bwall_latency_s`` [s], ``trace`` (path of the traced
        operator graph, or None where absent).
    commit : str
        Upstream commit.
    path : pathlib.Path
        The dataset folder.
    """

    operators: pd.DataFrame
    devices: dict[str, dict]
    models: dict[str, dict]
    steps: pd.DataFrame
    commit: str
    path: Path


def _read_neusight_ops(path: Path, relative: str, collection: str) -> pd.DataFrame:
    raw = pd.read_csv(path)
    missing = {"OPName", "Latency", "Device", "B"} - set(raw.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    out = pd.DataFrame(
        {
            "gpu": raw["Device"].astype(str),
            "op": raw["OPName"].astype(str),
            "precision": "fp32",
        }
    )
    for col in ("B", "M", "N", "K", "H"):
        out[col] = raw[col].astype(float) if col in raw.columns else np.nan
    latency = pd.to_numeric(raw["Latency"], errors="coerce")
    bad = ~(latency > 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise ValueError(f"{path}, line {row}: column 'Latency' must be > 0 [ms]")
    out["latency_s"] = latency.to_numpy(dtype=float) * 1e-3
    out["collection"] = collection
    out["large"] = raw["large"].astype(bool) if "large" in raw.columns else False
    for src, dst in _NEUSIGHT_GEOMETRY.items():
        out[dst] = raw[src] if src in raw.columns else np.nan
    out["source"] = relative
    return out


def fetch_neusight2025(
    data_home: str | os.PathLike[str] | None = None,
    collections: tuple[str, ...] = ("train", "test"),
    ops: tuple[str, ...] | None = None,
) -> NeuSight2025:
    """Load NeuSight's FP32 operator measurements, device descriptions and steps.

    Parameters
    ----------
    data_home : path, optional
        See :func:`get_data_home`; the files are in ``<data_home>/neusight2025/``.
    collections : tuple of {'train', 'test'}, default both
        Which operator collections to read.
    ops : tuple of str, optional
        Read only these operators (NeuSight's names); default all.

    Returns
    -------
    NeuSight2025

    Raises
    ------
    FileNotFoundError
        The dataset folder or one of its files is missing (the copy is not
        downloaded: its CSVs are gzipped, so the upstream files have other checksums).
    ValueError
        A file's SHA-256 differs from ``SHA256SUMS``, ``COMMIT`` names another
        commit than :data:`NEUSIGHT2025_COMMIT`, or a CSV lacks a column.

    Examples
    --------
    >>> data = fetch_neusight2025(ops=("ln",))  # doctest: +SKIP
    >>> data.operators.groupby("gpu").size()  # doctest: +SKIP
    """
    folder = get_data_home(data_home) / "neusight2025"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} not found; set POWERFIT_DATA_HOME to the folder holding neusight2025/"
        )
    unknown = set(collections) - {"train", "test"}
    if unknown:
        raise ValueError(f"collections must be 'train' and/or 'test', got {sorted(unknown)}")
    sums = read_sha256sums(folder)
    commit = checked_file(folder, "COMMIT", sums).read_text().strip()
    if commit != NEUSIGHT2025_COMMIT:
        raise ValueError(
            f"{folder / 'COMMIT'}: commit {commit} differs from the pinned {NEUSIGHT2025_COMMIT}"
        )
    frames = []
    for relative in sorted(sums):
        parts = relative.split("/")
        if parts[0] != "ops" or parts[1] not in collections:
            continue
        if ops is not None:
            if parts[1] == "train" and parts[2] not in ops:
                continue
            if parts[1] == "test" and parts[2] != "elem.csv.gz":
                if parts[2].removesuffix(".csv.gz") not in ops:
                    continue
        path = checked_file(folder, relative, sums)
        frame = _read_neusight_ops(path, relative, parts[1])
        if ops is not None:
            frame = frame[frame["op"].isin(ops)]
        frames.append(frame)
    operators = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=list(NEUSIGHT2025_COLUMNS))
    )
    operators = operators.loc[:, list(NEUSIGHT2025_COLUMNS)]
    devices, models, steps = {}, {}, []
    for relative in sorted(sums):
        parts = relative.split("/")
        if parts[0] == "devices":
            spec = json.loads(checked_file(folder, relative, sums).read_text())
            devices[str(spec["Device"])] = spec
        elif parts[0] == "models":
            config = json.loads(checked_file(folder, relative, sums).read_text())
            models[parts[1].removesuffix(".json")] = config
        elif parts[0] == "labels" and relative.endswith(".json"):
            steps.append(_neusight_step(folder, relative, sums))
    steps_frame = pd.DataFrame(steps)
    return NeuSight2025(operators, devices, models, steps_frame, commit, folder)


def _neusight_step(folder: Path, relative: str, sums: dict[str, str]) -> dict:
    """One measured step from ``labels/<GPU>/<model>-<mode>-<seq>-<batch>.json``."""
    path = checked_file(folder, relative, sums)
    label = json.loads(path.read_text())
    gpu_dir, name = relative.split("/")[1:3]
    model, mode, seq_len, batch = name.removesuffix(".json").rsplit("-", 3)
    trace = relative.removesuffix(".json") + ".csv.gz"
    gpu = gpu_dir.replace("_", " ")
    return {
        "gpu": gpu,
        "model": model,
        "mode": mode,
        "seq_len": int(seq_len),
        "batch_size": int(batch),
        "num_layer": label.get("num_layer"),
        "e2e_latency_s": float(label["e2e_latency"]) * 1e-3,
        "fw_latency_s": float(label.get("fw_latency", np.nan)) * 1e-3,
        "bwall_latency_s": float(label.get("bwall_latency", np.nan)) * 1e-3,
        "trace": folder / trace if trace in sums else None,
    }


_LAYER0 = re.compile(r"'[\w.]*\.(?:h|layer|layers|block)\.0'")
_MODULE_CLASS = re.compile(r"<class '([\w.]+)'>\)\]\)")


def traced_products(trace: pd.DataFrame | str | Any, num_layer: int) -> pd.DataFrame:
    """The matrix products of a NeuSight traced step, with their counts.

    NeuSight traces one layer of the stack (``...h.0``, ``...layer.0``, ``...layers.0``)
    besides the embeddings and the head, and measures the step with ``num_layer``
    layers; the products of layer 0 are counted ``num_layer`` times.

    Parameters
    ----------
    trace : pandas.DataFrame or path
        A ``labels/<GPU>/<step>.csv.gz`` file (torch.fx nodes with ``input_shapes``).
    num_layer : int
        Layers of the measured model (the ``.json`` beside the trace) [-].

    Returns
    -------
    pandas.DataFrame
        Columns ``name, op, B, M, N, K, count, fw_ms, bw_ms``: ``linear`` (``nn.Linear``
        modules and ``addmm``: B = 1, M = tokens, K = in, N = out) and ``bmm``
        (``matmul``/``bmm``: B = the product of the batch dimensions).
    """
    import ast

    frame = trace if isinstance(trace, pd.DataFrame) else pd.read_csv(trace)
    rows = []
    for node in frame.itertuples(index=False):
        target = str(node.target)
        meta = str(node.meta)
        shapes = ast.literal_eval(node.input_shapes) if isinstance(node.input_shapes, str) else []
        out = ast.literal_eval(node.output_shape) if isinstance(node.output_shape, str) else ()
        kind = None
        if node.op == "call_module":
            classes = _MODULE_CLASS.findall(meta)
            if classes and classes[-1].endswith("Linear"):
                x = shapes[0]
                kind = ("linear", 1, int(np.prod(x[:-1])), int(out[-1]), int(x[-1]))
        elif node.op == "call_function" and ("addmm" in target or "built-in method mm " in target):
            a, w = shapes[-2], shapes[-1]
            kind = ("linear", 1, a[0], w[1], a[1])
        elif node.op == "call_function" and re.search(r"method (?:matmul|bmm) ", target):
            a, w = shapes[0], shapes[1]
            kind = ("bmm", int(np.prod(a[:-2])), a[-2], w[-1], a[-1])
        if kind is None:
            continue
        count = num_layer if _LAYER0.search(meta) else 1
        rows.append((node.Name, *kind, count, node.fw_latency, node.bw_latency))
    return pd.DataFrame(
        rows, columns=["name", "op", "B", "M", "N", "K", "count", "fw_ms", "bw_ms"]
    )


def _neusight_labelled_steps(data_home: Any, mode: str) -> pd.DataFrame:
    """NeuSight's measured steps of one mode (``train`` or ``inf``), one row a step."""
    import json

    from powerfit.datasets.home import get_data_home

    folder = get_data_home(data_home) / "neusight2025"
    rows = []
    for path in sorted(folder.glob(f"labels/*/*-{mode}-*.json")):
        model, _, seq, batch = path.stem.rsplit("-", 3)
        label = json.loads(path.read_text())
        trace = path.with_name(path.stem + ".csv.gz")
        rows.append(
            {
                "gpu": path.parent.name.replace("_", " "),
                "model": model,
                "seq_len": int(seq),
                "batch_size": int(batch),
                "num_layer": int(label.get("num_layer") or 0),
                "measured_s": float(label["e2e_latency"]) * 1e-3,
                "trace": trace if trace.exists() else None,
                "config": folder / "models" / f"{model}.json",
            }
        )
    columns = [
        "gpu",
        "model",
        "seq_len",
        "batch_size",
        "num_layer",
        "measured_s",
        "trace",
        "config",
    ]
    return pd.DataFrame(rows, columns=columns)


def neusight_training_steps(data_home: Any = None) -> pd.DataFrame:
    """NeuSight's measured training steps (FP32, forward + backward, no optimizer).

    Parameters
    ----------
    data_home : path, optional
        Data home (default: :func:`powerfit.datasets.home.get_data_home`); the steps are
        read from ``<data_home>/neusight2025/labels/<GPU>/<model>-train-<T>-<B>.json``.

    Returns
    -------
    pandas.DataFrame
        ``gpu, model, seq_len, batch_size, num_layer, measured_s, trace, config``
        (``trace``: the traced graph's path or None; ``config``: the model's
        ``config.json``). Empty when the data are absent.
    """
    return _neusight_labelled_steps(data_home, "train")


def neusight_forward_steps(data_home: Any = None) -> pd.DataFrame:
    """NeuSight's measured forward (inference) steps (FP32, TF32 off, eager, one GPU).

    Parameters
    ----------
    data_home : path, optional
        Data home (default: :func:`powerfit.datasets.home.get_data_home`); the steps are
        read from ``<data_home>/neusight2025/labels/<GPU>/<model>-inf-<T>-<B>.json``
        (``e2e_latency``: one forward pass of ``B`` sequences of ``T`` tokens).

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`neusight_training_steps`: ``gpu, model, seq_len,
        batch_size, num_layer, measured_s`` (the forward time [s]), ``trace`` (the traced
        graph's path or None) and ``config`` (the model's ``config.json``). Empty when the
        data are absent.
    """
    return _neusight_labelled_steps(data_home, "inf")
