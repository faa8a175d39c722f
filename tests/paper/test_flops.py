"""Tests of powerfit.paper.flops: the published formulas and PyTorch's own FLOP counter."""

import numpy as np
import pandas as pd
import pytest

from powerfit.paper import flops as F


def test_transformer_formulas_match_method():
    ops = F.layer_flops("transformer", batch_size=64, seq_len=320, d_model=512, n_heads=8)
    w = 64 * 320
    assert ops["qkv_projections"] == 6 * w * 512**2
    assert ops["attention_scores"] == 2 * 64 * 320**2 * 512
    assert ops["attention_output"] == ops["attention_scores"]
    assert ops["final_projection"] == 2 * w * 512**2
    assert ops["ffn"] == 4 * w * 512 * 2048
    assert ops["attention_softmax"] == 5 * 64 * 8 * 320**2
    assert list(ops) == list(F.OPERATIONS["transformer"])


def test_head_dimension_is_floored_in_attention_products_only():
    # 768 / 7 = 109.7 -> d_k = 109 in the two attention products.
    ops = F.layer_flops("transformer", batch_size=2, seq_len=10, d_model=768, n_heads=7)
    assert ops["attention_scores"] == 2 * 2 * 7 * 10**2 * 109
    assert ops["qkv_projections"] == 6 * 2 * 10 * 768**2


def test_lstm_matches_published_per_step_counts(mayaki):
    # The published LSTM files count one time step (cell update there is 2*B*H).
    row = mayaki.lstm_energy.iloc[0]
    b, i, h = row["batch_size"], row["input_size"], row["hidden_size"]
    ops = F.layer_flops("lstm", batch_size=b, input_size=i, hidden_size=h)
    assert ops["input_gates"] == pytest.approx(row["FLOPs_Gates"] * 1e12)
    assert ops["hidden_gates"] == pytest.approx(row["hidden_gates"] * 1e12)
    assert ops["activations"] == pytest.approx(row["FLOPs_Activations"] * 1e12)
    assert ops["hidden_update"] == pytest.approx(row["FLOPs_Hidden_Update"] * 1e12)
    assert ops["cell_update"] == pytest.approx(1.5 * row["FLOPs_Cell_Update"] * 1e12)


def test_transformer_matches_published_operation_file(mayaki):
    ops = mayaki.transformer_operations
    names = {
        "QKV Projections": "qkv_projections",
        "Attention Scores": "attention_scores",
        "Attention Output": "attention_output",
        "Final Projection": "final_projection",
    }
    sub = ops[ops["operation"].isin(list(names))]
    counts = F.configuration_flops(
        sub.assign(batch_size=64, n_heads=1), arch="transformer", operations=list(names.values())
    )
    expected = sub["FLOPs"].to_numpy(dtype=float)
    columns = [list(counts.columns).index(names[op]) for op in sub["operation"]]
    got = counts.to_numpy()[np.arange(len(sub)), columns]
    np.testing.assert_allclose(got, expected)


def test_vectorised_shapes_and_containers():
    assert isinstance(F.qkv_projections(2, 3, 4), float)
    arr = F.qkv_projections(np.array([1, 2]), 3, 4)
    assert isinstance(arr, np.ndarray) and arr.shape == (2,)
    s = pd.Series([1, 2], index=["a", "b"])
    out = F.attention_scores(s, 8, 16, 2)
    assert isinstance(out, pd.Series) and list(out.index) == ["a", "b"]
    grid = F.final_projection(np.ones((2, 3)), 4, 8)
    assert grid.shape == (2, 3)


def test_training_flops_is_three_times_forward():
    fwd = F.layer_flops("gru", batch_size=4, input_size=8, hidden_size=16, seq_len=3)
    train = F.training_flops(fwd)
    assert all(train[k] == 3 * fwd[k] for k in fwd)
    configs = pd.DataFrame(
        {
            "arch": ["lstm"] * 2,
            "batch_size": [4, 8],
            "input_size": 8,
            "hidden_size": 16,
            "n_layers": [1, 2],
        }
    )
    per_model = F.configuration_flops(configs, per="model", training=True)
    per_layer = F.configuration_flops(configs)
    np.testing.assert_allclose(per_model.to_numpy(), 3 * per_layer.to_numpy() * [[1], [2]])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"batch_size": 0, "seq_len": 4, "d_model": 8, "n_heads": 2}, "batch_size"),
        ({"batch_size": 1, "seq_len": -4, "d_model": 8, "n_heads": 2}, "seq_len"),
        ({"batch_size": 1, "seq_len": 4, "d_model": np.nan, "n_heads": 2}, "d_model"),
        ({"batch_size": 1, "seq_len": 4, "d_model": 8, "n_heads": np.inf}, "n_heads"),
        ({"batch_size": 1, "seq_len": 4, "d_model": 8, "n_heads": 16}, "n_heads"),
        ({"batch_size": 1, "seq_len": 4, "d_model": 8}, "n_heads"),
    ],
)
def test_bad_input_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        F.layer_flops("transformer", **kwargs)


def test_unknown_architecture_and_operation():
    with pytest.raises(ValueError, match="arch"):
        F.layer_flops("mamba", batch_size=1)
    with pytest.raises(ValueError, match="unknown lstm operation"):
        F.layer_flops("lstm", operations=["ffn"], batch_size=1, input_size=2, hidden_size=3)


# ----------------------------------------------------------------- against PyTorch
torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402


def _count(fn, *args) -> dict[str, int]:
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return {str(k): int(v) for k, v in counter.get_flop_counts().get("Global", {}).items()}


@pytest.mark.parametrize(("b", "t", "d", "h"), [(2, 8, 32, 4), (3, 17, 48, 6), (1, 5, 60, 12)])
def test_multihead_attention_matches_torch(b, t, d, h):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(d, h, batch_first=True)
    x = torch.randn(b, t, d)
    with sdpa_kernel(SDPBackend.MATH):  # the math kernel runs (and counts) two bmm
        counts = _count(lambda: mha(x, x, x, need_weights=False))
    ops = F.layer_flops("transformer", batch_size=b, seq_len=t, d_model=d, n_heads=h)
    assert sum(counts.values()) == (
        ops["qkv_projections"] + ops["final_projection"] + 2 * ops["attention_scores"]
    )
    assert counts["aten.bmm"] == ops["attention_scores"] + ops["attention_output"]


@pytest.mark.parametrize(("b", "t", "d", "h", "ff"), [(2, 8, 32, 4, 64), (4, 12, 64, 8, 256)])
def test_transformer_encoder_layer_matches_torch(b, t, d, h, ff):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    layer = torch.nn.TransformerEncoderLayer(d, h, dim_feedforward=ff, batch_first=True)
    x = torch.randn(b, t, d)
    with sdpa_kernel(SDPBackend.MATH):
        counts = _count(layer, x)
    ops = F.layer_flops("transformer", batch_size=b, seq_len=t, d_model=d, n_heads=h, d_ff=ff)
    matmuls = sum(v for k, v in ops.items() if k != "attention_softmax")
    assert sum(counts.values()) == matmuls


@pytest.mark.parametrize(("arch", "cls"), [("lstm", "LSTM"), ("gru", "GRU")])
@pytest.mark.parametrize(("b", "t", "i", "h"), [(5, 7, 32, 48), (2, 3, 10, 20), (8, 1, 64, 16)])
def test_recurrent_layers_match_torch(arch, cls, b, t, i, h):
    module = getattr(torch.nn, cls)(i, h, batch_first=True)
    x = torch.randn(b, t, i)
    # oneDNN fuses the LSTM into one kernel the counter cannot see; the reference
    # implementation runs one mm for the input gates and one addmm per step.
    with torch.backends.mkldnn.flags(enabled=False):
        counts = _count(module, x)
    ops = F.layer_flops(arch, batch_size=b, input_size=i, hidden_size=h, seq_len=t)
    assert sum(counts.values()) == ops["input_gates"] + ops["hidden_gates"]
    if t > 1:  # one mm over all time steps for the input gates, one addmm a step
        assert counts["aten.mm"] == ops["input_gates"]
        assert counts["aten.addmm"] == ops["hidden_gates"]
