"""One validation layer for every reader and every store backend.

Every value a reader (:mod:`powerfit.store.readers`: CSV, gzip-compressed CSV,
Parquet, CodeCarbon, the published files) hands to the store passes the checks
below, so SQLite and PostgreSQL accept exactly the same values: a value is stored as
given, or the whole file is refused with one line naming the file, the row and the
column, and nothing is written.

Rows are counted as a person counts them in the file: ``data row N`` is the N-th
record after the header (1-based); for a CSV file the message adds the line of the
file where that record starts (``data row 7 (line 8)``). Header problems say
``header``.

Bounds of the canonical columns (SI units; after unit conversion, e.g. kWh → J)
------------------------------------------------------------------------------

====================================  =========  ========================  ==================
column                                type       accepted                  why
====================================  =========  ========================  ==================
batch_size, seq_len, d_model,         integer    1 … 2,147,483,647         SQL ``INTEGER``
n_heads, d_ff, input_size,                                                 (int32), both
hidden_size, n_layers, vocab_size                                          backends
repeats                               integer    1 … 2,147,483,647         SQL ``INTEGER``
m, n, k, h (generic operators)        integer    1 … 2,147,483,647         SQL ``INTEGER``
gpu_count                             integer    1 … 100,000               plausibility
n_params                              integer    1 … 1e15                  plausibility (and
                                                                           exact in float64)
flops [FLOP]                          number     > 0 … 1e24                plausibility
bytes [B] (moved by one call)         number     > 0 … 1e18                plausibility
duration_s [s]                        number     1e-9 (1 ns) … 1e7         a mean over many calls
                                                                           (no kernel is shorter);
                                                                           ≈ 116 days
energy_j [J]                          number     > 0 … 1e12                plausibility
gpu_energy_j, cpu_energy_j,           number     0 … 1e12                  plausibility
ram_energy_j [J]
idle_power_w [W]                      number     0 … 10,000                10 kW per GPU
duration_std_s [s]                    number     0 … 1e7
energy_std_j [J]                      number     0 … 1e12
efficiency = flops / (duration_s ×    derived    ≤ 1.10                    peak + 10 % for
peak FLOP/s at the row's precision)                                        boost clocks, timer
                                                                           noise
mean power = energy_j / duration_s    derived    ≤ 10,000 W × gpu_count    10 kW per GPU
gpu, precision [text]                 text       ≤ 128 / 16 characters     SQL ``VARCHAR``
arch, operation [text]                text       ≤ 16 / 32 characters      SQL ``VARCHAR``
model, tool [text]                    text       ≤ 64 / 255 characters     SQL ``VARCHAR``
kernel [text]                         text       ≤ 1024 characters         SQL ``VARCHAR``
====================================  =========  ========================  ==================

Precision
---------
``precision`` must be one of :data:`PRECISIONS` (case-insensitive: ``FP32`` is
stored ``fp32``): ``fp32`` (CUDA cores, TF32 off), ``tf32`` (FP32 tensors, matrix
products on TF32 tensor cores), ``fp16``, ``bf16`` (tensors of that type),
``amp-fp16``, ``amp-bf16`` (mixed precision: FP32 weights, ``torch.autocast``), and
the GPU must have a peak for it (:func:`peak_precision`: a mixed precision uses the
peak of its half type).

Every number must also be finite, not a boolean and not a date or time (a Parquet
``datetime64`` column, a ``timedelta``), and integer columns must hold whole
numbers. Text must not contain control characters (U+0000–U+001F, U+007F):
PostgreSQL refuses NUL, SQLite stores it. The SQL limits are read from the table
definitions (:mod:`powerfit.store.models`), so a schema change moves them too.

Columns
-------
A header naming the same column twice is refused (pandas would silently rename the
second ``duration_s.1``). A column the format does not know is refused, with a
suggestion when a known name is close (``Energy_J`` → ``energy_j``), unless
``ignore_extra_columns`` is set (``powerfit ingest --ignore-extra-columns``); even
then a column whose name differs from a known one only in case or punctuation is
refused, since it is almost certainly a misspelling whose values would be lost. An
unnamed first column (a pandas index written by ``DataFrame.to_csv``) is always
accepted and not stored.

Text encoding
-------------
Files must be UTF-8 (with or without a byte-order mark). UTF-16/UTF-32 and
Latin-1/Windows-1252 text is recognised and refused with what to do ("re-save as
UTF-8"), not called binary.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import difflib
import io
import re
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO

import numpy as np
import pandas as pd

from powerfit.exceptions import DataError

__all__ = [
    "DERIVED_BOUNDS",
    "PRECISIONS",
    "RULES",
    "Rule",
    "ValidationError",
    "check_duplicates",
    "check_header",
    "check_numbers",
    "check_text",
    "decode_text",
    "distinct",
    "peak_precision",
    "refuse_dates",
    "scan_csv",
    "suggest",
]

#: Precisions a measurement may carry (see the module notes).
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "fp16", "bf16", "amp-fp16", "amp-bf16")


def peak_precision(precision: str) -> str:
    """The precision whose peak throughput bounds a measurement of ``precision``.

    Mixed precision runs its matrix products in the half type: ``amp-fp16`` →
    ``fp16``, ``amp-bf16`` → ``bf16``; the others are their own.

    Examples
    --------
    >>> peak_precision("amp-bf16"), peak_precision("tf32")
    ('bf16', 'tf32')
    """
    return precision[4:] if precision.startswith("amp-") else precision


INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


class ValidationError(DataError):
    """A refused value or header, located in the user's file.

    Parameters
    ----------
    message : str
        What is wrong.
    source : str, optional
        The file.
    row : int, optional
        1-based data row (the first record after the header is 1).
    column : str, optional
        The column as written in the file.
    line : int, optional
        Line of the file where that data row starts (CSV files).
    header : bool, default False
        The problem is in the header (no data row).
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        row: int | None = None,
        column: str | None = None,
        line: int | None = None,
        header: bool = False,
    ) -> None:
        self.line = line
        self.header = header
        super().__init__(message, source=source, row=row, column=column)

    def __str__(self) -> str:
        where = []
        if self.source is not None:
            where.append(str(self.source))
        if self.header:
            where.append("header" if self.line is None else f"header (line {self.line})")
        elif self.row is not None:
            at = f"data row {self.row}"
            where.append(at if self.line is None else f"{at} (line {self.line})")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        text = f"{', '.join(where)}: {self.message}" if where else self.message
        return " ".join(text.splitlines())  # always one line


# --------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Rule:
    """Accepted values of one canonical column.

    Attributes
    ----------
    integer : bool
        Whole numbers only.
    minimum, maximum : float
        Inclusive bounds, in the column's SI unit.
    unit : str
        Unit for messages ('' for counts).
    why : str
        Where the bounds come from, for messages.
    positive : bool
        Zero is refused even when ``minimum`` is 0 (strictly positive).
    """

    integer: bool
    minimum: float
    maximum: float
    unit: str = ""
    why: str = ""
    positive: bool = False


_INT = Rule(True, 1, INT32_MAX, why="SQL INTEGER")
_COUNTS = ("batch_size", "seq_len", "d_model", "n_heads", "d_ff", "input_size", "hidden_size",
           "n_layers", "vocab_size", "repeats")  # fmt: skip
#: Canonical numeric column -> its rule (see the module's table).
RULES: dict[str, Rule] = {
    **dict.fromkeys(_COUNTS, _INT),
    "m": _INT,
    "n": _INT,
    "k": _INT,
    "h": _INT,
    "gpu_count": Rule(True, 1, 100_000, why="plausible GPUs in one run"),
    "bytes": Rule(False, 0, 1e18, "B", "plausible bytes of one call", positive=True),
    "n_params": Rule(True, 1, 1e15, why="plausible model size"),
    "flops": Rule(False, 1, 1e24, "FLOP", "1 FLOP … plausible FLOPs of one call"),
    "duration_s": Rule(False, 1e-9, 1e7, "s", "1 ns (a mean over many calls) … ≈ 116 days"),
    "energy_j": Rule(False, 1e-9, 1e12, "J", "1 nJ … plausible energy"),
    "gpu_energy_j": Rule(False, 0, 1e12, "J", "plausible energy"),
    "cpu_energy_j": Rule(False, 0, 1e12, "J", "plausible energy"),
    "ram_energy_j": Rule(False, 0, 1e12, "J", "plausible energy"),
    "idle_power_w": Rule(False, 0, 1e4, "W", "10 kW per GPU"),
    "duration_std_s": Rule(False, 0, 1e7, "s", "≈ 116 days"),
    "energy_std_j": Rule(False, 0, 1e12, "J", "plausible energy"),
}

#: Bounds of values derived from several columns (checked row by row).
DERIVED_BOUNDS: dict[str, float] = {
    "efficiency": 1.10,  # flops / duration / peak FLOP/s: ≤ 1 + 10 % tolerance
    "power_w": 1e4,  # energy_j / duration_s / gpu_count [W]
    "min_run_power_w": 1.0,  # a run's energy_j / duration_s / gpu_count [W]
    "tdp_ratio": 2.0,  # a run's gpu_energy_j / duration_s / gpu_count / TDP [-]
}

#: Canonical text column -> most characters (the SQL VARCHAR lengths of the tables).
TEXT_LENGTHS: dict[str, int] = {}


def _sql_limits() -> None:
    """Fill :data:`TEXT_LENGTHS` and tighten integer maxima from the table definitions."""
    import sqlalchemy as sa

    from powerfit.store.models import Gpu, OperationMeasurement, RunMeasurement

    for model in (OperationMeasurement, RunMeasurement):
        for column in model.__table__.columns:
            name = column.name
            if isinstance(column.type, sa.String) and column.type.length:
                TEXT_LENGTHS[name] = min(TEXT_LENGTHS.get(name, 10**9), column.type.length)
            elif isinstance(column.type, sa.Integer) and name in RULES:
                top = INT64_MAX if isinstance(column.type, sa.BigInteger) else INT32_MAX
                rule = RULES[name]
                if rule.maximum > top:
                    RULES[name] = Rule(rule.integer, rule.minimum, top, rule.unit, "SQL integer")
    TEXT_LENGTHS["gpu"] = Gpu.__table__.c.name.type.length  # type: ignore[attr-defined]


_sql_limits()

#: Raises the error for a position (0-based row of the frame) and a column.
Fail = Callable[..., DataError]


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _where(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def check_numbers(
    column: str, values: pd.Series, fail: Fail, name: str | None = None
) -> pd.Series:
    """Check a canonical numeric column against its :class:`Rule`.

    Parameters
    ----------
    column : str
        Canonical column name (a key of :data:`RULES`; other columns pass).
    values : pandas.Series
        Floats in the column's SI unit, NaN where missing (already checked for being
        numbers, finite and not negative).
    fail : callable
        ``fail(message, position=, column=)`` returning the error to raise.
    name : str, optional
        The column as written in the file (default ``column``).

    Returns
    -------
    pandas.Series
        ``values`` unchanged.

    Raises
    ------
    DataError
        At the first refused value.
    """
    rule = RULES.get(column)
    if rule is None:
        return values
    name = name or column
    converted = "" if name == column else f" ({column} as stored)"
    arr = values.to_numpy(dtype=float, na_value=np.nan)
    present = ~np.isnan(arr)
    unit = f" {rule.unit}" if rule.unit else ""
    if rule.integer:
        with np.errstate(invalid="ignore"):
            fractional = present & (arr != np.round(arr))
        if fractional.any():
            pos = _where(fractional)
            raise fail(f"not an integer: {_fmt(arr[pos])}", position=pos, column=name)
    with np.errstate(invalid="ignore"):
        low = present & ((arr < rule.minimum) | ((arr <= 0) if rule.positive else False))
        high = present & (arr > rule.maximum)
    if low.any():
        pos = _where(low)
        bound = f"> {_fmt(rule.minimum)}" if rule.positive else f">= {_fmt(rule.minimum)}"
        raise fail(
            f"{_fmt(arr[pos])}{unit}{converted} is out of range: must be {bound}{unit}"
            + (f" ({rule.why})" if rule.why and not rule.positive else ""),
            position=pos,
            column=name,
        )
    if high.any():
        pos = _where(high)
        small = rule.integer and rule.maximum < 1e12
        top = f"{rule.maximum:,.0f}" if small else _fmt(rule.maximum)
        raise fail(
            f"{_fmt(arr[pos])}{unit}{converted} is out of range: must be <= {top}{unit} "
            f"({rule.why})",
            position=pos,
            column=name,
        )
    with np.errstate(invalid="ignore"):
        subnormal = present & (arr != 0) & (np.abs(arr) < np.finfo(float).tiny)
    if subnormal.any():
        pos = _where(subnormal)
        raise fail(
            f"subnormal number {arr[pos]:.3g}{unit} (below 2.2e-308), not a measurement",
            position=pos,
            column=name,
        )
    return values


#: Rows hashed at a time by :func:`distinct`.
_DISTINCT_ROWS = 1 << 16


def distinct(values: pd.Series) -> tuple[np.ndarray, list[object]]:
    """Codes of a column (-1 where missing) and its distinct values, in order of appearance.

    As :func:`pandas.factorize`, a slice of rows at a time: pandas sizes its hash table
    by the number of values (about 40 MB for a million strings naming three GPUs), a
    slice's by the slice.

    Examples
    --------
    >>> distinct(pd.Series(["a100", None, "h100", "a100"]))
    (array([ 0, -1,  1,  0]), ['a100', 'h100'])
    """
    codes = np.empty(len(values), dtype=np.intp)
    found: dict[object, int] = {}
    uniques: list[object] = []
    for start in range(0, len(values), _DISTINCT_ROWS):
        part, seen = pd.factorize(values.iloc[start : start + _DISTINCT_ROWS])
        remap = np.empty(len(seen) + 1, dtype=np.intp)
        remap[-1] = -1  # pandas' code of a missing value
        for index, value in enumerate(seen):
            code = found.get(value)
            if code is None:
                code = found[value] = len(uniques)
                uniques.append(value)
            remap[index] = code
        codes[start : start + _DISTINCT_ROWS] = remap[part]
    return codes, uniques


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_text(column: str, values: pd.Series, fail: Fail, name: str | None = None) -> None:
    """Refuse text longer than its SQL column, or holding control characters.

    Parameters
    ----------
    column : str
        Canonical column name (a key of :data:`TEXT_LENGTHS`).
    values : pandas.Series
        Strings (None/NaN where missing).
    fail : callable
        ``fail(message, position=, column=)`` returning the error to raise.
    name : str, optional
        The column as written in the file.

    Raises
    ------
    DataError
        At the first refused value.
    """
    name = name or column
    limit = TEXT_LENGTHS.get(column)
    for value in distinct(values)[1]:  # few distinct values
        if not isinstance(value, str):
            continue
        too_long = limit is not None and len(value) > limit
        if not too_long and not _CONTROL.search(value):
            continue
        pos = _where((values == value).to_numpy())
        if too_long:
            raise fail(
                f"text of {len(value)} characters, longer than the {limit} this column "
                f"holds: {value[:40]!r}…",
                position=pos,
                column=name,
            )
        control = _CONTROL.search(value)
        if control:
            raise fail(
                f"control character {control.group()!r} in {value[:40]!r}",
                position=pos,
                column=name,
            )


_DATE_TYPES = (dt.date, dt.time, dt.timedelta, np.datetime64, np.timedelta64, pd.Period)


def refuse_dates(values: pd.Series, fail: Fail, name: str) -> None:
    """Refuse dates, times and durations given where a plain number is expected.

    A Parquet ``datetime64`` column would otherwise become nanoseconds since 1970
    (1.7e18) and a ``timedelta`` nanoseconds.

    Raises
    ------
    DataError
        Naming the first such row.
    """
    dtype = values.dtype
    if (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
    ):
        pos = _where(values.notna().to_numpy()) if values.notna().any() else 0
        raise fail(
            f"a date/time column ({dtype}), not a number; store it as a number in the "
            "column's SI unit",
            position=pos,
            column=name,
        )
    if pd.api.types.is_object_dtype(dtype):
        for pos, value in enumerate(values.tolist()):
            if isinstance(value, _DATE_TYPES):
                raise fail(
                    f"a date/time value ({value!s}), not a number", position=pos, column=name
                )


# ------------------------------------------------------------------------- headers
def _normal(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def suggest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name``, or None when none is close.

    Examples
    --------
    >>> suggest("Energy_J", ["energy_j", "duration_s"])
    'energy_j'
    >>> suggest("durations", ["energy_j", "duration_s"])
    'duration_s'
    >>> suggest("colour", ["energy_j", "duration_s"]) is None
    True
    """
    known = sorted(set(known))
    exact = [k for k in known if _normal(k) == _normal(name)]
    if exact:
        return exact[0]
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.75)
    return lowered[close[0]] if close else None


def _is_index(position: int, name: str) -> bool:
    return position == 0 and (name == "" or name.startswith("Unnamed: "))


def check_duplicates(names: Sequence[str], source: str) -> None:
    """Refuse a header that names a column twice (leading/trailing spaces ignored).

    Raises
    ------
    ValidationError
        Naming the column and its positions in the header (1-based).
    """
    header = [str(n).strip() for n in names]
    counts = Counter(n for n in header if n)
    for name, count in counts.items():
        if count > 1:
            positions = [str(i + 1) for i, n in enumerate(header) if n == name]
            raise ValidationError(
                f"duplicate column (header fields {', '.join(positions)}); keep one",
                source=source,
                column=name,
                header=True,
            )


def check_header(
    names: Sequence[str],
    known: Iterable[str],
    source: str,
    *,
    ignore_extra_columns: bool = False,
    raw_names: Sequence[str] | None = None,
) -> tuple[str, ...]:
    """Refuse duplicate and unknown columns; return the unknown ones that are ignored.

    Parameters
    ----------
    names : sequence of str
        Column names as read (stripped).
    known : iterable of str
        Names the format reads.
    source : str
        The file, for messages.
    ignore_extra_columns : bool, default False
        Ignore unknown columns instead of refusing the file (near-misses of a known
        name are refused all the same).
    raw_names : sequence of str, optional
        The header exactly as written (before pandas renames duplicates), when known.

    Returns
    -------
    tuple of str
        Unknown columns that were ignored.

    Raises
    ------
    ValidationError
        For a duplicate column, an unknown column (unless ignored), or a near-miss.
    """
    check_duplicates(raw_names if raw_names is not None else names, source)
    known = set(known)
    ignored = []
    for position, name in enumerate(names):
        name = str(name)
        if name in known or _is_index(position, name):
            continue
        hint = suggest(name, known)
        if hint is not None and _normal(hint) == _normal(name):
            raise ValidationError(
                f"unknown column; did you mean {hint!r}? (names are case-sensitive: "
                "rename the column)",
                source=source,
                column=name,
                header=True,
            )
        if ignore_extra_columns:
            ignored.append(name)
            continue
        did = f"did you mean {hint!r}? " if hint is not None else ""
        raise ValidationError(
            f"unknown column; {did}known columns of this format: "
            f"{', '.join(sorted(known))}; pass --ignore-extra-columns to ignore "
            "columns powerfit does not read",
            source=source,
            column=name,
            header=True,
        )
    return tuple(ignored)


def csv_header(text: str) -> list[str]:
    """The first non-blank record of CSV text, as written (leading spaces skipped)."""
    for record in csv.reader(io.StringIO(text), skipinitialspace=True):
        if record and any(field.strip() for field in record):
            return record
    return []


def record_lines(text: str) -> list[int]:
    """Line (1-based) where each non-blank CSV record starts, the header first.

    Matches pandas' counting of data rows (blank lines skipped, quoted fields may
    span lines).
    """
    lines = []
    reader = csv.reader(io.StringIO(text), skipinitialspace=True)
    end = 0
    for record in reader:
        start = end + 1
        end = reader.line_num
        if record and any(field.strip() for field in record):
            lines.append(start)
    return lines


def scan_csv(handle: IO[bytes], source: str) -> tuple[list[str], array[int]]:
    """Check a CSV file's records in one streamed pass: encoding, fields per record.

    Parameters
    ----------
    handle : binary file
        The content, at its start (left at an undefined position).
    source : str
        The file, for messages.

    Returns
    -------
    (list of str, array of int)
        The header as written, and the line (1-based) where each non-blank record
        starts, the header first (matching pandas' data rows).

    Raises
    ------
    ValidationError
        For text that is not UTF-8, a record with more or fewer fields than the
        header (naming its data row and line), or a malformed record.
    """
    head = handle.read(8192)
    handle.seek(0)
    if b"\x00" in head or any(head.startswith(bom) for bom, _ in _BOMS):
        decode_text(head, source)  # raises the encoding's message
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, skipinitialspace=True)
    header: list[str] = []
    lines: array[int] = array("q")
    end = 0
    try:
        for record in reader:
            start, end = end + 1, reader.line_num
            if not record or not any(field.strip() for field in record):
                continue
            if not lines:
                header = record
            elif len(record) != len(header):
                more = len(record) > len(header)
                trailing = " (a trailing comma?)" if more and not record[-1].strip() else ""
                raise ValidationError(
                    f"{len(record)} fields, {'more' if more else 'fewer'} than the header's "
                    f"{len(header)}{trailing}",
                    source=source,
                    row=len(lines),
                    line=start,
                )
            lines.append(start)
    except UnicodeDecodeError:
        handle.seek(0)
        decode_text(handle.read(), source)  # raises with the line and column
        raise
    except csv.Error as exc:
        raise ValidationError(
            f"not a readable CSV file: {exc} (line {reader.line_num})", source=source
        ) from None
    finally:
        text.detach()
    return header, lines


# ------------------------------------------------------------------------ encoding
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def _utf16_without_bom(head: bytes) -> bool:
    """ASCII text encoded as UTF-16: every other byte is NUL."""
    if len(head) < 8:
        return False
    even, odd = head[0::2], head[1::2]

    def text(half: bytes) -> bool:
        return sum(32 <= b < 127 or b in (9, 10, 13) for b in half) > 0.9 * len(half)

    return (even.count(0) > 0.9 * len(even) and text(odd)) or (
        odd.count(0) > 0.9 * len(odd) and text(even)
    )


def decode_text(data: bytes, source: str) -> str:
    """Decode a text file as UTF-8, or say what its encoding problem is.

    Parameters
    ----------
    data : bytes
        The file's content.
    source : str
        The file, for messages.

    Returns
    -------
    str
        The text (a UTF-8 byte-order mark removed).

    Raises
    ------
    ValidationError
        For UTF-16/UTF-32 text, Latin-1/Windows-1252 text, or binary content.

    Examples
    --------
    >>> decode_text("gpu\\na100\\n".encode(), "f.csv")
    'gpu\\na100\\n'
    >>> decode_text("arch\\ncafé\\n".encode("latin-1"), "f.csv")
    Traceback (most recent call last):
    ...
    powerfit.store.validation.ValidationError: f.csv, data row 1 (line 2), column 'arch': not UTF-8: byte 0xe9 at line 2 looks like Latin-1/Windows-1252 text ('é'); re-save the file as UTF-8
    """  # noqa: E501
    head = data[:8192]
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise ValidationError(
                f"not UTF-8: {name} text (byte-order mark {bom.hex(' ')}); re-save the "
                "file as UTF-8",
                source=source,
            )
    if b"\x00" in head:
        if _utf16_without_bom(head):
            raise ValidationError(
                "not UTF-8: looks like UTF-16 text (every other byte is 0); re-save the "
                "file as UTF-8",
                source=source,
            )
        raise ValidationError(
            "binary content (NUL bytes), not a CSV, gzip or Parquet file", source=source
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1]
        line = data.count(b"\n", 0, exc.start) + 1
        printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
        if printable < 0.7 * len(head):
            raise ValidationError(
                f"binary content, not a CSV, gzip or Parquet file (byte 0x{bad.hex()} at "
                f"line {line} is not UTF-8)",
                source=source,
            ) from None
        try:
            shown = data[exc.start : exc.end].decode("cp1252")
            guess = f" looks like Latin-1/Windows-1252 text ({shown!r})"
        except UnicodeDecodeError:
            guess = ""
        before = data[: exc.start].decode("utf-8", "replace")
        lines = record_lines(before + "x")
        row = len(lines) - 1 if lines and len(lines) > 1 else None
        column = None
        if row is not None:
            header = csv_header(before)
            current = before[before.rfind("\n") + 1 :] + "x"
            fields = next(csv.reader([current], skipinitialspace=True), [])
            if 0 < len(fields) <= len(header):
                column = header[len(fields) - 1].strip()
        raise ValidationError(
            f"not UTF-8: byte 0x{bad.hex()} at line {line}{guess}; re-save the file as UTF-8",
            source=source,
            row=row,
            column=column,
            line=line if row is not None else None,
        ) from None
