"""Tests of powerfit.steps.graph: the operator graph of a training step.

The graph's matrix products are checked against PyTorch's own FLOP counter
(``torch.utils.flop_counter.FlopCounterMode``) on small models written here with plain
torch modules, one per family, and against NeuSight's traced graphs of real Hugging
Face models (shapes and counts of products) when the data are available.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pandas as pd
import pytest

from powerfit.architectures.hf import from_hf_config
from powerfit.architectures.model import ModelConfig, parameter_count
from powerfit.datasets.neusight2025 import traced_products
from powerfit.evaluation.steps import compare_products
from powerfit.steps.graph import GRAPH_COLUMNS, training_step_graph

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


class _Attention(nn.Module):
    def __init__(self, c: ModelConfig, cross: bool = False) -> None:
        super().__init__()
        self.c, self.cross = c, cross
        h, hkv, dk, d = c.n_heads, c.n_kv_heads, c.d_kv, c.d_model
        if c.qkv_fused and not cross:
            self.qkv = nn.Linear(d, (h + 2 * hkv) * dk, bias=c.bias)
        else:
            self.q = nn.Linear(d, h * dk, bias=c.bias)
            self.k = nn.Linear(d, hkv * dk, bias=c.bias)
            self.v = nn.Linear(d, hkv * dk, bias=c.bias)
        self.o = nn.Linear(h * dk, d, bias=c.bias)

    def forward(self, x, kv=None, causal=False):
        c = self.c
        h, hkv, dk = c.n_heads, c.n_kv_heads, c.d_kv
        b, t, _ = x.shape
        kv = x if kv is None else kv
        s = kv.shape[1]
        if c.qkv_fused and not self.cross:
            q, k, v = self.qkv(x).split([h * dk, hkv * dk, hkv * dk], dim=-1)
        else:
            q, k, v = self.q(x), self.k(kv), self.v(kv)
        q = q.view(b, t, h, dk).transpose(1, 2)
        k = k.view(b, s, hkv, dk).transpose(1, 2).repeat_interleave(h // hkv, dim=1)
        v = v.view(b, s, hkv, dk).transpose(1, 2).repeat_interleave(h // hkv, dim=1)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(dk)
        if causal:
            mask = torch.ones(t, s, dtype=torch.bool).triu(1)
            scores = scores.masked_fill(mask, -1e9)
        ctx = torch.matmul(scores.softmax(-1), v)
        return self.o(ctx.transpose(1, 2).reshape(b, t, h * dk))


def _act(c: ModelConfig, x):
    if c.activation == "relu":
        return F.relu(x)
    if c.activation == "silu":
        return F.silu(x)
    return F.gelu(x, approximate="tanh" if c.activation == "gelu_new" else "none")


class _FFN(nn.Module):
    def __init__(self, c: ModelConfig) -> None:
        super().__init__()
        self.c = c
        if c.gated_ffn:
            self.gate = nn.Linear(c.d_model, c.d_ff, bias=c.bias)
        self.fc1 = nn.Linear(c.d_model, c.d_ff, bias=c.bias)
        self.fc2 = nn.Linear(c.d_ff, c.d_model, bias=c.bias)

    def forward(self, x):
        if self.c.gated_ffn:
            return self.fc2(_act(self.c, self.gate(x)) * self.fc1(x))
        return self.fc2(_act(self.c, self.fc1(x)))


class _MoE(nn.Module):
    """Deterministic routing: token i of a sequence goes to expert i mod E (capped)."""

    def __init__(self, c: ModelConfig) -> None:
        super().__init__()
        self.c = c
        self.router = nn.Linear(c.d_model, c.n_experts, bias=False)
        self.experts = nn.ModuleList(_FFN(c) for _ in range(c.n_experts))

    def forward(self, x):
        c = self.c
        probs = self.router(x).softmax(-1).max(-1, keepdim=True).values
        out = x.clone()
        t = x.shape[1]
        for e, expert in enumerate(self.experts):
            idx = torch.arange(e, t, c.n_experts)
            if c.expert_capacity:
                idx = idx[: c.expert_capacity]
            out[:, idx] = expert(x[:, idx].reshape(-1, c.d_model)).view(x.shape[0], -1, c.d_model)
        return probs * out


def _norm(c: ModelConfig):
    return nn.LayerNorm(c.d_model) if c.norm == "layernorm" else nn.RMSNorm(c.d_model)


class _Layer(nn.Module):
    def __init__(self, c: ModelConfig, cross: bool = False, sparse: bool = False) -> None:
        super().__init__()
        self.c = c
        self.n1, self.attn = _norm(c), _Attention(c)
        self.cross = _Attention(c, cross=True) if cross else None
        self.nc = _norm(c) if cross else None
        self.n2 = _norm(c)
        self.ffn = _MoE(c) if sparse else _FFN(c)

    def forward(self, x, enc=None, causal=False):
        if self.c.pre_norm:
            x = x + self.attn(self.n1(x), causal=causal)
            if self.cross is not None:
                x = x + self.cross(self.nc(x), kv=enc)
            return x + self.ffn(self.n2(x))
        x = self.n1(x + self.attn(x, causal=causal))
        return self.n2(x + self.ffn(x))


class _Model(nn.Module):
    def __init__(self, c: ModelConfig, seq_len: int) -> None:
        super().__init__()
        self.c = c
        e = c.embed_proj_dim or c.d_model
        self.tokens = nn.Embedding(c.vocab_size, e)
        self.proj_in = nn.Linear(e, c.d_model, bias=False) if e != c.d_model else None
        self.proj_out = nn.Linear(c.d_model, e, bias=False) if e != c.d_model else None
        self.positions = (
            nn.Embedding(c.max_positions + (2 if c.family == "opt" else 0), c.d_model)
            if c.positional == "learned"
            else None
        )
        self.types = nn.Embedding(c.type_vocab_size, c.d_model) if c.type_vocab_size else None

        def sparse(i):
            return bool(c.n_experts) and (c.sparse_step == 1 or i % c.sparse_step == 1)

        self.layers = nn.ModuleList(_Layer(c, sparse=sparse(i)) for i in range(c.n_layers))
        self.dec = nn.ModuleList(
            _Layer(c, cross=True, sparse=sparse(i)) for i in range(c.n_decoder_layers)
        )
        self.final = _norm(c) if c.pre_norm else None
        self.dec_final = _norm(c) if c.is_encoder_decoder else None
        self.emb_norm = _norm(c) if c.family == "bert" else None
        if c.pooler:
            self.pooler = nn.Linear(c.d_model, c.d_model)
            self.nsp = nn.Linear(c.d_model, 2)
        if c.family == "bert":
            self.transform, self.head_norm = nn.Linear(c.d_model, c.d_model), _norm(c)
            self.head_bias = nn.Parameter(torch.zeros(c.vocab_size))
        if c.positional == "relative":
            # one bias table per stack; its lookups are not products
            self.rel = nn.ModuleList(nn.Embedding(32, c.n_heads) for _ in range(2))
        self.lm_head = None if c.tie_word_embeddings else nn.Linear(e, c.vocab_size, bias=False)

    def embed(self, ids):
        x = self.tokens(ids)
        if self.proj_in is not None:
            x = self.proj_in(x)
        if self.positions is not None:
            x = x + self.positions(torch.arange(ids.shape[1]))
        if self.types is not None:
            x = x + self.types(torch.zeros_like(ids))
        return self.emb_norm(x) if self.emb_norm is not None else x

    def forward(self, ids):
        c = self.c
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, causal=c.causal)
        if self.final is not None:
            x = self.final(x)
        extra = 0.0
        if c.is_encoder_decoder:
            enc, x = x, self.tokens(ids)
            for layer in self.dec:
                x = layer(x, enc=enc, causal=True)
            x = self.dec_final(x)
        if c.pooler:
            extra = self.nsp(torch.tanh(self.pooler(x[:, 0]))).sum()
        if c.family == "bert":
            x = self.head_norm(F.gelu(self.transform(x)))
        if self.proj_out is not None:
            x = self.proj_out(x)
        if self.lm_head is not None:
            logits = self.lm_head(x)
        else:
            logits = F.linear(
                x, self.tokens.weight, self.head_bias if c.family == "bert" else None
            )
        return F.cross_entropy(logits.flatten(0, 1), ids.flatten()) + extra


def _torch_flops(c: ModelConfig, batch: int, seq: int) -> tuple[int, int, int]:
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = _Model(c, seq)
    ids = torch.randint(0, c.vocab_size, (batch, seq))
    with FlopCounterMode(display=False) as fwd:
        loss = model(ids)
    with FlopCounterMode(display=False) as bwd:
        loss.backward()
    n_params = sum(p.numel() for p in model.parameters())
    return fwd.get_total_flops(), bwd.get_total_flops(), n_params


def _graph_flops(graph: pd.DataFrame, phase: str) -> int:
    rows = graph[(graph.phase == phase) & graph.op.isin(["linear", "bmm"])]
    return int((rows.flop * rows["count"]).sum())


SMALL = {
    "gpt2": {
        "model_type": "gpt2",
        "n_layer": 2,
        "n_embd": 48,
        "n_head": 4,
        "vocab_size": 97,
        "n_positions": 32,
    },
    "bert": {
        "model_type": "bert",
        "num_hidden_layers": 2,
        "hidden_size": 48,
        "num_attention_heads": 3,
        "intermediate_size": 80,
        "vocab_size": 101,
        "max_position_embeddings": 32,
        "architectures": ["BertForPreTraining"],
    },
    "opt": {
        "model_type": "opt",
        "num_hidden_layers": 2,
        "hidden_size": 48,
        "num_attention_heads": 4,
        "ffn_dim": 96,
        "vocab_size": 89,
        "max_position_embeddings": 32,
        "word_embed_proj_dim": 32,
    },
    "neox": {
        "model_type": "gpt_neox",
        "num_hidden_layers": 2,
        "hidden_size": 48,
        "num_attention_heads": 4,
        "intermediate_size": 96,
        "vocab_size": 83,
    },
    "llama": {
        "model_type": "llama",
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "intermediate_size": 112,
        "vocab_size": 79,
    },
    "t5": {
        "model_type": "t5",
        "num_layers": 2,
        "num_decoder_layers": 3,
        "d_model": 48,
        "d_kv": 20,
        "num_heads": 3,
        "d_ff": 64,
        "vocab_size": 71,
        "feed_forward_proj": "gated-gelu",
        "tie_word_embeddings": False,
    },
    "switch": {
        "model_type": "switch_transformers",
        "num_layers": 2,
        "num_decoder_layers": 2,
        "d_model": 32,
        "d_kv": 8,
        "num_heads": 4,
        "d_ff": 48,
        "vocab_size": 61,
        "num_experts": 4,
        "expert_capacity": 3,
        "encoder_sparse_step": 2,
        "decoder_sparse_step": 2,
    },
}


@pytest.mark.parametrize("family", sorted(SMALL))
def test_products_match_torch_flop_counter(family):
    """Every product of the graph, forward and backward, as PyTorch counts them."""
    c = from_hf_config(SMALL[family])
    batch, seq = 2, 16
    fwd, bwd, n_params = _torch_flops(c, batch, seq)
    g = training_step_graph(c, batch, seq, optimizer="none")
    assert _graph_flops(g, "forward") == fwd
    assert _graph_flops(g, "backward") == bwd
    assert parameter_count(c) == n_params


def test_graph_columns_and_phases():
    c = from_hf_config(SMALL["llama"])
    g = training_step_graph(c, 2, 16, precision="amp-bf16", optimizer="adamw")
    assert tuple(g.columns) == GRAPH_COLUMNS
    assert set(g.phase) == {"forward", "backward", "optimizer"}
    mm = g.op.isin(["linear", "bmm"])
    assert set(g.precision[mm]) == {"bf16"}
    assert set(g.precision[g.op.isin(["ln", "softmax"])]) == {"fp32"}
    assert (g.B[mm & (g.op == "linear")] == 1).all() and (g.H[mm] == 0).all()
    assert (g.H[~mm] > 0).all() and (g.M[~mm] == 0).all()
    assert (g.flop >= 0).all() and (g.bytes > 0).all() and (g["count"] >= 1).all()
    # two backward products per forward product
    assert (g.phase[mm] == "backward").sum() == 2 * (g.phase[mm] == "forward").sum()
    # GQA: K and V are 4x narrower than Q; SwiGLU: three FFN matrices
    assert {"decoder.layer.ffn.gate_proj", "decoder.layer.self_attn.repeat_kv"} <= set(g.name)


def test_optimizer_rows_cover_the_parameters():
    c = from_hf_config(SMALL["gpt2"])
    n = parameter_count(c)
    adam = training_step_graph(c, 2, 16, optimizer="adamw")
    sgd = training_step_graph(c, 2, 16, optimizer="sgd")
    none = training_step_graph(c, 2, 16, optimizer="none")
    opt = adam[adam.phase == "optimizer"]
    assert len(opt) == 8 and (opt.B * opt.H >= n).all() and (opt.B * opt.H < n + c.d_model).all()
    assert (sgd.phase == "optimizer").sum() == 1 and (none.phase == "optimizer").sum() == 0
    # AdamW streams its three state tensors besides the parameters and gradients
    assert opt["bytes"].sum() > 6 * sgd[sgd.phase == "optimizer"]["bytes"].sum()


def test_checkpointing_adds_one_forward_of_the_layers():
    c = from_hf_config(SMALL["gpt2"])
    plain = training_step_graph(c, 2, 16)
    ckpt = training_step_graph(c, 2, 16, checkpointing=True)
    re = ckpt[ckpt.phase == "recompute"]
    layer_fwd = plain[(plain.phase == "forward") & plain.name.str.startswith("decoder.")]
    assert len(re) == len(layer_fwd) and set(re.name) == set(layer_fwd.name)
    assert (re.flop * re["count"]).sum() == (layer_fwd.flop * layer_fwd["count"]).sum()
    assert _graph_flops(ckpt, "backward") == _graph_flops(plain, "backward")


def test_graph_scales_with_batch_and_rejects_bad_input():
    c = from_hf_config(SMALL["gpt2"])
    g1 = training_step_graph(c, 1, 16, optimizer="none", loss=False)
    g4 = training_step_graph(c, 4, 16, optimizer="none", loss=False)
    assert _graph_flops(g4, "forward") == 4 * _graph_flops(g1, "forward")
    with pytest.raises(ValueError, match="precision"):
        training_step_graph(c, 1, 16, precision="fp8")
    with pytest.raises(ValueError, match="optimizer"):
        training_step_graph(c, 1, 16, optimizer="lion")
    with pytest.raises(ValueError, match="learned positions"):
        training_step_graph(c, 1, 64)
    with pytest.raises(ValueError, match="batch_size"):
        training_step_graph(c, 0, 16)


def test_moe_tokens_follow_capacity():
    c = from_hf_config(SMALL["switch"])
    g = training_step_graph(c, 2, 16, optimizer="none")
    fc1 = g[(g.phase == "forward") & (g.name == "encoder.sparse_layer.moe.fc1")].iloc[0]
    assert fc1.M == 2 * 3 and fc1["count"] == 4  # capacity 3 per sequence, 4 experts
    uncapped = replace(c, expert_capacity=0)
    g = training_step_graph(uncapped, 2, 16, optimizer="none")
    fc1 = g[(g.phase == "forward") & (g.name == "encoder.sparse_layer.moe.fc1")].iloc[0]
    assert fc1.M == 2 * 4


def test_products_match_neusight_traces(neusight_labels):
    """Shapes and counts of every forward product of every traced training step."""
    traces = sorted(neusight_labels.glob("labels/*/*-train-*.csv.gz"))
    assert len(traces) >= 10
    for path in traces:
        model, _, seq, batch = path.name[: -len(".csv.gz")].split("-")
        label = json.loads(path.with_name(path.name.replace(".csv.gz", ".json")).read_text())
        c = from_hf_config(neusight_labels / "models" / f"{model}.json")
        if c.family == "bert":  # NeuSight traced BertForPreTraining (pooler + NSP head)
            c = replace(c, pooler=True)
        g = training_step_graph(c, int(batch), int(seq), optimizer="none", loss=False)
        both = compare_products(g, traced_products(path, label["num_layer"]))
        mismatch = both[both.count_graph != both.count_trace]
        assert mismatch.empty, f"{path}:\n{mismatch}"


def _toy_trace():
    """A traced step written by hand: one layer kind run 4 times, one fused attention."""
    from powerfit.architectures.trace import TracedStep

    def dims(b, m, n, k, h, heads=0, kv=0, causal=0):
        return [b, m, n, k, h, heads, kv, causal]

    nodes = [
        [
            "embed.embedding",
            "forward",
            "addu",
            "elt",
            dims(2, 0, 0, 0, 64),
            dims(3, 0, 0, 0, 64),
            1,
            "",
        ],
        [
            "layers.*.q.mm",
            "forward",
            "linear",
            "mm",
            dims(1, 32, 64, 64, 0),
            dims(1, 48, 64, 64, 0),
            4,
            "full",
        ],
        [
            "layers.*.sdpa",
            "forward",
            "attention",
            "mm",
            dims(8, 16, 16, 16, 0, 4, 2, 1),
            dims(12, 16, 16, 16, 0, 4, 2, 1),
            4,
            "attention",
        ],
        [
            "layers.*.norm",
            "forward",
            "ln",
            "red",
            dims(32, 0, 0, 0, 64),
            dims(48, 0, 0, 0, 64),
            4,
            "full",
        ],
        [
            "layers.*.sdpa_grad",
            "backward",
            "attention_bwd",
            "mm",
            dims(8, 16, 16, 16, 0, 4, 2, 1),
            dims(12, 16, 16, 16, 0, 4, 2, 1),
            4,
            "",
        ],
    ]
    return TracedStep(
        "llama", "LlamaForCausalLM", 10_000, 64, 16, "sdpa", nodes, {"layers": [0, 0]}, 4
    )


def test_traced_graph_scales_the_batch_and_applies_the_precision():
    from powerfit.steps.graph import traced_step_graph

    g = traced_step_graph(_toy_trace(), 5, "amp-bf16", "adamw")
    q = g[g.name == "layers.*.q.mm"].iloc[0]
    assert (q.M, q.precision, q.flop) == (80, "bf16", 2.0 * 80 * 64 * 64)
    attn = g[g.op == "attention"].iloc[0]
    assert (attn.batch, attn.heads, attn.kv_heads, attn.causal, attn.B) == (5, 4, 2, 1, 20)
    assert g[g.name == "layers.*.norm"].precision.iloc[0] == "fp32"  # AMP: norms in fp32
    assert g[g.phase == "optimizer"].B.iloc[0] == math.ceil(10_000 / 64)
    assert g[g.name == "optimizer.cast"].shape[0] == 1  # master weights copied to half


def test_traced_graph_names_the_kernel_of_its_fused_attentions():
    from powerfit.steps.graph import traced_step_graph
    from powerfit.steps.latency import operator_latency_sources

    default = traced_step_graph(_toy_trace(), 4, "bf16", "adamw")
    triton = traced_step_graph(_toy_trace(), 4, "bf16", "adamw", attention_kernel="triton")
    fused = default.op.isin(["attention", "attention_bwd"])
    assert set(default.attention_kernel[fused]) == {"fa2"}
    assert set(default.attention_kernel[~fused]) == {""}
    assert set(triton.attention_kernel[fused]) == {"triton"}
    t_fa2, _, _ = operator_latency_sources(default, "a100-sxm4-80gb")
    t_triton, _, _ = operator_latency_sources(triton, "a100-sxm4-80gb")
    assert (t_triton[fused.to_numpy()] != t_fa2[fused.to_numpy()]).all()  # its own law
    assert (t_triton[~fused.to_numpy()] == t_fa2[~fused.to_numpy()]).all()
    with pytest.raises(ValueError, match="attention kernel must be one of"):
        traced_step_graph(_toy_trace(), 4, "bf16", attention_kernel="fa3")


def test_traced_graph_checkpointing_modes():
    from powerfit.steps.graph import traced_step_graph

    t = _toy_trace()
    full = traced_step_graph(t, 2, checkpointing=True)
    sel = traced_step_graph(t, 2, checkpointing="selective")
    assert set(full[full.phase == "recompute"].op) == {"linear", "attention", "ln"}
    assert set(sel[sel.phase == "recompute"].op) == {"attention"}
    with pytest.raises(ValueError, match="checkpointing"):
        traced_step_graph(t, 2, checkpointing="some")


@pytest.mark.parametrize(
    "config",
    [
        {"model_type": "gpt2", "n_layer": 2, "n_embd": 48, "n_head": 4, "vocab_size": 97,
         "n_positions": 64},
        {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64,
         "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 97},
    ],
)  # fmt: skip
def test_a_fused_loss_replaces_transformers_cross_entropy(config):
    pytest.importorskip("transformers")
    from powerfit.architectures.trace import trace_step
    from powerfit.steps.graph import traced_step_graph

    trace = trace_step(config, 32, attention="sdpa")
    torch_loss = traced_step_graph(trace, 4, "amp-bf16", "adamw")
    fused = traced_step_graph(trace, 4, "amp-bf16", "adamw", loss_kernel="fused")
    assert fused.attrs["loss_fused"] and not torch_loss.attrs["loss_fused"]
    loss_ops = ("_log_softmax", "nll_loss_forward", "_log_softmax_backward_data")
    assert torch_loss.name.str.endswith(loss_ops).sum() == 3
    assert not fused.name.str.endswith(loss_ops).any()
    rows = fused[fused.name.str.contains("fused_cross_entropy")]
    assert list(rows.phase) == ["forward", "backward"]
    assert (rows.H == 97).all() and (rows.B == 4 * 32).all()  # the logits, tokens × vocab
    assert (rows.precision == "bf16").all()
    # the same products, fewer passes over the logits
    mat = ~torch_loss.op.isin(["softmax", "addu", "add", "mul", "mulu", "divu", "div"])
    assert (torch_loss.flop * torch_loss["count"])[mat].sum() == pytest.approx(
        (fused.flop * fused["count"])[~fused.op.isin(["softmax", "addu", "add", "mul", "mulu",
                                                        "divu", "div"])].sum()
    )  # fmt: skip
    assert (fused["bytes"] * fused["count"]).sum() < (
        torch_loss["bytes"] * torch_loss["count"]
    ).sum()
    with pytest.raises(ValueError, match="loss kernel must be one of torch, fused"):
        traced_step_graph(trace, 4, "amp-bf16", "adamw", loss_kernel="liger")
