"""Vidur's collective latencies (Agrawal et al., MLSys 2024): the ``network/`` part only.

:func:`load_vidur_network` reads ``<data_home>/vidur2024/network/<topology>/<collective>.csv.gz``
(all-reduce and send/recv between 2 and 16 GPUs of A100, H100 and A40 nodes), checks
each file against the dataset's ``SHA256SUMS`` and returns one tidy table in SI units.

Units, checked against upstream: the ``size`` column is **bytes**, not elements.
Upstream's ``vidur/profiling/collectives/collectives_wrapper.py`` allocates ``size`` FP16
elements and records ``"size": self._size * 2  # bytes``; the dataset README's
"elements of FP16" is wrong. The physical check agrees: read as bytes, 8 A100s on
NVSwitch reach a ring bus bandwidth of 174 GB/s at the largest size (NVLink 3:
300 GB/s per direction); read as elements it would be 348 GB/s, above the link.
Times are upstream's ``time_stats.<collective>.median`` of the NCCL kernels [ms],
converted to seconds.

Rows with ``devices_per_node < num_workers`` span nodes (``a100_dgx`` only: 2, 4, 8 and
16 GPUs over two nodes); the others run inside one node. ``h100_pairwise_nvlink``'s
send/recv file is byte for byte ``a100_pairwise_nvlink``'s (same SHA-256): upstream
copied it; :func:`load_vidur_network` drops it (``duplicates`` says so).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from powerfit.datasets.home import get_data_home, read_sha256sums, sha256_file
from powerfit.exceptions import DataError

__all__ = ["VIDUR_NETWORK_COLUMNS", "VIDUR_TOPOLOGIES", "load_vidur_network"]

#: Topology -> (GPU family, node kind, GPUs per node), as the dataset README describes them.
VIDUR_TOPOLOGIES: dict[str, tuple[str, str, int]] = {
    "a100_dgx": ("a100", "NVSwitch DGX", 8),
    "h100_dgx": ("h100", "NVSwitch DGX", 8),
    "a100_pairwise_nvlink": ("a100", "NVLink in pairs", 4),
    "h100_pairwise_nvlink": ("h100", "NVLink in pairs", 4),
    "a40_pairwise_nvlink": ("a40", "NVLink in pairs", 4),
}

#: Columns of :func:`load_vidur_network`'s frame.
VIDUR_NETWORK_COLUMNS = (
    "topology",
    "collective",
    "num_workers",
    "devices_per_node",
    "n_nodes",
    "bytes",
    "time_s",
    "time_min_s",
    "time_std_s",
    "source",
)

_REQUIRED = ("num_workers", "size", "collective", "devices_per_node")


def _read(folder: Path, relative: str, digest: str) -> pd.DataFrame:
    path = folder / relative
    actual = sha256_file(path)
    if actual != digest:
        raise DataError(
            f"SHA-256 {actual} differs from the pinned {digest}: "
            "damaged or not the published file",
            source=str(path),
        )
    collective = Path(relative).name.removesuffix(".csv.gz")
    raw = pd.read_csv(path)
    median = f"time_stats.{collective}.median"
    for col in (*_REQUIRED, median):
        if col not in raw.columns:
            raise DataError("column missing", source=str(path), column=col)
    out = pd.DataFrame(
        {
            "topology": Path(relative).parent.name,
            "collective": raw["collective"].astype(str),
            "num_workers": pd.to_numeric(raw["num_workers"], errors="coerce"),
            "devices_per_node": pd.to_numeric(raw["devices_per_node"], errors="coerce"),
            "bytes": pd.to_numeric(raw["size"], errors="coerce"),
            "time_s": pd.to_numeric(raw[median], errors="coerce") * 1e-3,
            "time_min_s": pd.to_numeric(raw.get(f"time_stats.{collective}.min"), errors="coerce")
            * 1e-3,
            "time_std_s": pd.to_numeric(raw.get(f"time_stats.{collective}.std"), errors="coerce")
            * 1e-3,
            "source": relative,
        }
    )
    checks = {
        "num_workers": out.num_workers >= 2,
        "devices_per_node": out.devices_per_node >= 1,
        "size": out["bytes"] > 0,
        median: out.time_s > 0,
    }
    for col, ok in checks.items():
        bad = np.flatnonzero(~ok.fillna(False).to_numpy())
        if bad.size:
            raise DataError(
                "missing, non-numeric or out-of-range value",
                source=str(path),
                row=int(bad[0]) + 1,
                column=col,
            )
    wrong = np.flatnonzero((out.collective != collective).to_numpy())
    if wrong.size:
        raise DataError(
            f"collective {out.collective.iloc[wrong[0]]!r} in a {collective} file",
            source=str(path),
            row=int(wrong[0]) + 1,
            column="collective",
        )
    out["num_workers"] = out.num_workers.astype("int64")
    out["devices_per_node"] = out.devices_per_node.astype("int64")
    out["bytes"] = out["bytes"].astype("int64")
    out["n_nodes"] = -(-out.num_workers // out.devices_per_node)
    return out


def load_vidur_network(
    data_home: str | os.PathLike[str] | None = None, *, keep_duplicates: bool = False
) -> pd.DataFrame:
    """Vidur's collective latencies, one row per (topology, collective, GPUs, size).

    Parameters
    ----------
    data_home : path-like, optional
        Folder holding ``vidur2024/`` (default :func:`powerfit.datasets.get_data_home`).
    keep_duplicates : bool, default False
        Keep files that are byte-for-byte copies of another topology's file (upstream's
        ``h100_pairwise_nvlink/send_recv`` is ``a100_pairwise_nvlink``'s).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`VIDUR_NETWORK_COLUMNS`: ``topology`` (:data:`VIDUR_TOPOLOGIES`),
        ``collective`` (``all_reduce`` or ``send_recv``), ``num_workers`` [-],
        ``devices_per_node`` [-], ``n_nodes`` [-], ``bytes`` [B] (the FP16 buffer),
        ``time_s`` (median) [s], ``time_min_s`` [s], ``time_std_s`` [s], ``source``
        (file relative to ``vidur2024/``). ``attrs['duplicates']`` lists dropped copies.

    Raises
    ------
    FileNotFoundError
        No ``vidur2024/SHA256SUMS`` under the data home.
    powerfit.exceptions.DataError
        A damaged file, a missing column or a bad value (file, row and column named).
    """
    folder = get_data_home(data_home) / "vidur2024"
    sums = read_sha256sums(folder)
    frames, seen, duplicates = [], {}, []
    for relative in sorted(r for r in sums if r.startswith("network/")):
        digest = sums[relative]
        if digest in seen and not keep_duplicates:
            duplicates.append(f"{relative} (= {seen[digest]})")
            continue
        seen.setdefault(digest, relative)
        frames.append(_read(folder, relative, digest))
    if not frames:
        raise FileNotFoundError(f"no network/ files listed in {folder / 'SHA256SUMS'}")
    out = pd.concat(frames, ignore_index=True)[list(VIDUR_NETWORK_COLUMNS)]
    out.attrs["duplicates"] = duplicates
    return out
