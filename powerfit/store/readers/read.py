"""Read a measurement file: detect its format, convert its rows, validate them all.

:func:`read_measurements` is the one entry point: it streams CSV or Parquet (gzip
allowed, every member, within :func:`powerfit.files.max_input_bytes`), detects the
format from the columns
(:func:`detect_format`, :data:`FORMATS`), applies overrides, converts the rows with the
format's reader and validates every value, name and derived quantity before returning
:class:`~powerfit.store.readers.rows.Measurements`; :func:`import_identity` is the
identity the store ingests a file under (see :mod:`powerfit.store.readers`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import IO, Any

import numpy as np
import pandas as pd

from powerfit.exceptions import DataError
from powerfit.files import MAX_INPUT_BYTES, decompressed, open_input
from powerfit.formats import (
    OPERATION_COLUMNS,
    OPERATION_REQUIRED,
    RUN_COLUMNS,
    RUN_REQUIRED,
)
from powerfit.hardware.gpus import GPU
from powerfit.kernels.counts import OPERATOR_KINDS, operator_kind
from powerfit.paper.flops import ARCHITECTURES, OPERATIONS
from powerfit.store.readers.canonical import _powerfit_operations, _powerfit_runs
from powerfit.store.readers.codecarbon import CODECARBON_COLUMNS, _codecarbon, _split_gpu_count
from powerfit.store.readers.derived import check_derived
from powerfit.store.readers.mayaki2025 import (
    _PUBLISHED_COLUMNS,
    _lstm_energy,
    _lstm_operations,
    _transformer_energy,
    _transformer_operations,
)
from powerfit.store.readers.neusight2025 import NEUSIGHT_COLUMNS, _neusight_operators
from powerfit.store.readers.power import (
    POWER_FORMATS,
    detect_power_format,
    has_zeus_header,
    read_power,
)
from powerfit.store.readers.rows import (
    _OPERATION_ORDER,
    _POSITIVE,
    _RUN_ORDER,
    _TEXT,
    DEVICE_SPEC_COLUMNS,
    GENERIC_ARCH,
    OPERATION_NAMES,
    Converted,
    Measurements,
    _checked_number,
    _Ctx,
    _first,
    _strip,
    by_unique,
)
from powerfit.store.validation import (
    PRECISIONS,
    ValidationError,
    check_duplicates,
    check_header,
    check_numbers,
    check_text,
    distinct,
    peak_precision,
    scan_csv,
    suggest,
)

__all__ = ["FORMATS", "detect_format", "import_identity", "read_measurements"]


@dataclass(frozen=True)
class _Format:
    kind: str
    detect: Callable[[set[str]], bool]
    convert: Callable[[_Ctx], Converted]
    #: Canonical columns that must be present and non-empty after conversion.
    required: tuple[str, ...]
    #: Whether --set overrides apply.
    overrides: bool = False


#: Readers by name, in detection order (the first whose test matches wins).
FORMATS: dict[str, _Format] = {
    "mayaki2025-transformer-energy": _Format(
        "run",
        lambda c: "num_attention_heads" in c or "energy_joules" in c,
        _transformer_energy,
        ("gpu", "arch", "n_layers", "batch_size", "duration_s", "energy_j"),
    ),
    "mayaki2025-lstm-energy": _Format(
        "run",
        lambda c: "FLOPs_Gates" in c or {"component", "num_layers"} <= c,
        _lstm_energy,
        ("gpu", "arch", "n_layers", "batch_size", "energy_j"),
    ),
    "mayaki2025-transformer-operations": _Format(
        "operation",
        lambda c: {"operation", "HEF"} <= c or {"operation", "elapsed_time_sec"} <= c,
        _transformer_operations,
        OPERATION_REQUIRED,
    ),
    "mayaki2025-lstm-operations": _Format(
        "operation",
        lambda c: {"component", "HEF"} <= c or {"component", "elapsed_time_sec"} <= c,
        _lstm_operations,
        OPERATION_REQUIRED,
    ),
    "neusight2025-operators": _Format(
        "operation",
        lambda c: {"OPName", "Latency", "Device"} <= c,
        _neusight_operators,
        OPERATION_REQUIRED,
    ),
    "codecarbon": _Format(
        "run",
        lambda c: "energy_consumed" in c and ("emissions" in c or "codecarbon_version" in c),
        _codecarbon,
        ("gpu", "arch", "n_layers", "batch_size", "duration_s", "energy_j"),
        overrides=True,
    ),
    "powerfit-operations": _Format(
        "operation", lambda c: "operation" in c, _powerfit_operations, OPERATION_REQUIRED, True
    ),
    "powerfit-runs": _Format(
        "run",
        lambda c: bool({"gpu", "arch", "duration_s", "energy_j", "n_layers"} & c),
        _powerfit_runs,
        RUN_REQUIRED,
        True,
    ),
}


def known_columns(format: str) -> frozenset[str]:
    """Columns a format knows (reads, or recognises and leaves out).

    Parameters
    ----------
    format : str
        A key of :data:`FORMATS`.

    Returns
    -------
    frozenset of str

    Examples
    --------
    >>> "energy_j" in known_columns("powerfit-runs")
    True
    >>> "Energy_J" in known_columns("powerfit-runs")
    False
    """
    if format in _PUBLISHED_COLUMNS:
        return frozenset(_PUBLISHED_COLUMNS[format].split(","))
    if format == "neusight2025-operators":
        return frozenset(NEUSIGHT_COLUMNS)
    if format == "powerfit-operations":
        return frozenset(_OPERATION_ORDER + DEVICE_SPEC_COLUMNS)
    runs = set(_RUN_ORDER) | set(DEVICE_SPEC_COLUMNS)
    if format == "codecarbon":
        return frozenset(runs | set(CODECARBON_COLUMNS) | {"steps"})
    return frozenset(runs)


def detect_format(columns: object) -> str | None:
    """Name of the reader for a file with these columns, or None when none fits.

    Examples
    --------
    >>> detect_format(["gpu", "arch", "operation", "flops", "duration_s"])
    'powerfit-operations'
    >>> detect_format(["source", "component", "HEF", "elapsed_time_sec"])
    'mayaki2025-lstm-operations'
    """
    names = {str(c) for c in columns}  # type: ignore[attr-defined]
    for name, spec in FORMATS.items():
        if spec.detect(names):
            return name
    return None


#: Largest decompressed size of a gzip file [bytes] (now :func:`powerfit.files.max_input_bytes`).
MAX_DECOMPRESSED_BYTES = MAX_INPUT_BYTES


def _read_power_file(
    source: str,
    format: str | None,
    overrides: Mapping[str, Any] | None,
    gpus: Mapping[str, Any] | None,
) -> Measurements | None:
    """A Zeus or ML.ENERGY power file read whole (they are small), else None.

    Only a file named as one (``summary_power_*.csv*``, ``*.json``, ``*.json.gz``) or
    given with a power ``format`` is read here, so other files are still streamed.
    """
    name = os.path.basename(source)
    if format is None and not (
        name.startswith("summary_power_")
        or name.endswith((".json", ".json.gz"))
        or (".csv" in name and _zeus_header(source))
    ):
        return None
    try:
        with decompressed(source) as (handle, sha256):
            content = handle.read()
    except DataError as exc:  # from powerfit.files: not a file, too large, bad gzip
        raise ValidationError(exc.message, source=source) from None
    power = format or detect_power_format(source, content)
    if power is None:
        return None
    measurements = read_power(source, content, sha256, power, overrides, gpus)
    identity = import_identity(sha256, power, dict(measurements.overrides))
    return replace(measurements, identity=identity)


def _zeus_header(source: str) -> bool:
    """True when a file's header (its first 4 KiB, gunzipped if gzip) holds every Zeus
    power column; False for anything else (the CSV reader then says why)."""
    import gzip
    import zlib

    try:
        with open_input(source) as handle:
            head = handle.read(4096)
            if head[:2] == b"\x1f\x8b":
                handle.seek(0)
                with gzip.GzipFile(fileobj=handle) as unzipped:
                    head = unzipped.read(4096)
    except (OSError, DataError, EOFError, zlib.error):
        return False
    return has_zeus_header(head)


def _load(source: str) -> tuple[pd.DataFrame, list[str], Sequence[int] | None, str]:
    """Parse a CSV or Parquet file (gzip-compressed or not), streamed from disk.

    Returns
    -------
    (pandas.DataFrame, list of str, sequence of int or None, str)
        The raw frame, the header as written (before pandas renames duplicates),
        the line where each record starts (header first; None for Parquet), and the
        SHA-256 of the file as stored.
    """
    try:
        return _parse(source)
    except ValidationError:
        raise
    except DataError as exc:  # from powerfit.files: not a file, too large, bad gzip
        raise ValidationError(exc.message, source=source) from None


def _parse(source: str) -> tuple[pd.DataFrame, list[str], Sequence[int] | None, str]:
    with decompressed(source) as (handle, sha256):
        head = handle.read(8192)
        handle.seek(0)
        if not head.strip():
            if not handle.read(_BLANK_SCAN).strip() and not handle.read(1):
                raise ValidationError("empty file", source=source)
            handle.seek(0)
        if head[:4] == b"PAR1":
            return (*_parquet(source, handle), None, sha256)
        header, lines = scan_csv(handle, source)
        handle.seek(0)
        # Text columns parsed as categories, then as objects sharing one string per
        # distinct value (a million rows naming one GPU hold one string, not a million).
        text = {n: "category" for n in header if n.strip() in _TEXT and header.count(n) == 1}
        try:
            frame = _read_csv(handle, text, len(lines) - 1)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
            message = " ".join(str(exc).splitlines())
            raise ValidationError(f"not a readable CSV file: {message}", source=source) from exc
    if len(frame) != len(lines) - 1:  # rows pandas reads otherwise: no line numbers
        return frame, header, None, sha256
    return frame, header, lines, sha256


#: Data rows parsed at a time from a larger CSV file (:func:`_read_csv`).
_PARSE_ROWS = 100_000


def _read_csv(handle: IO[bytes], text: dict[str, str], rows: int) -> pd.DataFrame:
    """The frame of a CSV file, ``text`` columns as objects; a large file in chunks.

    A file of more than :data:`_PARSE_ROWS` data rows is parsed that many rows at a
    time, each column copied out of the chunk, and the pieces of each column joined
    (as pandas joins the pieces it parses internally: mixed types become objects).
    The frame keeps one block per column (``copy=False``), so that a column can be
    freed once converted, and the whole file is never held twice.
    """
    options: dict[str, Any] = {
        "skipinitialspace": True,
        "encoding": "utf-8-sig",
        "index_col": False,
        "dtype": text,
    }
    if rows <= _PARSE_ROWS:
        frame = pd.read_csv(handle, **options)
        for name in text:
            if name in frame.columns:
                frame[name] = frame[name].astype(object)
        return frame
    pieces: dict[str, list[pd.Series]] = {}
    columns: list[str] = []
    with pd.read_csv(handle, chunksize=_PARSE_ROWS, **options) as reader:
        for chunk in reader:
            columns = list(chunk.columns)
            for name in columns:
                column = chunk[name]
                column = column.astype(object) if name in text else column.copy()
                pieces.setdefault(name, []).append(column)
            del chunk, column
    joined = {name: pd.concat(pieces.pop(name), ignore_index=True) for name in columns}
    return pd.DataFrame(joined, columns=columns, copy=False)


#: Bytes of a blank-looking start read to tell an empty file [B].
_BLANK_SCAN = 1 << 20


def _parquet(source: str, handle: IO[bytes]) -> tuple[pd.DataFrame, list[str]]:
    """A Parquet file's frame and column names; binary text columns decoded as UTF-8."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        names = list(pq.read_schema(handle).names)
        names = [n for n in names if not n.startswith("__index_level_")]
        if len(set(names)) < len(names):  # pyarrow cannot convert it
            return pd.DataFrame(columns=names), names
        handle.seek(0)
        table = pq.read_table(handle)
    except Exception as exc:
        message = " ".join(str(exc).splitlines())
        raise ValidationError(f"unreadable Parquet file: {message}", source=source) from exc
    for index, field in enumerate(table.schema):
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            table = table.set_column(index, field.name, _utf8(source, field.name, table[index]))
    try:
        return table.to_pandas(), names
    except Exception as exc:
        message = " ".join(str(exc).splitlines())
        raise ValidationError(f"unreadable Parquet file: {message}", source=source) from exc


def _utf8(source: str, column: str, values: Any) -> Any:
    """A binary Parquet column as UTF-8 text; the first row that is not UTF-8 refused."""
    import pyarrow as pa

    for row, value in enumerate(values.to_pylist(), start=1):
        if value is None:
            continue
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"binary value {value[:16]!r} is not UTF-8 text (byte "
                f"0x{value[exc.start : exc.start + 1].hex()})",
                source=source,
                row=row,
                column=column,
            ) from None
    return values.cast(pa.string())


def _normal_value(value: object) -> str:
    """An override value as text, numbers normalised ('6', '6.0', 6 -> '6')."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number == int(number) and abs(number) < 2**53:
        return str(int(number))
    return repr(number)


def import_identity(sha256: str, format: str, overrides: Mapping[str, object] | None) -> str:
    """SHA-256 (hex) naming an import: the content, the reader and the ``--set`` values.

    Parameters
    ----------
    sha256 : str
        SHA-256 of the file's content (hex).
    format : str
        Reader name.
    overrides : mapping, optional
        Values given for every row (``--set``); normalised by value.

    Returns
    -------
    str

    Examples
    --------
    >>> a = import_identity("ab" * 32, "codecarbon", {"n_layers": "6"})
    >>> a == import_identity("ab" * 32, "codecarbon", {"n_layers": 6.0})
    True
    >>> a == import_identity("ab" * 32, "codecarbon", {"n_layers": "12"})
    False
    """
    values = {str(k): _normal_value(v) for k, v in (overrides or {}).items()}
    key = json.dumps({"sha256": sha256, "format": format, "set": values}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


def _format_hint(columns: list[str]) -> str:
    """Near-misses of canonical names among columns, for 'cannot tell the format'."""
    canonical = set(OPERATION_COLUMNS) | set(RUN_COLUMNS)
    hints = []
    for column in columns:
        if column in canonical:
            continue
        close = suggest(column, canonical)
        if close is not None:
            hints.append(f"{column!r} → {close!r}?")
    return f"; did you mean {', '.join(hints[:5])}" if hints else ""


def read_measurements(
    path: str | os.PathLike[str],
    format: str | None = None,
    overrides: Mapping[str, object] | None = None,
    *,
    ignore_extra_columns: bool = False,
    gpus: Mapping[str, tuple[GPU, str]] | None = None,
) -> Measurements:
    """Read and validate one measurement file (nothing is written anywhere).

    Parameters
    ----------
    path : path
        A CSV or Parquet file (possibly gzip-compressed) in one of the
        :data:`FORMATS`.
    format : str, optional
        A key of :data:`FORMATS`; detected from the columns when omitted.
    overrides : mapping of str to value, optional
        Canonical column values applied to every row (e.g. ``{"arch":
        "transformer", "n_layers": 6}``) — for the ``codecarbon`` and ``powerfit-*``
        formats, whose files may lack configuration columns. A value fills a column
        the file lacks or leaves empty in every row; a column the file gives a value
        in any row is refused (never silently replaced). They are part of the
        import's identity.
    ignore_extra_columns : bool, default False
        Ignore columns the format does not know instead of refusing the file
        (``--ignore-extra-columns``); they are listed in
        :attr:`Measurements.ignored_columns`.
    gpus : mapping of str to (GPU, str), optional
        GPUs of the store beyond the catalogue, by name: (spec, origin), as
        :func:`powerfit.store.gpus.store_gpus` returns them. GPUs known nowhere are
        refused.

    Returns
    -------
    Measurements

    Raises
    ------
    DataError
        For unreadable or invalid content, naming file, row and column in one line
        (:class:`~powerfit.store.validation.ValidationError`).
    FileNotFoundError
        When ``path`` does not exist.
    """
    source = os.fspath(path)
    if format in POWER_FORMATS or format is None:
        power = _read_power_file(source, format, overrides, gpus)
        if power is not None:  # measured board power (powerfit.store.readers.power)
            return power
    raw, header, lines, sha256 = _load(source)
    check_duplicates(header, source)
    raw.columns = [str(c).strip() for c in raw.columns]
    if format is None:
        format = detect_format(raw.columns)
        if format is None:
            raise ValidationError(
                "cannot tell the format from the columns "
                f"({', '.join(map(str, raw.columns[:12]))}); pass --format with one of "
                f"{', '.join((*FORMATS, *POWER_FORMATS))}{_format_hint(list(raw.columns))}",
                source=source,
                header=True,
            )
    elif format not in FORMATS:
        raise DataError(
            f"unknown format {format!r}; choose one of {', '.join((*FORMATS, *POWER_FORMATS))}",
            source=source,
        )
    spec = FORMATS[format]
    ignored = check_header(
        list(raw.columns),
        known_columns(format),
        source,
        ignore_extra_columns=ignore_extra_columns,
        raw_names=header,
    )
    if ignored:
        raw = raw.drop(columns=list(ignored))
    if len(raw) == 0:
        raise ValidationError("no data rows (only a header)", source=source)
    ctx = _Ctx(source, raw, lines, gpus)
    del raw
    normalised = _apply_overrides(ctx, format, overrides) if overrides else {}
    columns, origin = spec.convert(ctx)
    n = len(ctx.raw)
    ctx.raw = None  # type: ignore[assignment]  # each raw column is freed once converted
    rows = _finish(ctx, spec, columns, origin, n)
    return Measurements(
        source=source,
        sha256=sha256,
        format=format,
        kind=spec.kind,
        rows=rows,
        overrides=normalised,
        identity=import_identity(sha256, format, normalised),
        ignored_columns=ignored,
        gpus=dict(ctx.resolved),
    )


def _apply_overrides(ctx: _Ctx, format: str, overrides: Mapping[str, object]) -> dict[str, str]:
    """Put the ``--set`` values in every row of ``ctx.raw``; return them normalised.

    A value fills a column the file lacks, or one that is empty in every row (no
    value, or only blanks). A column the file already gives a value in any row is
    refused rather than silently replaced: the error names the file, the first data
    row with a value and the column.

    Raises
    ------
    DataError
        For a format without overrides, an unknown column, or a column the file
        already fills.
    """
    spec = FORMATS[format]
    if not spec.overrides:
        raise DataError(
            f"--set/overrides apply to the codecarbon and powerfit-* formats, not {format}",
            source=ctx.source,
        )
    allowed = set(_OPERATION_ORDER if spec.kind == "operation" else _RUN_ORDER)
    allowed |= {"steps"} if format == "codecarbon" else set()
    raw = ctx.raw.copy()
    normalised: dict[str, str] = {}
    for key, value in overrides.items():
        if key not in allowed:
            close = suggest(key, allowed)
            did = f"did you mean {close!r}? " if close else ""
            raise DataError(
                f"unknown column {key!r} in overrides (--set); {did}known: "
                f"{', '.join(sorted(allowed))}",
                source=ctx.source,
            )
        if key in raw.columns:
            given = raw[key].notna() & (raw[key].astype(str).str.strip() != "")
            if given.any():
                pos = _first(given)
                there = raw[key].iloc[pos]
                there = there.item() if isinstance(there, np.generic) else there
                raise ctx.fail(
                    f"--set {key}={value} would replace the file's own values of this "
                    f"column (here {there!r}); remove --set {key}, or the "
                    "column from the file (--set fills only a column that is missing or "
                    "empty in every row)",
                    position=pos,
                    column=key,
                )
        raw[key] = value
        normalised[key] = _normal_value(value)
    ctx.raw = raw
    return normalised


def _finish(
    ctx: _Ctx, spec: _Format, columns: dict[str, object], origin: dict[str, str], n: int
) -> pd.DataFrame:
    """Check and type the canonical columns (``n`` rows); resolve GPUs, default precisions.

    Each converted column is dropped from ``columns`` once typed, so that the file's
    raw values are not held twice.
    """
    order = _OPERATION_ORDER if spec.kind == "operation" else _RUN_ORDER
    for column in spec.required:
        if column not in columns:
            hint = f"; add it or pass --set {column}=..." if spec.overrides else ""
            raise ctx.fail(f"missing column{hint}", column=origin.get(column, column))
    out = pd.DataFrame(index=pd.RangeIndex(n))
    # The columns the file lacks share one column of NaN (of None for text), which
    # pandas copies only if it is written to (copy-on-write): not n values each.
    absent: dict[bool, pd.Series] = {}
    for column in order:
        value = columns.pop(column, None)
        if value is None:
            text = column in _TEXT
            if text not in absent:
                absent[text] = pd.Series(
                    None if text else np.nan, index=out.index, dtype=object if text else float
                )
            out[column] = absent[text]
            continue
        series = (
            value.reset_index(drop=True)
            if isinstance(value, pd.Series)
            else pd.Series([value] * n)
        )
        name = origin.get(column, column)
        required = column in spec.required
        if column in _TEXT:
            cleaned = by_unique(series, _strip)
            missing = cleaned.isna() | (cleaned == "")
            if required and missing.any():
                raise ctx.fail(
                    "missing value", position=int(np.argmax(missing.to_numpy())), column=name
                )
            out[column] = cleaned.where(~missing, None)
            check_text(column, out[column], ctx.fail, name)
        else:
            numbers = _checked_number(
                series, ctx, name, required=required, positive=column in _POSITIVE
            )
            if column == "duration_s" and (numbers == 0).any():
                pos = int(np.argmax((numbers == 0).to_numpy()))
                raise ctx.fail("must be > 0, got 0", position=pos, column=name)
            out[column] = check_numbers(column, numbers, ctx.fail, name)
    if spec.kind == "run":
        _split_gpu_column(ctx, out, origin)
    _check_names(ctx, out, origin)
    check_derived(ctx, out, origin)
    out["source_row"] = np.arange(1, n + 1)
    return out


def _split_gpu_column(ctx: _Ctx, out: pd.DataFrame, origin: dict[str, str]) -> None:
    """Read '4 x NVIDIA A100-SXM4-40GB' in the ``gpu`` column as 4 GPUs of that name.

    A count given in ``gpu_count`` too must agree. ``gpu_count`` defaults to 1.
    """
    names = out["gpu"]
    split = {v: _split_gpu_count(v) for v in distinct(names)[1]}
    counts = by_unique(names, lambda v: split[v][0]).astype(float)
    if counts.notna().any():
        given = out["gpu_count"].astype(float)
        clash = counts.notna() & given.notna() & (counts != given)
        if clash.any():
            pos = _first(clash)
            raise ctx.fail(
                f"GPU {names.iloc[pos]!r} says {counts.iloc[pos]:g} GPUs but gpu_count is "
                f"{given.iloc[pos]:g}",
                position=pos,
                column=origin.get("gpu", "gpu"),
            )
        out["gpu"] = by_unique(names, lambda v: split[v][1])
        out["gpu_count"] = given.where(given.notna(), counts)
        check_numbers("gpu_count", out["gpu_count"], ctx.fail, origin.get("gpu", "gpu"))
    out["gpu_count"] = out["gpu_count"].astype(float).fillna(1.0)


def _check_names(ctx: _Ctx, out: pd.DataFrame, origin: dict[str, str]) -> None:
    """Resolve GPU names; check arch, operation and precision against the catalogues."""
    gpus = {}
    for name in distinct(out["gpu"])[1]:
        try:
            resolved = ctx.gpu(name)
        except ValueError as exc:
            raise ctx.fail(
                str(exc), position=_first(out["gpu"] == name), column=origin.get("gpu", "gpu")
            ) from None
        gpus[name] = resolved[0]
        ctx.resolved[resolved[0].name] = resolved
    missing_gpu = out["gpu"].isna()
    if missing_gpu.any():
        raise ctx.fail(
            "missing GPU name",
            position=_first(missing_gpu),
            column=origin.get("gpu", "gpu"),
        )
    out["gpu"] = by_unique(out["gpu"], lambda name: gpus[name].name)
    arch = by_unique(out["arch"], lambda v: str(v).lower())
    unknown = ~arch.isin((*ARCHITECTURES, GENERIC_ARCH))
    if unknown.any():
        pos = _first(unknown)
        raise ctx.fail(
            f"unknown architecture {out['arch'].iloc[pos]!r}; known: "
            f"{', '.join(ARCHITECTURES)} (and {GENERIC_ARCH!r} for generic operators)",
            position=pos,
            column=origin.get("arch", "arch"),
        )
    out["arch"] = arch
    if "operation" in out.columns:
        generic = arch == GENERIC_ARCH
        if generic.any():
            kinds = {}
            for op in out.loc[generic, "operation"].unique():
                try:
                    kinds[op] = operator_kind(op)
                except ValueError:
                    kinds[op] = op  # refused below
            out.loc[generic, "operation"] = out.loc[generic, "operation"].map(kinds)
        catalogue = {**OPERATIONS, GENERIC_ARCH: tuple(OPERATOR_KINDS)}
        known = pd.Series(
            [op in catalogue[a] for a, op in zip(arch, out["operation"], strict=True)]
        )
        if not known.all():
            pos = _first(~known)
            names = ", ".join(catalogue[arch.iloc[pos]])
            raise ctx.fail(
                f"unknown {arch.iloc[pos]} operation {out['operation'].iloc[pos]!r}; "
                f"known: {names} (or the published names {', '.join(OPERATION_NAMES)})",
                position=pos,
                column=origin.get("operation", "operation"),
            )
    default = {g.name: g.default_precision for g in gpus.values()}
    defaults = by_unique(out["gpu"], default.get)
    given = out["precision"].notna()
    lowered = by_unique(out["precision"], lambda v: str(v).lower())
    out["precision"] = lowered.where(given, defaults)
    del lowered, defaults
    bad = ~out["precision"].isin(PRECISIONS)
    if bad.any():
        pos = _first(bad)
        raise ctx.fail(
            f"precision {out['precision'].iloc[pos]!r} unknown; known: {', '.join(PRECISIONS)}",
            position=pos,
            column=origin.get("precision", "precision"),
        )
    peak = by_unique(out["precision"], peak_precision)
    for name in distinct(out["gpu"])[1]:
        peaks = ctx.resolved[name][0].peak_flops
        usable = [p for p in PRECISIONS if peak_precision(p) in peaks]
        bad = (out["gpu"] == name) & ~peak.isin(peaks)
        if bad.any():
            pos = _first(bad)
            raise ctx.fail(
                f"precision {out['precision'].iloc[pos]!r} has no peak throughput for "
                f"{name}; known: {', '.join(usable)}",
                position=pos,
                column=origin.get("precision", "precision"),
            )
