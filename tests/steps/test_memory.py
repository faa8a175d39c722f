"""Peak memory of a training step (:mod:`powerfit.steps.memory`)."""

from __future__ import annotations

import pytest

from powerfit.architectures.trace import TracedStep
from powerfit.steps.memory import BYTES_PER_PARAMETER, CONTEXT_BYTES, step_memory


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
