"""Readers that turn a measurement file into validated rows of powerfit's canonical
columns (:mod:`powerfit.formats`, SI units), ready for the store.

One module per format family: :mod:`~powerfit.store.readers.canonical` (powerfit's own
files), :mod:`~powerfit.store.readers.mayaki2025`, :mod:`~powerfit.store.readers.neusight2025`
and :mod:`~powerfit.store.readers.codecarbon`; :mod:`~powerfit.store.readers.rows` holds
what they share (the row context, names, :class:`~powerfit.store.readers.rows.Measurements`)
and :mod:`~powerfit.store.readers.read` detects the format, reads the file and validates
its rows (:func:`~powerfit.store.readers.read.read_measurements`), with the bounds across
columns of :mod:`~powerfit.store.readers.derived` (efficiency, mean power). The names of the
former ``powerfit.store.readers`` module are importable from this package.

Formats (detected from the columns; force one with ``format=``):

``powerfit-operations``, ``powerfit-runs``
    Our canonical CSV or Parquet files (:mod:`powerfit.formats`). A file with an
    ``operation`` column holds operation measurements, otherwise run measurements.
``mayaki2025-transformer-operations`` (``dataForTransformerHEF.csv``)
    One timed Transformer operation a row, precision by
    :func:`~powerfit.store.readers.mayaki2025.mayaki_precision`. ``source`` is the NVML name.
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
    :func:`powerfit.paper.flops.cell_update` counts 3·B·H. ``energy_j`` is NULL as above.
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
    ``add``… see :data:`powerfit.kernels.counts.OPERATOR_KINDS`), ``Latency`` [ms] → s,
    ``Device`` (NVML name), ``Kernel Name`` → ``kernel``; the shape ``B, M, N, K``
    (matrix products) or ``B, H`` (memory-bound operators) → ``batch_size, m, n, k``
    or ``batch_size, h``. Stored with ``arch`` 'generic', ``precision`` 'fp32'
    (NeuSight ran PyTorch 2.1 with TF32 off: ``*_sgemm_*`` kernels), FLOPs and
    bytes moved from :func:`powerfit.kernels.counts.operator_flops` /
    :func:`~powerfit.kernels.counts.operator_bytes` (4 bytes an element), time only
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

``zeus2023-power``, ``mlenergy2026-power`` (``summary_power_*.csv.gz``, ``models/*.json.gz``)
    Measured average board power (Zeus 2023, ML.ENERGY 2026), into
    ``power_measurements`` (kind ``power``): detected from the file name or the
    JSON content, before the CSV readers; see :mod:`powerfit.store.readers.power`
    (power per GPU, refusals of impossible values naming file, row and column).

Every GPU name must be in :mod:`powerfit.hardware`, or in the store
(``powerfit gpus add``, passed as ``gpus=``), or be described by the file itself:
``powerfit measure`` writes the device's specs in the columns
:data:`~powerfit.store.readers.rows.DEVICE_SPEC_COLUMNS` (for a CPU, a measured peak), and such a
device is stored with ``origin`` 'measured'. Its peak throughput is needed to compute
efficiencies. A ``gpu`` value like ``'4 x NVIDIA A100-SXM4-40GB'`` (run files) is
read as four of that GPU (``gpu_count``). ``precision`` must be one of
:data:`powerfit.store.validation.PRECISIONS` and defaults to the GPU's
``default_precision``.

Precision of the published data (Mayaki & Charpenay 2025)
---------------------------------------------------------
The published files do not say their precision;
:func:`~powerfit.store.readers.mayaki2025.mayaki_precision` labels them from their throughput. A100
80GB PCIe: matrix-product operations reach 82–117 TFLOP/s (``QKV Projections`` up to 117, LSTM
``hidden_gates`` up to 137), far above the 19.5 TFLOP/s FP32 peak and below the 156 TFLOP/s TF32
peak, which is the peak the paper's laws use: **tf32**. RTX 2080 Ti: at most 11.5 TFLOP/s (QKV
projections; LSTM gates 10.3), 85 % of its 13.45 TFLOP/s FP32 peak and a fifth of its 53.8
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
:attr:`~powerfit.store.readers.rows.Measurements.identity` is the SHA-256 of the file's content,
the reader's name and the ``overrides`` (``--set`` values, normalised: ``6``, ``6.0`` and
`` 6 `` are one value). The store ingests an identity once: the same file with the
same values again is a no-op, the same file with other values is a new import
(see :mod:`powerfit.store.ingest`).
"""

from __future__ import annotations

from powerfit._lazy import lazy_exports

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

_LAZY = {
    "CODECARBON_COLUMNS": "powerfit.store.readers.codecarbon",
    "mayaki_precision": "powerfit.store.readers.mayaki2025",
    "NEUSIGHT_COLUMNS": "powerfit.store.readers.neusight2025",
    "FORMATS": "powerfit.store.readers.read",
    "MAX_DECOMPRESSED_BYTES": "powerfit.store.readers.read",
    "detect_format": "powerfit.store.readers.read",
    "import_identity": "powerfit.store.readers.read",
    "known_columns": "powerfit.store.readers.read",
    "read_measurements": "powerfit.store.readers.read",
    "Converted": "powerfit.store.readers.rows",
    "DEVICE_SPEC_COLUMNS": "powerfit.store.readers.rows",
    "EXTRA_OPERATION_COLUMNS": "powerfit.store.readers.rows",
    "EXTRA_RUN_COLUMNS": "powerfit.store.readers.rows",
    "GENERIC_ARCH": "powerfit.store.readers.rows",
    "KWH": "powerfit.store.readers.rows",
    "MODEL_NAMES": "powerfit.store.readers.rows",
    "Measurements": "powerfit.store.readers.rows",
    "OPERATION_NAMES": "powerfit.store.readers.rows",
    "WH": "powerfit.store.readers.rows",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
