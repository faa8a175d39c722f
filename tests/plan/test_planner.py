"""The planner and a run over many GPUs, end to end (real laws, real graphs)."""

from __future__ import annotations

import pytest

from powerfit.plan.planner import pareto_front, parse_gpus_available, plan_training

from ..conftest import MAMBA2_SMALL, QWEN35_TEXT

GPT2 = {
    "model_type": "gpt2",
    "n_layer": 4,
    "n_embd": 256,
    "n_head": 8,
    "vocab_size": 1000,
    "n_positions": 512,
}


def test_parse_gpus_available():
    assert parse_gpus_available("h100:16,a100-sxm4-80gb:32") == {
        "NVIDIA H100 80GB HBM3": 16,
        "NVIDIA A100-SXM4-80GB": 32,
    }
    with pytest.raises(ValueError, match=r"unknown GPU 'tpu'.*powerfit gpus"):
        parse_gpus_available("tpu:4")
    with pytest.raises(ValueError, match="KIND:COUNT"):
        parse_gpus_available("h100")


def test_pareto_front():
    assert pareto_front([(1, 5), (2, 3), (3, 4), (4, 1)]) == [True, True, False, True]


def test_plan_ranks_options_that_fit():
    out = plan_training(GPT2, 1e9, 256, {"h100": 4, "a100-sxm4-40gb": 2}, batch_size=16)
    opts = out["options"]
    assert opts and all(o["fits_in_memory"] for o in opts)
    energies = [o["run_energy_kwh"] for o in opts]
    assert energies == sorted(energies)
    assert any(o["pareto"] for o in opts)
    assert {o["gpu"] for o in opts} == {"NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"}
    by_time = plan_training(GPT2, 1e9, 256, {"h100": 4}, batch_size=16, objective="time")
    times = [o["run_time_h"] for o in by_time["options"]]
    assert times == sorted(times)
    with pytest.raises(ValueError, match="attention kernel must be one of"):
        plan_training(GPT2, 1e9, 256, {"h100": 4}, attention_kernel="fa3")
    with pytest.raises(ValueError, match="loss kernel must be one of"):
        plan_training(GPT2, 1e9, 256, {"h100": 4}, loss_kernel="liger")


def test_a_fused_loss_lets_more_splits_fit():
    kw = {"batch_size": 64, "precision": "amp-bf16", "micro_batches": (8, 16, 32, 64)}
    big_vocab = {**GPT2, "vocab_size": 200_000, "n_positions": 1024}
    torch_loss = plan_training(big_vocab, 1e9, 1024, {"a100-sxm4-40gb": 2}, **kw)
    fused = plan_training(big_vocab, 1e9, 1024, {"a100-sxm4-40gb": 2}, loss_kernel="fused", **kw)
    assert fused["loss_kernel"] == "fused" and torch_loss["loss_kernel"] == "torch"
    assert len(fused["options"]) > len(torch_loss["options"])


def test_a_multimodal_config_plans_with_its_language_models_slices():
    """Qwen 3.5 ships as a multimodal config (the language model in ``text_config``):
    its heads, and its linear-attention heads, are split for tensor parallelism."""
    pytest.importorskip("transformers.models.qwen3_5")
    qwen35 = {"model_type": "qwen3_5", "text_config": QWEN35_TEXT}
    out = plan_training(qwen35, 1e9, 256, {"h100": 4}, batch_size=16, precision="amp-bf16")
    assert {o["split"]["tp"] for o in out["options"]} == {1, 2}  # 2 linear key heads
    assert any("is multimodal" in w for w in out["warnings"])


def test_a_model_without_a_traced_slice_plans_without_tensor_parallelism():
    """Mamba 2's tensor-parallel slice is not traced: data and pipeline only, said."""
    pytest.importorskip("transformers.models.mamba2")
    mamba2 = {**MAMBA2_SMALL, "num_hidden_layers": 2}
    out = plan_training(mamba2, 1e9, 256, {"h100": 4}, batch_size=16, precision="amp-bf16")
    assert out["options"] and {o["split"]["tp"] for o in out["options"]} == {1}
    assert any("tensor parallelism not considered" in w for w in out["warnings"])
