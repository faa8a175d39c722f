"""On-disk cache of traced training steps (:mod:`powerfit.architectures.trace`).

A trace takes seconds (importing torch and transformers, building the model on the
meta device, running a step); reading it back takes milliseconds and imports
neither. :func:`cached_trace` keys a trace by the SHA-256 of the config's content
(canonical JSON: key order and spacing do not matter), the sequence length, the
attention kind asked and the precision class it resolves under, the trace format
(:data:`~powerfit.architectures.trace.TRACE_VERSION`) and the installed torch and
transformers versions (read from the package metadata, without importing them). The
batch is not in the key: a trace holds for every batch (it is traced at two batches
and each dimension checked to be fixed or proportional to it).

Directory: ``$POWERFIT_CACHE_DIR/traces`` if set, else
``$XDG_CACHE_HOME/powerfit/traces``, else ``~/.cache/powerfit/traces``. Each entry is
one JSON file named by its key; nothing in it is ever executed or used as a path. An
entry is validated on load (:meth:`TracedStep.from_json` checks every field and its
stored key must match); a damaged or foreign entry is ignored and traced again.
Writes go to a temporary file renamed into place, so concurrent estimates never read
half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from powerfit.architectures.trace import TRACE_VERSION, TracedStep, library_versions

__all__ = ["cache_dir", "cache_key", "cached_trace"]

_HALF = ("fp16", "bf16", "amp-fp16", "amp-bf16")


def cache_dir() -> Path:
    """The directory of cached traces (see the module notes)."""
    root = os.environ.get("POWERFIT_CACHE_DIR")
    if root:
        return Path(root) / "traces"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "powerfit" / "traces"


def cache_key(
    data: Mapping[str, Any], seq_len: int, attention: str, precision: str, ampere: bool = True
) -> str:
    """SHA-256 key of a trace (hex).

    The precision enters only as half (fp16/bf16, with or without AMP) or not, and
    the GPU only as Ampere-or-newer or not: the things that change what is traced
    (the traced width, which attention kind runs).
    """
    payload = {
        "config": data,
        "seq_len": int(seq_len),
        "attention": attention,
        "half": precision in _HALF,
        "ampere": bool(ampere),
        "trace_version": TRACE_VERSION,
        "libraries": library_versions(),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read(path: Path, key: str) -> TracedStep | None:
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(stored, dict) or stored.get("key") != key:
            return None
        return TracedStep.from_json(stored.get("trace"))
    except (OSError, ValueError, TypeError):
        return None


def _write(path: Path, key: str, trace: TracedStep) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".trace-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"key": key, "trace": trace.to_json()}, fh)
        os.replace(tmp, path)
    except OSError:  # a read-only or full cache directory: estimate without caching
        pass


def cached_trace(
    data: Mapping[str, Any],
    seq_len: int,
    *,
    attention: str = "auto",
    precision: str = "fp32",
    ampere: bool = True,
    source: str = "config",
    use_cache: bool = True,
) -> tuple[TracedStep, bool]:
    """The traced step of a config, from the cache or traced (and cached) now.

    Parameters
    ----------
    data : mapping
        The content of a ``config.json``.
    seq_len : int
        Tokens per sequence [-].
    attention : str
        ``auto``, ``eager``, ``sdpa`` or ``flash``.
    precision : str
        Precision of the step (resolves the attention kind).
    ampere : bool, default True
        The GPU is an Ampere or newer (resolves the attention kind).
    source : str
        Where the config comes from (named in errors).
    use_cache : bool, default True
        Read and write the cache.

    Returns
    -------
    (TracedStep, bool)
        The trace, and whether it came from the cache.
    """
    from powerfit.architectures.trace import trace_step

    key = cache_key(data, seq_len, attention, precision, ampere)
    path = cache_dir() / f"{key}.json"
    if use_cache:
        hit = _read(path, key)
        if hit is not None:
            return hit, True
    trace = trace_step(
        data, seq_len, attention=attention, precision=precision, ampere=ampere, source=source
    )
    if use_cache:
        _write(path, key, trace)
    return trace, False
