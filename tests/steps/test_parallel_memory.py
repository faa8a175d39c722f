"""Per-GPU memory: bytes per parameter of mixed-precision AdamW, what ZeRO shards, the split."""

from __future__ import annotations

import pytest

from powerfit.architectures.hf import from_hf_config
from powerfit.steps.parallel_memory import per_gpu_memory, tensor_parallel_config

LLAMA_7B = {
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 32,
    "max_position_embeddings": 4096,
    "vocab_size": 32000,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
}
GIB = 1024**3


@pytest.fixture(scope="module")
def llama():
    return from_hf_config(LLAMA_7B)


def test_mixed_precision_adamw_is_16_bytes_a_parameter(llama):
    mem = per_gpu_memory(llama, "amp-bf16", 1, 512, capacity_bytes=80 * GIB)
    n = llama.n_parameters
    states = mem.parts["weights"] + mem.parts["gradients"] + mem.parts["optimizer_states"]
    assert states == pytest.approx(16 * n)
    assert not mem.fits_in_memory  # 7B with AdamW does not fit one 80 GB GPU


def test_zero3_over_8_fits_and_shards_everything(llama):
    mem = per_gpu_memory(
        llama,
        "amp-bf16",
        1,
        512,
        dp=8,
        sharding="full",
        checkpointing=True,
        capacity_bytes=80 * GIB,
    )
    n = llama.n_parameters
    assert mem.parts["optimizer_states"] == pytest.approx(8 * n / 8)
    assert mem.parts["gradients"] == pytest.approx(4 * n / 8)
    assert mem.parts["gathered_weights"] > 0
    assert mem.fits_in_memory


def test_tensor_and_pipeline_parallel_split_the_model(llama):
    half = tensor_parallel_config(llama, 2)
    assert (half.n_heads, half.d_ff, half.d_model) == (16, 5504, 4096)
    assert half.n_parameters < 0.55 * llama.n_parameters
    one = per_gpu_memory(llama, "bf16", 1, 1024).parts["weights"]
    four = per_gpu_memory(llama, "bf16", 1, 1024, pp=4).parts["weights"]
    assert 0.2 < four / one < 0.3
    with pytest.raises(ValueError, match="--tp 3 does not divide the 32 attention heads"):
        tensor_parallel_config(llama, 3)
    with pytest.raises(ValueError, match="sharding must be one of"):
        per_gpu_memory(llama, "bf16", 1, 1024, sharding="zero4")


def test_sharding_and_checkpointing_lower_memory(llama):
    kw = dict(dp=8, micro_batches=1)
    sizes = [
        per_gpu_memory(llama, "amp-bf16", 1, 256, sharding=s, **kw).total_bytes
        for s in ("none", "optimizer", "gradients", "full")
    ]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    ckpt = per_gpu_memory(llama, "amp-bf16", 8, 512, checkpointing=True).parts["activations"]
    full = per_gpu_memory(llama, "amp-bf16", 8, 512).parts["activations"]
    assert ckpt < full
