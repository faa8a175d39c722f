"""What the readers share: the row context that checks values, names and the result.

:class:`Measurements` is what :func:`~powerfit.store.readers.read.read_measurements`
returns; :class:`_Ctx` holds a file's rows while a format's reader converts them and
names the file, row and column of any bad value; the canonical names of the published
operations and models, and the extra columns a file may carry (see
:mod:`powerfit.store.readers`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from powerfit.exceptions import DataError
from powerfit.formats import (
    CONFIG_COLUMNS,
    OPERATION_COLUMNS,
    RUN_COLUMNS,
)
from powerfit.hardware.gpus import GPU, get_gpu
from powerfit.store.validation import (
    ValidationError,
    distinct,
    refuse_dates,
)

__all__ = ["DEVICE_SPEC_COLUMNS", "GENERIC_ARCH", "OPERATION_NAMES", "Measurements"]

KWH = 3.6e6  # [J/kWh]
WH = 3600.0  # [J/Wh]

#: Published operation names → ours (powerfit.paper.flops.OPERATIONS).
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

#: Extra canonical run columns, not in powerfit.formats (yet): parameters [-], GPUs
#: the step ran on [-] (energies are their total).
EXTRA_RUN_COLUMNS: tuple[str, ...] = ("n_params", "gpu_count")
#: Extra canonical operation columns: the generic operators' shape (B is
#: ``batch_size``; ``m, n, k`` of a matrix product, ``h`` of a B×H tensor), the bytes
#: one call moves [B], and the kernel's name.
EXTRA_OPERATION_COLUMNS: tuple[str, ...] = ("m", "n", "k", "h", "bytes", "kernel")
#: Columns in which ``powerfit measure`` describes the device it measured, so that a
#: device outside the catalogue (a CPU, a new GPU) ingests as written: its peak
#: throughput at the row's precision [FLOP/s], DRAM bandwidth [B/s], power limit [W].
DEVICE_SPEC_COLUMNS: tuple[str, ...] = (
    "device_peak_flops",
    "device_memory_bandwidth",
    "device_power_limit_w",
)
#: ``arch`` of the generic operators (NeuSight's ``bmm``, ``softmax``...).
GENERIC_ARCH = "generic"
#: Bytes an element of NeuSight's FP32 tensors [B].
_FP32_BYTES = 4.0

_INTEGER = {
    *CONFIG_COLUMNS[1:],
    "n_layers",
    "vocab_size",
    "n_params",
    "repeats",
    "m",
    "n",
    "k",
    "h",
    "gpu_count",
}
_POSITIVE = {*_INTEGER, "flops", "bytes"}
_TEXT = ("gpu", "arch", "operation", "precision", "model", "tool", "kernel")
_OPERATION_ORDER = OPERATION_COLUMNS + EXTRA_OPERATION_COLUMNS
_RUN_ORDER = RUN_COLUMNS + EXTRA_RUN_COLUMNS


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
        Name of the reader (a key of :data:`~powerfit.store.readers.read.FORMATS`).
    kind : {'operation', 'run'}
        The table the rows belong to.
    rows : pandas.DataFrame
        Canonical columns (:data:`powerfit.formats.OPERATION_COLUMNS` or
        :data:`~powerfit.formats.RUN_COLUMNS`, plus ``n_params`` for runs) and
        ``source_row``, the 1-based data row in the file. Missing values are NaN/None.
    overrides : dict of str to str
        The ``--set`` values applied to every row, normalised (see
        :func:`~powerfit.store.readers.read.import_identity`); empty when none.
    identity : str
        SHA-256 (hex) of the content's SHA-256, the format and the overrides: what
        makes two imports the same.
    ignored_columns : tuple of str
        Unknown columns ignored (``ignore_extra_columns=True``).
    gpus : dict of str to (GPU, str)
        Every GPU of the rows, by canonical name: its spec and where it comes from
        ('catalogue', 'user' for a store GPU, 'measured' for one the file describes).
    """

    source: str
    sha256: str
    format: str
    kind: str
    rows: pd.DataFrame = field(repr=False)
    overrides: dict[str, str] = field(default_factory=dict)
    identity: str = ""
    ignored_columns: tuple[str, ...] = ()
    gpus: dict[str, tuple[GPU, str]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.rows)


class _Ctx:
    """What a converter needs to report an error: the file, and the raw frame."""

    def __init__(
        self,
        source: str,
        raw: pd.DataFrame,
        lines: Sequence[int] | None = None,
        gpus: Mapping[str, tuple[GPU, str]] | None = None,
    ) -> None:
        self.source = source
        self.raw = raw
        #: Line where each record starts, the header first (CSV only).
        self.lines = lines
        #: Store GPUs beyond the catalogue: key -> (spec, origin).
        self.store_gpus = {_gpu_key(s.name): (s, o) for s, o in (gpus or {}).values()}
        #: GPUs described by the file (DEVICE_SPEC_COLUMNS): key -> spec.
        self.file_gpus: dict[str, GPU] = {}
        #: Resolved GPUs of the rows: canonical name -> (spec, origin).
        self.resolved: dict[str, tuple[GPU, str]] = {}

    def gpu(self, name: str) -> tuple[GPU, str]:
        """The spec and origin of a GPU name (catalogue, store, or the file's specs).

        Raises
        ------
        ValueError
            For a GPU known nowhere, saying how to add it.
        """
        try:
            return get_gpu(name), "catalogue"
        except ValueError:
            pass
        key = _gpu_key(name)
        stored = self.store_gpus.get(key)
        if stored is not None and stored[1] == "user":
            return stored
        if key in self.file_gpus:
            return self.file_gpus[key], "measured"
        if stored is not None:
            return stored
        raise ValueError(
            f"unknown GPU {name!r}: not in powerfit's catalogue nor in this store; add it "
            f"with: powerfit gpus add {name!r} --peak-flops fp32=FLOP/s,... "
            "--memory-bandwidth B/s --tdp W (powerfit gpus lists the known GPUs)"
        )

    def line(self, row: int) -> int | None:
        """Line of the file where 1-based data row ``row`` starts (CSV only)."""
        if self.lines is None:
            return None
        return int(self.lines[row]) if row < len(self.lines) else None

    def fail(
        self, message: str, *, position: int | None = None, column: str | None = None
    ) -> DataError:
        row = None if position is None else position + 1
        line = None if row is None else self.line(row)
        return ValidationError(message, source=self.source, row=row, column=column, line=line)

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
        values = by_unique(self.raw[column], _strip)
        missing = values.isna() | (values == "")
        if missing.any():
            raise self.fail(
                "missing value", position=int(np.argmax(missing.to_numpy())), column=column
            )
        return values


def _checked_number(
    values: pd.Series, ctx: _Ctx, column: str, *, required: bool, positive: bool
) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        raise ctx.fail("expected a number, got a boolean", position=0, column=column)
    refuse_dates(values, ctx.fail, column)
    if pd.api.types.is_object_dtype(values.dtype):
        flags = values.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy()
        if flags.any():
            pos = int(np.argmax(flags))
            raise ctx.fail("expected a number, got a boolean", position=pos, column=column)
    try:
        numbers = pd.to_numeric(values, errors="coerce").astype(float)
    except (TypeError, ValueError, OverflowError):  # e.g. complex, or huge Decimals
        numbers = values.map(_to_float).astype(float)
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


def _to_float(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return math.nan
    return number


def _gpu_key(name: str) -> str:
    """GPU names compared as the catalogue does (case, spaces, '-' and '_' ignored)."""
    return re.sub(r"[\s_\-]+", "", str(name).strip().lower())


def _map_names(ctx: _Ctx, column: str, mapping: Mapping[str, str]) -> pd.Series:
    """Published names mapped to ours; unknown names are kept (and refused later)."""
    return ctx.text(column).map(lambda name: mapping.get(name, name)).rename(None)


# Each converter returns (frame of canonical columns, origin: canonical -> file column).
Converted = tuple[dict[str, object], dict[str, str]]


_PARTS = ("gpu", "cpu", "ram")


def by_unique(values: pd.Series, function: Callable[[object], object]) -> pd.Series:
    """``function`` of each value, computed once per distinct value (missing -> None).

    The result is an object column sharing one object per distinct value: a million
    rows naming three GPUs hold three strings, not a million (``Series.map`` and the
    ``Series.str`` methods make one a row, or a string column of a million).
    """
    codes, uniques = distinct(values)
    table = np.empty(len(uniques) + 1, dtype=object)  # the last one for code -1
    for index, value in enumerate(uniques):
        table[index] = function(value)
    mapped = table[codes]
    return pd.Series(mapped, index=values.index, dtype=object, name=values.name, copy=False)


def _strip(value: object) -> str:
    return str(value).strip()


def _first(mask: pd.Series) -> int:
    return int(np.argmax(mask.to_numpy()))
