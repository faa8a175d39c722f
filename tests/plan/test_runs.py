"""A run over many GPUs: energy of all GPUs, the whole run, one GPU = the single-GPU estimate."""

from __future__ import annotations

import pytest

from powerfit.plan.runs import estimate_parallel_training
from powerfit.training import estimate_training

GPT2 = {
    "model_type": "gpt2",
    "n_layer": 4,
    "n_embd": 256,
    "n_head": 8,
    "vocab_size": 1000,
    "n_positions": 512,
}


def test_run_energy_is_all_gpus_and_says_host_power():
    r1 = estimate_parallel_training(GPT2, "h100", 1, 8, 256, tokens=1e8)
    r4 = estimate_parallel_training(GPT2, "h100", 4, 8, 256, tokens=1e8, node_power_w=1000)
    for r in (r1, r4):
        assert r["energy_j"] == pytest.approx(
            r["step_time_s"] * (r["split"]["n_gpus"] * r["power_per_gpu_w"] + r["node_power_w"])
        )
        assert r["gpu_hours"] == pytest.approx(
            r["split"]["n_gpus"] * r["steps"] * r["step_time_s"] / 3600
        )
        assert 0 < r["mfu"] < 1 and r["co2_kg"] > 0 and r["tokens_per_s"] > 0
    assert "not included" in r1["host_power_note"] and "included" in r4["host_power_note"]


@pytest.mark.parametrize(("gpu", "precision"), [("a100", "fp32"), ("h100", "amp-bf16")])
def test_one_gpu_is_the_single_gpu_estimate(gpu, precision):
    one = estimate_training(GPT2, gpu, 4, 256, precision=precision)
    split = estimate_parallel_training(GPT2, gpu, 1, 4, 256, precision=precision)
    assert split["step_time_s"] == pytest.approx(one["step_time_s"], rel=1e-9)
    assert split["energy_j"] == pytest.approx(one["energy_j"], rel=1e-9)
    assert split["parts"]["dp_comm_s"] == split["parts"]["tp_comm_s"] == 0


def test_the_attention_kernel_reaches_a_split_as_one_gpu():
    kw = {"precision": "bf16", "attention": "sdpa", "attention_kernel": "triton"}
    one = estimate_training(GPT2, "a100", 4, 256, **kw)
    split = estimate_parallel_training(GPT2, "a100", 1, 4, 256, **kw)
    assert split["attention_kernel"] == one["attention_kernel"] == "triton"
    assert split["step_time_s"] == pytest.approx(one["step_time_s"], rel=1e-9)
    with pytest.raises(ValueError, match="attention kernel must be one of fa2, cudnn, triton"):
        estimate_parallel_training(GPT2, "a100", 2, 4, 256, attention_kernel="fa3")


def test_an_mpt_config_splits_over_data_and_pipeline_not_tensor_parallel():
    mpt = {
        "model_type": "mpt",
        "d_model": 128,
        "n_heads": 4,  # MPT's name for the head count
        "n_layers": 4,
        "vocab_size": 1000,
        "max_seq_len": 256,
        "attn_config": {"attn_impl": "triton"},
    }
    r = estimate_parallel_training(mpt, "h100", 4, 8, 256, pp=2, precision="bf16")
    assert r["split"]["dp"] == 2 and r["attention_kernel"] == "triton"
    with pytest.raises(ValueError, match=r"--tp 2: .*not traced.*use --tp 1"):
        estimate_parallel_training(mpt, "h100", 4, 8, 256, tp=2, precision="bf16")


def test_impossible_run_and_bad_host_power():
    with pytest.raises(ValueError, match="--pp 5 exceeds the model's 4 layers"):
        estimate_parallel_training(GPT2, "h100", 5, 5, 256, pp=5)
    with pytest.raises(ValueError, match="--node-power-w must be ≥ 0"):
        estimate_parallel_training(GPT2, "h100", 2, 4, 256, node_power_w=-1)


def test_checkpointing_modes_and_memory_of_a_split():
    runs = {
        mode: estimate_parallel_training(
            GPT2, "h100", 4, 8, 256, precision="amp-bf16", checkpointing=mode, sharding="full"
        )
        for mode in ("none", "selective", "full")
    }
    assert {r["checkpointing"] for r in runs.values()} == {"none", "selective", "full"}
    acts = [runs[m]["memory"]["activations_bytes"] for m in ("none", "selective", "full")]
    assert acts[0] > acts[1] > acts[2] > 0
    times = [runs[m]["step_time_s"] for m in ("none", "selective", "full")]
    assert times[0] < times[1] < times[2]  # recomputation costs time
    assert runs["none"]["attention"] == "sdpa" and runs["none"]["fits_in_memory"] is True
    one = estimate_training(GPT2, "h100", 2, 256, precision="amp-bf16")
    # ZeRO-3 over 4: the states a quarter of one GPU's, plus two gathered layers
    mem = runs["none"]["memory"]
    assert mem["optimizer_bytes"] == pytest.approx(one["memory"]["optimizer_bytes"] / 4)
    assert mem["gathered_bytes"] > 0


def test_a_model_only_transformers_knows_is_split():
    pytest.importorskip("transformers")
    qwen = {
        "model_type": "qwen2",
        "hidden_size": 256,
        "intermediate_size": 688,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "num_hidden_layers": 4,
        "vocab_size": 1000,
        "max_position_embeddings": 512,
    }
    one = estimate_training(qwen, "h100", 4, 256, precision="amp-bf16")
    split = estimate_parallel_training(qwen, "h100", 1, 4, 256, precision="amp-bf16")
    assert split["step_time_s"] == pytest.approx(one["step_time_s"], rel=1e-9)
    tp = estimate_parallel_training(qwen, "h100", 2, 4, 256, tp=2, precision="amp-bf16")
    assert tp["parts"]["tp_comm_s"] > 0 and 0 < tp["mfu"] < 1
    assert not any("hand-written" in w for w in tp["warnings"])
    with pytest.raises(ValueError, match="--tp 3 does not divide the 8 attention heads"):
        estimate_parallel_training(qwen, "h100", 3, 3, 256, tp=3)


def test_the_loss_kernel_reaches_a_split_as_one_gpu():
    kw = {"precision": "amp-bf16", "loss_kernel": "fused"}
    one = estimate_training(GPT2, "a100", 4, 256, **kw)
    split = estimate_parallel_training(GPT2, "a100", 1, 4, 256, **kw)
    torch_loss = estimate_parallel_training(GPT2, "a100", 1, 4, 256, precision="amp-bf16")
    assert split["loss_kernel"] == one["loss_kernel"] == "fused"
    assert torch_loss["loss_kernel"] == "torch"
    assert split["step_time_s"] == pytest.approx(one["step_time_s"], rel=1e-9)
    assert split["step_time_s"] < torch_loss["step_time_s"]
    assert split["memory"]["workspace_bytes"] < torch_loss["memory"]["workspace_bytes"]
    with pytest.raises(ValueError, match="loss kernel must be one of torch, fused"):
        estimate_parallel_training(GPT2, "a100", 2, 4, 256, loss_kernel="liger")
