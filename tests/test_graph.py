"""Tests of powerfit.graph: the operator graph of a training step, its time and energy.

The graph's matrix products are checked against PyTorch's own FLOP counter
(``torch.utils.flop_counter.FlopCounterMode``) on small models written here with plain
torch modules, one per family, and against NeuSight's traced graphs of real Hugging
Face models (shapes and counts of products) when the data are available.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from powerfit.graph import (
    GRAPH_COLUMNS,
    Calibration,
    bundled_operator_model,
    compare_products,
    estimate_step,
    fit_calibration,
    parameter_count,
    roofline_latency,
    run_energy,
    step_time,
    traced_products,
    training_step_graph,
)
from powerfit.hf import ModelConfig, from_hf_config

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

# --------------------------------------------------------------------------------------
# A reference implementation in plain torch, driven by a ModelConfig
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Time, energy, a run
# --------------------------------------------------------------------------------------


class _ConstantModel:
    """An operator model: every launch costs 1 µs plus its FLOP at 10 TFLOP/s."""

    def predict(self, X):
        assert list(X.columns) == ["gpu", "op", "precision", "B", "M", "N", "K", "H"]
        flop = 2.0 * X.B * X.M * X.N * X.K
        return (1e-6 + flop / 10e12).to_numpy()


def test_step_time_sums_operator_latencies():
    c = from_hf_config(SMALL["gpt2"])
    g = training_step_graph(c, 2, 16)
    t = step_time(g, "a100", _ConstantModel())
    flop = (g.flop * g["count"])[g.op.isin(["linear", "bmm"])].sum()
    assert t == pytest.approx(g["count"].sum() * 1e-6 + flop / 10e12)
    fb = step_time(g, "a100", _ConstantModel(), phases=("forward", "backward"))
    assert fb < t
    cal = Calibration("a100", scale=1.1, launch_s=2e-6)
    assert step_time(g, "a100", _ConstantModel(), calibration=cal) == pytest.approx(
        1.1 * t + 2e-6 * g["count"].sum()
    )


def test_roofline_is_a_lower_bound_of_physics():
    c = from_hf_config(SMALL["gpt2"])
    g = training_step_graph(c, 8, 32)
    lat = roofline_latency(g, "NVIDIA A100 80GB PCIe")
    mm = g.op.isin(["linear", "bmm"]).to_numpy()
    assert (lat[mm] >= g.flop[mm] / 19.5e12 - 1e-18).all()
    assert (lat[~mm] >= g["bytes"][~mm] / 1935e9 - 1e-18).all()


def test_calibration_is_bounded():
    rng = np.random.default_rng(0)
    s = rng.uniform(0.1, 2.0, 8)
    n = rng.integers(1000, 5000, 8).astype(float)
    y = 1.1 * s + 5e-6 * n
    cal = fit_calibration("a100", s, n, y)
    assert cal.scale == pytest.approx(1.1, rel=1e-3) and cal.launch_s == pytest.approx(
        5e-6, rel=1e-2
    )
    assert cal.mape_after < 0.1 < cal.mape_before
    few = fit_calibration("a100", s[:3], n[:3], y[:3])  # too few steps for the launch term
    assert few.launch_s == pytest.approx(0.0, abs=1e-11) and few.scale > 1.1
    wild = fit_calibration("a100", s, n, 3 * s)  # a 3x bias is not calibrated away
    lo, hi = Calibration.BOUNDS["scale"]
    low, high = Calibration.BOUNDS["launch_s"]
    assert lo <= wild.scale <= hi and low <= wild.launch_s <= high
    tiny = fit_calibration("a100", s, n, 0.01 * s)  # nor a 100x one, either way
    assert tiny.scale == pytest.approx(lo) and tiny.launch_s == pytest.approx(low, abs=1e-11)


def test_prior_power_law_is_bounded_by_idle_and_tdp():
    from powerfit.power import prior_power

    pm = prior_power("NVIDIA A100 80GB PCIe", 300.0)
    assert pm.power(0.0) == pytest.approx(60.0)
    assert pm.power(1.0) == pytest.approx(300.0)
    assert pm.power(5.0) == pytest.approx(300.0)
    lo, hi = pm.interval(0.4)
    assert 0.0 <= lo <= 60.0 < pm.power(0.4) < hi <= 300.0  # idle to TDP, nothing known
    assert not pm.fitted and pm.prior and pm.outside(0.4)
    c = from_hf_config(SMALL["gpt2"])
    est = estimate_step(c, "a100", 2, 16, operator_model=_ConstantModel(), power_model=pm)
    assert est.power_source == "prior" and est.power_outside
    assert est.energy_j == pytest.approx(est.step_time_s * pm.power(est.utilisation))


def test_estimate_step_and_run_are_consistent():
    c = from_hf_config(SMALL["gpt2"])
    est = estimate_step(c, "a100", 2, 16, operator_model=_ConstantModel())
    tdp = 300.0
    assert 0.2 * tdp * est.step_time_s <= est.energy_j <= tdp * est.step_time_s
    lo, hi = est.energy_interval_j
    assert lo <= est.energy_j <= hi
    assert est.breakdown("phase").time_s.sum() == pytest.approx(est.step_time_s)
    run = run_energy(est.energy_j, steps=1000, grid_intensity=350.0, pue=1.3)
    assert run["run_energy_kwh"] == pytest.approx(1000 * est.energy_j / 3.6e6)
    assert run["co2_kg"] == pytest.approx(run["run_energy_kwh"] * 350.0 / 1000 * 1.3)
    by_tokens = run_energy(est.energy_j, tokens=2 * 16 * 1000, tokens_per_step=2 * 16)
    assert by_tokens["steps"] == 1000 and "co2_kg" not in by_tokens
    with pytest.raises(ValueError, match="exactly one"):
        run_energy(1.0, steps=1, tokens=1, tokens_per_step=1)
    with pytest.raises(ValueError, match="pue"):
        run_energy(1.0, steps=1, pue=0.5)


# --------------------------------------------------------------------------------------
# NeuSight's traced graphs
# --------------------------------------------------------------------------------------


def _neusight() -> Path | None:
    home = os.environ.get("POWERFIT_DATA_HOME")
    path = Path(home) / "neusight2025" if home else None
    return path if path is not None and (path / "labels").is_dir() else None


NEUSIGHT = _neusight()


@pytest.mark.skipif(NEUSIGHT is None, reason="needs POWERFIT_DATA_HOME with neusight2025")
def test_products_match_neusight_traces():
    """Shapes and counts of every forward product of every traced training step."""
    traces = sorted(NEUSIGHT.glob("labels/*/*-train-*.csv.gz"))
    assert len(traces) >= 10
    for path in traces:
        model, _, seq, batch = path.name[: -len(".csv.gz")].split("-")
        label = json.loads(path.with_name(path.name.replace(".csv.gz", ".json")).read_text())
        c = from_hf_config(NEUSIGHT / "models" / f"{model}.json")
        if c.family == "bert":  # NeuSight traced BertForPreTraining (pooler + NSP head)
            c = replace(c, pooler=True)
        g = training_step_graph(c, int(batch), int(seq), optimizer="none", loss=False)
        both = compare_products(g, traced_products(path, label["num_layer"]))
        mismatch = both[both.count_graph != both.count_trace]
        assert mismatch.empty, f"{path}:\n{mismatch}"


# --------------------------------------------------------------------------------------
# The command line (powerfit.cli.estimate_hf)
# --------------------------------------------------------------------------------------


def test_cli_estimate_hf_json(tmp_path, capsys):
    from powerfit.cli import estimate_hf

    path = tmp_path / "config.json"
    path.write_text(json.dumps(SMALL["gpt2"]))
    argv = [
        "--hf-config",
        str(path),
        "--gpu",
        "NVIDIA A100 80GB PCIe",
        "--batch-size",
        "2",
        "--seq-len",
        "16",
        "--steps",
        "1000",
        "--grid-intensity",
        "400",
        "--pue",
        "1.2",
        "--json",
    ]
    assert estimate_hf.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["mode"] == "roofline") == (bundled_operator_model("fp32") is None)
    for key in ("step_time_s", "energy_j", "run_energy_kwh", "co2_kg", "operators"):
        assert key in out
    assert out["run_energy_kwh"] == pytest.approx(1000 * out["energy_j"] / 3.6e6)
    assert out["co2_kg"] == pytest.approx(out["run_energy_kwh"] * 400 / 1000 * 1.2)
    lo, hi = out["energy_interval_j"]
    assert lo <= out["energy_j"] <= hi
    # a 0.1 M-parameter model at batch 2 × 16 is far outside the measured steps
    assert out["outside_measured_range"] is True
    assert any("parameters" in w for w in out["warnings"])


def test_cli_estimate_hf_errors(tmp_path, capsys):
    from powerfit.cli import estimate_hf

    path = tmp_path / "config.json"
    path.write_text(json.dumps(SMALL["gpt2"]))
    base = ["--hf-config", str(path), "--gpu", "a100", "--seq-len", "16"]
    assert estimate_hf.main([*base, "--batch-size", "1.5"]) == 1
    assert "--batch-size" in capsys.readouterr().err
    assert estimate_hf.main([*base, "--batch-size", "1", "--steps", "1", "--tokens", "9"]) == 1
    assert "not both" in capsys.readouterr().err


def test_cli_add_arguments_keeps_existing_options():
    import argparse

    from powerfit.cli import estimate_hf

    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", dest="batch_size", type=float)
    parser.add_argument("--json", action="store_true")
    estimate_hf.add_arguments(parser)  # no conflict with the options already there
    args = parser.parse_args(["--hf-config", "c.json", "--batch-size", "4", "--specs-only"])
    assert args.batch_size == 4 and args.specs_only and args.optimizer == "adamw"


@pytest.mark.slow
@pytest.mark.skipif(NEUSIGHT is None, reason="needs POWERFIT_DATA_HOME with neusight2025")
def test_step_time_from_operator_laws_near_measured_steps():
    """Operator laws fitted on two GPUs' operators, summed over the graph (≈ 10 s)."""
    operators = pytest.importorskip("powerfit.operators")
    from powerfit.graph import neusight_step_graph, neusight_training_steps

    ops = operators.neusight_operator_frame()
    ops = ops[ops.gpu.isin(["NVIDIA A100 80GB PCIe", "Tesla V100-PCIE-32GB"])]
    model = operators.OperatorTimeModel(max_rows=150).fit(
        ops[list(operators.OPERATOR_COLUMNS)], ops.latency_s
    )
    steps = neusight_training_steps()
    errors = []
    for step in steps.itertuples(index=False):
        graph = neusight_step_graph(step)
        t = step_time(graph, step.gpu, model)
        errors.append(abs(t / step.measured_s - 1))
        assert t == pytest.approx(step.measured_s, rel=0.25), step
    assert np.mean(errors) < 0.15
    step = steps.iloc[0]
    graph = neusight_step_graph(step)
    assert step_time(graph, step.gpu, model, specs_only=True) != step_time(graph, step.gpu, model)


def test_step_time_regressor_gpu_is_a_column(tmp_path):
    from sklearn.base import clone

    from powerfit.graph import StepTimeRegressor

    path = tmp_path / "config.json"
    path.write_text(json.dumps(SMALL["gpt2"]))
    X = pd.DataFrame(
        {
            "gpu": ["NVIDIA A100 80GB PCIe", "NVIDIA A100 80GB PCIe", "Tesla V100-PCIE-32GB"],
            "config": [str(path), json.dumps(SMALL["gpt2"]), str(path)],
            "batch_size": [2, 4, 2],
            "seq_len": [16, 32, 16],
        }
    )
    raw = StepTimeRegressor(calibrate=False).fit(X, np.ones(3))
    t = raw.predict(X)
    assert raw.calibrations_ == {} and (t > 0).all() and t[1] > t[0]
    model = clone(StepTimeRegressor()).fit(X, 1.1 * t)
    assert set(model.calibrations_) == {"NVIDIA A100 80GB PCIe", "Tesla V100-PCIE-32GB"}
    for scale, launch in model.calibrations_.values():
        assert Calibration.BOUNDS["scale"][0] <= scale <= Calibration.BOUNDS["scale"][1]
        assert Calibration.BOUNDS["launch_s"][0] <= launch <= Calibration.BOUNDS["launch_s"][1]
    assert np.allclose(model.predict(X), 1.1 * t, rtol=0.02)
    with pytest.raises(ValueError, match="config"):
        model.predict(X.drop(columns="config"))


# --------------------------------------------------------------------------------------
# The power law (powerfit.power) and the step-time intervals (powerfit.step_evaluation)
# --------------------------------------------------------------------------------------


def test_fit_power_recovers_a_law_and_respects_bounds():
    from powerfit.power import POWER_BOUNDS, fit_power, power_law

    rng = np.random.default_rng(0)
    u = rng.uniform(0.05, 0.9, 200)
    truth = power_law(u, 60.0, 280.0, 0.8)
    fit = fit_power("x", u, truth * np.exp(rng.normal(0, 0.02, u.size)), 300.0)
    assert fit.p_idle_w == pytest.approx(60.0, rel=0.1)
    assert fit.p_max_w == pytest.approx(280.0, rel=0.1)
    assert fit.gamma == pytest.approx(0.8, rel=0.15)
    # power above TDP and below any idle: the fit stays inside its physical bounds
    wild = fit_power("x", u, 5.0 * truth, 300.0)
    wild.check_bounds()
    assert 0 < wild.p_idle_w < wild.p_max_w <= 300.0
    lo, hi = POWER_BOUNDS["gamma"]
    assert lo <= wild.gamma <= hi
    with pytest.raises(ValueError, match="positive"):
        fit_power("x", u, -truth, 300.0)


def test_power_fit_interval_widens_outside_measured_utilisation():
    from powerfit.power import PowerFit

    fit = PowerFit("x", 300.0, 80.0, 200.0, 1.0, 0.05, True, (0.1, 0.4))
    u = np.array([0.2, 0.4, 0.7, 1.0])
    p = fit.power(u)
    lo, hi = fit.interval(u)
    assert np.all((lo <= p) & (p <= hi) & (hi <= 300.0))
    assert hi[-1] == pytest.approx(300.0)  # above the measured range: up to TDP
    assert (hi[2] - lo[2]) / p[2] > (hi[0] - lo[0]) / p[0]
    assert not fit.outside(0.2) and fit.outside(0.7)
    assert replace(fit, fitted=False).outside(0.2)


def test_bundled_power_models_are_physical_and_flag_transfer():
    from powerfit.power import POWER_BOUNDS, load_power_bundle, power_model_for

    bundle = load_power_bundle()
    if bundle is None:
        pytest.skip("no bundled power_models.json")
    assert bundle["provenance"]["built_by"] == "experiments/build_power_models.py"
    for gpu, d in bundle["gpus"].items():
        fit = power_model_for(gpu)
        fit.check_bounds()  # 0 < P_idle < P_max ≤ TDP, gamma in its range
        assert fit.fitted and fit.gpu == gpu and d["n_configs"] >= 10
        for score in d["heldout"]:  # held-out configurations and held-out GPU
            assert score["coverage90_pct"] >= 80.0
    for score in bundle["end_to_end"]["scores"]:  # predicted step time x power
        assert score["coverage90_pct"] >= 80.0
    t = bundle["transfer"]
    assert POWER_BOUNDS["idle_fraction"][0] <= t["idle_fraction"] < t["max_fraction"] <= 1.0
    h100 = power_model_for("NVIDIA H100 80GB HBM3")
    h100.check_bounds()
    assert not h100.fitted and h100.tdp_w == 700.0
    assert h100.sigma_log > max(d["sigma_log"] for d in bundle["gpus"].values())
    est = estimate_step(
        from_hf_config(SMALL["gpt2"]), "h100", 2, 16, operator_model=_ConstantModel()
    )
    assert est.power_source == "transferred" and est.power_outside


def test_paper_model_config_matches_torch_encoder_layers():
    from powerfit.power import paper_model_config

    d, h, layers, seq = 64, 4, 2, 32
    for model in ("bert", "gpt"):
        cfg = paper_model_config(model, layers, d, h, seq)
        assert cfg.causal == (model == "gpt")
        net = nn.ModuleList(
            [nn.Embedding(1000, d), nn.Linear(d, 1000)]
            + [nn.TransformerEncoderLayer(d, h, 2048) for _ in range(layers)]
            + ([nn.Embedding(seq, d)] if model == "bert" else [])
        )
        torch_count = sum(p.numel() for p in net.parameters())
        # the graph's head has no bias (1,000 parameters, no product); GPT-style: the
        # graph keeps a one-row position table when counting
        extra = 0 if model == "bert" else d
        assert cfg.n_parameters == torch_count - 1000 + extra
    with pytest.raises(ValueError, match="bert"):
        paper_model_config("lstm", 1, 64, 4, 32)


def test_interval_half_width_and_coverage_on_synthetic_steps():
    from powerfit.step_evaluation import interval_coverage, interval_half_width

    assert math.isnan(interval_half_width([0.1]))
    r = np.array([0.1, -0.1, 0.1, -0.1])
    from scipy.stats import t as student_t

    assert interval_half_width(r) == pytest.approx(student_t.ppf(0.95, 3) * 0.1)
    # every GPU weighs the same: one GPU's many small errors do not narrow another's
    r = np.array([0.01] * 9 + [0.3])
    gpus = ["a"] * 9 + ["b"]
    rms = np.sqrt((0.01**2 + 0.3**2) / 2)
    assert interval_half_width(r, gpus) == pytest.approx(student_t.ppf(0.95, 9) * rms)
    assert interval_half_width(r, gpus) > 2 * interval_half_width(r)
    rng = np.random.default_rng(1)
    n = 60
    measured = rng.uniform(0.1, 2.0, n)
    frame = pd.DataFrame(
        {
            "gpu": np.repeat(["a", "b"], n // 2),
            "measured_s": measured,
            "in-gpu": measured * np.exp(rng.normal(0, 0.05, n)),
        }
    )
    cov = interval_coverage(frame, modes=("in-gpu",))
    assert set(cov.protocol) == {"loo-step", "loo-gpu", "loo-gpu-unwidened"}
    assert (cov.coverage90_pct >= 80).all()
    # a GPU with a bias the other GPU does not show: only the widening covers it
    frame.loc[frame.gpu == "b", "in-gpu"] *= 1.15
    cov = interval_coverage(frame, modes=("in-gpu",)).set_index(["gpu", "protocol"])
    assert (
        cov.loc[("b", "loo-gpu"), "coverage90_pct"]
        > cov.loc[("b", "loo-gpu-unwidened"), "coverage90_pct"]
    )


@pytest.mark.skipif(NEUSIGHT is None, reason="needs POWERFIT_DATA_HOME with neusight2025")
def test_evaluate_steps_table():
    from powerfit.step_evaluation import MODES, evaluate_steps

    table = evaluate_steps()
    assert {"NVIDIA A100 80GB PCIe", "Tesla V100-PCIE-32GB"} <= set(table.gpu)
    for mode in MODES:
        assert mode in table
    a100 = table.set_index("gpu").loc["NVIDIA A100 80GB PCIe"]
    assert a100["in-gpu"] < 10.0 and a100["roofline"] > a100["in-gpu"]
    # the interval's out-of-sample coverage, the unseen-GPU case widened as shipped
    cov = [c for c in table if c.startswith("coverage90_") and c.endswith("loo-gpu")]
    assert cov and (table[cov] >= 80.0).all().all()


def _mayaki() -> bool:
    home = os.environ.get("POWERFIT_DATA_HOME")
    return bool(home) and (Path(home) / "mayaki2025" / "processed").is_dir()


@pytest.mark.skipif(not _mayaki(), reason="needs POWERFIT_DATA_HOME with mayaki2025")
def test_mayaki_power_frame_utilisation_is_physical():
    from powerfit.power import mayaki_power_frame

    frame = mayaki_power_frame()
    assert set(frame.gpu) == {"NVIDIA A100 80GB PCIe", "NVIDIA GeForce RTX 2080 Ti"}
    assert ((frame.utilisation > 0) & (frame.utilisation < 1)).all()
    assert (frame.power_w < frame.tdp_w).all()
    assert frame.params_match.mean() > 0.9  # the graph is the paper's model
    assert frame.config_id.nunique() < len(frame)  # repeated rows share an id


# --------------------------------------------------------------------------------------
# Precisions without operator laws
# --------------------------------------------------------------------------------------

H100 = "NVIDIA H100 80GB HBM3"


@pytest.fixture(scope="module")
def fp32_laws():
    model = bundled_operator_model("fp32")
    if model is None:
        pytest.skip("no bundled fp32 operator laws")
    return model


def test_bf16_rows_memory_bound_by_fp32_laws_products_by_roofline(fp32_laws):
    from powerfit.graph import operator_latency, operator_latency_sources

    c = from_hf_config(SMALL["gpt2"])
    g = training_step_graph(c, 4, 32, precision="bf16")
    assert set(g.precision) == {"bf16"}
    with pytest.warns(RuntimeWarning) as caught:
        lat = operator_latency(g, H100, fp32_laws)
    (note,) = [str(w.message) for w in caught]
    mm = g.op.isin(["linear", "bmm"]).to_numpy()
    assert note == (
        f"no bf16 operator laws: bf16 matrix products ({mm.sum()} rows): roofline at the "
        "bf16 peak (989.5 TFLOP/s) plus the fp32 laws' fixed cost per call (t0); bf16 "
        f"memory-bound operators ({(~mm).sum()} rows): fp32 bandwidth laws on their own "
        "bf16 bytes"
    )
    # products: the roofline at the BF16 tensor-core peak + the FP32 law's t0
    peak, bw = 989.5e12, 3.35e12
    t0 = g.op[mm].map(lambda op: fp32_laws.law(H100, op)[0]["t0"]).to_numpy()
    roof = np.maximum(g.flop[mm] / peak, g["bytes"][mm] / bw).to_numpy()
    assert lat[mm] == pytest.approx(roof + t0, rel=1e-12)
    assert lat[mm] == pytest.approx(roofline_latency(g[mm], H100) + t0, rel=1e-12)
    # memory-bound: the FP32 laws on the same bytes (an FP32 twin with half the rows
    # moves them, at the same row length)
    mem = g[~mm].reset_index(drop=True)
    even = (mem.B % 2 == 0).to_numpy()
    assert even.sum() >= 0.8 * len(mem)
    twin = mem[even].assign(precision="fp32", B=mem.B[even] // 2)
    X = twin.assign(gpu=H100)[["gpu", "op", "precision", "B", "M", "N", "K", "H"]]
    assert lat[~mm][even] == pytest.approx(fp32_laws.predict(X.reset_index(drop=True)), rel=1e-12)
    _, source, _ = operator_latency_sources(g, H100, fp32_laws)
    assert set(source[mm]) == {"roofline"} and set(source[~mm]) == {"fp32 bandwidth laws"}


def test_tf32_memory_bound_rows_are_the_fp32_ones_exactly(fp32_laws):
    from powerfit.graph import operator_latency

    c = from_hf_config(SMALL["gpt2"])
    g = training_step_graph(c, 4, 32, precision="fp32")
    lat32 = operator_latency(g, "NVIDIA A100 80GB PCIe", fp32_laws)
    tf = g.assign(precision="tf32")  # every row TF32, memory-bound ones included
    with pytest.warns(RuntimeWarning, match=r"tf32 matrix products .*\(156 TFLOP/s\)"):
        lat_tf = operator_latency(tf, "NVIDIA A100 80GB PCIe", fp32_laws)
    mm = g.op.isin(["linear", "bmm"]).to_numpy()
    assert np.array_equal(lat_tf[~mm], lat32[~mm])
    # the graph's own TF32 step: memory-bound rows are FP32 rows, timed by the laws
    g_tf = training_step_graph(c, 4, 32, precision="tf32")
    with pytest.warns(RuntimeWarning, match="^no tf32 operator laws: tf32 matrix products"):
        lat_g = operator_latency(g_tf, "NVIDIA A100 80GB PCIe", fp32_laws)
    assert np.array_equal(lat_g[~mm], lat32[~mm])
    assert (lat_g[mm] < lat32[mm]).all()  # 8x the peak, same launch cost


def test_roofline_interval_is_widened_outside_the_measured_steps():
    from powerfit.step_evaluation import half_width_for

    bundle = {
        "half_width": {
            "in-gpu": {"half_width": 0.2},
            "roofline": {"half_width": 0.5},
            "in-gpu+cal": {"half_width": 0.1},
            "specs-only": {"half_width": 0.3},
        },
        "widen_outside": 2.0,
    }
    q = half_width_for("in-gpu", outside=True, roofline=True, bundle=bundle)
    assert q == pytest.approx(1.0)
    assert half_width_for("in-gpu", outside=False, roofline=True, bundle=bundle) == 0.5
    assert half_width_for("in-gpu", outside=True, roofline=False, bundle=bundle) == 0.4
    assert half_width_for("in-gpu+cal", outside=False, roofline=False, bundle=bundle) == 0.1


def test_cli_estimate_amp_bf16_flags_roofline_products(tmp_path, capsys, fp32_laws):
    from powerfit.cli import estimate_hf
    from powerfit.step_evaluation import half_width_for, load_step_intervals

    path = tmp_path / "config.json"
    path.write_text(json.dumps(SMALL["gpt2"]))
    argv = ["--hf-config", str(path), "--gpu", "h100", "--batch-size", "2", "--seq-len", "16"]
    assert estimate_hf.main([*argv, "--precision", "amp-bf16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "in-gpu+roofline"
    assert out["outside_measured_range"] is True
    assert 0.0 < out["roofline_share"] < 1.0
    products = sum(t for op, t in out["breakdown_by_op"].items() if op in ("linear", "bmm"))
    assert out["roofline_share"] * out["step_time_s"] == pytest.approx(products, rel=1e-9)
    bundle = load_step_intervals()
    widen = float(bundle["widen_outside"]) if bundle else 2.0
    roof_q = half_width_for("roofline", outside=False, roofline=False)
    assert out["step_time_half_width"] == pytest.approx(widen * roof_q)
    lo, hi = out["step_time_interval_s"]
    assert lo == pytest.approx(out["step_time_s"] * math.exp(-widen * roof_q))
    assert hi == pytest.approx(out["step_time_s"] * math.exp(widen * roof_q))
    assert any("bf16 matrix products" in w and "roofline" in w for w in out["warnings"])
    assert any("timed by the roofline at the bf16 peak" in w for w in out["warnings"])
