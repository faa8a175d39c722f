"""Readers that turn a measurement file into validated rows of powerfit's canonical
columns (:mod:`powerfit.formats`, SI units), ready for the store.

Formats (detected from the columns; force one with ``format=``):

``powerfit-operations``, ``powerfit-runs``
    Our canonical CSV or Parquet files (:mod:`powerfit.formats`). A file with an
    ``operation`` column holds operation measurements, otherwise run measurements.
``mayaki2025-transformer-operations`` (``dataForTransformerHEF.csv``)
    One timed Transformer operation a row. ``source`` is the NVML name.
    ``elapsed_time_sec`` [s] and ``FLOPs`` [FLOP] are per call. The batch size, 64,
    is not a column and is recorded as ``batch_size=64``; the heads are not
    published (``n_heads`` NULL; the FLOPs do not depend on them). The CodeCarbon
    columns (``energy_consumed_kWh`` ...) cover a whole measurement window of an
    unknown number of calls (≈ 290 J for a 7 ms call), not one call, so
    ``energy_j`` is left NULL.
``mayaki2025-lstm-operations`` (``dataForLstmHEF.csv``)
    One timed LSTM operation a row. ``FLOPs`` and ``elapsed_time_sec`` are those
    of **one time step** (the experiment ran ``seq_len=4`` steps), so the row is
    stored with ``seq_len=1`` and the FLOPs as published — they follow the
    published convention of 2·B·H FLOP for the cell update where
    :func:`powerfit.flops.cell_update` counts 3·B·H. ``energy_j`` is NULL as above.
``mayaki2025-transformer-energy`` (``SubsetDataForTransformer_energyModel.csv``)
    One training step of a BERT or GPT-2 model a row: ``duration`` [s] and
    ``energy_joules`` [J] are per step. The CodeCarbon totals
    (``total_gpu_energy_kWh`` ...) are those of the whole experiment, so the
    GPU/CPU/RAM parts of a step are ``energy_joules`` split in the proportions of
    those totals. ``energy_wh_std_codecarbon`` [Wh] and ``time_sec_std`` [s] give
    the spread over ``num_repeats``; with one repeat the spread is undefined and
    stored as NULL. ``source`` 'a100' → 'NVIDIA A100 80GB PCIe', 'grid' →
    'NVIDIA GeForce RTX 2080 Ti'; ``model`` 'gpt' → 'gpt2'; ``params`` →
    ``n_params``; ``d_ff`` is not published (NULL).
``mayaki2025-lstm-energy`` (``SubsetDataForLSTM_energyModel.csv``)
    One LSTM run a row, energy in kWh (× 3.6e6 → J), no duration (NULL);
    ``seq_len`` is the model's sequence length (4). The ``component`` and
    per-operation columns describe the operation features the authors joined to
    each row and are not stored.
``codecarbon`` (CodeCarbon's ``emissions.csv``)
    One tracked span a row: ``duration`` [s], ``energy_consumed``, ``gpu_energy``,
    ``cpu_energy``, ``ram_energy`` [kWh]. CodeCarbon does not record the model,
    so the configuration columns (``arch``, ``n_layers``, ``batch_size``, ... with
    our canonical names) must be extra columns of the file or given as
    ``overrides`` (``powerfit ingest --set arch=transformer``). An optional
    ``steps`` column or override (default 1) is the number of training steps in
    the span: duration and energies are divided by it and stored as ``repeats``.
    The GPU is the ``gpu`` column, else parsed from ``gpu_model``
    ('1 x NVIDIA A100-SXM4-40GB').

Every GPU name must be in :mod:`powerfit.hardware` (its peak throughput is needed to
compute efficiencies); ``precision`` defaults to the GPU's ``default_precision``.
Validation is complete before anything is written: a missing column, a
non-numeric, negative or NaN value in a required column, an unknown GPU,
architecture or operation, an empty or binary file raises
:class:`~powerfit.exceptions.DataError` naming the file, the 1-based data row
and the column as written in the file.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from powerfit.exceptions import DataError
from powerfit.flops import ARCHITECTURES, OPERATIONS
from powerfit.formats import (
    CONFIG_COLUMNS,
    OPERATION_COLUMNS,
    OPERATION_REQUIRED,
    RUN_COLUMNS,
    RUN_REQUIRED,
)
from powerfit.hardware import get_gpu

__all__ = [
    "FORMATS",
    "OPERATION_NAMES",
    "Measurements",
    "detect_format",
    "read_measurements",
]

KWH = 3.6e6  # [J/kWh]
WH = 3600.0  # [J/Wh]

#: Published operation names → ours (powerfit.flops.OPERATIONS).
OPERATION_NAMES: dict[str, str] = {
    "QKV Projections": "qkv_projections",
    "Attention Scores": "attention_scores",
    "attention_softmax": "attention_softmax",
    "Attention Output": "attention_output",
    "Final Projection": "final_projection",
    "compute_gates": "input_gates",
    "hidden_gates": "hidden_gates",
    "Activations": "activations",
    "Cell Update": "cell_update",
    "Hidden Update": "hidden_update",
}
#: Published model names → ours.
MODEL_NAMES: dict[str, str] = {"gpt": "gpt2"}

#: Extra canonical run column, not in powerfit.formats (yet): parameters [-].
EXTRA_RUN_COLUMNS: tuple[str, ...] = ("n_params",)

_INTEGER = {
    *CONFIG_COLUMNS[1:],
    "n_layers",
    "vocab_size",
    "n_params",
    "repeats",
}
_POSITIVE = {*_INTEGER, "flops"}
_TEXT = ("gpu", "arch", "operation", "precision", "model", "tool")


@dataclass(frozen=True)
class Measurements:
    """Validated rows of one file, in canonical columns and SI units.

    Attributes
    ----------
    source : str
        The path as given.
    sha256 : str
        SHA-256 of the file's content (hex).
    format : str
        Name of the reader (a key of :data:`FORMATS`).
    kind : {'operation', 'run'}
        The table the rows belong to.
    rows : pandas.DataFrame
        Canonical columns (:data:`powerfit.formats.OPERATION_COLUMNS` or
        :data:`~powerfit.formats.RUN_COLUMNS`, plus ``n_params`` for runs) and
        ``source_row``, the 1-based data row in the file. Missing values are NaN/None.
    """

    source: str
    sha256: str
    format: str
    kind: str
    rows: pd.DataFrame = field(repr=False)

    def __len__(self) -> int:
        return len(self.rows)


# ------------------------------------------------------------------------- helpers
class _Ctx:
    """What a converter needs to report an error: the file, and the raw frame."""

    def __init__(self, source: str, raw: pd.DataFrame) -> None:
        self.source = source
        self.raw = raw

    def fail(self, message: str, *, position: int | None = None, column: str | None = None):
        row = None if position is None else position + 1
        return DataError(message, source=self.source, row=row, column=column)

    def require(self, *columns: str) -> None:
        for column in columns:
            if column not in self.raw.columns:
                raise self.fail("missing column", column=column)

    def number(self, column: str, *, required: bool = True, positive: bool = False) -> pd.Series:
        """A raw column as floats, checked: numeric, present, >= 0 (> 0 if positive)."""
        return _checked_number(
            self.raw[column], self, column, required=required, positive=positive
        )

    def text(self, column: str) -> pd.Series:
        values = self.raw[column]
        missing = values.isna() | (values.astype(str).str.strip() == "")
        if missing.any():
            raise self.fail(
                "missing value", position=int(np.argmax(missing.to_numpy())), column=column
            )
        return values.astype(str).str.strip()


def _checked_number(
    values: pd.Series, ctx: _Ctx, column: str, *, required: bool, positive: bool
) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        raise ctx.fail("expected a number, got a boolean", position=0, column=column)
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    arr = numbers.to_numpy()
    nan = np.isnan(arr)
    if nan.any():
        blank = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
        bad = nan & ~blank
        if bad.any():
            pos = int(np.argmax(bad))
            raise ctx.fail(f"not a number: {values.iloc[pos]!r}", position=pos, column=column)
        if required:
            pos = int(np.argmax(nan))
            raise ctx.fail("missing value (empty or NaN)", position=pos, column=column)
    with np.errstate(invalid="ignore"):
        infinite = np.isinf(arr)
        negative = arr < 0
        zero = arr == 0
    if infinite.any():
        pos = int(np.argmax(infinite))
        raise ctx.fail("infinite value", position=pos, column=column)
    if negative.any():
        pos = int(np.argmax(negative))
        raise ctx.fail(f"negative value {arr[pos]:g}", position=pos, column=column)
    if positive and zero.any():
        pos = int(np.argmax(zero))
        raise ctx.fail("must be > 0, got 0", position=pos, column=column)
    return numbers


def _map_names(ctx: _Ctx, column: str, mapping: Mapping[str, str]) -> pd.Series:
    """Published names mapped to ours; unknown names are kept (and refused later)."""
    return ctx.text(column).map(lambda name: mapping.get(name, name)).rename(None)


# ---------------------------------------------------------------------- converters
# Each converter returns (frame of canonical columns, origin: canonical -> file column).
Converted = tuple[dict[str, object], dict[str, str]]


def _transformer_operations(ctx: _Ctx) -> Converted:
    ctx.require("operation", "source", "seq_len", "d_model", "FLOPs", "elapsed_time_sec")
    return (
        {
            "gpu": ctx.text("source"),
            "arch": "transformer",
            "operation": _map_names(ctx, "operation", OPERATION_NAMES),
            "batch_size": 64,
            "seq_len": ctx.number("seq_len", positive=True),
            "d_model": ctx.number("d_model", positive=True),
            "flops": ctx.number("FLOPs", positive=True),
            "duration_s": ctx.number("elapsed_time_sec", positive=True),
            "tool": "mayaki2025 (CUDA timing)",
        },
        {
            "gpu": "source",
            "operation": "operation",
            "seq_len": "seq_len",
            "d_model": "d_model",
            "flops": "FLOPs",
            "duration_s": "elapsed_time_sec",
        },
    )


def _lstm_operations(ctx: _Ctx) -> Converted:
    ctx.require(
        "component", "source", "batch_size", "input_size", "hidden_size", "FLOPs",
        "elapsed_time_sec",
    )  # fmt: skip
    return (
        {
            "gpu": ctx.text("source"),
            "arch": "lstm",
            "operation": _map_names(ctx, "component", OPERATION_NAMES),
            "batch_size": ctx.number("batch_size", positive=True),
            "seq_len": 1,
            "input_size": ctx.number("input_size", positive=True),
            "hidden_size": ctx.number("hidden_size", positive=True),
            "flops": ctx.number("FLOPs", positive=True),
            "duration_s": ctx.number("elapsed_time_sec", positive=True),
            "tool": "mayaki2025 (CUDA timing)",
        },
        {
            "gpu": "source",
            "operation": "component",
            "batch_size": "batch_size",
            "input_size": "input_size",
            "hidden_size": "hidden_size",
            "flops": "FLOPs",
            "duration_s": "elapsed_time_sec",
        },
    )


_PARTS = ("gpu", "cpu", "ram")


def _transformer_energy(ctx: _Ctx) -> Converted:
    parts = [f"total_{p}_energy_kWh" for p in _PARTS]
    ctx.require(
        "source", "model", "num_layers", "batch_size", "seq_length", "d_model",
        "num_attention_heads", "duration", "energy_joules", "num_repeats", *parts,
    )  # fmt: skip
    energy = ctx.number("energy_joules", positive=True)
    totals = [ctx.number(column) for column in parts]
    whole = sum(totals)
    repeats = ctx.number("num_repeats", positive=True)
    several = repeats > 1
    frame: dict[str, object] = {
        "gpu": ctx.text("source"),
        "arch": "transformer",
        "model": ctx.text("model").str.lower().map(lambda m: MODEL_NAMES.get(m, m)),
        "n_layers": ctx.number("num_layers", positive=True),
        "batch_size": ctx.number("batch_size", positive=True),
        "seq_len": ctx.number("seq_length", positive=True),
        "d_model": ctx.number("d_model", positive=True),
        "n_heads": ctx.number("num_attention_heads", positive=True),
        "duration_s": ctx.number("duration", positive=True),
        "energy_j": energy,
        "repeats": repeats,
        "tool": "mayaki2025 (CodeCarbon)",
    }
    origin = {
        "gpu": "source",
        "model": "model",
        "n_layers": "num_layers",
        "batch_size": "batch_size",
        "seq_len": "seq_length",
        "d_model": "d_model",
        "n_heads": "num_attention_heads",
        "duration_s": "duration",
        "energy_j": "energy_joules",
        "repeats": "num_repeats",
    }
    with np.errstate(invalid="ignore", divide="ignore"):
        for part, total, column in zip(_PARTS, totals, parts, strict=True):
            frame[f"{part}_energy_j"] = energy * total / whole.where(whole > 0)
            origin[f"{part}_energy_j"] = column
    if "params" in ctx.raw.columns:
        frame["n_params"] = ctx.number("params", required=False, positive=True)
        origin["n_params"] = "params"
    if "time_sec_std" in ctx.raw.columns:
        frame["duration_std_s"] = ctx.number("time_sec_std", required=False).where(several)
        origin["duration_std_s"] = "time_sec_std"
    if "energy_wh_std_codecarbon" in ctx.raw.columns:
        std = ctx.number("energy_wh_std_codecarbon", required=False) * WH
        frame["energy_std_j"] = std.where(several)
        origin["energy_std_j"] = "energy_wh_std_codecarbon"
    return frame, origin


def _lstm_energy(ctx: _Ctx) -> Converted:
    parts = [f"total_{p}_energy_kWh" for p in _PARTS]
    ctx.require(
        "source", "batch_size", "input_size", "hidden_size", "num_layers", "seq_len",
        "energy_consumed_kWh", *parts,
    )  # fmt: skip
    frame: dict[str, object] = {
        "gpu": ctx.text("source"),
        "arch": "lstm",
        "model": "lstm",
        "n_layers": ctx.number("num_layers", positive=True),
        "batch_size": ctx.number("batch_size", positive=True),
        "seq_len": ctx.number("seq_len", positive=True),
        "input_size": ctx.number("input_size", positive=True),
        "hidden_size": ctx.number("hidden_size", positive=True),
        "energy_j": ctx.number("energy_consumed_kWh", positive=True) * KWH,
        "tool": "mayaki2025 (CodeCarbon)",
    }
    origin = {
        "gpu": "source",
        "n_layers": "num_layers",
        "batch_size": "batch_size",
        "seq_len": "seq_len",
        "input_size": "input_size",
        "hidden_size": "hidden_size",
        "energy_j": "energy_consumed_kWh",
    }
    for part, column in zip(_PARTS, parts, strict=True):
        frame[f"{part}_energy_j"] = ctx.number(column) * KWH
        origin[f"{part}_energy_j"] = column
    return frame, origin


_GPU_MODEL = re.compile(r"\s*\d+\s*x\s*(.+?)\s*")


def _gpu_from_codecarbon(value: object) -> object:
    """'1 x NVIDIA A100-SXM4-40GB' -> 'NVIDIA A100-SXM4-40GB'; None when ambiguous."""
    if not isinstance(value, str):
        return None
    match = _GPU_MODEL.fullmatch(value)
    if match is None or re.search(r"\d+\s*x\s", match.group(1)):
        return None
    return match.group(1)


def _codecarbon(ctx: _Ctx) -> Converted:
    ctx.require("duration", "energy_consumed")
    raw = ctx.raw
    frame, origin = _canonical_columns(ctx, RUN_COLUMNS + EXTRA_RUN_COLUMNS)
    steps = ctx.number("steps", positive=True) if "steps" in raw.columns else 1.0
    frame["duration_s"] = ctx.number("duration", positive=True) / steps
    frame["energy_j"] = ctx.number("energy_consumed", positive=True) * KWH / steps
    origin.update(duration_s="duration", energy_j="energy_consumed")
    for part in _PARTS:
        column = f"{part}_energy"
        if column in raw.columns:
            frame[f"{part}_energy_j"] = ctx.number(column, required=False) * KWH / steps
            origin[f"{part}_energy_j"] = column
    frame["repeats"] = steps
    origin["repeats"] = "steps"
    if "gpu" not in frame and "gpu_model" in raw.columns:
        frame["gpu"] = raw["gpu_model"].map(_gpu_from_codecarbon)
        origin["gpu"] = "gpu_model"
    if "tool" not in frame:
        version = raw["codecarbon_version"] if "codecarbon_version" in raw.columns else None
        frame["tool"] = (
            "codecarbon" if version is None else ("codecarbon " + version.astype(str)).str.strip()
        )
    return frame, origin


def _canonical_columns(ctx: _Ctx, columns: tuple[str, ...]) -> Converted:
    frame = {c: ctx.raw[c] for c in columns if c in ctx.raw.columns}
    return frame, {c: c for c in frame}


def _powerfit_operations(ctx: _Ctx) -> Converted:
    return _canonical_columns(ctx, OPERATION_COLUMNS)


def _powerfit_runs(ctx: _Ctx) -> Converted:
    return _canonical_columns(ctx, RUN_COLUMNS + EXTRA_RUN_COLUMNS)


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


# ------------------------------------------------------------------------- reading
def _load(source: str, data: bytes) -> pd.DataFrame:
    """Parse CSV or Parquet bytes into a raw frame; reject empty and binary content."""
    if not data.strip():
        raise DataError("empty file", source=source)
    if data[:4] == b"PAR1":
        try:
            return pd.read_parquet(io.BytesIO(data))
        except Exception as exc:
            raise DataError(f"unreadable Parquet file: {exc}", source=source) from exc
    head = data[:8192]
    if b"\x00" in head:
        raise DataError("binary content, not a CSV or Parquet file", source=source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"not UTF-8 text (byte {exc.start}): binary content, not a CSV file", source=source
        ) from exc
    try:
        return pd.read_csv(io.StringIO(text), skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise DataError(f"not a readable CSV file: {exc}", source=source) from exc


def read_measurements(
    path: str | os.PathLike[str],
    format: str | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Measurements:
    """Read and validate one measurement file (nothing is written anywhere).

    Parameters
    ----------
    path : path
        A CSV or Parquet file in one of the :data:`FORMATS`.
    format : str, optional
        A key of :data:`FORMATS`; detected from the columns when omitted.
    overrides : mapping of str to value, optional
        Canonical column values applied to every row (e.g. ``{"arch":
        "transformer", "n_layers": 6}``) — for the ``codecarbon`` and ``powerfit-*``
        formats, whose files may lack configuration columns.

    Returns
    -------
    Measurements

    Raises
    ------
    DataError
        For unreadable or invalid content, naming file, row and column.
    FileNotFoundError
        When ``path`` does not exist.
    """
    source = os.fspath(path)
    data = Path(source).read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    raw = _load(source, data)
    raw.columns = [str(c).strip() for c in raw.columns]
    if format is None:
        format = detect_format(raw.columns)
        if format is None:
            raise DataError(
                "cannot tell the format from the columns "
                f"({', '.join(map(str, raw.columns[:12]))}); pass one of "
                f"{', '.join(FORMATS)}",
                source=source,
            )
    elif format not in FORMATS:
        raise DataError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    spec = FORMATS[format]
    if len(raw) == 0:
        raise DataError("no data rows (only a header)", source=source)
    if overrides:
        if not spec.overrides:
            raise DataError(
                f"--set/overrides apply to the codecarbon and powerfit-* formats, not {format}",
                source=source,
            )
        allowed = set(OPERATION_COLUMNS if spec.kind == "operation" else RUN_COLUMNS)
        allowed |= set(EXTRA_RUN_COLUMNS) | ({"steps"} if format == "codecarbon" else set())
        raw = raw.copy()
        for key, value in overrides.items():
            if key not in allowed:
                raise DataError(
                    f"unknown column {key!r} in overrides; known: {', '.join(sorted(allowed))}"
                )
            raw[key] = value
    ctx = _Ctx(source, raw)
    columns, origin = spec.convert(ctx)
    rows = _finish(ctx, spec, columns, origin)
    return Measurements(source=source, sha256=sha256, format=format, kind=spec.kind, rows=rows)


def _finish(
    ctx: _Ctx, spec: _Format, columns: dict[str, object], origin: dict[str, str]
) -> pd.DataFrame:
    """Check and type the canonical columns; resolve GPU names, default precisions."""
    n = len(ctx.raw)
    order = OPERATION_COLUMNS if spec.kind == "operation" else RUN_COLUMNS + EXTRA_RUN_COLUMNS
    for column in spec.required:
        if column not in columns:
            hint = f"; add it or pass --set {column}=..." if spec.overrides else ""
            raise ctx.fail(f"missing column{hint}", column=origin.get(column, column))
    out = pd.DataFrame(index=pd.RangeIndex(n))
    for column in order:
        value = columns.get(column)
        if value is None:
            out[column] = None if column in _TEXT else np.nan
            continue
        series = (
            value.reset_index(drop=True)
            if isinstance(value, pd.Series)
            else pd.Series([value] * n)
        )
        name = origin.get(column, column)
        required = column in spec.required
        if column in _TEXT:
            missing = series.isna() | (series.astype(str).str.strip() == "")
            if required and missing.any():
                raise ctx.fail(
                    "missing value", position=int(np.argmax(missing.to_numpy())), column=name
                )
            cleaned = series.astype(str).str.strip().astype(object)
            out[column] = cleaned.where(~missing, None)
        else:
            numbers = _checked_number(
                series, ctx, name, required=required, positive=column in _POSITIVE
            )
            if column == "duration_s" and (numbers == 0).any():
                pos = int(np.argmax((numbers == 0).to_numpy()))
                raise ctx.fail("must be > 0, got 0", position=pos, column=name)
            if column in _INTEGER:
                arr = numbers.to_numpy()
                fractional = ~np.isnan(arr) & (arr != np.round(arr))
                if fractional.any():
                    pos = int(np.argmax(fractional))
                    raise ctx.fail(f"not an integer: {arr[pos]:g}", position=pos, column=name)
            out[column] = numbers
    _check_names(ctx, out, origin)
    out["source_row"] = np.arange(1, n + 1)
    return out


def _first(mask: pd.Series) -> int:
    return int(np.argmax(mask.to_numpy()))


def _check_names(ctx: _Ctx, out: pd.DataFrame, origin: dict[str, str]) -> None:
    """Resolve GPU names; check arch, operation and precision against the catalogues."""
    gpus = {}
    for name in out["gpu"].dropna().unique():
        try:
            gpus[name] = get_gpu(name)
        except ValueError as exc:
            raise ctx.fail(
                str(exc), position=_first(out["gpu"] == name), column=origin.get("gpu", "gpu")
            ) from None
    missing_gpu = out["gpu"].isna()
    if missing_gpu.any():
        raise ctx.fail(
            "missing GPU name",
            position=_first(missing_gpu),
            column=origin.get("gpu", "gpu"),
        )
    out["gpu"] = out["gpu"].map({name: gpu.name for name, gpu in gpus.items()})
    arch = out["arch"].str.lower()
    unknown = ~arch.isin(ARCHITECTURES)
    if unknown.any():
        pos = _first(unknown)
        raise ctx.fail(
            f"unknown architecture {out['arch'].iloc[pos]!r}; known: {', '.join(ARCHITECTURES)}",
            position=pos,
            column=origin.get("arch", "arch"),
        )
    out["arch"] = arch
    if "operation" in out.columns:
        known = pd.Series(
            [op in OPERATIONS[a] for a, op in zip(arch, out["operation"], strict=True)]
        )
        if not known.all():
            pos = _first(~known)
            names = ", ".join(OPERATIONS[arch.iloc[pos]])
            raise ctx.fail(
                f"unknown {arch.iloc[pos]} operation {out['operation'].iloc[pos]!r}; "
                f"known: {names} (or the published names {', '.join(OPERATION_NAMES)})",
                position=pos,
                column=origin.get("operation", "operation"),
            )
    defaults = out["gpu"].map({g.name: g.default_precision for g in gpus.values()})
    out["precision"] = out["precision"].where(out["precision"].notna(), defaults)
    for name in out["gpu"].unique():
        peaks = get_gpu(name).peak_flops
        bad = (out["gpu"] == name) & ~out["precision"].isin(peaks)
        if bad.any():
            pos = _first(bad)
            raise ctx.fail(
                f"precision {out['precision'].iloc[pos]!r} unknown for {name}; "
                f"known: {', '.join(peaks)}",
                position=pos,
                column=origin.get("precision", "precision"),
            )
