"""powerfit.training: a Hugging Face model's step and run, the same in Python and CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from powerfit.architectures.hf import from_hf_config
from powerfit.training import estimate_step, estimate_training, out_of_range, run_energy


@pytest.fixture(scope="module")
def gpt2_large(data_home) -> Path:
    path = Path(data_home, "neusight2025", "models", "gpt2_large.json")
    if not path.exists():
        pytest.skip(
            pytest.skip(
                "needs the neusight2025 data set (github.com/sitar-lab/NeuSight, see "
                "powerfit/datasets/neusight2025.py): set POWERFIT_DATA_HOME to a folder "
                "holding neusight2025/"
            )
        )
    return path


def test_python_gives_what_the_cli_prints(gpt2_large, capsys):
    from powerfit.cli import main

    argv = ["estimate", "--hf-config", str(gpt2_large), "--gpu", "h100", "--batch-size", "4",
            "--seq-len", "1024", "--precision", "amp-bf16", "--steps", "50000",
            "--grid-intensity", "350", "--pue", "1.2", "--json"]  # fmt: skip
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    # An alias and the full name give the same estimate (not a transfer for one of them).
    for gpu in ("h100", "NVIDIA H100 80GB HBM3"):
        result = estimate_training(
            gpt2_large, gpu, 4, 1024, precision="amp-bf16", steps=50_000,
            grid_intensity=350, pue=1.2,
        )  # fmt: skip
        assert json.loads(json.dumps(result)) == printed


def test_whole_run_follows_from_the_step(gpt2_large):
    r = estimate_training(gpt2_large, "a100", 4, 1024, tokens=1e9, grid_intensity=50, pue=1.1)
    assert r["steps"] == math.ceil(1e9 / (4 * 1024))
    assert r["run_energy_kwh"] == pytest.approx(r["steps"] * r["energy_j"] / 3.6e6)
    assert r["co2_kg"] == pytest.approx(r["run_energy_kwh"] * 50 / 1000 * 1.1)
    lo, hi = r["co2_interval_kg"]
    assert lo < r["co2_kg"] < hi


def test_interval_widens_outside_the_measured_steps(gpt2_large):
    inside = estimate_training(gpt2_large, "a100", 4, 1024)
    assert inside["gpu"] == "NVIDIA A100 80GB PCIe"
    assert not out_of_range(inside["gpu"], inside["model"]["n_parameters"], 4, 1024, "fp32")
    outside = estimate_training(gpt2_large, "a100", 64, 1024)  # batch beyond the measured
    assert any("batch size 64 outside" in w for w in outside["warnings"])
    assert outside["outside_measured_range"]
    assert outside["step_time_half_width"] > inside["step_time_half_width"]
    # More work never costs less.
    assert outside["energy_j"] > inside["energy_j"] > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"seq_len": 1.5}, "seq_len must be a positive integer"),
        ({"precision": "int8"}, "precision 'int8' is not one of"),
        ({"gpu": "no such gpu"}, "unknown GPU 'no such gpu'"),
        ({"steps": 10, "tokens": 1e6}, "not both"),
        ({"grid_intensity": 300.0}, "grid_intensity needs a run"),
    ],
)
def test_bad_arguments_are_named(gpt2_large, kwargs, message):
    args = {"gpu": "a100", "batch_size": 4, "seq_len": 1024} | kwargs
    with pytest.raises(ValueError, match=message):
        estimate_training(gpt2_large, **args)


def test_estimate_step_and_run_are_consistent(tiny_gpt2, constant_operator_model):
    from powerfit.power.bundle import board_law_for

    c = from_hf_config(tiny_gpt2)
    est = estimate_step(c, "a100", 2, 16, operator_model=constant_operator_model)
    tdp = 300.0
    idle = board_law_for("a100").p_idle_w  # between the board's idle floor and its TDP
    assert 0.05 * tdp <= idle and idle * est.step_time_s <= est.energy_j <= tdp * est.step_time_s
    lo, hi = est.energy_interval_j
    assert lo <= est.energy_j <= hi
    assert est.breakdown("phase").time_s.sum() == pytest.approx(est.step_time_s)
    run = run_energy(est.energy_j, steps=1000, grid_intensity=350.0, pue=1.3)
    assert run["run_energy_kwh"] == pytest.approx(1000 * est.energy_j / 3.6e6)
    assert run["co2_kg"] == pytest.approx(run["run_energy_kwh"] * 350.0 / 1000 * 1.3)
    by_tokens = run_energy(est.energy_j, tokens=2 * 16 * 1000, tokens_per_step=2 * 16)
    assert by_tokens["steps"] == 1000 and "co2_kg" not in by_tokens
    with pytest.raises(ValueError, match="exactly one"):
        run_energy(1.0, steps=1, tokens=1, tokens_per_step=1)
    with pytest.raises(ValueError, match="pue"):
        run_energy(1.0, steps=1, pue=0.5)


def test_a_fused_loss_on_a_hand_written_graph_is_said_and_timed_as_written(tiny_gpt2):
    from powerfit.architectures.hf import from_hf_config

    model = from_hf_config(tiny_gpt2)
    torch_loss = estimate_training(model, "a100", 2, 32, precision="amp-bf16")
    fused = estimate_training(model, "a100", 2, 32, precision="amp-bf16", loss_kernel="fused")
    assert fused["loss_kernel"] is None and fused["step_time_s"] == torch_loss["step_time_s"]
    assert any("--loss-kernel fused needs a traced step" in w for w in fused["warnings"])
    with pytest.raises(ValueError, match="loss kernel must be one of torch, fused"):
        estimate_training(model, "a100", 2, 32, loss_kernel="liger")


def test_a_gpu_without_measured_operators_gets_the_specs_only_interval(tiny_gpt2):
    from powerfit.architectures.hf import from_hf_config
    from powerfit.steps.intervals import half_width_for

    model = from_hf_config(tiny_gpt2)
    measured = estimate_training(model, "a100", 2, 32)
    transferred = estimate_training(model, "NVIDIA GeForce RTX 4090", 2, 32)
    assert measured["mode"].startswith("in-gpu")
    assert transferred["mode"].startswith("specs-only")
    hi = transferred["step_time_interval_s"][1]
    q = math.log(hi / transferred["step_time_s"])
    assert q >= half_width_for("specs-only", outside=False, roofline=False) - 1e-9
