"""``powerfit fit`` on the ingested published data, into a real MLflow SQLite store."""

from __future__ import annotations

import json

from powerfit.cli import main


def _store_url(ingested_store) -> str:
    return ingested_store.engine.url.render_as_string(hide_password=False)


def test_fit_json_then_text(ingested_store, tracking_uri, capsys):
    common = ["fit", "--gpu", "a100", "--arch", "transformer", "--db", _store_url(ingested_store),
              "--tracking-uri", tracking_uri, "--register", "my-model"]  # fmt: skip
    assert main([*common, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["model_name"], out["version"], out["promoted"]) == ("my-model", 1, True)
    assert out["model_uri"] == "models:/my-model/1"
    assert 0 < out["metrics"]["test_mape"] < 0.2
    assert "law.qkv_projections.eta_max" in out["coefficients"]
    assert any("attention_softmax" in note for note in out["notes"])

    assert main([*common, "--promote"]) == 0
    text = capsys.readouterr().out
    assert "qkv_projections" in text and "MAPE" in text
    assert "registered my-model version 2 (now champion)" in text


def test_fit_unknown_selection_explains_the_store(ingested_store, tracking_uri, capsys):
    code = main(["fit", "--gpu", "rtx2080ti", "--arch", "lstm",
                 "--db", _store_url(ingested_store), "--tracking-uri", tracking_uri])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "powerfit fit: error: no run measurements" in err
    assert "It holds:" in err and "NVIDIA A100 80GB PCIe / transformer" in err
