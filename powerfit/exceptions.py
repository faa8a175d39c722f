"""Exceptions raised by powerfit.

Every error that powerfit raises on purpose derives from :class:`PowerfitError`,
so that applications (and the command line) can tell powerfit's own, explained
failures from programming errors. Errors about bad input also derive from
:class:`ValueError`, as scikit-learn users expect.
"""

from __future__ import annotations

__all__ = [
    "ConvergenceError",
    "DataError",
    "PowerfitError",
    "StoreError",
]


class PowerfitError(Exception):
    """Base class of every error that powerfit raises on purpose."""


class DataError(PowerfitError, ValueError):
    """Bad input data: names the file, row and column where they are known.

    Parameters
    ----------
    message : str
        What is wrong.
    source : str, optional
        File (or other source) the data came from.
    row : int, optional
        1-based data row (the header is row 0), as a person counts rows in a file.
    column : str, optional
        Column name.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.row = row
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.source is not None:
            where.append(f"{self.source}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class ConvergenceError(PowerfitError, RuntimeError):
    """A fit did not converge; the message says which and why."""


class StoreError(PowerfitError):
    """The measurement store cannot do what was asked (connection, schema, integrity)."""
