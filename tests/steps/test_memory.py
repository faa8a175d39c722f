"""Peak memory of a training step (:mod:`powerfit.steps.memory`)."""

from __future__ import annotations

import pytest

from powerfit.architectures.trace import TracedStep
from powerfit.steps.memory import (
    BYTES_PER_PARAMETER,
    CONTEXT_BYTES,
    SHARDINGS,
    memory_warning,
    step_memory,
)


def _trace(n_params=10**9, layers=(2e9, 3e9), core=(1e9, 1.5e9)):
    return TracedStep(
        model_type="llama",
        model_class="LlamaForCausalLM",
        n_parameters=n_params,
        d_model=1024,
        seq_len=2048,
        attention="eager",
        nodes=[],
        activations={
            "layers": list(layers),
            "attention_core": list(core),
            "largest_layer": [layers[0] / 10, layers[1] / 10],
            "other": [0.0, 0.0],
            "largest_temporary": [0.0, 0.0],
        },
        layers=10,
    )


def test_states_by_precision_and_optimizer():
    t = _trace()
    fp32 = step_memory(t, 2, precision="fp32", optimizer="adamw")
    assert fp32["weights_bytes"] == 4e9 and fp32["gradients_bytes"] == 4e9
    assert fp32["optimizer_bytes"] == 8e9
    bf16 = step_memory(t, 2, precision="bf16", optimizer="adamw")
    assert (bf16["weights_bytes"], bf16["optimizer_bytes"]) == (2e9, 4e9)
    assert step_memory(t, 2, precision="amp-bf16")["weights_bytes"] == 6e9
    assert step_memory(t, 2, optimizer="sgd")["optimizer_bytes"] == 0.0
    assert set(BYTES_PER_PARAMETER) >= {"fp32", "tf32", "fp16", "bf16", "amp-fp16", "amp-bf16"}


def test_activations_scale_with_batch_and_checkpointing_lowers_them():
    t = _trace()
    a2 = step_memory(t, 2)["activations_bytes"]
    a4 = step_memory(t, 4)["activations_bytes"]
    assert a2 == pytest.approx(4 * 2e9) and a4 == pytest.approx(4 * 4e9)  # affine in batch
    sel = step_memory(t, 4, checkpointing="selective")["activations_bytes"]
    full = step_memory(t, 4, checkpointing="full")["activations_bytes"]
    assert full < sel < a4
    assert sel == pytest.approx(4 * (4e9 - 2e9))


def test_fits_and_shortfall():
    t = _trace(n_params=70 * 10**9)
    out = step_memory(t, 1, precision="bf16", capacity_bytes=80e9)
    assert out["fits_in_memory"] is False
    assert out["shortfall_gb"] == pytest.approx(out["memory_gb"] - 80.0)
    small = step_memory(_trace(n_params=10**6, layers=(0, 0), core=(0, 0)), 1, capacity_bytes=80e9)
    assert small["fits_in_memory"] and small["workspace_bytes"] == CONTEXT_BYTES


def test_sharding_divides_the_states():
    t = _trace()
    one, eight = step_memory(t, 2), step_memory(t, 2, sharding=8)
    assert eight["weights_bytes"] == one["weights_bytes"] / 8
    assert eight["activations_bytes"] == one["activations_bytes"]
    with pytest.raises(ValueError):
        step_memory(t, 2, sharding=0)


def test_zero_stages_shard_their_parts_and_full_gathers_two_layers():
    t = _trace()
    sizes = [step_memory(t, 2, sharding=8, sharded=s) for s in SHARDINGS]
    totals = [m["total_bytes"] for m in sizes]
    assert totals == sorted(totals, reverse=True)
    none, opt, grads, full = sizes
    assert opt["optimizer_bytes"] == none["optimizer_bytes"] / 8
    assert grads["gradients_bytes"] == none["gradients_bytes"] / 8
    assert opt["gradients_bytes"] == none["gradients_bytes"]
    assert full["weights_bytes"] == none["weights_bytes"] / 8
    assert full["gathered_bytes"] == pytest.approx(2 * 4e9 / 10) and none["gathered_bytes"] == 0
    with pytest.raises(ValueError, match="sharded must be one of"):
        step_memory(t, 2, sharded="zero4")


def test_memory_warning_names_the_shortfall():
    m = step_memory(_trace(), 2, capacity_bytes=10e9)
    line = memory_warning(m, "NVIDIA L4")
    assert line.startswith("does not fit in memory: the step needs") and "\n" not in line
    assert f"{m['shortfall_gb']:.1f} GB short" in line and "NVIDIA L4 has 10.0 GB" in line


def test_fsdp_under_amp_keeps_fp32_shards_and_gathers_half_precision_layers():
    t = _trace()
    full = step_memory(t, 2, precision="amp-bf16", sharding=8, sharded="full")
    zero2 = step_memory(t, 2, precision="amp-bf16", sharding=8, sharded="gradients")
    assert full["weights_bytes"] == pytest.approx(1e9 * 4 / 8)  # no whole bf16 copy
    assert zero2["weights_bytes"] == pytest.approx(1e9 * 6)  # unsharded: FP32 + bf16 copy
    assert full["gathered_bytes"] == pytest.approx(2 * 1e9 * 2 / 10)  # two bf16 layers


def test_tensor_and_pipeline_parallel_split_states_and_activations():
    t = _trace()
    one = step_memory(t, 2)
    tp2 = step_memory(t, 2, tp=2)
    pp4 = step_memory(t, 2, pp=4, in_flight=4)
    assert tp2["weights_bytes"] == one["weights_bytes"] / 2
    assert tp2["activations_bytes"] == pytest.approx(one["activations_bytes"] / 2)
    assert pp4["weights_bytes"] == one["weights_bytes"] / 4
    # the first stage holds ceil(10 / 4) = 3 of 10 layers, for 4 micro-batches in flight
    assert pp4["activations_bytes"] == pytest.approx(one["activations_bytes"] * 3 / 10 * 4)


def test_a_traced_llama_7b_needs_zero_to_fit_80_gb():
    pytest.importorskip("transformers")
    from powerfit.architectures.cache import cached_trace

    llama = {
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "num_key_value_heads": 32,
        "max_position_embeddings": 4096,
        "vocab_size": 32000,
        "tie_word_embeddings": False,
    }
    trace, _hit = cached_trace(llama, 4096, precision="amp-bf16")
    kw = dict(precision="amp-bf16", capacity_bytes=80e9)
    alone = step_memory(trace, 1, **kw)
    assert alone["weights_bytes"] + alone["gradients_bytes"] + alone["optimizer_bytes"] == (
        pytest.approx(18 * trace.n_parameters)
    )
    assert not alone["fits_in_memory"]  # AMP AdamW: 18 B a parameter, 121 GB
    zero3 = step_memory(trace, 1, sharding=8, sharded="full", checkpointing="selective", **kw)
    assert zero3["fits_in_memory"]
    full = step_memory(trace, 1, sharding=8, sharded="full", checkpointing="full", **kw)
    assert full["activations_bytes"] < zero3["activations_bytes"]


def test_a_fused_loss_keeps_the_largest_temporaries_in_half_precision():
    t = _trace()
    t.activations["largest_temporary"] = [1e9, 1.5e9]  # the logits at batch 2 and 3
    torch_loss = step_memory(t, 2, precision="amp-bf16")
    fused = step_memory(t, 2, precision="amp-bf16", loss_kernel="fused")
    assert torch_loss["workspace_bytes"] == pytest.approx(2 * 4 * 1e9 + CONTEXT_BYTES)
    assert fused["workspace_bytes"] == pytest.approx(2 * 2 * 1e9 + CONTEXT_BYTES)
    assert torch_loss["total_bytes"] - fused["total_bytes"] == pytest.approx(4e9)
    fp32 = [step_memory(t, 2, loss_kernel=k)["total_bytes"] for k in ("torch", "fused")]
    assert fp32[0] == fp32[1]  # nothing to save in FP32
    with pytest.raises(ValueError, match="loss_kernel must be torch or fused"):
        step_memory(t, 2, loss_kernel="liger")
