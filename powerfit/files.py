"""Open the files a user names: regular files only, of a bounded size.

Every path powerfit reads on a user's behalf (``powerfit ingest``, ``--hf-config``,
``--input``, a pyfunc specification) goes through this module, so that

* anything that is not a regular file (a FIFO, ``/dev/zero``, a folder, a socket)
  is refused in one line instead of blocking or growing without end;
* the content, decompressed where it is gzip, is bounded by
  :func:`max_input_bytes` (``POWERFIT_MAX_INPUT_BYTES``, default 1 GiB);
* a gzip file is read member by member to its end, and bytes after the last member
  (trailing garbage) are refused.

>>> import tempfile, os
>>> with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
...     _ = f.write('{"n_layer": 2}')
>>> read_input(f.name)
b'{"n_layer": 2}'
>>> os.unlink(f.name)
>>> read_input("/dev/zero")
Traceback (most recent call last):
...
powerfit.exceptions.DataError: /dev/zero: not a regular file (a character device); give a file
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import zlib
from collections.abc import Iterator
from typing import IO

from powerfit.exceptions import DataError

__all__ = [
    "MAX_INPUT_BYTES",
    "decompressed",
    "max_input_bytes",
    "open_input",
    "printable",
    "read_input",
]

#: Default bound on a file's content, after decompression [B].
MAX_INPUT_BYTES = 2**30

_ENV = "POWERFIT_MAX_INPUT_BYTES"
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def max_input_bytes() -> int:
    """The largest input [B] powerfit reads: ``POWERFIT_MAX_INPUT_BYTES`` or 1 GiB.

    Raises
    ------
    DataError
        When the environment variable is not a positive integer.
    """
    return positive_env_int(_ENV, MAX_INPUT_BYTES, "bytes")


def positive_env_int(
    name: str, default: int, unit: str, error: type[Exception] = DataError
) -> int:
    """A positive integer from the environment variable ``name``, else ``default``.

    Parameters
    ----------
    name : str
        The environment variable.
    default : int
        Its value when unset or blank.
    unit : str
        What it counts, for the error (``"bytes"``, ``"rows"``).
    error : type of Exception
        Raised, with one line naming the variable, when it is not a positive integer.
    """
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise error(f"{name}={text!r}: give a positive number of {unit}")
    return value


def _mib(size: float) -> str:
    return f"{size / 2**20:,.0f} MiB"


def _too_large(source: str, what: str, limit: int) -> DataError:
    return DataError(
        f"{what} more than {_mib(limit)}, more than powerfit reads (set {_ENV} to raise "
        "the bound)",
        source=source,
    )


def _refuse(source: str, mode: int) -> None:
    """Raise for anything but a regular file."""
    if stat.S_ISDIR(mode):
        raise DataError(
            f"is a directory, not a file; give the files (e.g. {os.path.join(source, '*.csv')})",
            source=source,
        )
    for test, name in _KINDS:
        if test(mode):
            raise DataError(f"not a regular file ({name}); give a file", source=source)
    if not stat.S_ISREG(mode):
        raise DataError("not a regular file; give a file", source=source)


@contextlib.contextmanager
def open_input(path: str | os.PathLike[str], *, limit: int | None = None) -> Iterator[IO[bytes]]:
    """Open a regular file for reading, refusing anything else and oversized files.

    Parameters
    ----------
    path : str or path-like
        The file.
    limit : int, optional
        Largest size [B] (default :func:`max_input_bytes`).

    Yields
    ------
    binary file
        Open for reading, at its start.

    Raises
    ------
    FileNotFoundError
        When the path does not exist.
    DataError
        For a folder, FIFO, device or socket (checked without opening it for
        blocking reads), an unreadable file, or one larger than ``limit``.
    """
    source = os.fspath(path)
    limit = max_input_bytes() if limit is None else limit
    try:
        mode = os.stat(source).st_mode
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", source=source) from None
    _refuse(source, mode)
    try:
        # O_NONBLOCK: a FIFO swapped in after the check cannot block the open.
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", source=source) from None
    try:
        info = os.fstat(fd)
        _refuse(source, info.st_mode)
        if info.st_size > limit:
            raise _too_large(source, f"{_mib(info.st_size)}:", limit)
        os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def read_input(path: str | os.PathLike[str], *, limit: int | None = None) -> bytes:
    """The content of a regular file of at most ``limit`` bytes (as stored, not gunzipped).

    For small inputs read whole: a configuration, a specification, a CSV of
    configurations. See :func:`open_input` for what is refused.
    """
    limit = max_input_bytes() if limit is None else limit
    source = os.fspath(path)
    with open_input(source, limit=limit) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:  # grew after the check
        raise _too_large(source, "it holds", limit)
    return data


def _gunzip_into(
    source: str, handle: IO[bytes], out: IO[bytes], digest: hashlib._Hash, limit: int
) -> None:
    """Decompress every gzip member of ``handle`` into ``out``; refuse trailing bytes."""
    inflate = zlib.decompressobj(wbits=31)
    written = 0
    offset = 0  # of the compressed input consumed so far
    members = 1
    pending = b""
    while True:
        chunk = pending or handle.read(_CHUNK)
        if not pending:
            digest.update(chunk)
        pending = b""
        if not chunk:
            if not inflate.eof:
                raise DataError("unreadable gzip file: truncated", source=source)
            return
        try:
            data = inflate.decompress(chunk, _CHUNK)
            while True:
                written += len(data)
                if written > limit:
                    raise _too_large(source, "its gzip content holds", limit)
                out.write(data)
                if inflate.eof or not inflate.unconsumed_tail:
                    break
                data = inflate.decompress(inflate.unconsumed_tail, _CHUNK)
        except zlib.error as exc:
            raise DataError(f"unreadable gzip file: {exc}", source=source) from None
        offset += len(chunk) - len(inflate.unused_data)
        if inflate.eof:
            rest = inflate.unused_data
            if not rest:
                rest = handle.read(_CHUNK)
                digest.update(rest)
                if not rest:
                    return
            if rest[:2] != _GZIP_MAGIC[: len(rest[:2])]:
                raise DataError(
                    f"{len(rest)}+ bytes after the end of gzip member {members} (at byte "
                    f"{offset}) are not gzip: trailing garbage, refused",
                    source=source,
                )
            members += 1
            inflate = zlib.decompressobj(wbits=31)
            pending = rest


@contextlib.contextmanager
def decompressed(
    path: str | os.PathLike[str], *, limit: int | None = None
) -> Iterator[tuple[IO[bytes], str]]:
    """A regular file's content, gunzipped when it is gzip, and the file's SHA-256.

    The content is streamed: a plain file is read in place, a gzip file is
    decompressed into a temporary file (deleted on exit), never into memory.

    Parameters
    ----------
    path : str or path-like
        The file.
    limit : int, optional
        Largest content [B], after decompression (default :func:`max_input_bytes`).

    Yields
    ------
    (binary file, str)
        The content, seekable and at its start; SHA-256 (hex) of the file as stored.

    Raises
    ------
    DataError
        As :func:`open_input`; for a gzip file that is truncated, corrupt, holds
        more than ``limit`` bytes or has bytes after its last member.
    """
    source = os.fspath(path)
    limit = max_input_bytes() if limit is None else limit
    with open_input(source, limit=limit) as handle:
        digest = hashlib.sha256()
        head = handle.read(2)
        handle.seek(0)
        if head != _GZIP_MAGIC:
            size = 0
            while chunk := handle.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise _too_large(source, "it holds", limit)
                digest.update(chunk)
            handle.seek(0)
            yield handle, digest.hexdigest()
            return
        with tempfile.TemporaryFile(prefix="powerfit-input-") as out:
            _gunzip_into(source, handle, out, digest, limit)
            out.seek(0)
            yield out, digest.hexdigest()


def printable(text: object) -> str:
    """Text from a file, a store or a user, safe to print on a terminal.

    Control characters (ESC, BEL, CR, newlines...) are shown as escapes, so that a
    name cannot move the cursor, set the window title or fake another line.

    Examples
    --------
    >>> printable("GPU\\x1b]0;owned\\x07X")
    'GPU\\\\x1b]0;owned\\\\x07X'
    >>> printable("NVIDIA A100 80GB PCIe")
    'NVIDIA A100 80GB PCIe'
    """
    value = str(text)
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() or c == " " else ascii(c)[1:-1] for c in value)
