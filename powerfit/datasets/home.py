"""Where the data sets live and how their files are checked.

:func:`get_data_home`: ``POWERFIT_DATA_HOME``, else a per-user cache directory;
:func:`sha256_file`: the digest every published file is checked against.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["get_data_home"]


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


def read_sha256sums(folder: str | os.PathLike[str]) -> dict[str, str]:
    """The ``SHA256SUMS`` file of a data set folder: relative path -> SHA-256 (hex).

    Raises
    ------
    FileNotFoundError
        When the folder has no ``SHA256SUMS`` (the message says how to point
        ``POWERFIT_DATA_HOME`` at the data).
    ValueError
        When a line is not ``<sha256>  <path>`` (the line is named).
    """
    folder = Path(folder)
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        raise FileNotFoundError(
            f"{sums} not found; set POWERFIT_DATA_HOME to the folder holding {folder.name}/ "
            "(see the data set's README)"
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


def checked_file(folder: str | os.PathLike[str], relative: str, sums: dict[str, str]) -> Path:
    """``folder/relative``, once its SHA-256 matches ``sums`` (:func:`read_sha256sums`).

    Raises
    ------
    FileNotFoundError
        When the file is missing.
    ValueError
        When it is not listed or its digest differs (the file is named).
    """
    folder = Path(folder)
    path = folder / relative
    if relative not in sums:
        raise ValueError(f"{path}: not listed in {folder / 'SHA256SUMS'}")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (listed in {folder / 'SHA256SUMS'})")
    actual = sha256_file(path)
    if actual != sums[relative]:
        raise ValueError(
            f"{path}: SHA-256 differs from the pinned {sums[relative]} "
            f"({folder / 'SHA256SUMS'}; found {actual}): the file is damaged or not the "
            "published one"
        )
    return path


def check_sha256sums(folder: str | os.PathLike[str], names: list[str]) -> None:
    """Check files of a data set folder against its ``SHA256SUMS`` file.

    Raises
    ------
    FileNotFoundError
        When the folder, its ``SHA256SUMS`` or one of ``names`` is missing.
    ValueError
        When a file is not listed or its digest differs (the file is named).
    """
    sums = read_sha256sums(folder)
    for name in names:
        checked_file(folder, name, sums)
