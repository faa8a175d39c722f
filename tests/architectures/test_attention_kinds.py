"""Which attention a traced step runs (:mod:`powerfit.architectures.attention_kinds`).

A class transformers runs only eager (MPT, BLOOM) asked for a fused attention is
traced eager and its attention cores replaced by fused attentions.
"""

from __future__ import annotations

import pytest

from powerfit.architectures.attention_kinds import configured_attention, resolve_attention

MPT = {
    "model_type": "mpt",
    "d_model": 64,
    "n_heads": 4,
    "n_layers": 2,
    "vocab_size": 512,
    "max_seq_len": 128,
}


def test_configured_attention_reads_mpt_attn_impl_only():
    assert configured_attention({**MPT, "attn_config": {"attn_impl": "triton"}}) == (
        "flash",
        "triton",
    )
    assert configured_attention({**MPT, "attn_config": {"attn_impl": "flash"}}) == ("flash", "fa2")
    assert configured_attention({**MPT, "attn_config": {"attn_impl": "torch"}}) == (None, None)
    assert configured_attention({**MPT, "attn_config": "triton"}) == (None, None)
    assert configured_attention({"model_type": "llama"}) == (None, None)


def test_resolve_attention_keeps_a_fused_kind_for_an_eager_only_class():
    pytest.importorskip("transformers")
    from transformers import LlamaForCausalLM, MptForCausalLM

    kind, notes = resolve_attention(MptForCausalLM, "flash", "bf16")
    assert kind == "flash" and "has no SDPA attention" in notes[0]
    kind, notes = resolve_attention(MptForCausalLM, "auto", "bf16")
    assert kind == "eager" and "--attention flash times one fused kernel" in notes[0]
    # a model without attention (Mamba) is not told about it
    from transformers import MambaForCausalLM

    assert resolve_attention(MambaForCausalLM, "auto", "bf16") == ("eager", [])
    kind, notes = resolve_attention(MptForCausalLM, "auto", "bf16", named="flash")
    assert kind == "flash" and "attn_config.attn_impl" in notes[0]
    # the config's kernel needs half precision and an Ampere or newer GPU, as flash does
    assert resolve_attention(MptForCausalLM, "auto", "fp32", named="flash") == ("eager", [])
    assert resolve_attention(MptForCausalLM, "auto", "bf16", False, "flash") == ("eager", [])
    assert resolve_attention(LlamaForCausalLM, "sdpa", "bf16") == ("sdpa", [])


def test_an_eager_only_class_asked_for_flash_is_traced_with_fused_attentions():
    pytest.importorskip("transformers")
    from powerfit.architectures.trace import trace_step

    eager = trace_step(MPT, 128, attention="eager", precision="bf16")
    fused = trace_step(MPT, 128, attention="flash", precision="bf16")
    assert (eager.attention, fused.attention) == ("eager", "flash")
    assert any("timed as one fused flash kernel" in w for w in fused.warnings)
    layer_ops = {n[2] for n in fused.nodes if ".blocks.*." in n[0]}
    assert {"attention", "attention_bwd"} <= layer_ops and "bmm" not in layer_ops
    assert "softmax" not in layer_ops  # the S×S softmax went with the core
    attn = next(n for n in fused.nodes if n[2] == "attention")
    assert attn[4] == [2 * 4, 128, 128, 16, 0, 4, 4, 1]  # B·H, Sq, Sk, D, -, heads, kv, causal
    assert attn[6] == 2 and attn[7] == "attention"  # every layer; recomputed by selective
    # no S×S tensor is kept for the backward any more
    assert fused.activations["layers"][0] < eager.activations["layers"][0]
    assert fused.activations["attention_core"][0] < eager.activations["attention_core"][0]
    # the same parameters, and the projections untouched
    assert fused.n_parameters == eager.n_parameters
    linear = sorted(n[4] for n in eager.nodes if n[2] == "linear")
    assert sorted(n[4] for n in fused.nodes if n[2] == "linear") == linear


def test_the_config_named_kernel_times_an_mpt_step():
    pytest.importorskip("transformers")
    from powerfit.training import estimate_training

    triton = {**MPT, "attn_config": {"attn_impl": "triton"}}
    runs = {
        name: estimate_training(cfg, "a100-sxm4-80gb", 2, 128, precision="bf16", **kw)
        for name, cfg, kw in (
            ("config", triton, {}),
            ("fa2", triton, {"attention_kernel": "fa2"}),
            ("torch", MPT, {}),
        )
    }
    assert (runs["config"]["attention"], runs["config"]["attention_kernel"]) == ("flash", "triton")
    assert runs["fa2"]["attention_kernel"] == "fa2"  # asked for, over the config's
    assert (runs["torch"]["attention"], runs["torch"]["attention_kernel"]) == ("eager", None)
    assert runs["config"]["step_time_s"] != runs["fa2"]["step_time_s"]


def test_a_model_without_attention_asked_for_flash_stays_eager_and_says_why():
    pytest.importorskip("transformers")
    from powerfit.architectures.trace import trace_step

    mamba = {
        "model_type": "mamba",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "vocab_size": 512,
        "state_size": 8,
    }
    trace = trace_step(mamba, 32, attention="flash", precision="bf16")
    assert trace.attention == "eager"
    assert not any(n[2] in ("attention", "attention_bwd") for n in trace.nodes)
    assert trace.warnings[0].startswith("MambaForCausalLM: no eager attention core found")
    # and the selective scan is timed as mamba-ssm's kernel, said
    assert any(w.startswith("linear attention (selective_scan_fn)") for w in trace.warnings)
