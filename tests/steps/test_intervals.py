"""Tests of powerfit.steps.intervals: the shipped step-time interval half-widths."""

from __future__ import annotations

import pytest


def test_roofline_interval_is_widened_outside_the_measured_steps():
    from powerfit.steps.intervals import half_width_for

    bundle = {
        "half_width": {
            "in-gpu": {"half_width": 0.2},
            "roofline": {"half_width": 0.5},
            "in-gpu+cal": {"half_width": 0.1},
            "specs-only": {"half_width": 0.3},
        },
        "widen_outside": 2.0,
    }
    q = half_width_for("in-gpu", outside=True, roofline=True, bundle=bundle)
    assert q == pytest.approx(1.0)
    assert half_width_for("in-gpu", outside=False, roofline=True, bundle=bundle) == 0.5
    assert half_width_for("in-gpu", outside=True, roofline=False, bundle=bundle) == 0.4
    assert half_width_for("in-gpu+cal", outside=False, roofline=False, bundle=bundle) == 0.1


def test_laws_no_step_checks_bring_their_own_evidence(tiny_gpt2):
    import numpy as np

    from powerfit.architectures.hf import from_hf_config
    from powerfit.kernels.attention import load_fused_attention_laws
    from powerfit.kernels.half import half_precision_half_width
    from powerfit.steps.graph import training_step_graph
    from powerfit.steps.intervals import law_half_width
    from powerfit.steps.latency import operator_latency_sources

    c = from_hf_config(tiny_gpt2)
    own, logo = half_precision_half_width("fit"), half_precision_half_width("transfer")
    assert 0 < own < logo < 1  # leave-one-GPU-out residuals are wider than the own GPU's
    h100 = "NVIDIA H100 80GB HBM3"
    g32 = training_step_graph(c, 8, 32, precision="fp32")
    lat, src, _ = operator_latency_sources(g32, h100)
    assert law_half_width(g32, lat, src, h100) == (0.0, 0.0)  # FP32: the steps' evidence
    g = training_step_graph(c, 8, 32, precision="bf16")
    lat, src, _ = operator_latency_sources(g, h100)
    q, share = law_half_width(g, lat, src, h100)
    assert 0 < share < 1 and q == pytest.approx(share * own)  # the H100 was profiled
    q_so, share_so = law_half_width(g, lat, src, h100, specs_only=True)
    assert share_so == share and q_so == pytest.approx(share * logo)
    assert np.isfinite(load_fused_attention_laws().half_width("transfer"))
