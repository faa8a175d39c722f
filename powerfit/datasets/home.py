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


def check_sha256sums(folder: str | os.PathLike[str], names: list[str]) -> None:
    """Check files of a data set folder against its ``SHA256SUMS`` file.

    Raises
    ------
    FileNotFoundError
        When the folder, its ``SHA256SUMS`` or one of ``names`` is missing.
    ValueError
        When a file is not listed or its digest differs (the file is named).
    """
    folder = Path(folder)
    sums_path = folder / "SHA256SUMS"
    if not sums_path.is_file():
        raise FileNotFoundError(f"{sums_path} not found (see the data set's README)")
    sums = {}
    for line in sums_path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip().removeprefix("./")] = digest
    for name in names:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found")
        if name not in sums:
            raise ValueError(f"{path}: not listed in {sums_path}")
        if sha256_file(path) != sums[name]:
            raise ValueError(f"{path}: SHA-256 differs from {sums_path}")
