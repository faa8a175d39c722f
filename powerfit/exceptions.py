"""Exceptions raised by powerfit.

Every error that powerfit raises on purpose derives from :class:`PowerfitError`,
so that applications (and the command line) can tell powerfit's own, explained
failures from programming errors. Errors about bad input also derive from
:class:`ValueError`, as scikit-learn users expect.
"""

from __future__ import annotations

import re

__all__ = [
    "ConvergenceError",
    "DataError",
    "PowerfitError",
    "StoreError",
    "TrackingError",
    "mask_urls",
]

#: ``scheme://user:PASSWORD@`` anywhere in a text.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*:)[^\s@'\"]*@")

#: Secrets passed as query parameters (``?password=...``, ``&token=...``).
_SECRET_QUERY = re.compile(
    r"(?i)([?&](?:password|passwd|pwd|token|access_token|api_key|apikey|secret)=)[^&#\s'\"]*"
)


def mask_urls(text: str) -> str:
    """Hide every URL password in a free text (messages, tracebacks, log records).

    Replaces the password of each ``scheme://user:password@host`` and the value of
    secret query parameters (``password``, ``token``, ``api_key``...) by ``***``.
    For one URL, :func:`powerfit.store.engine.mask_url` renders database URLs with
    SQLAlchemy and then applies this function.

    Examples
    --------
    >>> mask_urls("cannot reach postgresql://me:s3cret@db/x (http://u:p@h:5000/)")
    'cannot reach postgresql://me:***@db/x (http://u:***@h:5000/)'
    >>> mask_urls("postgresql://db/x?user=me&password=s3cret")
    'postgresql://db/x?user=me&password=***'
    """
    return _SECRET_QUERY.sub(r"\1***", _USERINFO.sub(r"\1***@", text))


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


class TrackingError(PowerfitError):
    """The MLflow tracking store cannot be reached or used (its URI is shown masked)."""
