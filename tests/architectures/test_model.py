"""Tests of powerfit.architectures.model: parameter counts of released models."""

from __future__ import annotations

from powerfit.architectures.hf import from_hf_config
from powerfit.architectures.model import parameter_count


def test_hf_parameter_counts():
    """Parameter counts of released models (Hugging Face's numbers)."""
    gpt2 = {"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12, "vocab_size": 50257}
    assert parameter_count(from_hf_config(gpt2)) == 124_439_808
    opt = {
        "model_type": "opt",
        "num_hidden_layers": 24,
        "hidden_size": 2048,
        "num_attention_heads": 32,
        "ffn_dim": 8192,
        "vocab_size": 50272,
        "max_position_embeddings": 2048,
        "word_embed_proj_dim": 2048,
    }
    assert parameter_count(from_hf_config(opt)) == 1_315_758_080
    llama3_8b = {
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "num_hidden_layers": 32,
        "vocab_size": 128256,
    }
    assert parameter_count(from_hf_config(llama3_8b)) == 8_030_261_248
