"""Fit the half-precision operator laws and the fused-attention laws; print their evidence.

Reads (``POWERFIT_DATA_HOME``) Vidur's FP16 operator profiles and the published
fused-attention figures through ``powerfit.datasets``, fits

* :class:`powerfit.kernels.model.OperatorTimeModel` (``precision='fp16'``) on Vidur's
  operators (:func:`powerfit.kernels.half.vidur_operator_frame`), and
* :class:`powerfit.kernels.attention.FusedAttentionLaws` on the FlashAttention-2,
  cuDNN, memory-efficient and Triton FlashAttention (2022–2023 kernel) figures,

measures each GPU by its own laws and by the other GPUs' only (leave-one-GPU-out), and
writes ``powerfit/data/operators/fp16.json`` and ``powerfit/data/attention/fused.json`` with the
evidence and the interval half-widths it gives (``q = t₀.₉₅(n−1)·RMS(log pred/measured)``,
every GPU weighing the same). Prints the figures.

Usage::

    POWERFIT_DATA_HOME=../shared/data python experiments/build_half_precision_laws.py
    POWERFIT_DATA_HOME=../shared/data python experiments/build_half_precision_laws.py --no-write
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from powerfit.datasets.flashattn import fetch_flashattn
from powerfit.datasets.vidur2024 import VIDUR2024_COMMIT, fetch_vidur2024
from powerfit.evaluation.steps import interval_half_width
from powerfit.kernels.attention import FusedAttentionLaws, leave_one_gpu_out
from powerfit.kernels.half import fit_half_precision, half_precision_evidence, vidur_operator_frame

DATA = Path(__file__).resolve().parents[1] / "powerfit" / "data"


def _round(value):
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


def _mape(pred, measured) -> float:
    pred, measured = np.asarray(pred, float), np.asarray(measured, float)
    ok = np.isfinite(pred) & np.isfinite(measured)
    return float(np.mean(np.abs(pred[ok] / measured[ok] - 1)) * 100) if ok.any() else np.nan


def _q(pred, measured, gpus) -> float:
    return interval_half_width(np.log(np.asarray(pred) / np.asarray(measured)), gpus)


def products_figures(per_op: pd.DataFrame, per_layer: pd.DataFrame) -> pd.DataFrame:
    """Per GPU: products' MAPE own/LOGO (per call, mean of the four), layer sums."""
    rows = []
    products = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
    for gpu, x in per_layer.groupby("gpu"):
        ops = per_op[(per_op.gpu == gpu) & per_op.vidur_op.isin(products)]
        mem = per_op[(per_op.gpu == gpu) & ~per_op.vidur_op.isin(products)]
        rows.append(
            {
                "gpu": gpu,
                "layers": len(x),
                "products_call_own": float(ops.own_mape.mean()),
                "products_call_logo": float(ops.logo_mape.mean()),
                "memory_call_own": float(mem.own_mape.mean()),
                "memory_call_logo": float(mem.logo_mape.mean()),
                "products_layer_own": _mape(x.products_own_s, x.products_measured_s),
                "products_layer_logo": _mape(x.products_logo_s, x.products_measured_s),
                "layer_own": _mape(x.own_s, x.measured_s),
                "layer_logo": _mape(x.logo_s, x.measured_s),
            }
        )
    return pd.DataFrame(rows)


def attention_figures(logo: pd.DataFrame) -> pd.DataFrame:
    """Per GPU: fused-attention time MAPE by its own law and by transfer."""
    rows = []
    for gpu, x in logo.groupby("gpu"):
        # own/logo hold predicted/published throughput: time ratio is its inverse
        rows.append(
            {
                "gpu": gpu,
                "figures": len(x),
                "own": _mape(1 / x.own, np.ones(len(x))),
                "logo": _mape(1 / x.logo, np.ones(len(x))),
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA, help="the package's data folder")
    parser.add_argument("--max-rows", type=int, default=1500)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    built = dt.datetime.now(dt.timezone.utc).date().isoformat()

    frame = vidur_operator_frame(fetch_vidur2024())
    model = fit_half_precision(frame, args.max_rows)
    per_op, per_layer = half_precision_evidence(frame, model)
    products = products_figures(per_op, per_layer)
    g = per_layer.gpu.to_numpy()
    evidence = {
        "unit": "layer: Vidur's operators of one decoder layer summed (FP16, forward)",
        "own": {
            "half_width": _q(per_layer.own_s, per_layer.measured_s, g),
            "n_layers": len(per_layer),
        },
        "logo": {
            "half_width": _q(per_layer.logo_s, per_layer.measured_s, g),
            "n_layers": len(per_layer),
        },
        "per_gpu": products.to_dict(orient="records"),
        "per_op": per_op.to_dict(orient="records"),
    }
    data = model.to_dict()
    data["evidence"] = evidence
    data["provenance"] = {
        "data": "Vidur (Agrawal et al., MLSys 2024), github.com/microsoft/vidur, MIT",
        "commit": VIDUR2024_COMMIT,
        "precision_note": "FP16 tensor cores (model.to(torch.float16)); also used for BF16, "
        "which runs the same kernels at the same peak on Ampere and Hopper",
        "built": built,
        "script": "experiments/build_half_precision_laws.py",
        "hyperparameters": {"max_rows": args.max_rows, "random_state": 0},
    }

    figures = fetch_flashattn().figures
    laws = FusedAttentionLaws.fit(figures)
    logo = leave_one_gpu_out(figures, "fa2")
    own_me = leave_one_gpu_out(figures, "mem-efficient")
    cudnn = leave_one_gpu_out(figures, "cudnn")
    gc = cudnn.gpu.to_numpy()
    triton = leave_one_gpu_out(figures, "triton")
    triton_own = _q(1 / triton.own, np.ones(len(triton)), triton.gpu.to_numpy())
    attn = attention_figures(logo)
    gl = logo.gpu.to_numpy()
    laws.residuals = {
        "unit": "one published FlashAttention-2 figure's time (FP16/BF16)",
        "own": {"half_width": _q(1 / logo.own, np.ones(len(logo)), gl), "n": len(logo)},
        "logo": {"half_width": _q(1 / logo.logo, np.ones(len(logo)), gl), "n": len(logo)},
        "mem_efficient_own": {
            "half_width": _q(1 / own_me.own, np.ones(len(own_me)), own_me.gpu.to_numpy()),
            "n": len(own_me),
        },
        "cudnn_own": {"half_width": _q(1 / cudnn.own, np.ones(len(cudnn)), gc), "n": len(cudnn)},
        "cudnn_logo": {
            "half_width": _q(1 / cudnn.logo, np.ones(len(cudnn)), gc),
            "n": len(cudnn),
        },
        "triton_own": {"half_width": triton_own, "n": len(triton)},
        # one GPU only (the A100): no leave-one-GPU-out; the transfer is FlashAttention-2's
        # rule (mma.sync roof), so its evidence, with the own law's error added
        "triton_logo": {
            "half_width": float(np.hypot(_q(1 / logo.logo, np.ones(len(logo)), gl), triton_own)),
            "n": len(triton),
            "note": "no second GPU: FlashAttention-2's leave-one-GPU-out q (the same "
            "mma.sync transfer) and the Triton law's own q, in quadrature",
        },
        "per_gpu": attn.to_dict(orient="records"),
        "per_gpu_cudnn": attention_figures(cudnn).to_dict(orient="records"),
        "per_gpu_triton": attention_figures(triton).to_dict(orient="records"),
        "provenance": {
            "data": "flashattn-published/fused_attention_published.csv (each row's source)",
            "built": built,
            "script": "experiments/build_half_precision_laws.py",
        },
    }

    pd.set_option("display.width", 200)
    print("Half-precision operator laws on Vidur (FP16), MAPE [%]:")
    print(products.round(1).to_string(index=False))
    print(
        f"interval half-width q (layer sums): own {evidence['own']['half_width']:.3f}, "
        f"leave-one-GPU-out {evidence['logo']['half_width']:.3f}"
    )
    print("\nFused attention (FlashAttention-2), time MAPE [%]:")
    print(attn.round(1).to_string(index=False))
    print("\nFused attention (cuDNN, SDPA's CUDNN_ATTENTION backend), time MAPE [%]:")
    print(attention_figures(cudnn).round(1).to_string(index=False))
    print("\nFused attention (Triton FlashAttention, 2022-2023 kernel), time MAPE [%]:")
    print(attention_figures(triton).round(1).to_string(index=False))
    print(
        f"interval half-width q (FlashAttention-2 figures): own "
        f"{laws.residuals['own']['half_width']:.3f}, "
        f"leave-one-GPU-out {laws.residuals['logo']['half_width']:.3f}"
    )
    if not args.no_write:
        products_file = args.out / "operators" / "fp16.json"
        attention_file = args.out / "attention" / "fused.json"
        for file, content in ((products_file, data), (attention_file, laws.to_dict())):
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(json.dumps(_round(_clean(content)), indent=1) + "\n")
        print(f"\nwrote {products_file} and {attention_file}")
    print(f"({time.perf_counter() - start:.1f} s)")
    return 0


def _clean(value):
    """JSON-able: NumPy scalars to Python, NaN to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


if __name__ == "__main__":
    raise SystemExit(main())
