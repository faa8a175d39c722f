"""Tests of powerfit.power.bundle: the shipped power laws, fitted or transferred."""

from __future__ import annotations

import pytest

from powerfit.architectures.hf import from_hf_config
from powerfit.training import estimate_step


def test_bundled_power_models_are_physical_and_flag_transfer(tiny_gpt2, constant_operator_model):
    from powerfit.power.bundle import load_power_bundle, power_model_for
    from powerfit.power.law import POWER_BOUNDS

    bundle = load_power_bundle()
    if bundle is None:
        pytest.skip("no bundled power_models.json")
    assert bundle["provenance"]["built_by"] == "experiments/build_power_models.py"
    for gpu, d in bundle["gpus"].items():
        fit = power_model_for(gpu)
        fit.check_bounds()  # 0 < P_idle < P_max ≤ TDP, gamma in its range
        assert fit.fitted and fit.gpu == gpu and d["n_configs"] >= 10
        for score in d["heldout"]:  # held-out configurations and held-out GPU
            assert score["coverage90_pct"] >= 80.0
    for score in bundle["end_to_end"]["scores"]:  # predicted step time x power
        assert score["coverage90_pct"] >= 80.0
    t = bundle["transfer"]
    assert POWER_BOUNDS["idle_fraction"][0] <= t["idle_fraction"] < t["max_fraction"] <= 1.0
    h100 = power_model_for("NVIDIA H100 80GB HBM3")
    h100.check_bounds()
    assert not h100.fitted and h100.tdp_w == 700.0
    assert h100.sigma_log > max(d["sigma_log"] for d in bundle["gpus"].values())
    # estimates use the board power laws: measured on the H100, transferred to the L4
    est = estimate_step(
        from_hf_config(tiny_gpt2), "h100", 2, 16, operator_model=constant_operator_model
    )
    assert est.power_source == "fitted"
    est = estimate_step(
        from_hf_config(tiny_gpt2), "l4", 2, 16, operator_model=constant_operator_model
    )
    assert est.power_source == "transferred" and est.power_outside


def test_bundled_board_laws_are_physical_and_transfer_to_unmeasured_gpus():
    from powerfit.power.bundle import board_law_for, load_power_bundle

    bundle = load_power_bundle()
    if bundle is None or "boards" not in bundle:
        pytest.skip("no bundled board power laws")
    boards = bundle["boards"]
    assert set(boards["gpus"]) >= {"NVIDIA H100 80GB HBM3", "Tesla V100-PCIE-32GB"}
    for gpu in boards["gpus"]:
        law = board_law_for(gpu)
        law.check_bounds()
        assert law.fitted and law.n >= 30
    for gpu in ("NVIDIA L4", "NVIDIA A100 80GB PCIe", "NVIDIA H200"):
        law = board_law_for(gpu)
        assert law.source == "transferred" and law.metrics["from"]
        assert law.log_q[1] - law.log_q[0] >= 0.5  # the leave-one-GPU-out spread
        assert 0 < law.p_idle_w <= law.p_max_w <= law.tdp_w
