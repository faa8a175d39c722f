"""Tests of powerfit.steps.latency: operator latencies, step time, precisions without laws."""

from __future__ import annotations

import numpy as np
import pytest

from powerfit.architectures.hf import from_hf_config
from powerfit.steps.calibration import Calibration
from powerfit.steps.graph import training_step_graph
from powerfit.steps.latency import QUEUED_CALL_S, roofline_latency, step_time


def test_step_time_sums_operator_latencies(tiny_gpt2, constant_operator_model):
    c = from_hf_config(tiny_gpt2)
    g = training_step_graph(c, 2, 16)
    t = step_time(g, "a100", constant_operator_model)
    flop = (g.flop * g["count"])[g.op.isin(["linear", "bmm"])].sum()
    assert t == pytest.approx(g["count"].sum() * 1e-6 + flop / 10e12)
    fb = step_time(g, "a100", constant_operator_model, phases=("forward", "backward"))
    assert fb < t
    cal = Calibration("a100", scale=1.1, launch_s=2e-6)
    assert step_time(g, "a100", constant_operator_model, calibration=cal) == pytest.approx(
        1.1 * t + 2e-6 * g["count"].sum()
    )


def test_roofline_is_a_lower_bound_of_physics(tiny_gpt2):
    c = from_hf_config(tiny_gpt2)
    g = training_step_graph(c, 8, 32)
    lat = roofline_latency(g, "NVIDIA A100 80GB PCIe")
    mm = g.op.isin(["linear", "bmm"]).to_numpy()
    assert (lat[mm] >= g.flop[mm] / 19.5e12 - 1e-18).all()
    assert (lat[~mm] >= g["bytes"][~mm] / 1935e9 - 1e-18).all()


H100 = "NVIDIA H100 80GB HBM3"


def test_bf16_rows_memory_bound_by_fp32_laws_products_by_roofline(
    fp32_laws, tiny_gpt2, monkeypatch
):
    """Without half-precision laws (none bundled) the fallbacks of the module notes."""
    from powerfit.steps import latency
    from powerfit.steps.latency import operator_latency, operator_latency_sources

    monkeypatch.setitem(latency._BUNDLED, "bf16", None)
    c = from_hf_config(tiny_gpt2)
    g = training_step_graph(c, 4, 32, precision="bf16")
    assert set(g.precision) == {"bf16"}
    with pytest.warns(RuntimeWarning) as caught:
        lat = operator_latency(g, H100, fp32_laws)
    (note,) = [str(w.message) for w in caught]
    mm = g.op.isin(["linear", "bmm"]).to_numpy()
    assert note == (
        f"no bf16 operator laws: bf16 matrix products ({mm.sum()} rows): roofline at the "
        "bf16 peak (989.5 TFLOP/s) plus the fixed cost of a queued call; bf16 "
        f"memory-bound operators ({(~mm).sum()} rows): fp32 bandwidth laws on their own "
        "bf16 bytes"
    )
    # products: the roofline at the BF16 tensor-core peak + the fixed cost of a queued
    # call (the bundled FP32 laws were fitted on isolated calls)
    assert fp32_laws.call_timing == "isolated"
    peak, bw = 989.5e12, 3.35e12
    roof = np.maximum(g.flop[mm] / peak, g["bytes"][mm] / bw).to_numpy()
    assert lat[mm] == pytest.approx(roof + QUEUED_CALL_S, rel=1e-12)
    assert lat[mm] == pytest.approx(roofline_latency(g[mm], H100) + QUEUED_CALL_S, rel=1e-12)
    # memory-bound: the FP32 laws on the same bytes (an FP32 twin with half the rows
    # moves them, at the same row length), each call's isolated fixed cost queued
    mem = g[~mm].reset_index(drop=True)
    even = (mem.B % 2 == 0).to_numpy()
    assert even.sum() >= 0.8 * len(mem)
    twin = mem[even].assign(precision="fp32", B=mem.B[even] // 2)
    X = twin.assign(gpu=H100)[["gpu", "op", "precision", "B", "M", "N", "K", "H"]]
    X = X.reset_index(drop=True)
    queued = fp32_laws.predict(X) - fp32_laws.call_overhead(X) + QUEUED_CALL_S
    assert lat[~mm][even] == pytest.approx(queued, rel=1e-12)
    _, source, _ = operator_latency_sources(g, H100, fp32_laws)
    assert set(source[mm]) == {"roofline"} and set(source[~mm]) == {"fp32 bandwidth laws"}


def test_tf32_memory_bound_rows_are_the_fp32_ones_exactly(fp32_laws, tiny_gpt2):
    from powerfit.steps.latency import operator_latency

    c = from_hf_config(tiny_gpt2)
    g = training_step_graph(c, 4, 32, precision="fp32")
    lat32 = operator_latency(g, "NVIDIA A100 80GB PCIe", fp32_laws)
    tf = g.assign(precision="tf32")  # every row TF32, memory-bound ones included
    with pytest.warns(RuntimeWarning, match=r"tf32 matrix products .*\(156 TFLOP/s\)"):
        lat_tf = operator_latency(tf, "NVIDIA A100 80GB PCIe", fp32_laws)
    mm = g.op.isin(["linear", "bmm"]).to_numpy()
    assert np.array_equal(lat_tf[~mm], lat32[~mm])
    # the graph's own TF32 step: memory-bound rows are FP32 rows, timed by the laws
    g_tf = training_step_graph(c, 4, 32, precision="tf32")
    with pytest.warns(RuntimeWarning, match="^no tf32 operator laws: tf32 matrix products"):
        lat_g = operator_latency(g_tf, "NVIDIA A100 80GB PCIe", fp32_laws)
    assert np.array_equal(lat_g[~mm], lat32[~mm])
    assert (lat_g[mm] < lat32[mm]).all()  # 8x the peak, same launch cost


def test_bf16_rows_are_timed_by_the_bundled_half_precision_laws(fp32_laws, tiny_gpt2):
    from powerfit.kernels.model import load_operator_model
    from powerfit.steps.latency import operator_latency_sources

    c = from_hf_config(tiny_gpt2)
    g = training_step_graph(c, 64, 32, precision="bf16")
    lat, source, notes = operator_latency_sources(g, H100, fp32_laws)
    mm = g.op.isin(["linear", "bmm"]).to_numpy()
    assert set(source[mm]) == {"laws"}  # Vidur's FP16 laws (bmm by the linear law)
    half = load_operator_model("bf16")
    assert half.law(H100, "linear")[1] == "fit" and half.law(H100, "bmm")[1] == "fit"
    # below the tensor-core roof, above it never
    assert (lat[mm] >= roofline_latency(g[mm], H100) * (1 - 1e-9)).all()
    # memory-bound operators without an FP16 law (softmax...) keep the FP32 bandwidth laws
    covered = g.op.map(half.covers).to_numpy(bool)
    assert set(source[~covered]) == {"fp32 bandwidth laws"}
    assert any("some rows without bf16 operator laws" in n for n in notes)


def test_bf16_on_a_gpu_without_a_bf16_peak_falls_back_with_a_note(fp32_laws, tiny_gpt2):
    from powerfit.steps.latency import operator_latency_sources

    c = from_hf_config(tiny_gpt2)
    g = training_step_graph(c, 2, 32, precision="bf16")
    lat, source, notes = operator_latency_sources(g, "Tesla V100-PCIE-32GB", fp32_laws)
    assert np.isfinite(lat).all() and (lat > 0).all()
    assert "roofline" in set(source)
    assert any("has no bf16 peak" in n for n in notes)


def test_fused_attention_rows_are_timed_by_the_fused_laws():
    import pandas as pd

    from powerfit.kernels.attention import fused_attention_row
    from powerfit.steps.latency import operator_latency_sources, utilisation

    rows = [
        {"name": f"attn.{b}", "phase": "backward" if b else "forward", "count": 24, "params": 0}
        | fused_attention_row(4, 32, 8, 4096, 4096, 128, True, b, "bf16")
        for b in (False, True)
    ]
    g = pd.DataFrame(rows)
    lat, source, notes = operator_latency_sources(g, H100)
    assert set(source) == {"fused attention laws"} and not notes
    tflops = g.flop.to_numpy() / lat / 1e12
    assert 150 < tflops[0] < 989.5 and 100 < tflops[1] < tflops[0]  # backward less efficient
    assert 0 < utilisation(g, lat, H100) < 1
    # FP32 tensors: SDPA's memory-efficient kernel, flagged as an assumption
    g32 = pd.DataFrame(
        [
            {"name": "a", "phase": "forward", "count": 1, "params": 0}
            | fused_attention_row(4, 32, 8, 4096, 4096, 128, True, False, "fp32")
        ]
    )
    lat32, source32, notes32 = operator_latency_sources(g32, H100)
    assert set(source32) == {"fused attention assumed"} and "memory-efficient" in notes32[0]
    assert lat32[0] > 5 * lat[0]  # CUDA-core FP32 peak (67) against 989.5


def test_a_model_as_used_is_kept_until_refitted(fp32_laws):
    import copy

    from powerfit.steps.latency import _as_used

    twin = _as_used(fp32_laws, False)
    assert _as_used(fp32_laws, False) is twin and twin.matmul_layout == "mkn"
    assert _as_used(fp32_laws, True) is not twin and _as_used(fp32_laws, True).specs_only
    model = copy.copy(fp32_laws)
    kept = _as_used(model, False)
    model.laws_ = dict(model.laws_)  # as a refit replaces them
    assert _as_used(model, False) is not kept and _as_used(model, False).laws_ is model.laws_


def test_laws_of_isolated_calls_are_timed_queued_in_a_step(fp32_laws, tiny_gpt2):
    """Each call's fixed cost measured alone is replaced by that of a queued call."""
    import copy

    from powerfit.steps.latency import operator_latency

    g = training_step_graph(from_hf_config(tiny_gpt2), 4, 32)
    as_measured = copy.copy(fp32_laws)
    as_measured.call_timing = "queued"
    queued = operator_latency(g, H100, fp32_laws)
    isolated = operator_latency(g, H100, as_measured)
    X = g.assign(gpu=H100)[["gpu", "op", "precision", "B", "M", "N", "K", "H"]]
    overhead = fp32_laws.call_overhead(X)
    assert (overhead > 10e-6).all() and (overhead < 100e-6).all()  # tens of µs
    assert queued == pytest.approx(isolated - overhead + QUEUED_CALL_S, rel=1e-12)
    assert (queued > 0).all()
    # every call keeps at least the queued fixed cost: a law never goes below its floor
    assert (queued >= QUEUED_CALL_S * (1 - 1e-9)).all()
