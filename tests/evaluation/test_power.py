"""Tests of powerfit.evaluation.power: the paper's models and the published steps' power."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn


def test_paper_model_config_matches_torch_encoder_layers():
    from powerfit.evaluation.power import paper_model_config

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


def test_mayaki_power_frame_utilisation_is_physical():
    from powerfit.evaluation.power import mayaki_power_frame

    frame = mayaki_power_frame()
    assert set(frame.gpu) == {"NVIDIA A100 80GB PCIe", "NVIDIA GeForce RTX 2080 Ti"}
    assert ((frame.utilisation > 0) & (frame.utilisation < 1)).all()
    assert (frame.power_w < frame.tdp_w).all()
    assert frame.params_match.mean() > 0.9  # the graph is the paper's model
    assert frame.config_id.nunique() < len(frame)  # repeated rows share an id
