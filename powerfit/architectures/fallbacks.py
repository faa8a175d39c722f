"""Which of transformers' kernel-package paths a trace ran as its PyTorch reference.

transformers runs some layers through optional kernel packages when they are
installed and the inputs are on a GPU (``flash-linear-attention``'s gated delta rule
in Qwen 3.5 and Qwen3-Next, ``causal-conv1d`` and ``mamba-ssm`` in the hybrid
models...), and through a reference PyTorch implementation otherwise. On the meta
device it is always the reference, so a trace times those layers as the reference's
eager kernels: an upper bound on what the fused kernels take (transformers itself says
"correct but much slower"). :func:`reference_fallbacks` collects those functions while
a trace runs, keeps transformers' own log line off the output (every trace, not only a
process's first, is told) and :func:`fallback_note` says it in one line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["fallback_note", "reference_fallbacks"]

#: The logger transformers' kernel wrappers write to.
_LOGGER = "transformers.integrations.hub_kernels"
_FALLBACK = re.compile(
    r"`(?P<func>\w+)` is falling back to its reference PyTorch implementation because "
    r"`(?P<package>[\w.-]+)`"
)


class _Collect(logging.Filter):
    """Records the fallbacks and keeps their log lines from being written."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        match = _FALLBACK.search(record.getMessage())
        if match is None:
            return True
        self.found.setdefault(match["func"], match["package"])
        return False


@contextmanager
def reference_fallbacks() -> Iterator[dict[str, str]]:
    """Collect ``{function: package}`` of the reference paths run inside the block."""
    once = getattr(logging.Logger, "warning_once", None)
    if hasattr(once, "cache_clear"):
        once.cache_clear()  # transformers warns once per process: every trace is told
    logger = logging.getLogger(_LOGGER)
    collect = _Collect()
    logger.addFilter(collect)
    try:
        yield collect.found
    finally:
        logger.removeFilter(collect)


#: Kernel-package functions whose reference does no work (returns None, so that
#: transformers takes its unfused path, whose pieces are named on their own).
_NO_WORK = frozenset({"mamba_inner_fn", "mamba_split_conv1d_scan_combined"})


def fallback_note(found: dict[str, str]) -> str | None:
    """The warning of a trace that ran reference paths (None when it ran none)."""
    found = {f: p for f, p in found.items() if f not in _NO_WORK}
    if not found:
        return None
    funcs = ", ".join(sorted(found))
    packages = ", ".join(sorted(set(found.values())))
    return (
        f"{funcs}: traced as transformers' reference PyTorch implementation (the fused "
        f"kernels of {packages} run only on a GPU) and timed as its eager kernels, so "
        "these layers' time is an upper bound: fused, they run faster"
    )
