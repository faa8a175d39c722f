"""Readers that turn a measurement file into validated rows of powerfit's canonical
columns (:mod:`powerfit.formats`, SI units), ready for the store.

Formats (detected from the columns; force one with ``format=``):

``powerfit-operations``, ``powerfit-runs``
    Our canonical CSV or Parquet files (:mod:`powerfit.formats`). A file with an
    ``operation`` column holds operation measurements, otherwise run measurements.
``mayaki2025-transformer-operations`` (``dataForTransformerHEF.csv``)
    One timed Transformer operation a row, precision by :func:`mayaki_precision`.
    ``source`` is the NVML name.
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
``neusight2025-operators`` (NeuSight's ``ops/test/<op>.csv.gz``, ``ops/train/<op>/<GPU>.csv.gz``)
    One timed generic operator a row (Lee et al., ASPLOS 2025): ``OPName``
    (``bmm``, ``linear``, ``softmax``, ``ln``, ``gelu``, ``relu``, ``tanh``,
    ``add``… see :data:`powerfit.flops.OPERATOR_KINDS`), ``Latency`` [ms] → s,
    ``Device`` (NVML name), ``Kernel Name`` → ``kernel``; the shape ``B, M, N, K``
    (matrix products) or ``B, H`` (memory-bound operators) → ``batch_size, m, n, k``
    or ``batch_size, h``. Stored with ``arch`` 'generic', ``precision`` 'fp32'
    (NeuSight ran PyTorch 2.1 with TF32 off: ``*_sgemm_*`` kernels), FLOPs and
    bytes moved from :func:`powerfit.flops.operator_flops` /
    :func:`~powerfit.flops.operator_bytes` (4 bytes an element), time only
    (``energy_j`` NULL), ``tool`` 'neusight'. The launch geometry is not stored.
``codecarbon`` (CodeCarbon's ``emissions.csv``)
    One tracked span a row: ``duration`` [s], ``energy_consumed``, ``gpu_energy``,
    ``cpu_energy``, ``ram_energy`` [kWh]. CodeCarbon does not record the model,
    so the configuration columns (``arch``, ``n_layers``, ``batch_size``, ... with
    our canonical names) must be extra columns of the file or given as
    ``overrides`` (``powerfit ingest --set arch=transformer``; an override fills a
    column the file lacks or leaves empty, and is refused for a column the file
    fills, in this and the ``powerfit-*`` formats). An optional
    ``steps`` column or override (default 1) is the number of training steps in
    the span: duration and energies are divided by it and stored as ``repeats``.
    The GPU is the ``gpu`` column, else parsed from ``gpu_model``
    ('4 x NVIDIA A100-SXM4-40GB' → ``gpu`` 'NVIDIA A100-SXM4-40GB', ``gpu_count``
    4 unless a ``gpu_count`` column or override says otherwise). The energies stay
    the total over the GPUs; the plausibility bound on mean power scales with
    ``gpu_count``.

Every GPU name must be in :mod:`powerfit.hardware`, or in the store
(``powerfit gpus add``, passed as ``gpus=``), or be described by the file itself:
``powerfit measure`` writes the device's specs in the columns
:data:`DEVICE_SPEC_COLUMNS` (for a CPU, a measured peak), and such a device is
stored with ``origin`` 'measured'. Its peak throughput is needed to compute
efficiencies. A ``gpu`` value like ``'4 x NVIDIA A100-SXM4-40GB'`` (run files) is
read as four of that GPU (``gpu_count``). ``precision`` must be one of
:data:`powerfit.store.validation.PRECISIONS` and defaults to the GPU's
``default_precision``.

Precision of the published data (Mayaki & Charpenay 2025)
---------------------------------------------------------
The published files do not say their precision; :func:`mayaki_precision` labels
them from their throughput. A100 80GB PCIe: matrix-product operations reach 82–117
TFLOP/s (``QKV Projections`` up to 117, LSTM ``hidden_gates`` up to 137), far above
the 19.5 TFLOP/s FP32 peak and below the 156 TFLOP/s TF32 peak, which is the peak
the paper's laws use: **tf32**. RTX 2080 Ti: at most 11.5 TFLOP/s (QKV projections;
LSTM gates 10.3), 85 % of its 13.45 TFLOP/s FP32 peak and a fifth of its 53.8
TFLOP/s FP16 tensor peak, with medians of 9–10.6 TFLOP/s, as FP32 CUDA-core GEMMs
run; Turing has no TF32 and the models are FP32 PyTorch: **fp32**. The energy files
(whole steps) are the same models on the same GPUs and get the same labels.
Files may be CSV (UTF-8), Parquet, or either compressed with gzip (``.csv.gz``).

Validation is complete before anything is written, and the same for every format
(:mod:`powerfit.store.validation`: integer ranges, text lengths, physical bounds,
dates in numeric columns, duplicate and unknown columns, encodings): a missing
column, a non-numeric, negative, NaN or out-of-range value, an unknown GPU,
architecture or operation, an empty, binary or non-UTF-8 file raises
:class:`~powerfit.store.validation.ValidationError` (a
:class:`~powerfit.exceptions.DataError`) naming in one line the file, the 1-based
data row (and, for CSV, the line of the file) and the column as written in the
file.

Identity of an import
---------------------
:attr:`Measurements.identity` is the SHA-256 of the file's content, the reader's
name and the ``overrides`` (``--set`` values, normalised: ``6``, ``6.0`` and
`` 6 `` are one value). The store ingests an identity once: the same file with the
same values again is a no-op, the same file with other values is a new import
(see :mod:`powerfit.store.ingest`).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from powerfit.exceptions import DataError
from powerfit.flops import (
    ARCHITECTURES,
    OPERATIONS,
    OPERATOR_KINDS,
    operator_bytes,
    operator_flops,
    operator_kind,
)
from powerfit.formats import (
    CONFIG_COLUMNS,
    OPERATION_COLUMNS,
    OPERATION_REQUIRED,
    RUN_COLUMNS,
    RUN_REQUIRED,
)
from powerfit.hardware import GPU, get_gpu
from powerfit.store.validation import (
    DERIVED_BOUNDS,
    PRECISIONS,
    ValidationError,
    check_duplicates,
    check_header,
    check_numbers,
    check_text,
    csv_header,
    decode_text,
    peak_precision,
    record_lines,
    refuse_dates,
    suggest,
)

__all__ = [
    "DEVICE_SPEC_COLUMNS",
    "FORMATS",
    "GENERIC_ARCH",
    "OPERATION_NAMES",
    "Measurements",
    "detect_format",
    "import_identity",
    "mayaki_precision",
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


def mayaki_precision(gpu: pd.Series) -> pd.Series:
    """Precision of the published rows of Mayaki & Charpenay (2025), by GPU.

    ``tf32`` on the A100, ``fp32`` on the RTX 2080 Ti (see the module notes for
    the evidence); the GPU's default precision on any other GPU.

    Parameters
    ----------
    gpu : pandas.Series
        GPU names as published (NVML names or the catalogue's aliases).

    Returns
    -------
    pandas.Series
        Precision names.
    """

    def one(name: object) -> object:
        try:
            spec = get_gpu(str(name))
        except ValueError:
            return None  # refused later, with the row
        if spec.name.startswith("NVIDIA A100"):
            return "tf32"
        if spec.name == "NVIDIA GeForce RTX 2080 Ti":
            return "fp32"
        return spec.default_precision

    return gpu.map({name: one(name) for name in gpu.dropna().unique()})


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
    overrides : dict of str to str
        The ``--set`` values applied to every row, normalised (see
        :func:`import_identity`); empty when none.
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


# ------------------------------------------------------------------------- helpers
class _Ctx:
    """What a converter needs to report an error: the file, and the raw frame."""

    def __init__(
        self,
        source: str,
        raw: pd.DataFrame,
        text: str | None = None,
        gpus: Mapping[str, tuple[GPU, str]] | None = None,
    ) -> None:
        self.source = source
        self.raw = raw
        self.csv_text = text  # to tell the line of a data row
        self._lines: list[int] | None = None
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
        if self.csv_text is None:
            return None
        if self._lines is None:
            self._lines = record_lines(self.csv_text)
        return self._lines[row] if row < len(self._lines) else None

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
            "precision": mayaki_precision(ctx.text("source")),
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
            "precision": mayaki_precision(ctx.text("source")),
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
        "precision": mayaki_precision(ctx.text("source")),
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
        "precision": mayaki_precision(ctx.text("source")),
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


_GPU_MODEL = re.compile(r"\s*(\d+)\s*x\s*(.+?)\s*")


def _gpu_from_codecarbon(value: object) -> object:
    """'4 x NVIDIA A100-SXM4-40GB' -> 'NVIDIA A100-SXM4-40GB'; None when ambiguous."""
    count, name = _split_gpu_count(value)
    return name if count is not None else None


def _split_gpu_count(value: object) -> tuple[int | None, object]:
    """'4 x NVIDIA A100-SXM4-40GB' -> (4, 'NVIDIA A100-SXM4-40GB'); (None, value) else.

    A list of several models ('1 x A, 1 x B') is ambiguous: (None, None).
    """
    if not isinstance(value, str):
        return None, None
    match = _GPU_MODEL.fullmatch(value)
    if match is None:
        return None, value
    if re.search(r"\d+\s*x\s", match.group(2)):
        return None, None
    return int(match.group(1)), match.group(2)


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
    if "gpu_model" in raw.columns:
        counts = raw["gpu_model"].map(lambda v: _split_gpu_count(v)[0]).astype(float)
        if "gpu_count" in frame:  # CodeCarbon's own column, or --set gpu_count=
            given = ctx.number("gpu_count", required=False)
            frame["gpu_count"] = given.where(given.notna(), counts)
        else:
            frame["gpu_count"] = counts
            origin["gpu_count"] = "gpu_model"
    if "tool" not in frame:
        version = raw["codecarbon_version"] if "codecarbon_version" in raw.columns else None
        frame["tool"] = (
            "codecarbon" if version is None else ("codecarbon " + version.astype(str)).str.strip()
        )
    return frame, origin


def _canonical_columns(ctx: _Ctx, columns: tuple[str, ...]) -> Converted:
    frame = {c: ctx.raw[c] for c in columns if c in ctx.raw.columns}
    return frame, {c: c for c in frame}


def _device_specs(ctx: _Ctx) -> None:
    """GPUs described by the file itself (:data:`DEVICE_SPEC_COLUMNS`), in ctx.file_gpus.

    Per device: its peak at each precision of its rows (the largest value given),
    bandwidth and power limit (the largest given), the most common precision as its
    default.
    """
    raw = ctx.raw
    if "device_peak_flops" not in raw.columns or "gpu" not in raw.columns:
        return
    peak = ctx.number("device_peak_flops", required=False, positive=True)
    other = {
        c: ctx.number(c, required=False, positive=True)
        for c in DEVICE_SPEC_COLUMNS[1:]
        if c in raw.columns
    }
    names = raw["gpu"].astype(str).str.strip()
    if "precision" in raw.columns:
        precision = raw["precision"].astype(str).str.strip().str.lower()
    else:
        precision = pd.Series("fp32", index=raw.index)
    for name in names[peak.notna()].unique():
        rows = (names == name) & peak.notna()
        peaks = {
            peak_precision(p): float(peak[rows & (precision == p)].max())
            for p in precision[rows].unique()
            if p in PRECISIONS
        }
        if not peaks:
            continue
        bandwidth = other.get("device_memory_bandwidth")
        power = other.get("device_power_limit_w")
        ctx.file_gpus[_gpu_key(name)] = GPU(
            name=name,
            peak_flops=peaks,
            default_precision=str(precision[rows].mode().iloc[0]),
            memory_bytes=None,  # type: ignore[arg-type]
            power_limit_w=None if power is None else _max_or_none(power[rows]),  # type: ignore[arg-type]
            memory_bandwidth=None if bandwidth is None else _max_or_none(bandwidth[rows]),
        )


def _max_or_none(values: pd.Series) -> float | None:
    value = values.max()
    return None if pd.isna(value) else float(value)


def _powerfit_operations(ctx: _Ctx) -> Converted:
    _device_specs(ctx)
    return _canonical_columns(ctx, _OPERATION_ORDER)


def _powerfit_runs(ctx: _Ctx) -> Converted:
    _device_specs(ctx)
    return _canonical_columns(ctx, _RUN_ORDER)


#: Columns of NeuSight's operator files (Lee et al., ASPLOS 2025), read or not.
NEUSIGHT_COLUMNS: tuple[str, ...] = (
    "OPName", "Latency", "Device", "Torch Version", "CUDNN Version", "Kernel Name",
    "Warps per SM", "Blocks per SM", "Grid x", "Grid y", "Grid z", "Block x", "Block y",
    "Block z", "CUDA Version", "Kernels", "B", "M", "N", "K", "H", "large",
)  # fmt: skip


def _neusight_operators(ctx: _Ctx) -> Converted:
    ctx.require("OPName", "Latency", "Device", "B")
    names = ctx.text("OPName")
    kinds = {}
    for name in names.unique():
        try:
            kinds[name] = operator_kind(name)
        except ValueError:
            kinds[name] = None
    operation = names.map(kinds)
    if operation.isna().any():
        pos = _first(operation.isna())
        raise ctx.fail(
            f"unknown operator {names.iloc[pos]!r}; known: {', '.join(OPERATOR_KINDS)}",
            position=pos,
            column="OPName",
        )
    matmul = (operation.map(OPERATOR_KINDS) == "matmul").to_numpy()

    def shape(column: str, needed: np.ndarray) -> pd.Series:
        if column not in ctx.raw.columns:
            if needed.any():
                raise ctx.fail(
                    f"missing column (operator {names.iloc[int(np.argmax(needed))]!r} needs it)",
                    column=column,
                )
            return pd.Series(np.nan, index=ctx.raw.index)
        values = ctx.number(column, required=False, positive=True)
        missing = needed & values.isna().to_numpy()
        if missing.any():
            raise ctx.fail("missing value", position=int(np.argmax(missing)), column=column)
        return values.where(needed)

    B = ctx.number("B", positive=True)
    M, N, K = (shape(c, matmul) for c in "MNK")
    H = shape("H", ~matmul)
    flops = np.full(len(B), np.nan)
    moved = np.full(len(B), np.nan)
    for op in operation.unique():
        rows = (operation == op).to_numpy()
        args = [v.to_numpy()[rows] for v in (B, M, N, K, H)]
        if OPERATOR_KINDS[op] == "matmul":
            flops[rows] = operator_flops(op, *args[:4])
            moved[rows] = operator_bytes(op, *args[:4], bytes_per_element=_FP32_BYTES)
        else:
            flops[rows] = operator_flops(op, args[0], H=args[4])
            moved[rows] = operator_bytes(op, args[0], H=args[4], bytes_per_element=_FP32_BYTES)
    frame: dict[str, object] = {
        "gpu": ctx.text("Device"),
        "arch": GENERIC_ARCH,
        "operation": operation,
        "batch_size": B,
        "m": M,
        "n": N,
        "k": K,
        "h": H,
        "precision": "fp32",
        "flops": pd.Series(flops),
        "bytes": pd.Series(moved),
        "duration_s": ctx.number("Latency", positive=True) / 1e3,
        "tool": "neusight",
    }
    origin = {
        "gpu": "Device", "operation": "OPName", "batch_size": "B", "m": "M", "n": "N",
        "k": "K", "h": "H", "duration_s": "Latency", "flops": "B", "bytes": "B",
    }  # fmt: skip
    if "Kernel Name" in ctx.raw.columns:
        frame["kernel"] = ctx.raw["Kernel Name"]
        origin["kernel"] = "Kernel Name"
    return frame, origin


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


#: Columns of the published files (read or not): other columns are unknown.
_PUBLISHED_COLUMNS: dict[str, str] = {
    "mayaki2025-transformer-operations": (
        "operation,gpu_util,mem_used_MB,elapsed_time_sec,FLOPs,energy_consumed_kWh,"
        "total_gpu_energy_kWh,total_cpu_energy_kWh,total_ram_energy_kWh,seq_len,"
        "memory_access,d_model,source,peak,flops_per_second,HEF,component"
    ),
    "mayaki2025-lstm-operations": (
        "source,batch_size,input_size,hidden_size,component,gpu_util,mem_used_MB,"
        "elapsed_time_sec,FLOPs,energy_consumed_kWh,total_gpu_energy_kWh,"
        "total_cpu_energy_kWh,total_ram_energy_kWh,seq_len,peak,flops_per_second,HEF"
    ),
    "mayaki2025-transformer-energy": (
        "duration,energy_joules,num_repeats,total_gpu_energy_kWh,total_cpu_energy_kWh,"
        "total_ram_energy_kWh,energy_wh_std_codecarbon,power_watt_std,time_sec_std,params,"
        "seq_length,batch_size,num_layers,d_model,num_attention_heads,model,source,peak,"
        "component,total_energy_kWh,flops_counts,HEF,FLOPs_QKV Projections,"
        "HEF_QKV Projections,duration_QKV Projections,FLOPs_Attention Scores,"
        "HEF_Attention Scores,duration_Attention Scores,FLOPs_Attention Output,"
        "HEF_Attention Output,duration_Attention Output,FLOPs_Final Projection,"
        "HEF_Final Projection,duration_Final Projection"
    ),
    "mayaki2025-lstm-energy": (
        "source,batch_size,input_size,hidden_size,component,FLOPs,energy_consumed_kWh,"
        "total_gpu_energy_kWh,total_cpu_energy_kWh,total_ram_energy_kWh,seq_len,peak,"
        "num_layers,FLOPs_Activations,FLOPs_Cell_Update,FLOPs_Gates,FLOPs_Hidden_Update,"
        "hidden_gates,HEF_Activations,duration_Activations,HEF_Cell_Update,"
        "duration_Cell_Update,HEF_Hidden_Update,duration_Hidden_Update,HEF_hidden_gates,"
        "duration_hidden_gates,HEF_Gates,duration_Gates"
    ),
}

#: Columns CodeCarbon writes to emissions.csv (versions 1 to 3), read or not.
CODECARBON_COLUMNS: tuple[str, ...] = (
    "timestamp", "project_name", "run_id", "experiment_id", "task_name", "duration",
    "emissions", "emissions_rate", "cpu_power", "gpu_power", "ram_power", "cpu_energy",
    "gpu_energy", "ram_energy", "energy_consumed", "water_consumed", "country_name",
    "country_iso_code", "region", "cloud_provider", "cloud_region", "os", "python_version",
    "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude",
    "latitude", "ram_total_size", "tracking_mode", "on_cloud", "pue", "wue",
    "cpu_utilization_percent", "gpu_utilization_percent", "ram_utilization_percent",
    "ram_used_gb",
)  # fmt: skip


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


# ------------------------------------------------------------------------- reading
#: Largest decompressed size of a gzip file [bytes].
MAX_DECOMPRESSED_BYTES = 4 * 2**30


def _gunzip(source: str, data: bytes) -> bytes:
    """The content of a gzip-compressed file (refusing decompression bombs)."""
    inflate = zlib.decompressobj(wbits=31)
    try:
        out = inflate.decompress(data, MAX_DECOMPRESSED_BYTES + 1)
    except zlib.error as exc:
        raise ValidationError(f"unreadable gzip file: {exc}", source=source) from None
    if len(out) <= MAX_DECOMPRESSED_BYTES and not inflate.eof:
        raise ValidationError("unreadable gzip file: truncated", source=source)
    if len(out) > MAX_DECOMPRESSED_BYTES:
        raise ValidationError(
            f"gzip content larger than {MAX_DECOMPRESSED_BYTES / 2**30:g} GiB", source=source
        )
    return out


def _load(source: str, data: bytes) -> tuple[pd.DataFrame, list[str], str | None]:
    """Parse CSV or Parquet bytes (gzip-compressed or not).

    Returns
    -------
    (pandas.DataFrame, list of str, str or None)
        The raw frame, the header as written (before pandas renames duplicates),
        and the CSV text (None for Parquet).
    """
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(source, data)
    if not data.strip():
        raise ValidationError("empty file", source=source)
    if data[:4] == b"PAR1":
        try:
            import pyarrow.parquet as pq

            names = list(pq.read_schema(io.BytesIO(data)).names)
            names = [n for n in names if not n.startswith("__index_level_")]
            if len(set(names)) < len(names):  # pyarrow cannot convert it
                return pd.DataFrame(columns=names), names, None
            return pd.read_parquet(io.BytesIO(data)), names, None
        except Exception as exc:
            message = " ".join(str(exc).splitlines())
            raise ValidationError(f"unreadable Parquet file: {message}", source=source) from exc
    text = decode_text(data, source)
    try:
        frame = pd.read_csv(io.StringIO(text), skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        message = " ".join(str(exc).splitlines())
        raise ValidationError(f"not a readable CSV file: {message}", source=source) from exc
    return frame, csv_header(text), text


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


def _read_bytes(source: str) -> bytes:
    path = Path(source)
    if path.is_dir():
        raise ValidationError(
            f"is a directory, not a file; give the files (e.g. {os.path.join(source, '*.csv')})",
            source=source,
        )
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ValidationError(f"cannot read: {exc.strerror or exc}", source=source) from None


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
    data = _read_bytes(source)
    sha256 = hashlib.sha256(data).hexdigest()
    raw, header, text = _load(source, data)
    check_duplicates(header, source)
    raw.columns = [str(c).strip() for c in raw.columns]
    if format is None:
        format = detect_format(raw.columns)
        if format is None:
            raise ValidationError(
                "cannot tell the format from the columns "
                f"({', '.join(map(str, raw.columns[:12]))}); pass --format with one of "
                f"{', '.join(FORMATS)}{_format_hint(list(raw.columns))}",
                source=source,
                header=True,
            )
    elif format not in FORMATS:
        raise DataError(
            f"unknown format {format!r}; choose one of {', '.join(FORMATS)}", source=source
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
    ctx = _Ctx(source, raw, text, gpus)
    normalised = _apply_overrides(ctx, format, overrides) if overrides else {}
    columns, origin = spec.convert(ctx)
    rows = _finish(ctx, spec, columns, origin)
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
    ctx: _Ctx, spec: _Format, columns: dict[str, object], origin: dict[str, str]
) -> pd.DataFrame:
    """Check and type the canonical columns; resolve GPU names, default precisions."""
    n = len(ctx.raw)
    order = _OPERATION_ORDER if spec.kind == "operation" else _RUN_ORDER
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
    _check_derived(ctx, out, origin)
    out["source_row"] = np.arange(1, n + 1)
    return out


def _check_derived(ctx: _Ctx, out: pd.DataFrame, origin: dict[str, str]) -> None:
    """Physical bounds across columns: efficiency <= 1.1, mean power <= 10 kW."""
    duration = out["duration_s"].to_numpy(dtype=float, na_value=np.nan)
    where_duration = origin.get("duration_s", "duration_s")
    if "flops" in out.columns:
        codes, pairs = pd.MultiIndex.from_arrays([out["gpu"], out["precision"]]).factorize()
        peaks = [ctx.resolved[g][0].peak_flops[peak_precision(p)] for g, p in pairs]
        peak = np.array(peaks, dtype=float)[codes]
        flops = out["flops"].to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            efficiency = flops / duration / peak
        limit = DERIVED_BOUNDS["efficiency"]
        high = efficiency > limit
        if high.any():
            pos = int(np.argmax(high))
            raise ctx.fail(
                f"efficiency {efficiency[pos]:.3g} > {limit:g}: "
                f"{origin.get('flops', 'flops')} {flops[pos]:.6g} FLOP in {duration[pos]:.6g} s "
                f"is faster than the peak {peak[pos]:.4g} FLOP/s of {out['gpu'].iloc[pos]} "
                f"at {out['precision'].iloc[pos]}; check the FLOPs, the duration's unit "
                "and the precision",
                position=pos,
                column=where_duration,
            )
    if "energy_j" in out.columns:
        energy = out["energy_j"].to_numpy(dtype=float, na_value=np.nan)
        count = (
            out["gpu_count"].to_numpy(dtype=float, na_value=1.0)
            if "gpu_count" in out.columns
            else np.ones(len(out))
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            power = energy / duration
        limit = DERIVED_BOUNDS["power_w"] * count
        high = power > limit
        if high.any():
            pos = int(np.argmax(high))
            gpus = f" on {count[pos]:g} GPUs" if count[pos] != 1 else " per GPU"
            raise ctx.fail(
                f"mean power {power[pos]:.4g} W > {limit[pos]:g} W{gpus}: "
                f"{origin.get('energy_j', 'energy_j')} {energy[pos]:.6g} J in "
                f"{duration[pos]:.6g} s; check the units (J, s)",
                position=pos,
                column=origin.get("energy_j", "energy_j"),
            )


def _split_gpu_column(ctx: _Ctx, out: pd.DataFrame, origin: dict[str, str]) -> None:
    """Read '4 x NVIDIA A100-SXM4-40GB' in the ``gpu`` column as 4 GPUs of that name.

    A count given in ``gpu_count`` too must agree. ``gpu_count`` defaults to 1.
    """
    names = out["gpu"]
    split = {v: _split_gpu_count(v) for v in names.dropna().unique()}
    counts = names.map(lambda v: split[v][0] if v in split else None).astype(float)
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
        out["gpu"] = names.map(lambda v: split[v][1] if v in split else v)
        out["gpu_count"] = given.where(given.notna(), counts)
    out["gpu_count"] = out["gpu_count"].astype(float).fillna(1.0)


def _first(mask: pd.Series) -> int:
    return int(np.argmax(mask.to_numpy()))


def _check_names(ctx: _Ctx, out: pd.DataFrame, origin: dict[str, str]) -> None:
    """Resolve GPU names; check arch, operation and precision against the catalogues."""
    gpus = {}
    for name in out["gpu"].dropna().unique():
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
    out["gpu"] = out["gpu"].map({name: gpu.name for name, gpu in gpus.items()})
    arch = out["arch"].str.lower()
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
    defaults = out["gpu"].map({g.name: g.default_precision for g in gpus.values()})
    given = out["precision"].notna()
    out.loc[given, "precision"] = out.loc[given, "precision"].str.lower()
    out["precision"] = out["precision"].where(given, defaults)
    bad = ~out["precision"].isin(PRECISIONS)
    if bad.any():
        pos = _first(bad)
        raise ctx.fail(
            f"precision {out['precision'].iloc[pos]!r} unknown; known: {', '.join(PRECISIONS)}",
            position=pos,
            column=origin.get("precision", "precision"),
        )
    for name in out["gpu"].unique():
        peaks = ctx.resolved[name][0].peak_flops
        usable = [p for p in PRECISIONS if peak_precision(p) in peaks]
        bad = (out["gpu"] == name) & ~out["precision"].map(peak_precision).isin(peaks)
        if bad.any():
            pos = _first(bad)
            raise ctx.fail(
                f"precision {out['precision'].iloc[pos]!r} has no peak throughput for "
                f"{name}; known: {', '.join(usable)}",
                position=pos,
                column=origin.get("precision", "precision"),
            )
