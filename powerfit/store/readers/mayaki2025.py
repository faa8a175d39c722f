"""Readers of the four published files of Mayaki & Charpenay (ECAI 2025).

Timed Transformer and LSTM operations and whole training steps, converted to the
canonical columns with the published units and conventions, and labelled with the
precision they ran in (:func:`mayaki_precision`); see :mod:`powerfit.store.readers`
for what each file holds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from powerfit.hardware.gpus import get_gpu
from powerfit.store.readers.rows import (
    _PARTS,
    KWH,
    MODEL_NAMES,
    OPERATION_NAMES,
    WH,
    Converted,
    _Ctx,
    _map_names,
)

__all__ = ["mayaki_precision"]


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
