"""The roofline of an operator call: max(FLOP / peak, bytes / bandwidth), a lower bound [s].

The latency an operator could not beat on a GPU (its catalogue peak of the row's
precision, its bandwidth; no launch cost, no efficiency loss): the reference the
operator laws are scored against (:mod:`powerfit.evaluation.operators`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from powerfit.kernels.counts import OPERATOR_KINDS, operator_bytes, operator_flops, operator_kind
from powerfit.kernels.laws import _BYTES
from powerfit.kernels.operator_laws import _frame
from powerfit.kernels.transfer import gpu_specs

__all__ = ["roofline_latency"]


def roofline_latency(X: pd.DataFrame, precision: str = "fp32", specs: dict | None = None):
    """Roofline latency max(FLOP/peak, bytes/bandwidth) [s] of each row.

    Parameters
    ----------
    X : DataFrame with :data:`~powerfit.kernels.model.OPERATOR_COLUMNS`
    precision : str, default 'fp32'
    specs : dict, optional
        GPU specs overriding the catalogue (see :func:`gpu_specs`).

    Returns
    -------
    numpy.ndarray
        Latency [s].
    """
    X = _frame(X)
    out = np.full(len(X), np.nan)
    bpe = _BYTES.get(precision, 4.0)
    for (gpu, op), idx in X.groupby(["gpu", "op"], sort=False).indices.items():
        spec = gpu_specs(str(gpu), precision, specs)
        d = X.iloc[idx]
        shape = {c: d[c].to_numpy(float) for c in ("B", "M", "N", "K", "H")}
        if OPERATOR_KINDS[operator_kind(str(op))] != "matmul":
            shape = {"B": shape["B"], "H": shape["H"]}
        flops = operator_flops(str(op), **shape)
        moved = operator_bytes(str(op), **shape, bytes_per_element=bpe)
        out[idx] = np.maximum(flops / spec["peak_flops"], moved / spec["memory_bandwidth"])
    return out
