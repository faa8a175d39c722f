"""Tests of powerfit.evaluation.steps: step-time intervals and the steps suite."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest


def test_interval_half_width_and_coverage_on_synthetic_steps():
    from powerfit.evaluation.steps import interval_coverage, interval_half_width

    assert math.isnan(interval_half_width([0.1]))
    r = np.array([0.1, -0.1, 0.1, -0.1])
    from scipy.stats import t as student_t

    assert interval_half_width(r) == pytest.approx(student_t.ppf(0.95, 3) * 0.1)
    # every GPU weighs the same: one GPU's many small errors do not narrow another's
    r = np.array([0.01] * 9 + [0.3])
    gpus = ["a"] * 9 + ["b"]
    rms = np.sqrt((0.01**2 + 0.3**2) / 2)
    assert interval_half_width(r, gpus) == pytest.approx(student_t.ppf(0.95, 9) * rms)
    assert interval_half_width(r, gpus) > 2 * interval_half_width(r)
    rng = np.random.default_rng(1)
    n = 60
    measured = rng.uniform(0.1, 2.0, n)
    frame = pd.DataFrame(
        {
            "gpu": np.repeat(["a", "b"], n // 2),
            "measured_s": measured,
            "in-gpu": measured * np.exp(rng.normal(0, 0.05, n)),
        }
    )
    cov = interval_coverage(frame, modes=("in-gpu",))
    assert set(cov.protocol) == {"loo-step", "loo-gpu", "loo-gpu-unwidened"}
    assert (cov.coverage90_pct >= 80).all()
    # a GPU with a bias the other GPU does not show: only the widening covers it
    frame.loc[frame.gpu == "b", "in-gpu"] *= 1.15
    cov = interval_coverage(frame, modes=("in-gpu",)).set_index(["gpu", "protocol"])
    assert (
        cov.loc[("b", "loo-gpu"), "coverage90_pct"]
        > cov.loc[("b", "loo-gpu-unwidened"), "coverage90_pct"]
    )


def test_evaluate_steps_table(neusight_labels):
    from powerfit.evaluation.steps import MODES, evaluate_steps

    table = evaluate_steps()
    assert {"NVIDIA A100 80GB PCIe", "Tesla V100-PCIE-32GB"} <= set(table.gpu)
    for mode in MODES:
        assert mode in table
    a100 = table.set_index("gpu").loc["NVIDIA A100 80GB PCIe"]
    assert a100["in-gpu"] < 10.0 and a100["roofline"] > a100["in-gpu"]
    # the interval's out-of-sample coverage, the unseen-GPU case widened as shipped
    cov = [c for c in table if c.startswith("coverage90_") and c.endswith("loo-gpu")]
    assert cov and (table[cov] >= 80.0).all().all()


def test_the_queued_call_cost_is_the_one_the_a100_steps_fit(neusight_labels):
    """QUEUED_CALL_S is what the A100 80GB's measured steps give, the V100's held out;
    the V100's own steps, fitted alone, give about the same."""
    from powerfit.evaluation.steps import fit_queued_call
    from powerfit.steps.latency import QUEUED_CALL_S

    a100 = fit_queued_call()
    assert a100["steps"] == 10
    assert a100["queued_call_s"] == pytest.approx(QUEUED_CALL_S, abs=0.5e-6)
    assert a100["mape_pct"] <= a100["mape_isolated_pct"]
    v100 = fit_queued_call(gpu="Tesla V100-PCIE-32GB")
    assert abs(v100["queued_call_s"] - QUEUED_CALL_S) < 5e-6
    assert v100["mape_pct"] < v100["mape_isolated_pct"]


def test_half_precision_and_fused_rows(data_home):
    from powerfit.evaluation.steps import HALF_PRECISION_ROWS, evaluate_half_precision_and_fused

    needed = ("vidur2024", "flashattn-published", "neusight2025")
    if not all((data_home / name).is_dir() for name in needed):
        pytest.skip(
            "needs the vidur2024 (github.com/microsoft/vidur), flashattn-published "
            "and neusight2025 (github.com/sitar-lab/NeuSight) data sets: set "
            "POWERFIT_DATA_HOME to a folder holding them"
        )
    table = evaluate_half_precision_and_fused(data_home)
    assert set(table.row) == set(HALF_PRECISION_ROWS)
    assert (table.what == table.row.map(HALF_PRECISION_ROWS)).all()
    layers = table[table.row == "fp16 layer"].set_index("gpu")
    assert set(layers.index) == {"NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "NVIDIA A40"}
    assert (layers.mape_own < 8).all() and (layers.mape_logo < 15).all()
    assert (layers.mape_own <= layers.mape_logo + 1e-9).all()  # its own laws do better
    fused = table[table.row == "fused attention"].set_index("gpu")
    assert (fused.mape_own < 12).all() and fused.loc["NVIDIA H100 80GB HBM3", "mape_logo"] < 20
    forward = table[table.row.str.endswith("fp32 forward")]
    assert (forward.gpu == "NVIDIA A100-PCIE-40GB").all() and (forward.n == 4).all()
    # every GPU's measured FP32 forward steps, in-GPU and with that GPU held out
    steps = table[table.row == "fp32 forward steps"].set_index("gpu")
    assert steps.n.to_dict() == {
        "NVIDIA A100-PCIE-40GB": 14,
        "Tesla P100-PCIE-16GB": 5,
        "Tesla P4": 3,
        "Tesla T4": 5,
        "Tesla V100-PCIE-32GB": 10,
    }
    assert (steps.precision == "fp32").all()
    for column in ("mape_own", "mape_logo", "coverage90_logo"):
        assert np.isfinite(steps[column]).all()
    assert (steps.mape_own < 40).all() and (steps.mape_logo < 40).all()


def test_inductor_fused_graph_fuses_attention_and_memory_bound_runs(tiny_gpt2):
    from powerfit.architectures.hf import from_hf_config
    from powerfit.evaluation.steps import inductor_fused_graph
    from powerfit.steps.graph import training_step_graph

    c = from_hf_config(tiny_gpt2)
    g = training_step_graph(c, 4, 32, optimizer="none", loss=False)
    g = g[g.phase == "forward"].reset_index(drop=True)
    fused = inductor_fused_graph(g, c, 4, 32)
    assert (fused.op == "attention").sum() == 1 and "bmm" not in set(fused.op)
    assert fused.loc[fused.op == "attention", "count"].item() == c.n_layers
    # products kept one for one; fewer, larger memory-bound kernels moving fewer bytes
    assert (fused.op == "linear").sum() == (g.op == "linear").sum()
    mem_g, mem_f = ~g.op.isin(["linear", "bmm"]), fused.op == "addu"
    assert mem_f.sum() < mem_g.sum()
    moved = lambda d, m: float((d["bytes"] * d["count"])[m].sum())  # noqa: E731
    assert moved(fused, mem_f) < moved(g, mem_g)
