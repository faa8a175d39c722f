"""Tests of powerfit.steps.latency: operator latencies, step time, precisions without laws."""

from __future__ import annotations

import numpy as np
import pytest

from powerfit.architectures.hf import from_hf_config
from powerfit.steps.calibration import Calibration
from powerfit.steps.graph import training_step_graph
from powerfit.steps.latency import roofline_latency, step_time


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


def test_bf16_rows_memory_bound_by_fp32_laws_products_by_roofline(fp32_laws, tiny_gpt2):
    from powerfit.steps.latency import operator_latency, operator_latency_sources

    c = from_hf_config(tiny_gpt2)
    g = training_step_graph(c, 4, 32, precision="bf16")
    assert set(g.precision) == {"bf16"}
    with pytest.warns(RuntimeWarning) as caught:
        lat = operator_latency(g, H100, fp32_laws)
    (note,) = [str(w.message) for w in caught]
    mm = g.op.isin(["linear", "bmm"]).to_numpy()
    assert note == (
        f"no bf16 operator laws: bf16 matrix products ({mm.sum()} rows): roofline at the "
        "bf16 peak (989.5 TFLOP/s) plus the fp32 laws' fixed cost per call (t0); bf16 "
        f"memory-bound operators ({(~mm).sum()} rows): fp32 bandwidth laws on their own "
        "bf16 bytes"
    )
    # products: the roofline at the BF16 tensor-core peak + the FP32 law's t0
    peak, bw = 989.5e12, 3.35e12
    t0 = g.op[mm].map(lambda op: fp32_laws.law(H100, op)[0]["t0"]).to_numpy()
    roof = np.maximum(g.flop[mm] / peak, g["bytes"][mm] / bw).to_numpy()
    assert lat[mm] == pytest.approx(roof + t0, rel=1e-12)
    assert lat[mm] == pytest.approx(roofline_latency(g[mm], H100) + t0, rel=1e-12)
    # memory-bound: the FP32 laws on the same bytes (an FP32 twin with half the rows
    # moves them, at the same row length)
    mem = g[~mm].reset_index(drop=True)
    even = (mem.B % 2 == 0).to_numpy()
    assert even.sum() >= 0.8 * len(mem)
    twin = mem[even].assign(precision="fp32", B=mem.B[even] // 2)
    X = twin.assign(gpu=H100)[["gpu", "op", "precision", "B", "M", "N", "K", "H"]]
    assert lat[~mm][even] == pytest.approx(fp32_laws.predict(X.reset_index(drop=True)), rel=1e-12)
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
