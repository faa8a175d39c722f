"""Tests of powerfit.measure.models and powerfit.measure.steps on the CPU."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from powerfit.formats import RUN_COLUMNS  # noqa: E402
from powerfit.measure import make_meter  # noqa: E402
from powerfit.measure.models import build_model  # noqa: E402
from powerfit.measure.steps import (  # noqa: E402
    STEP_COLUMNS,
    estimate_step,
    measure_step,
    measure_steps,
    step_sweep,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models on a shared machine: one thread is faster and steadier."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


GPT = {
    "model": "gpt2",
    "n_layers": 2,
    "d_model": 16,
    "n_heads": 4,
    "seq_len": 8,
    "batch_size": 2,
    "vocab_size": 50,
}


@pytest.mark.parametrize("model", ["bert", "gpt2", "lstm", "gru"])
def test_models_map_tokens_to_logits(model):
    config = {**GPT, "model": model, "hidden_size": 12, "input_size": 10}
    net = build_model(config)
    logits = net(torch.zeros(3, 8, dtype=torch.long))
    assert logits.shape == (3, 8, 50)


def test_transformer_layer_has_the_papers_shapes():
    net = build_model({**GPT, "d_ff": 24})
    block = net.blocks[0]
    assert block.qkv.weight.shape == (48, 16) and block.proj.weight.shape == (16, 16)
    assert block.ff1.weight.shape == (24, 16) and block.ff2.weight.shape == (16, 24)


@pytest.mark.parametrize("model", ["bert", "gpt2"])
def test_explicit_attention_computes_the_same_as_sdpa(model):
    torch.manual_seed(0)
    fused = build_model({**GPT, "model": model})
    explicit = build_model({**GPT, "model": model}, attention="explicit")
    explicit.load_state_dict(fused.state_dict())
    tokens = torch.randint(50, (2, 8))
    torch.testing.assert_close(fused(tokens), explicit(tokens), atol=1e-5, rtol=1e-4)


def test_gpt2_is_causal_and_bert_is_not():
    tokens = torch.randint(50, (1, 8))
    changed = tokens.clone()
    changed[0, -1] = (tokens[0, -1] + 1) % 50
    for model, causal in (("gpt2", True), ("bert", False)):
        torch.manual_seed(0)
        net = build_model({**GPT, "model": model})
        same = torch.allclose(net(tokens)[0, :-1], net(changed)[0, :-1])
        assert same is causal


def test_build_model_names_bad_sizes():
    with pytest.raises(ValueError, match="model must be one of"):
        build_model({**GPT, "model": "t5"})
    with pytest.raises(ValueError, match="needs n_heads"):
        build_model({k: v for k, v in GPT.items() if k != "n_heads"})
    with pytest.raises(ValueError, match="multiple of n_heads"):
        build_model({**GPT, "n_heads": 3})
    with pytest.raises(ValueError, match="n_layers must be a positive integer"):
        build_model({**GPT, "n_layers": 1.5})


def test_estimate_counts_training_flops():
    from powerfit.paper import flops

    est = estimate_step(GPT)
    layer = sum(
        flops.layer_flops("transformer", batch_size=2, seq_len=8, d_model=16, n_heads=4).values()
    )
    assert est["flops"] == pytest.approx(3 * (2 * layer + 2 * 16 * 16 * 50))
    assert est["memory_bytes"] > 0
    assert estimate_step(GPT, attention="explicit")["memory_bytes"] > est["memory_bytes"]


def test_full_sweep_covers_the_papers_ranges():
    sweep = step_sweep(max_memory_bytes=48e9)
    assert list(sweep.columns) == list(STEP_COLUMNS)
    assert len(sweep) == 100
    assert sweep["model"].value_counts().to_dict() == {
        "bert": 35,
        "gpt2": 35,
        "lstm": 15,
        "gru": 15,
    }
    t = sweep[sweep["arch"] == "transformer"]
    assert t["n_layers"].between(2, 12).all() and t["d_model"].between(128, 1280).all()
    assert t["n_heads"].between(2, 16).all() and (t["d_model"] % t["n_heads"] == 0).all()
    assert t["batch_size"].between(16, 256).all() and t["seq_len"].between(128, 1024).all()
    assert t["d_model"].nunique() >= 5 and t["n_layers"].nunique() >= 4
    costs = [estimate_step(row) for _, row in sweep.iterrows()]
    assert max(c["memory_bytes"] for c in costs) <= 48e9
    decades = np.log10(max(c["flops"] for c in costs) / min(c["flops"] for c in costs))
    assert decades >= 3


def test_sweep_respects_limits_and_validates():
    small = step_sweep(20, models=["lstm"], max_step_flops=1e11, seed=3)
    assert (small["model"] == "lstm").all() and len(small) == 20
    assert all(estimate_step(r)["flops"] <= 1e11 for _, r in small.iterrows())
    with pytest.raises(ValueError, match="model must be one of"):
        step_sweep(models=["cnn"])
    with pytest.raises(ValueError, match="n must be"):
        step_sweep(0)


def test_measure_step_reports_per_step_means():
    result = measure_step(GPT, make_meter("none"), warmup=1, min_steps=4, min_time_s=0.0, chunks=2)
    assert result["repeats"] == 4
    assert result["duration_s"] > 0 and result["duration_std_s"] >= 0
    assert math.isnan(result["energy_j"]) and math.isnan(result["energy_std_j"])
    with pytest.raises(ValueError, match="warmup"):
        measure_step(GPT, make_meter("none"), warmup=0)


def test_measure_steps_writes_the_canonical_run_format():
    configs = step_sweep(quick=True)
    frame = measure_steps(
        configs, meter=make_meter("none"), warmup=1, min_steps=2, min_time_s=0.0, chunks=2
    )
    assert tuple(frame.columns) == RUN_COLUMNS
    assert len(frame) == 4 and frame.attrs == {"skipped": 0, "unfinished": 0}
    assert sorted(frame["model"]) == ["bert", "gpt2", "gru", "lstm"]
    assert (frame["duration_s"] > 0).all() and (frame["repeats"] >= 2).all()
    for column in ("energy_j", "gpu_energy_j", "cpu_energy_j", "ram_energy_j", "idle_power_w"):
        assert frame[column].isna().all(), column  # time only: missing, not zero
    recurrent = frame[frame["arch"] != "transformer"]
    assert recurrent["d_model"].isna().all() and recurrent["hidden_size"].notna().all()


def test_measure_steps_in_half_precision_and_at_the_deadline():
    configs = step_sweep(2, quick=True, models=["gpt2", "gru"])
    meter = make_meter("none")
    frame = measure_steps(
        configs, meter=meter, precision="bf16", warmup=1, min_steps=1, min_time_s=0.0, chunks=1
    )
    assert frame["precision"].eq("bf16").all() and len(frame) == 2
    late = measure_steps(configs, meter=meter, deadline=time.monotonic())
    assert len(late) == 0 and late.attrs["unfinished"] == 2
    with pytest.raises(ValueError, match="'model' column"):
        measure_steps(configs.drop(columns="model"), meter=meter)
