"""powerfit's canonical measurement formats (CSV or Parquet), in SI units.

Two tables, told apart by their columns: a file with an ``operation`` column holds
**operation measurements** (one timed elementary operation a row); otherwise it holds
**run measurements** (one training step of a whole model a row). The measurement
harness (:mod:`powerfit.measure`) writes them and ``powerfit ingest`` reads them.

Shape columns that do not apply to an architecture are left empty (e.g.
``hidden_size`` for a Transformer). Units are in the column names' suffixes:
``_s`` seconds, ``_j`` joules, ``_w`` watts; ``flops`` is in FLOP.
"""

from __future__ import annotations

__all__ = [
    "CONFIG_COLUMNS",
    "OPERATION_COLUMNS",
    "OPERATION_REQUIRED",
    "RUN_COLUMNS",
    "RUN_REQUIRED",
]

#: Configuration columns of a model or an operation, shared by both tables and by
#: :class:`powerfit.OperationDurations`.
CONFIG_COLUMNS: tuple[str, ...] = (
    "arch",  # 'transformer', 'lstm' or 'gru'
    "batch_size",
    "seq_len",
    "d_model",
    "n_heads",
    "d_ff",
    "input_size",
    "hidden_size",
)

#: Columns of an operation-measurements file, in order.
OPERATION_COLUMNS: tuple[str, ...] = (
    "gpu",  # NVML name, e.g. 'NVIDIA A100 80GB PCIe'
    *CONFIG_COLUMNS,
    "operation",  # a name of powerfit.paper.flops.OPERATIONS[arch]
    "precision",  # e.g. 'tf32' (see powerfit.hardware)
    "flops",  # [FLOP] of one call, as counted by powerfit.paper.flops
    "duration_s",  # [s] of one call
    "energy_j",  # [J] of one call; empty when not measured
    "repeats",  # calls averaged into this row
    "tool",  # measuring tool, e.g. 'powerfit-measure 0.1.0 (nvml)'
)
OPERATION_REQUIRED: tuple[str, ...] = ("gpu", "arch", "operation", "flops", "duration_s")

#: Columns of a run-measurements file, in order.
RUN_COLUMNS: tuple[str, ...] = (
    "gpu",
    *CONFIG_COLUMNS,
    "model",  # model family, e.g. 'bert', 'gpt2', 'lstm'
    "n_layers",
    "vocab_size",
    "precision",
    "duration_s",  # [s] of one training step
    "energy_j",  # [J] of one training step, total (GPU + CPU + RAM where measured)
    "gpu_energy_j",
    "cpu_energy_j",
    "ram_energy_j",
    "idle_power_w",  # [W] GPU power measured just before the run
    "repeats",
    "duration_std_s",
    "energy_std_j",
    "tool",
)
RUN_REQUIRED: tuple[str, ...] = ("gpu", "arch", "n_layers", "batch_size", "duration_s")
