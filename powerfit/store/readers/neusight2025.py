"""Reader of NeuSight's operator files (``ops/test/<op>.csv.gz``, ``ops/train/<op>/<GPU>.csv.gz``).

One timed generic operator a row, FP32, with FLOPs and bytes counted by
:mod:`powerfit.kernels.counts` (see :mod:`powerfit.store.readers`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from powerfit.kernels.counts import OPERATOR_KINDS, operator_bytes, operator_flops, operator_kind
from powerfit.store.readers.rows import _FP32_BYTES, GENERIC_ARCH, Converted, _Ctx, _first

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
