"""Tests of powerfit.kernels.attention: fused-attention counts, laws, transfer, bundle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from powerfit.kernels.attention import (
    BOUNDS,
    FusedAttentionLaws,
    fused_attention_flops_bytes,
    fused_attention_row,
    load_fused_attention_laws,
    mma_share,
)

H100 = "NVIDIA H100 80GB HBM3"


def test_flops_causal_halving_backward_and_gqa():
    f, b = fused_attention_flops_bytes(2, 16, 16, 1024, 1024, 64, False, False)
    assert f == 4 * 2 * 16 * 1024**2 * 64
    fc, _ = fused_attention_flops_bytes(2, 16, 16, 1024, 1024, 64, True, False)
    assert fc == pytest.approx(f * (1024 + 1) / (2 * 1024))  # pairs i <= j: S(S+1)/2
    fb, bb = fused_attention_flops_bytes(2, 16, 16, 1024, 1024, 64, False, True)
    assert fb == 2.5 * f and bb > b
    # GQA: the same FLOPs, fewer bytes read for K and V
    fg, bg = fused_attention_flops_bytes(2, 16, 2, 1024, 1024, 64, False, False)
    assert fg == f and bg < b
    # MQA and a head dim other than 64/128
    fm, _ = fused_attention_flops_bytes(1, 12, 1, 300, 700, 80, True, False)
    assert fm == pytest.approx(4 * 12 * 80 * sum(min(i + 1, 700) for i in range(300)))
    # no S×S matrix: bytes linear in the sequence length
    _, b2 = fused_attention_flops_bytes(2, 16, 16, 2048, 2048, 64, False, False)
    assert b2 == pytest.approx(2 * b, rel=1e-9)
    with pytest.raises(ValueError, match="multiple of kv_heads"):
        fused_attention_flops_bytes(1, 12, 5, 128, 128, 64, False, False)
    with pytest.raises(ValueError, match="seq_q must be > 0"):
        fused_attention_flops_bytes(1, 12, 12, 0, 128, 64, False, False)


def test_graph_row_carries_its_kind_in_the_op_name():
    row = fused_attention_row(2, 32, 8, 512, 512, 128, True, True, "bf16")
    assert row["op"] == "attention_bwd" and (row["kv_heads"], row["causal"]) == (8, 1)
    assert (row["B"], row["M"], row["N"], row["K"]) == (64, 512, 512, 128)
    flop, moved = fused_attention_flops_bytes(2, 32, 8, 512, 512, 128, True, True)
    assert (row["flop"], row["bytes"]) == (flop, moved)
    with pytest.raises(ValueError, match="precision 'fp8' not supported"):
        fused_attention_row(2, 32, 8, 512, 512, 128, True, True, "fp8")


def _synthetic(gpu, law, rng):
    rows = []
    for d in (64, 128, 256):
        for s in (512, 1024, 2048, 4096, 8192, 16384):
            for p in ("fwd", "bwd", "fwd+bwd"):
                for causal in (False, True):
                    L = s * (s + 1) / 2 / s if causal else s
                    fwd = law["e"] * d / (d + law["d0"]) * L / (L + law["s0"])
                    bwd = law["r"] * fwd
                    eta = {"fwd": fwd, "bwd": bwd, "fwd+bwd": 3.5 / (1 / fwd + 2.5 / bwd)}[p]
                    rows.append((gpu, d, s, p, causal, eta * np.exp(rng.normal(0, 0.02))))
    f = pd.DataFrame(rows, columns=["gpu", "head_dim", "seq_len", "pass_name", "is_causal", "e"])
    from powerfit.hardware.gpus import get_gpu

    f["tflops"] = f.e * get_gpu(gpu).peak_flops["fp16"] / 1e12
    return f.assign(family="fa2", precision_name="bf16").drop(columns="e")


def test_fit_recovers_a_known_law_and_transfers_by_the_mma_roof():
    rng = np.random.default_rng(0)
    a100 = {"e": 0.72, "r": 0.85, "d0": 12.0, "s0": 250.0}
    figures = pd.concat(
        [_synthetic("NVIDIA A100-SXM4-80GB", a100, rng), _synthetic(H100, a100, rng)]
    )
    # the H100 at the A100's law would exceed its mma.sync roof: scale it to that roof
    h100 = figures.gpu == H100
    figures.loc[h100, "tflops"] *= mma_share(H100)
    laws = FusedAttentionLaws.fit(figures, families=("fa2",))
    got = laws.laws[("NVIDIA A100-SXM4-80GB", "fa2")]
    for name in ("e", "r", "d0", "s0"):
        assert got[name] == pytest.approx(a100[name], rel=0.15)
        assert BOUNDS[name][0] <= got[name] <= BOUNDS[name][1]
    # transfer: the A100 predicted from the H100 alone lands on the A100's own level
    blind = laws.without_gpus(["NVIDIA A100-SXM4-80GB"])
    law = blind.transferred("NVIDIA A100-SXM4-80GB")
    assert law["e"] == pytest.approx(got["e"], rel=0.1)
    assert mma_share("NVIDIA A100-SXM4-80GB") == pytest.approx(1.0, abs=0.01)
    assert 0.4 < mma_share(H100) < 0.7 and mma_share("NVIDIA RTX A5000") == 1.0


def test_bundled_laws_time_a_call_plausibly_and_say_their_origin():
    laws = load_fused_attention_laws()
    t, origin = laws.time(H100, 4, 32, 8, 4096, 4096, 128, True, [False, True], "bf16")
    flop, _ = fused_attention_flops_bytes(4, 32, 8, 4096, 4096, 128, True, [False, True])
    tflops = flop / t / 1e12
    assert origin == "fit" and (150 < tflops).all() and (tflops < 989.5).all()
    assert tflops[1] < tflops[0]  # the backward runs below the forward
    # a GPU without figures: transferred from the others
    t_l4, origin_l4 = laws.time("NVIDIA L4", 4, 32, 8, 4096, 4096, 128, True, False, "fp16")
    assert origin_l4 == "transfer" and 4 * 32 * 4096 * 4097 / 2 * 128 * 4 / t_l4 < 121e12
    # specs-only: the H100's own law unseen
    _, origin_so = laws.time(H100, 1, 8, 8, 512, 512, 64, False, False, specs_only=True)
    assert origin_so == "transfer"
    # FP32 tensors: the memory-efficient kernel at the FP32 peak, an assumption
    t32, origin32 = laws.time(H100, 4, 32, 8, 4096, 4096, 128, True, False, "fp32")
    assert origin32 == "assumed-fp32" and t32 > 5 * t[0]
    assert laws.half_width("transfer") > laws.half_width("fit") > 0
    # cuDNN's kernel where a user selects it: its own laws (H200: only cuDNN figures)
    t_cu, origin_cu = laws.time("h200", 1, 64, 8, 8192, 8192, 128, True, False, family="cudnn")
    assert origin_cu == "fit" and 400e12 < 4 * 64 * 8192 * 8193 / 2 * 128 / t_cu < 989.5e12
    assert laws.half_width("transfer", "cudnn") > laws.half_width("fit", "cudnn") > 0
    with pytest.raises(ValueError, match="not powerfit fused-attention laws"):
        FusedAttentionLaws.from_dict({"format": "other"})


def test_published_figures_own_and_leave_one_gpu_out(data_home):
    from powerfit.datasets.flashattn import fetch_flashattn
    from powerfit.kernels.attention import leave_one_gpu_out

    if not (data_home / "flashattn-published").is_dir():
        pytest.skip(
            "needs the flashattn-published data set (published FlashAttention and "
            "cuDNN figures, each row citing its source, laid out as its README "
            "says): set POWERFIT_DATA_HOME to a folder holding flashattn-published/"
        )
    result = leave_one_gpu_out(fetch_flashattn(data_home).figures, "fa2")
    ape = result.assign(own=(1 / result.own - 1).abs(), logo=(1 / result.logo - 1).abs())
    per_gpu = ape.groupby("gpu")[["own", "logo"]].mean() * 100
    assert (per_gpu.own < 12).all()  # each GPU by its own law
    assert per_gpu.loc["NVIDIA A100-SXM4-80GB", "logo"] < 15  # from the other five GPUs


def test_saved_activations_by_attention_kind():
    from powerfit.kernels.attention import attention_saved_bytes

    args = (2, 16, 4, 4096, 4096, 64)
    fused = attention_saved_bytes("sdpa", *args)
    q = 2 * 16 * 4096 * 64
    kv = 2 * 4 * 4096 * 64
    assert fused == 2 * (2 * q + 2 * kv) + 4 * 2 * 16 * 4096  # Q, O, K, V, log-sum-exp
    assert attention_saved_bytes("flash", *args) == fused
    eager = attention_saved_bytes("eager", *args)
    assert eager - fused == pytest.approx(2 * 2 * 16 * 4096**2 - 2 * q - 4 * 2 * 16 * 4096)
    dropped = attention_saved_bytes("eager", *args, dropout=True)
    assert dropped - eager == 3 * 2 * 16 * 4096**2  # dropped probabilities and mask
    # fused memory grows linearly in the sequence, eager quadratically
    longer = (2, 16, 4, 8192, 8192, 64)
    assert attention_saved_bytes("sdpa", *longer) == pytest.approx(2 * fused)
    assert attention_saved_bytes("eager", *longer) > 3.5 * eager
    with pytest.raises(ValueError, match="attention kind must be"):
        attention_saved_bytes("paged", *args)


def test_latency_reads_the_generic_shape_when_attention_columns_are_absent():
    from powerfit.kernels.attention import fused_attention_latency

    rows = pd.DataFrame(
        [
            fused_attention_row(4, 16, 16, 2048, 2048, 64, True, b, "bf16")
            | {"name": "attn", "count": 1}
            for b in (False, True)
        ]
    )
    full, _, _ = fused_attention_latency(rows, H100)
    generic = rows.drop(columns=["batch", "heads", "kv_heads", "seq_q", "seq_kv", "head_dim"])
    generic = generic.drop(columns="causal")
    bare, source, _ = fused_attention_latency(generic, H100)
    assert bare == pytest.approx(full, rel=1e-6) and set(source) == {"fused attention laws"}
    with pytest.raises(ValueError, match="lack column"):
        fused_attention_latency(generic.drop(columns="flop"), H100)


def test_triton_kernel_law_is_fitted_on_the_a100_and_transferred_by_the_mma_roof():
    laws = load_fused_attention_laws()
    a100 = "NVIDIA A100-SXM4-80GB"
    call = (2, 32, 32, 8192, 8192, 128, True, [False, True], "bf16")
    fa2, origin_fa2 = laws.time(a100, *call)
    triton, origin = laws.time(a100, *call, family="triton")
    assert (origin_fa2, origin) == ("fit", "fit")
    # the FlashAttention-2 paper's Fig. 4: Triton about half FlashAttention-2's throughput
    assert (1.4 < triton / fa2).all() and (triton / fa2 < 2.6).all()
    # no H100 figure of the 2022-2023 kernel: transferred, by the mma.sync roof
    h_fa2, _ = laws.time(H100, *call)
    h_triton, h_origin = laws.time(H100, *call, family="triton")
    assert h_origin == "transfer" and (h_triton > h_fa2).all() and (h_triton < triton).all()
    assert laws.half_width("transfer", "triton") > laws.half_width("fit", "triton") > 0
    assert laws.half_width("transfer", "triton") >= laws.half_width("transfer")


def test_kernel_names_are_checked_and_reported():
    from powerfit.kernels.attention_kernels import (
        ATTENTION_KERNELS,
        attention_kernels,
        check_attention_kernel,
        kernel_run,
    )

    assert ATTENTION_KERNELS == ("fa2", "cudnn", "triton")
    assert check_attention_kernel("triton") == "triton"
    with pytest.raises(ValueError, match="attention kernel must be one of fa2, cudnn, triton"):
        check_attention_kernel("xformers")
    with pytest.raises(ValueError, match="attention kernel must be one of"):
        load_fused_attention_laws().time(H100, 1, 8, 8, 512, 512, 64, False, False, family="fa3")
    assert kernel_run("sdpa", "bf16", "triton") == "triton"
    assert kernel_run("flash", "fp32", "triton") == "mem-efficient"  # SDPA's FP32 kernel
    assert kernel_run("eager", "bf16", "fa2") is None and kernel_run(None, "bf16", "fa2") is None
    rows = pd.DataFrame({"attention_kernel": ["", "triton"]})
    assert list(attention_kernels(rows)) == ["fa2", "triton"]
    assert list(attention_kernels(pd.DataFrame({"op": ["attention"]}))) == ["fa2"]
