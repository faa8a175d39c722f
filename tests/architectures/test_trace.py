"""Tracing a training step on the meta device (:mod:`powerfit.architectures.trace`).

The hand-written graphs of :mod:`powerfit.architectures.model` are the checked
reference: on their families the traced step has the same parameter count and the
same matrix-product FLOPs, phase by phase.
"""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from powerfit.architectures.attention_kinds import resolve_attention
from powerfit.architectures.hf import from_hf_config
from powerfit.architectures.trace import TracedStep, trace_step
from powerfit.exceptions import DataError
from powerfit.steps.graph import traced_step_graph, training_step_graph

SMALL = {
    "gpt2": {"n_layer": 3, "n_embd": 64, "n_head": 4, "vocab_size": 500, "n_positions": 128},
    "llama": {
        "num_hidden_layers": 3,
        "hidden_size": 64,
        "intermediate_size": 160,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 500,
    },
    "opt": {
        "num_hidden_layers": 3,
        "hidden_size": 64,
        "ffn_dim": 256,
        "num_attention_heads": 4,
        "vocab_size": 500,
        "word_embed_proj_dim": 64,
        "max_position_embeddings": 128,
    },
    "gpt_neox": {
        "num_hidden_layers": 3,
        "hidden_size": 64,
        "intermediate_size": 256,
        "num_attention_heads": 4,
        "vocab_size": 500,
        "rotary_pct": 0.25,
    },
    "bert": {
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "vocab_size": 300,
    },
    "t5": {
        "num_layers": 2,
        "num_decoder_layers": 2,
        "d_model": 64,
        "d_ff": 128,
        "d_kv": 16,
        "num_heads": 4,
        "vocab_size": 300,
    },
    "mistral": {
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "intermediate_size": 160,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "vocab_size": 500,
    },
}


def _products(graph, phase):
    g = graph[(graph.phase == phase) & graph.op.isin(["linear", "bmm"])]
    return float((g.flop * g["count"]).sum())


@pytest.mark.parametrize("family", sorted(SMALL))
def test_traced_equals_hand_written(family):
    data = {"model_type": family, **SMALL[family]}
    trace = trace_step(data, 32, attention="eager")
    reference = from_hf_config(data)
    assert trace.n_parameters == reference.n_parameters
    traced = traced_step_graph(trace, 3, "fp32", "adamw")
    hand = training_step_graph(reference, 3, 32, "fp32", "adamw")
    for phase in ("forward", "backward"):
        assert _products(traced, phase) == pytest.approx(_products(hand, phase), rel=1e-9)
    # the optimizer's passes are the same rows
    opt_t = traced[traced.phase == "optimizer"][["op", "B", "H", "bytes"]].reset_index(drop=True)
    opt_h = hand[hand.phase == "optimizer"][["op", "B", "H", "bytes"]].reset_index(drop=True)
    assert opt_t.equals(opt_h)


def test_batch_is_symbolic():
    """The trace at batch 2 and 3 gives the graph a trace at batch 5 would."""
    data = {"model_type": "llama", **SMALL["llama"]}
    trace = trace_step(data, 16)
    g5 = traced_step_graph(trace, 5)
    assert (g5.flop * g5["count"]).sum() > (traced_step_graph(trace, 4).flop).sum()
    fwd = g5[(g5.phase == "forward") & (g5.op == "linear")]
    assert set(fwd.M) >= {5 * 16}


def test_sdpa_is_one_fused_node_forward_and_backward():
    data = {"model_type": "llama", **SMALL["llama"]}
    trace = trace_step(data, 64, attention="sdpa")
    g = traced_step_graph(trace, 2)
    fwd = g[g.op == "attention"]
    bwd = g[g.op == "attention_bwd"]
    assert len(fwd) == 1 and len(bwd) == 1
    row = fwd.iloc[0]
    assert (row.batch, row.heads, row.kv_heads, row.seq_q, row.head_dim, row.causal) == (
        2,
        4,
        2,
        64,
        16,
        1,
    )
    assert fwd["count"].iloc[0] == 3  # one layer traced, three run
    layers = g[g.name.str.contains(r"\*")]
    assert not layers.op.isin(["bmm", "softmax"]).any()  # no eager attention left
    assert bwd.flop.iloc[0] == pytest.approx(2.5 * row.flop)


def test_checkpointing_recomputes_layers_or_attention_only():
    data = {"model_type": "llama", **SMALL["llama"]}
    trace = trace_step(data, 32, attention="eager")
    none = traced_step_graph(trace, 2, checkpointing="none")
    full = traced_step_graph(trace, 2, checkpointing="full")
    sel = traced_step_graph(trace, 2, checkpointing="selective")
    assert "recompute" not in set(none.phase)
    rec_full = full[full.phase == "recompute"]
    rec_sel = sel[sel.phase == "recompute"]
    assert rec_full.op.isin(["linear"]).any()
    assert not rec_sel.op.isin(["linear"]).any()
    assert rec_sel.op.isin(["bmm"]).all() or rec_sel.op.isin(["bmm", "softmax"]).any()
    assert len(rec_sel) < len(rec_full)


@pytest.mark.parametrize(
    "model_type,params",
    [
        ("bloom", None),
        ("falcon", None),
        ("mpt", None),
        ("olmo2", None),
        ("qwen2", None),
        ("qwen3", None),
        ("gemma", None),
        ("phi3", None),
        ("mixtral", None),
        ("gpt_bigcode", None),
    ],
)
def test_families_trace_with_transformers_parameter_count(model_type, params):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    small = {
        "num_hidden_layers": 2,
        "n_layer": 2,
        "n_layers": 2,
        "hidden_size": 64,
        "n_embd": 64,
        "d_model": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "n_head": 4,
        "n_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 66000,  # the defaults' token ids stay inside the vocabulary
        "head_dim": 16,
    }
    cfg = AutoConfig.for_model(model_type)
    known = cfg.to_dict()
    data = {"model_type": model_type, **{k: v for k, v in small.items() if k in known}}
    trace = trace_step(data, 16)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**data))
    assert trace.n_parameters == sum(p.numel() for p in model.parameters())
    g = traced_step_graph(trace, 2, "bf16")
    assert (g.flop * g["count"]).sum() > 0


SMALL_TEXT = {
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": 300,
}


@pytest.mark.parametrize(
    "model_type,text",
    [
        ("llama4", {"intermediate_size_mlp": 128, "num_local_experts": 2}),
        (
            "qwen3_5",
            {
                "layer_types": ["linear_attention", "full_attention"],
                "linear_num_key_heads": 2,
                "linear_num_value_heads": 2,
            },
        ),
    ],
)
def test_a_multimodal_config_is_traced_as_its_language_model(model_type, text):
    """A config.json as Llama 4 and Qwen 3.5 ship it (the text model inside
    ``text_config``, the whole a ForConditionalGeneration) traces the language model,
    with transformers' parameter count of that model, and says the towers are left out."""
    pytest.importorskip(f"transformers.models.{model_type}")
    import torch
    import transformers
    from transformers import AutoConfig

    whole = AutoConfig.for_model(model_type).to_dict()
    whole["text_config"] = {"model_type": whole["text_config"]["model_type"], **SMALL_TEXT, **text}
    whole["architectures"] = [type(AutoConfig.for_model(model_type)).__name__[:-6]]
    trace = trace_step(whole, 16, precision="bf16")
    assert trace.model_class.endswith("ForCausalLM")
    config = AutoConfig.for_model(model_type, text_config=whole["text_config"])
    with torch.device("meta"):
        model = getattr(transformers, trace.model_class)(config.get_text_config())
    assert trace.n_parameters == sum(p.numel() for p in model.parameters())
    assert any(
        "is multimodal" in w and "in neither the step nor the parameter count" in w
        for w in trace.warnings
    )
    g = traced_step_graph(trace, 2, "bf16")
    assert (g.flop * g["count"]).sum() > 0


def test_mixtral_experts_are_counted_top_k():
    data = {
        "model_type": "mixtral",
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 300,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
    }
    trace = trace_step(data, 32)
    g = traced_step_graph(trace, 2)
    fwd = g[(g.phase == "forward") & (g.op == "linear") & g.name.str.contains("experts")]
    tokens = 2 * 32
    # gate+up (2·d·f) and down (f·d) products of top-2 experts per token, per layer
    expected = 2 * 2 * tokens * (2 * 64 * 128 + 128 * 64) * 2
    assert float((fwd.flop * fwd["count"]).sum()) == pytest.approx(expected)


def test_refused_config_names_the_field():
    with pytest.raises(DataError) as err:
        trace_step({"model_type": "llama", "hidden_size": 60, "num_attention_heads": 7}, 8)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="model_type"):
        trace_step({"model_type": "no-such-model"}, 8)


def test_remote_code_is_never_run():
    data = {
        "model_type": "llama",
        **SMALL["llama"],
        "auto_map": {"AutoModelForCausalLM": "evil.EvilModel"},
    }
    assert trace_step(data, 8).model_class == "LlamaForCausalLM"


def test_flash_in_fp32_falls_back_with_a_warning():
    from transformers import LlamaForCausalLM

    kind, notes = resolve_attention(LlamaForCausalLM, "flash", "fp32")
    assert kind == "sdpa" and "fp32" in notes[0]
    assert resolve_attention(LlamaForCausalLM, "flash", "bf16") == ("flash", [])
    assert resolve_attention(LlamaForCausalLM, "auto", "bf16")[0] == "sdpa"
    # what transformers runs: fused in half precision on Ampere and newer, else eager
    assert resolve_attention(LlamaForCausalLM, "auto", "fp32")[0] == "eager"
    assert resolve_attention(LlamaForCausalLM, "auto", "fp16", ampere=False)[0] == "eager"
    kind, notes = resolve_attention(LlamaForCausalLM, "flash", "fp16", ampere=False)
    assert kind == "sdpa" and "Ampere" in notes[0]


def test_trace_round_trips_and_is_validated():
    trace = trace_step({"model_type": "gpt2", **SMALL["gpt2"]}, 8)
    again = TracedStep.from_json(trace.to_json())
    assert again == trace
    bad = trace.to_json()
    bad["nodes"] = [["x", "forward", "os.system", "mm", [0] * 8, [0] * 8, 1, ""]]
    with pytest.raises(ValueError):
        TracedStep.from_json(bad)


def test_saved_activations_are_counted_once_and_scale_with_batch():
    data = {"model_type": "llama", **SMALL["llama"]}
    first = trace_step(data, 32).activations
    again = trace_step(data, 32).activations
    assert first == again  # no storage address counted twice or skipped
    b2, b3 = first["layers"]
    assert b3 == pytest.approx(1.5 * b2, rel=0.02)
    eager = trace_step(data, 64, attention="eager").activations["attention_core"][0]
    fused = trace_step(data, 64, attention="sdpa").activations["attention_core"][0]
    assert fused < eager  # the fused kernel keeps no T×T scores


@pytest.mark.parametrize(
    "data",
    [
        # sliding and full attention layers alternate
        {"model_type": "gemma2", **SMALL_TEXT, "num_hidden_layers": 5, "sliding_window": 8},
        {  # dense feed-forward layers first, then mixture-of-experts layers
            "model_type": "deepseek_v3",
            "num_hidden_layers": 4,
            "first_k_dense_replace": 1,
            "hidden_size": 64,
            "intermediate_size": 128,
            "moe_intermediate_size": 32,
            "n_routed_experts": 8,
            "num_experts_per_tok": 2,
            "n_group": 1,
            "topk_group": 1,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "q_lora_rank": 32,
            "kv_lora_rank": 16,
            "qk_rope_head_dim": 8,
            "qk_nope_head_dim": 8,
            "v_head_dim": 16,
            "vocab_size": 300,
        },
    ],
    ids=["gemma2", "deepseek_v3"],
)
def test_one_layer_per_kind_repeated_equals_every_layer_traced(data):
    once = trace_step(data, 16, precision="bf16")
    every = trace_step(data, 16, precision="bf16", per_kind=False)
    assert once.n_parameters == every.n_parameters
    g1, g2 = traced_step_graph(once, 3, "bf16"), traced_step_graph(every, 3, "bf16")
    for phase in ("forward", "backward"):
        for col in ("flop", "bytes"):
            a = float((g1[col] * g1["count"])[g1.phase == phase].sum())
            b = float((g2[col] * g2["count"])[g2.phase == phase].sum())
            assert a == pytest.approx(b, rel=1e-9), (phase, col)
    # a tensor every layer shares (rotary cos/sin, a mask) is saved once in a whole
    # trace but counted with each repeated layer: within 1 %
    assert once.activations["layers"] == pytest.approx(every.activations["layers"], rel=0.01)


def test_counts_no_model_could_have_are_refused_before_building():
    with pytest.raises(DataError, match="num_hidden_layers"):
        trace_step({"model_type": "llama", **SMALL["llama"], "num_hidden_layers": 10**6}, 8)
    with pytest.raises(DataError, match="hidden_size"):
        trace_step({"model_type": "llama", **SMALL["llama"], "hidden_size": 2**40}, 8)
