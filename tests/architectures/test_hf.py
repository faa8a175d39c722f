"""Tests of powerfit.architectures.hf: Hugging Face config.json files read into ModelConfig."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from powerfit.architectures.hf import from_hf_config
from powerfit.architectures.model import ModelConfig
from powerfit.exceptions import DataError


def _models_dir() -> Path | None:
    home = os.environ.get("POWERFIT_DATA_HOME")
    if not home:
        return None
    path = Path(home) / "neusight2025" / "models"
    return path if path.is_dir() else None


MODELS = _models_dir()
needs_data = pytest.mark.skipif(
    MODELS is None, reason="needs POWERFIT_DATA_HOME with neusight2025"
)

LLAMA = {
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "num_hidden_layers": 32,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
}

NEOX = {
    "model_type": "gpt_neox",
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
    "vocab_size": 50304,
    "rotary_pct": 0.25,
    "hidden_act": "gelu",
    "use_parallel_residual": True,
}

T5 = {
    "model_type": "t5",
    "d_model": 512,
    "d_kv": 64,
    "d_ff": 1024,
    "num_heads": 6,
    "num_layers": 8,
    "num_decoder_layers": 8,
    "vocab_size": 32128,
    "feed_forward_proj": "gated-gelu",
    "tie_word_embeddings": False,
}


@needs_data
def test_every_neusight_config_reads():
    files = sorted(MODELS.glob("*.json"))
    assert len(files) >= 10
    for path in files:
        cfg = from_hf_config(path)
        assert isinstance(cfg, ModelConfig), path
        assert cfg.n_heads * cfg.d_kv in (cfg.d_model, cfg.n_heads * cfg.d_kv)


@needs_data
def test_neusight_configs_values():
    data = json.loads((MODELS / "gpt2_large.json").read_text())
    gpt2 = from_hf_config(MODELS / "gpt2_large.json")
    assert gpt2.family == "gpt2"
    assert (gpt2.n_layers, gpt2.d_model, gpt2.n_heads) == (
        data["n_layer"],
        data["n_embd"],
        data["n_head"],
    )
    assert gpt2.d_ff == 4 * data["n_embd"] and gpt2.activation == "gelu_new"
    assert gpt2.qkv_fused and gpt2.causal and gpt2.tie_word_embeddings

    opt = from_hf_config(MODELS / "opt_13.json")
    assert (opt.family, opt.activation, opt.d_ff, opt.embed_proj_dim) == (
        "opt",
        "relu",
        8192,
        2048,
    )

    switch = from_hf_config(MODELS / "switchxl4.json")
    assert switch.is_encoder_decoder and switch.family == "t5"
    assert (switch.n_experts, switch.sparse_step, switch.expert_capacity) == (4, 2, 64)
    assert switch.d_kv == 128 and switch.n_heads * switch.d_kv == 4096 != switch.d_model
    assert switch.norm == "rmsnorm" and switch.positional == "relative"

    bert = from_hf_config(MODELS / "bert_large.json")
    assert not bert.causal and not bert.pre_norm and bert.type_vocab_size == 2


def test_llama_gqa_swiglu_rmsnorm_rotary():
    cfg = from_hf_config(LLAMA)
    assert cfg.family == "llama" and cfg.gated_ffn and cfg.activation == "silu"
    assert (cfg.n_heads, cfg.n_kv_heads, cfg.d_kv) == (32, 8, 128)
    assert cfg.norm == "rmsnorm" and cfg.positional == "rotary" and not cfg.tie_word_embeddings
    mistral = from_hf_config({**LLAMA, "model_type": "mistral", "sliding_window": 4096})
    assert mistral.family == "llama"


def test_neox_and_t5():
    neox = from_hf_config(NEOX)
    assert neox.qkv_fused and neox.parallel_residual and neox.rotary_dim == 32
    t5 = from_hf_config(T5)
    assert t5.gated_ffn and t5.activation == "gelu" and t5.d_kv == 64 and t5.n_experts == 0
    assert t5.n_decoder_layers == 8


def test_file_and_dict_agree(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA))
    assert from_hf_config(path) == from_hf_config(LLAMA)
    assert from_hf_config(str(path)).to_dict()["n_kv_heads"] == 8


def test_a_model_folder_reads_its_config_json(tmp_path):
    snapshot = tmp_path / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (tmp_path / "blob").write_text(json.dumps(LLAMA))
    os.symlink(tmp_path / "blob", snapshot / "config.json")  # as the Hub cache stores it
    assert from_hf_config(snapshot) == from_hf_config(LLAMA)
    with pytest.raises(DataError, match=r"folder without config\.json") as err:
        from_hf_config(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_a_hub_id_is_not_downloaded():
    with pytest.raises(DataError, match="downloads nothing") as err:
        from_hf_config("meta-llama/Llama-3.1-8B")
    assert str(err.value).startswith("meta-llama/Llama-3.1-8B")


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        (
            {
                "model_type": "gpt2",
                "n_layer": 2,
                "n_embd": 64,
                "n_head": 4,
                "vocab_size": 10,
                "add_cross_attention": True,
            },
            "add_cross_attention",
        ),
        (
            {
                "model_type": "gpt2",
                "n_layer": 2,
                "n_embd": 64,
                "n_head": 4,
                "vocab_size": 10,
                "reorder_and_upcast_attn": True,
            },
            "reorder_and_upcast_attn",
        ),
        ({**LLAMA, "pretraining_tp": 2}, "pretraining_tp"),
        (
            {
                "model_type": "opt",
                "hidden_size": 64,
                "num_attention_heads": 4,
                "num_hidden_layers": 2,
                "vocab_size": 10,
                "layerdrop": 0.1,
            },
            "layerdrop",
        ),
        ({**LLAMA, "hidden_act": "gelu_10"}, "hidden_act"),
        (
            {
                "model_type": "bert",
                "hidden_size": 64,
                "num_attention_heads": 4,
                "num_hidden_layers": 2,
                "vocab_size": 10,
                "position_embedding_type": "relative_key",
            },
            "position_embedding_type",
        ),
    ],
)
def test_unmodelled_fields_are_refused_by_name(patch, field):
    with pytest.raises(DataError) as info:
        from_hf_config(patch)
    assert info.value.column == field
    assert field in str(info.value)


def test_unknown_family_and_missing_field(tmp_path):
    with pytest.raises(DataError, match="model_type 'mamba'"):
        from_hf_config({"model_type": "mamba"})
    bad = {k: v for k, v in LLAMA.items() if k != "intermediate_size"}
    with pytest.raises(DataError, match="intermediate_size"):
        from_hf_config(bad)
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match=str(path).replace("\\", "\\\\")):
        from_hf_config(path)
    with pytest.raises(DataError, match="must be an integer"):
        from_hf_config({**LLAMA, "hidden_size": "4096"})


def test_model_config_validates():
    with pytest.raises(ValueError, match="n_kv_heads"):
        ModelConfig("llama", 2, 64, 4, 3, 16, 128, 100)
    with pytest.raises(ValueError, match="d_model"):
        ModelConfig("gpt2", 2, 0, 4, 4, 16, 128, 100)
