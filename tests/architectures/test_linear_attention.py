"""Tests of powerfit.architectures.linear_attention: the gated delta rule as FLA runs it."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
for _family in ("qwen3_5", "mamba", "mamba2"):  # in transformers 5.25; older may lack them
    pytest.importorskip(f"transformers.models.{_family}")

from powerfit.architectures import linear_attention as la  # noqa: E402
from powerfit.architectures.trace import trace_step  # noqa: E402
from powerfit.steps.graph import traced_step_graph  # noqa: E402

from ..conftest import MAMBA2_SMALL, QWEN35_TEXT  # noqa: E402

#: Qwen 3.5's text model, small, with 4 value heads of 8 (2 key heads of 16).
QWEN35 = {**QWEN35_TEXT, "linear_num_value_heads": 4, "linear_value_head_dim": 8}


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
    assert la.LINEAR_ATTENTION_NOTE.format(names="chunk_gated_delta_rule") in trace.warnings
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
    assert not any(w.startswith("linear attention") for w in trace.warnings)
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
    warnings = trace_step(llama, 16, precision="bf16").warnings
    assert not any(w.startswith("linear attention") for w in warnings)


MAMBA2 = MAMBA2_SMALL


@pytest.mark.parametrize("final", [False, True])
def test_ssd_scan_has_transformers_reference_shapes(final):
    from transformers.models.mamba2 import modeling_mamba2 as m

    b, t, h, p, g, n = 2, 100, 4, 8, 2, 16
    x = torch.randn(b, t, h, p, dtype=torch.bfloat16)
    dt, a = torch.rand(b, t, h), -torch.rand(h)
    bm, cm = torch.randn(b, t, g, n), torch.randn(b, t, g, n)
    kw = {"D": torch.rand(h), "dt_bias": torch.zeros(h), "dt_softplus": True}
    ours = la.chunked_ssd_scan(x, dt, a, bm, cm, 32, return_final_states=final, **kw)
    ref = m.mamba2_chunk_scan(x, dt, a, bm, cm, 32, return_final_states=final, **kw)
    ours, ref = (v if final else (v,) for v in (ours, ref))
    assert [v.shape for v in ours] == [v.shape for v in ref]
    assert ours[0].dtype == torch.bfloat16  # the kernel's output is in the input's dtype


def test_mamba2_is_traced_as_the_ssd_kernels_work():
    from transformers.models.mamba2 import modeling_mamba2 as m

    reference = m.mamba2_chunk_scan
    b, t = 2, 64
    trace = trace_step(MAMBA2, t, precision="bf16")
    assert m.mamba2_chunk_scan is reference
    assert la.LINEAR_ATTENTION_NOTE.format(names="mamba_chunk_scan_combined") in trace.warnings
    g = traced_step_graph(trace, b, "bf16")
    fwd = g[(g.phase == "forward") & (g.op == "bmm")]
    c, h, p, groups, n = 32, 4, 32, 2, 16
    # per token: C·Bᵀ per group (C·N); per head (C·Bᵀ)·X (C·P), Bᵀ·X and C·S (N·P each)
    per_token = 2 * (groups * c * n + h * (c * p + 2 * n * p))
    assert float((fwd.flop * fwd["count"]).sum()) == pytest.approx(per_token * b * t)


def test_mamba1_scan_is_one_pass_not_a_loop_over_tokens():
    from transformers.models.mamba import modeling_mamba as m

    b, d, t, n = 2, 8, 50, 4
    u, dt, z = (torch.randn(b, d, t) for _ in range(3))
    a, bm, cm = -torch.rand(d, n), torch.randn(b, n, t), torch.randn(b, n, t)
    ours = la.selective_scan(u, dt, a, bm, cm, D=torch.rand(d), z=z, return_last_state=True)
    ref = m.mamba_selective_scan(u, dt, a, bm, cm, D=torch.rand(d), z=z, return_last_state=True)
    assert [v.shape for v in ours] == [v.shape for v in ref]
    mamba = {
        "model_type": "mamba",
        "hidden_size": 64,
        "num_hidden_layers": 1,
        "vocab_size": 300,
        "state_size": 8,
    }
    short, long = (trace_step(mamba, t, precision="bf16") for t in (16, 256))
    assert la.LINEAR_ATTENTION_NOTE.format(names="selective_scan_fn") in short.warnings
    assert len(long.nodes) == len(short.nodes)  # the reference loops once per token
