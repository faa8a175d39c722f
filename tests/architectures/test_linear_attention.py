"""Tests of powerfit.architectures.linear_attention: the gated delta rule as FLA runs it."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from powerfit.architectures import linear_attention as la  # noqa: E402
from powerfit.architectures.trace import trace_step  # noqa: E402
from powerfit.steps.graph import traced_step_graph  # noqa: E402

#: Qwen 3.5's text model, small: layer 0 linear attention (2 key heads of 16, 4 value
#: heads of 8), layer 1 full attention.
QWEN35 = {
    "model_type": "qwen3_5_text",
    "num_hidden_layers": 2,
    "layer_types": ["linear_attention", "full_attention"],
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 16,
    "linear_value_head_dim": 8,
    "vocab_size": 300,
}


@pytest.mark.parametrize("t", [64, 100])
def test_same_shapes_and_dtype_as_transformers_reference(t):
    from transformers.models.qwen3_5 import modeling_qwen3_5 as m

    b, hk, hv, dk, dv = 2, 2, 4, 16, 8
    q, k = (torch.randn(b, t, hk, dk, dtype=torch.bfloat16) for _ in range(2))
    v = torch.randn(b, t, hv, dv, dtype=torch.bfloat16)
    g, beta = -torch.rand(b, t, hv), torch.rand(b, t, hv)
    ours = la.chunked_gated_delta_rule(q, k, v, g, beta, output_final_state=True)
    ref = m.torch_chunk_gated_delta_rule(q, k, v, g=g, beta=beta, output_final_state=True)
    for a, r in zip(ours, ref, strict=True):
        assert a.shape == r.shape
    assert ours[0].dtype == ref[0].dtype == torch.bfloat16
    assert la.chunked_gated_delta_rule(q, k, v, g, beta)[1] is None


def test_traced_as_the_chunked_kernels_work_and_said():
    from transformers.models.qwen3_5 import modeling_qwen3_5 as m

    reference = m.torch_chunk_gated_delta_rule
    b, t, c = 2, 128, 64
    trace = trace_step(QWEN35, t, precision="bf16")
    assert m.torch_chunk_gated_delta_rule is reference  # put back after the trace
    assert la.LINEAR_ATTENTION_NOTE in trace.warnings
    assert not any("chunk_gated_delta_rule: traced as" in w for w in trace.warnings)
    g = traced_step_graph(trace, b, "bf16")
    fwd = g[(g.phase == "forward") & (g.op == "bmm") & g.name.str.contains("linear_attn")]
    hv, dk, dv = 4, 16, 8
    # per token and value head: K_β·Kᵀ, Q·Kᵀ, A·K_β (C·dk each), A·V_β, (Q·Kᵀ)·V_new
    # (C·dv each), Kᵀ·U, W·S, Q·S (dk·dv each); 2 FLOP per multiply-add
    per_token = 2 * (3 * c * dk + 2 * c * dv + 3 * dk * dv)
    assert float((fwd.flop * fwd["count"]).sum()) == pytest.approx(per_token * b * t * hv)


def test_eager_keeps_the_reference_path():
    trace = trace_step(QWEN35, 128, attention="eager", precision="bf16")
    assert la.LINEAR_ATTENTION_NOTE not in trace.warnings
    assert any("chunk_gated_delta_rule: traced as" in w for w in trace.warnings)


def test_a_model_without_linear_attention_is_untouched():
    llama = {
        "model_type": "llama",
        "num_hidden_layers": 1,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "vocab_size": 100,
    }
    assert la.LINEAR_ATTENTION_NOTE not in trace_step(llama, 16, precision="bf16").warnings
