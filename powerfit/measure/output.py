"""Writing measurement files: canonical tables (CSV or Parquet) and JSON records.

Files are written to a temporary name beside the target and renamed, so that a file
is either absent or complete even when a campaign is killed while writing it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["write_json", "write_table"]


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a measurement table atomically.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows in a canonical format (:mod:`powerfit.formats`).
    path : path-like
        Target; Parquet for a ``.parquet`` suffix, CSV otherwise. Missing values are
        written as empty CSV fields.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False, float_format="%.10g")
    os.replace(tmp, path)
    return path


def write_json(record: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a JSON record atomically; NaN becomes null (JSON has no NaN).

    Parameters
    ----------
    record : dict
        JSON-serialisable values (NumPy scalars are converted).
    path : path-like
        Target file.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_clean(record), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
