"""Tests of powerfit.kernels.half: Vidur's operators as generic rows, the bundled FP16 laws."""

from __future__ import annotations

import numpy as np
import pytest

from powerfit.kernels.laws import MATMUL_BOUNDS, MEMORY_BOUNDS
from powerfit.kernels.model import load_operator_model


@pytest.fixture(scope="module")
def vidur_frame(data_home):
    from powerfit.datasets.vidur2024 import fetch_vidur2024
    from powerfit.kernels.half import vidur_operator_frame

    if not (data_home / "vidur2024" / "compute").is_dir():
        pytest.skip(
            "needs the vidur2024 data set (github.com/microsoft/vidur, laid out as "
            "its README says): set POWERFIT_DATA_HOME to a folder holding "
            "vidur2024/"
        )
    return vidur_operator_frame(fetch_vidur2024(data_home, gpus=("a40", "h100")))


def test_vidur_operators_map_to_generic_shapes(vidur_frame):
    f = vidur_frame
    llama = f[(f.model == "meta-llama/Llama-2-7b-hf") & (f.tp == 2) & (f.num_tokens == 1024)]
    shape = {r.vidur_op: r for r in llama.itertuples()}
    qkv = shape["attn_pre_proj"]
    assert (qkv.op, qkv.M, qkv.N, qkv.K) == ("linear", 1024, 4096, 3 * 4096 / 2)
    up = shape["mlp_up_proj"]
    assert (up.N, up.K) == (4096, 2 * 11008 / 2)  # gate and up fused, split 2 ways
    assert (shape["mlp_down_proj"].N, shape["mlp_down_proj"].K) == (11008 / 2, 4096)
    act = shape["mlp_act"]
    assert (act.op, act.B, act.H) == ("mul", 1024, 11008 / 2)  # SiLU-and-mul
    assert shape["input_layernorm"].op == "ln" and shape["attn_rope"].op == "addu"
    phi = f[(f.model == "microsoft/phi-2") & (f.vidur_op == "mlp_act")]
    assert set(phi.op) == {"gelu"}
    assert set(f.precision) == {"fp16"} and "emb" not in set(f.vidur_op)


def test_bundled_fp16_laws_are_physical_and_serve_bf16():
    fp16, bf16 = load_operator_model("fp16"), load_operator_model("bf16")
    assert fp16.precision == "fp16" and bf16.precision == "bf16"
    assert fp16.laws_ == bf16.laws_
    gpus = {g for g, _op in fp16.laws_}
    assert gpus == {"NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "NVIDIA A40"}
    for (_gpu, op), law in fp16.laws_.items():
        bounds = MATMUL_BOUNDS if op == "linear" else MEMORY_BOUNDS
        for name, value in law.items():
            assert bounds[name][0] * 0.999 <= value <= bounds[name][1] * 1.001
    # bmm has no profile: it uses the linear law (same tensor-core GEMMs)
    assert fp16.covers("bmm") and not fp16.covers("softmax")
    assert fp16.law("h100", "bmm") == fp16.law("h100", "linear")


def test_half_precision_evidence_own_and_leave_one_gpu_out(vidur_frame):
    from powerfit.kernels.half import half_precision_evidence

    model = load_operator_model("fp16")
    per_op, layers = half_precision_evidence(vidur_frame, model)
    assert set(per_op.gpu) == {"NVIDIA A40", "NVIDIA H100 80GB HBM3"}
    for _gpu, x in layers.groupby("gpu"):
        own = np.mean(np.abs(x.own_s / x.measured_s - 1)) * 100
        logo = np.mean(np.abs(x.logo_s / x.measured_s - 1)) * 100
        assert own < 8 and logo < 15  # a layer's operators summed
        products = np.mean(np.abs(x.products_logo_s / x.products_measured_s - 1)) * 100
        assert products < 12
    # never faster than the tensor-core roof
    from powerfit.kernels.roofline import roofline_latency

    rows = vidur_frame[vidur_frame.op == "linear"].head(500)
    X = rows[["gpu", "op", "precision", "B", "M", "N", "K", "H"]]
    assert (model.predict(X) >= roofline_latency(X, "fp16") * 0.999).all()
