"""Lazy exports: a package names its public objects without importing their modules.

A name that is not exported but moved out of the package (:mod:`powerfit._moved`) is
served from its new place, with a DeprecationWarning.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from powerfit._moved import moved


def lazy_exports(
    package: str, exports: Mapping[str, str], public: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` for a package's lazy exports.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : mapping of str to str
        Exported name → module that defines it (imported on first access).
    public : iterable of str
        The package's ``__all__``.

    Returns
    -------
    tuple of callables
        ``(__getattr__, __dir__)`` to assign in the package's ``__init__``.
    """
    names = sorted(set(public) | set(exports))

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        return moved(package, name)

    def __dir__() -> list[str]:
        return names

    return __getattr__, __dir__
