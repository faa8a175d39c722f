"""Dataset loaders, in scikit-learn's ``fetch_*`` style.

:func:`fetch_mayaki2025` returns the four processed tables published with
Mayaki & Charpenay (ECAI 2025), exactly as published (the paper's column names and
units; see ``method.md`` §4 for their traps). The files are looked for in
``<data_home>/mayaki2025/processed/``; ``data_home`` defaults to the
``POWERFIT_DATA_HOME`` environment variable, else a per-user cache directory
(:func:`get_data_home`). Every file is checked against its pinned SHA-256.

:func:`fetch_neusight2025` returns NeuSight's FP32 operator measurements (Lee et al.,
ASPLOS 2025) in one tidy table (SI units: latency in seconds), the GPUs as NeuSight
describes them, the Hugging Face model configs and the measured whole steps. The
files are looked for in ``<data_home>/neusight2025/`` (the layout of its README),
pinned to the upstream commit in its ``COMMIT`` file and checked against its
``SHA256SUMS``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "MAYAKI2025_FILES",
    "NEUSIGHT2025_COMMIT",
    "Mayaki2025",
    "NeuSight2025",
    "fetch_mayaki2025",
    "fetch_neusight2025",
    "get_data_home",
]

#: Authors' repository pinned at the commit the paper's data come from. The files'
#: paths in that repository differ: the Transformer tables sit in ``data/``, the
#: LSTM tables in ``data/processed/`` (checked against the repository's index:
#: same sizes and content as the SHA-256-pinned copies). Set
#: ``POWERFIT_MAYAKI2025_URL`` to a mirror of the repository's root (same layout)
#: to download from elsewhere — e.g. if GitHub does not resolve the short commit.
MAYAKI2025_URL = "https://raw.githubusercontent.com/MansMayaki/MLEnergyConsumption/609d971"

#: The processed files: attribute name -> (file name, SHA-256, path in the repository).
MAYAKI2025_FILES: dict[str, tuple[str, str, str]] = {
    "transformer_operations": (
        "dataForTransformerHEF.csv",
        "f31992d487fa9cb591c29a53a0a7d36b70ea99fcc9047a33aee6f0cd20b7ada0",
        "data/dataForTransformerHEF.csv",
    ),
    "lstm_operations": (
        "dataForLstmHEF.csv",
        "2453bcfa99fd74c6c966d166d3af6d310d99e109a9d974e70b6c474a2212b8f8",
        "data/processed/dataForLstmHEF.csv",
    ),
    "transformer_energy": (
        "SubsetDataForTransformer_energyModel.csv",
        "390d5178d7266459931fb119ae54a6c3795b6d3d910f4038b05fe100875b2e23",
        "data/SubsetDataForTransformer_energyModel.csv",
    ),
    "lstm_energy": (
        "SubsetDataForLSTM_energyModel.csv",
        "0eeae0757ba8528665dc1f2f7f03d2f9032f4b55303c67d291bf883643d0f3a2",
        "data/processed/SubsetDataForLSTM_energyModel.csv",
    ),
}


def get_data_home(data_home: str | os.PathLike[str] | None = None) -> Path:
    """Folder where powerfit looks for (and caches) datasets.

    Parameters
    ----------
    data_home : path, optional
        Explicit folder. Default: ``POWERFIT_DATA_HOME``, else
        ``$XDG_CACHE_HOME/powerfit`` (``~/.cache/powerfit``).

    Returns
    -------
    pathlib.Path
        Absolute path (not created).
    """
    if data_home is None:
        data_home = os.environ.get("POWERFIT_DATA_HOME")
    if data_home is None:
        cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        data_home = Path(cache) / "powerfit"
    return Path(data_home).expanduser().resolve()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Mayaki2025:
    """The four processed tables of Mayaki & Charpenay (2025), as published.

    Attributes
    ----------
    transformer_operations : pandas.DataFrame
        3,000 timed Transformer operations (``dataForTransformerHEF.csv``).
    lstm_operations : pandas.DataFrame
        11,400 timed LSTM operations (``dataForLstmHEF.csv``).
    transformer_energy : pandas.DataFrame
        1,576 Transformer training steps (``SubsetDataForTransformer_energyModel.csv``).
    lstm_energy : pandas.DataFrame
        741 LSTM configurations (``SubsetDataForLSTM_energyModel.csv``).
    paths : dict of str to pathlib.Path
        Where each table was read from.
    """

    transformer_operations: pd.DataFrame
    lstm_operations: pd.DataFrame
    transformer_energy: pd.DataFrame
    lstm_energy: pd.DataFrame
    paths: dict[str, Path]


def _dataset_dir(data_home: str | os.PathLike[str] | None) -> Path:
    return get_data_home(data_home) / "mayaki2025" / "processed"


def fetch_mayaki2025(
    data_home: str | os.PathLike[str] | None = None, download_if_missing: bool = True
) -> Mayaki2025:
    """Load the published measurements of Mayaki & Charpenay (2025).

    Parameters
    ----------
    data_home : path, optional
        See :func:`get_data_home`.
    download_if_missing : bool, default True
        Download a missing file from the authors' repository (pinned commit, see
        :data:`MAYAKI2025_URL`; ``POWERFIT_MAYAKI2025_URL`` names a mirror) into
        ``data_home``; when False, a missing file raises.

    Returns
    -------
    Mayaki2025

    Raises
    ------
    FileNotFoundError
        A file is missing and ``download_if_missing`` is False.
    ValueError
        A file's SHA-256 differs from the pinned one.
    OSError
        A download failed.
    """
    folder = _dataset_dir(data_home)
    tables: dict[str, pd.DataFrame] = {}
    paths: dict[str, Path] = {}
    for attr, (filename, expected, upstream) in MAYAKI2025_FILES.items():
        path = folder / filename
        if not path.exists():
            if not download_if_missing:
                raise FileNotFoundError(
                    f"{path} not found; set POWERFIT_DATA_HOME to the folder holding "
                    "mayaki2025/, or allow download_if_missing"
                )
            _download(upstream, path, expected)
        actual = sha256_file(path)
        if actual != expected:
            raise ValueError(
                f"{path}: SHA-256 {actual} differs from the published {expected}; "
                "the file is damaged or not the published one"
            )
        tables[attr] = pd.read_csv(path, index_col=0)
        paths[attr] = path
    return Mayaki2025(**tables, paths=paths)


def _download(upstream: str, path: Path, expected: str) -> None:
    """Download one file into ``path`` atomically, checking its SHA-256.

    Parameters
    ----------
    upstream : str
        Path of the file in the authors' repository, e.g. ``data/dataForTransformerHEF.csv``.
    path : pathlib.Path
        Destination.
    expected : str
        Pinned SHA-256.

    Raises
    ------
    OSError
        When the download fails (the message names the URL).
    ValueError
        When the downloaded content is not the published one (nothing is kept).
    """
    import urllib.error
    import urllib.request

    base = os.environ.get("POWERFIT_MAYAKI2025_URL") or MAYAKI2025_URL
    url = f"{base.rstrip('/')}/{upstream}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
    except (urllib.error.URLError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(
            f"cannot download {url}: {exc}; set POWERFIT_MAYAKI2025_URL to a mirror of "
            "the repository, or POWERFIT_DATA_HOME to a folder holding mayaki2025/"
        ) from exc
    actual = sha256_file(tmp)
    if actual != expected:
        tmp.unlink()
        raise ValueError(
            f"{url}: downloaded SHA-256 {actual} differs from the published {expected}"
        )
    tmp.replace(path)


# ----------------------------------------------------------------------- NeuSight 2025
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


def _neusight_checksums(folder: Path) -> dict[str, str]:
    sums = folder / "SHA256SUMS"
    if not sums.exists():
        raise FileNotFoundError(
            f"{sums} not found; set POWERFIT_DATA_HOME to the folder holding neusight2025/"
        )
    table: dict[str, str] = {}
    for lineno, line in enumerate(sums.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise ValueError(f"{sums}, line {lineno}: expected '<sha256>  <path>', got {line!r}")
        table[parts[1].strip().removeprefix("./")] = parts[0]
    return table


def _checked(folder: Path, relative: str, sums: dict[str, str]) -> Path:
    path = folder / relative
    if relative not in sums:
        raise ValueError(f"{path}: not listed in {folder / 'SHA256SUMS'}")
    actual = sha256_file(path)
    if actual != sums[relative]:
        raise ValueError(
            f"{path}: SHA-256 {actual} differs from the pinned {sums[relative]} "
            f"({folder / 'SHA256SUMS'}); the file is damaged or not the published one"
        )
    return path


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
    sums = _neusight_checksums(folder)
    commit = _checked(folder, "COMMIT", sums).read_text().strip()
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
        path = _checked(folder, relative, sums)
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
            spec = json.loads(_checked(folder, relative, sums).read_text())
            devices[str(spec["Device"])] = spec
        elif parts[0] == "models":
            config = json.loads(_checked(folder, relative, sums).read_text())
            models[parts[1].removesuffix(".json")] = config
        elif parts[0] == "labels" and relative.endswith(".json"):
            steps.append(_neusight_step(folder, relative, sums))
    steps_frame = pd.DataFrame(steps)
    return NeuSight2025(operators, devices, models, steps_frame, commit, folder)


def _neusight_step(folder: Path, relative: str, sums: dict[str, str]) -> dict:
    """One measured step from ``labels/<GPU>/<model>-<mode>-<seq>-<batch>.json``."""
    path = _checked(folder, relative, sums)
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
