"""Half-precision (FP16/BF16 tensor-core) operator laws from Vidur's profiles, and their evidence.

Vidur (Agrawal et al., MLSys 2024) timed one decoder layer's operators in FP16 on the
A100 (SXM4 80 GB), H100 (SXM5) and A40 (:func:`powerfit.datasets.vidur2024.fetch_vidur2024`).
:func:`vidur_operator_frame` turns each timed operator into a generic operator row
(:data:`~powerfit.kernels.model.OPERATOR_COLUMNS`, NeuSight's layout: ``linear`` is
(M×N)·(N×K), reduction over N):

==========================  ===================================================
Vidur operator              generic operator (d = n_embd, t = TP degree)
==========================  ===================================================
``attn_pre_proj``           ``linear`` M tokens, N = d, K = (h + 2·h_kv)·d_h/t
``attn_post_proj``          ``linear`` M, N = h·d_h/t, K = d
``mlp_up_proj``             ``linear`` M, N = d, K = g·F/t (g = 2 when gated)
``mlp_down_proj``           ``linear`` M, N = F/t, K = d
``input_layernorm``,        ``ln`` B = M, H = d (RMSNorm or LayerNorm: one
``post_attention_layernorm``  reduction over the row, the same traffic)
``add``                     ``add`` B = M, H = d
``mlp_act``                 gated: ``mul`` B = M, H = F/t (SiLU-and-mul reads two
                            M×F/t halves, writes one); else ``gelu``
``attn_rope``               ``addu`` B = M, H = (h + h_kv)·d_h/t (q and k read and
                            written in place)
==========================  ===================================================

(the embedding lookup is left out: under tensor parallelism Vidur's embedding also masks
the vocabulary slice, which no generic operator describes).

:class:`~powerfit.kernels.model.OperatorTimeModel` fits one law per (GPU, operator) on
these rows (precision ``fp16``; BF16 runs the same tensor-core kernels at the same peak on
Ampere and Hopper, so the bundled FP16 laws time BF16 rows too:
:func:`powerfit.kernels.model.load_operator_model`), and transfers them to GPUs without
profiles by their tensor-core peak and board power (:mod:`powerfit.kernels.transfer`).
:func:`half_precision_evidence` measures both: each GPU's rows by its own laws, and by
the laws of the other GPUs only (leave-one-GPU-out), per operator and summed over a
layer.

Where the laws extrapolate: Vidur timed forward products of at most 4096 tokens; a
training step's products run 8-64 k tokens and the backward's transposed shapes (the
weight gradient reduces over the tokens). The law's tile-and-wave term carries them
(large products are compute-bound at the fitted η_max), but no such shape was measured.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from powerfit.kernels.operator_laws import OPERATOR_COLUMNS

if TYPE_CHECKING:
    from powerfit.kernels.model import OperatorTimeModel

__all__ = [
    "VIDUR_OPERATOR_MAP",
    "half_precision_evidence",
    "half_precision_half_width",
    "vidur_operator_frame",
]

#: Vidur operator -> generic operator (see the module notes for the shapes).
VIDUR_OPERATOR_MAP = {
    "attn_pre_proj": "linear",
    "attn_post_proj": "linear",
    "mlp_up_proj": "linear",
    "mlp_down_proj": "linear",
    "input_layernorm": "ln",
    "post_attention_layernorm": "ln",
    "add": "add",
    "mlp_act": "mul",
    "attn_rope": "addu",
}


def vidur_operator_frame(data: Any = None, data_home: Any = None) -> pd.DataFrame:
    """Vidur's timed operators as generic operator rows, with their latency [s].

    Parameters
    ----------
    data : Vidur2024, optional
        :func:`powerfit.datasets.vidur2024.fetch_vidur2024`'s output (loaded when absent).
    data_home : path, optional
        Where to load it from.

    Returns
    -------
    pandas.DataFrame
        :data:`OPERATOR_COLUMNS` (``precision`` ``fp16``), ``latency_s`` [s], and
        ``model``, ``vidur_op``, ``num_tokens``, ``tp``, ``layer`` (one id per measured
        layer configuration: model, tokens, TP degree, GPU).
    """
    if data is None:
        from powerfit.datasets.vidur2024 import fetch_vidur2024

        data = fetch_vidur2024(data_home)
    d = data.operators
    d = d[d.op.isin(list(VIDUR_OPERATOR_MAP))].reset_index(drop=True)
    M = d.num_tokens.to_numpy(float)
    t = d.tp.to_numpy(float)
    dm = d.n_embd.to_numpy(float)
    h, hkv = d.n_head.to_numpy(float), d.n_kv_head.to_numpy(float)
    dh = dm / h
    F = d.n_expanded_embd.to_numpy(float)
    gated = d.use_gated_mlp.to_numpy(bool)
    op = d.op.to_numpy(str)
    nan = np.full(len(d), np.nan)
    N, K, H, B = nan.copy(), nan.copy(), nan.copy(), np.ones(len(d))
    shapes = {
        "attn_pre_proj": (dm, (h + 2 * hkv) * dh / t),
        "attn_post_proj": (h * dh / t, dm),
        "mlp_up_proj": (dm, np.where(gated, 2.0, 1.0) * F / t),
        "mlp_down_proj": (F / t, dm),
    }
    for name, (n, k) in shapes.items():
        m = op == name
        N[m], K[m] = n[m], k[m]
    rows = {
        "input_layernorm": dm,
        "post_attention_layernorm": dm,
        "add": dm,
        "mlp_act": F / t,
        "attn_rope": (h + hkv) * dh / t,
    }
    for name, width in rows.items():
        m = op == name
        H[m], B[m] = width[m], M[m]
    generic = np.array([VIDUR_OPERATOR_MAP[o] for o in op], dtype=object)
    generic[(op == "mlp_act") & ~gated] = "gelu"
    out = pd.DataFrame(
        {
            "gpu": d.gpu.to_numpy(),
            "op": generic,
            "precision": "fp16",
            "B": B,
            "M": np.where(np.isnan(N), np.nan, M),
            "N": N,
            "K": K,
            "H": H,
            "latency_s": d.latency_s.to_numpy(float),
            "model": d.model.to_numpy(),
            "vidur_op": op,
            "num_tokens": d.num_tokens.to_numpy(),
            "tp": d.tp.to_numpy(),
        }
    )
    out["layer"] = out.groupby(["gpu", "model", "num_tokens", "tp"], sort=False).ngroup()
    return out


def fit_half_precision(frame: pd.DataFrame, max_rows: int = 1500, **params: Any):
    """:class:`OperatorTimeModel` (``precision='fp16'``) fitted on :func:`vidur_operator_frame`.

    Every measured model weighs the same within a (GPU, operator) (Llama 3 profiles
    have more token counts than the others).
    """
    from powerfit.kernels.model import OperatorTimeModel  # here: reading laws needs no sklearn

    w = 1.0 / frame.groupby(["gpu", "op", "model"]).latency_s.transform("size").to_numpy(float)
    model = OperatorTimeModel(precision="fp16", max_rows=max_rows, **params)
    return model.fit(frame[list(OPERATOR_COLUMNS)], frame.latency_s.to_numpy(float), w)


def half_precision_evidence(
    frame: pd.DataFrame, model: OperatorTimeModel | None = None, max_rows: int = 1500
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Own-GPU and leave-one-GPU-out errors of the half-precision laws on Vidur's rows.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`vidur_operator_frame`'s output.
    model : OperatorTimeModel, optional
        Laws fitted on all of ``frame`` (fitted when absent).
    max_rows : int, default 1500
        Rows per (GPU, operator) of a fit.

    Returns
    -------
    per_op : pandas.DataFrame
        ``gpu, vidur_op, n, own_mape, logo_mape`` [%] (latency of each call).
    per_layer : pandas.DataFrame
        One row per measured layer: ``gpu, model, num_tokens, tp, measured_s`` (Vidur's
        operators summed), ``own_s``, ``logo_s`` [s], ``products_*`` the same over the
        four matrix products only.
    """
    model = fit_half_precision(frame, max_rows) if model is None else model
    X = frame[list(OPERATOR_COLUMNS)]
    own = model.predict(X)
    logo = np.full(len(frame), np.nan)
    for gpu in frame.gpu.unique():
        m = (frame.gpu == gpu).to_numpy()
        blind = model.without_gpus([gpu])
        logo[m] = blind.predict(X[m])
    f = frame.assign(own_s=own, logo_s=logo)
    y = f.latency_s
    f["own_ape"] = (f.own_s / y - 1).abs() * 100
    f["logo_ape"] = (f.logo_s / y - 1).abs() * 100
    per_op = (
        f.groupby(["gpu", "vidur_op"])
        .agg(n=("latency_s", "size"), own_mape=("own_ape", "mean"), logo_mape=("logo_ape", "mean"))
        .reset_index()
    )
    keys = ["layer", "gpu", "model", "num_tokens", "tp"]
    sums = f.groupby(keys)[["latency_s", "own_s", "logo_s"]].sum()
    linear = f[f.op == "linear"].groupby(keys)[["latency_s", "own_s", "logo_s"]].sum()
    linear.columns = ["products_measured_s", "products_own_s", "products_logo_s"]
    per_layer = sums.rename(columns={"latency_s": "measured_s"}).join(linear).reset_index()
    return per_op, per_layer.drop(columns="layer")


def half_precision_half_width(origin: str) -> float:
    """Log half-width q [-] of a 90 % interval of half-precision laws of this origin.

    From the evidence bundled with the FP16 laws (``powerfit/data/operators/fp16.json``,
    written by ``experiments/build_half_precision_laws.py``): ``q = t₀.₉₅(n−1)·RMS(log
    pred/measured)`` of Vidur's layers summed, every GPU weighing the same, by the GPU's
    own laws (``origin='fit'``) or by laws transferred from the other GPUs
    (``'transfer'``, leave-one-GPU-out). NaN when no evidence is bundled.
    """
    key = "own" if origin == "fit" else "logo"
    return _bundled_half_widths().get(key, float("nan"))


@lru_cache(maxsize=1)
def _bundled_half_widths() -> dict[str, float]:
    """``own``/``logo`` -> q of the bundled FP16 laws' evidence (read once)."""
    import json
    from importlib import resources

    try:
        text = resources.files("powerfit").joinpath("data", "operators", "fp16.json").read_text()
    except FileNotFoundError:
        return {}
    evidence = json.loads(text).get("evidence", {})
    out = {}
    for key in ("own", "logo"):
        q = evidence.get(key, {}).get("half_width")
        if q is not None:
            out[key] = float(q)
    return out
