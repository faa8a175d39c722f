"""The data of Mayaki & Charpenay (ECAI 2025), in scikit-learn's ``fetch_*`` style.

:func:`fetch_mayaki2025` returns the four processed tables published with the paper,
exactly as published (the paper's column names and units; see ``method.md`` §4 for
their traps). The files are looked for in ``<data_home>/mayaki2025/processed/``;
``data_home`` defaults to the ``POWERFIT_DATA_HOME`` environment variable, else a
per-user cache directory (:func:`~powerfit.datasets.home.get_data_home`). When that
folder does not hold them, the copy embedded in the package is read
(``powerfit/data/mayaki2025/*.csv.gz``, MIT, same content: :func:`embedded_dir`), so
nothing is downloaded; only without that copy are missing files downloaded from the
authors' repository. Every file is checked against its pinned SHA-256 (of the
decompressed content for the embedded copy).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from powerfit.datasets.home import get_data_home, sha256_file

__all__ = [
    "MAYAKI2025_FILES",
    "Mayaki2025",
    "embedded_dir",
    "fetch_mayaki2025",
    "mayaki2025_dir",
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
        Where each table was read from (a ``.csv.gz`` of :func:`embedded_dir` when the
        data home does not hold the published file).
    embedded : bool
        Every table was read from the copy embedded in the package.
    """

    transformer_operations: pd.DataFrame
    lstm_operations: pd.DataFrame
    transformer_energy: pd.DataFrame
    lstm_energy: pd.DataFrame
    paths: dict[str, Path]
    embedded: bool = False


def _dataset_dir(data_home: str | os.PathLike[str] | None) -> Path:
    return get_data_home(data_home) / "mayaki2025" / "processed"


def embedded_dir() -> Path:
    """Folder of the processed files embedded in the package (gzipped, MIT licence).

    Returns
    -------
    pathlib.Path
        ``powerfit/data/mayaki2025`` of the installed package: ``<file>.csv.gz`` for
        every file of :data:`MAYAKI2025_FILES`, with ``LICENSE`` and ``README.md``.

    Examples
    --------
    >>> sorted(p.name for p in embedded_dir().glob("*.csv.gz"))[:1]
    ['SubsetDataForLSTM_energyModel.csv.gz']
    """
    return Path(__file__).resolve().parents[1] / "data" / "mayaki2025"


def mayaki2025_dir(data_home: str | os.PathLike[str] | None = None) -> Path:
    """Folder :func:`fetch_mayaki2025` reads the published files from.

    Parameters
    ----------
    data_home : path, optional
        See :func:`get_data_home`.

    Returns
    -------
    pathlib.Path
        ``<data home>/mayaki2025/processed`` when it holds the four published CSVs,
        else :func:`embedded_dir` (the same files, gzipped). ``<folder>/*.csv*``
        names the four files in both.
    """
    folder = _dataset_dir(data_home)
    if all((folder / name).is_file() for name, _, _ in MAYAKI2025_FILES.values()):
        return folder
    return embedded_dir()


def _embedded_sha256(path: Path) -> str:
    """SHA-256 of a gzip file's decompressed content (hex)."""
    import gzip
    import hashlib

    digest = hashlib.sha256()
    with gzip.open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_mayaki2025(
    data_home: str | os.PathLike[str] | None = None,
    download_if_missing: bool = True,
    *,
    embedded: bool = True,
) -> Mayaki2025:
    """Load the published measurements of Mayaki & Charpenay (2025).

    Parameters
    ----------
    data_home : path, optional
        See :func:`get_data_home`. A file missing there is read from the copy
        embedded in the package (:func:`embedded_dir`), offline.
    download_if_missing : bool, default True
        Only without the embedded copy: download a missing file from the authors'
        repository (pinned commit, see :data:`MAYAKI2025_URL`;
        ``POWERFIT_MAYAKI2025_URL`` names a mirror) into ``data_home``; when False,
        a missing file raises.
    embedded : bool, default True
        Read a file missing from ``data_home`` from the embedded copy; False: only
        the data home (and downloads).

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
    packaged_dir = embedded_dir() if embedded else None
    tables: dict[str, pd.DataFrame] = {}
    paths: dict[str, Path] = {}
    for attr, (filename, expected, upstream) in MAYAKI2025_FILES.items():
        path = folder / filename
        packaged = packaged_dir / f"{filename}.gz" if packaged_dir is not None else None
        if not path.exists() and packaged is not None and packaged.exists():
            actual = _embedded_sha256(packaged)
            if actual != expected:
                raise ValueError(
                    f"{packaged}: SHA-256 {actual} of the content differs from the "
                    f"published {expected}; the installed package is damaged"
                )
            tables[attr] = pd.read_csv(packaged, index_col=0)
            paths[attr] = packaged
            continue
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
    return Mayaki2025(
        **tables, paths=paths, embedded=all(p.parent == packaged_dir for p in paths.values())
    )


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
