"""``powerfit history`` over two recorded fits."""

from __future__ import annotations

import json

import pandas as pd

from powerfit.cli import main

NAME = "powerfit-nvidia-a100-80gb-pcie-transformer"


def test_history_table_and_json(recorded_fits, capsys):
    uri = recorded_fits[0]
    assert main(["history", "--tracking-uri", uri]) == 0
    text = capsys.readouterr().out
    assert text.count(NAME) == 1 and "champion" in text and "%" in text  # said once
    assert max(map(len, text.splitlines())) <= 120
    assert main(["history", "--tracking-uri", uri, "--wide"]) == 0
    wide = capsys.readouterr().out
    assert wide.count(NAME) == 2 and "laws" in wide and "data_sha256" in wide
    assert max(map(len, wide.splitlines())) > 120
    assert main(["history", "--tracking-uri", uri, "--gpu", "a100", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["version"] for row in rows] == [1, 2]
    assert rows[0]["law.qkv_projections.eta_max"] == rows[1]["law.qkv_projections.eta_max"]
    assert len(rows[0]["data_sha256"]) == 64 and rows[0]["created"].startswith("20")


def test_history_empty_selection(recorded_fits, capsys):
    assert main(["history", "--tracking-uri", recorded_fits[0], "--arch", "lstm"]) == 0
    assert "no recorded versions" in capsys.readouterr().out


def test_history_compare(recorded_fits, tmp_path, capsys):
    uri = recorded_fits[0]
    path = tmp_path / "configs.csv"
    configs = pd.DataFrame(
        {"batch_size": [64, 64], "seq_len": [320, 320], "d_model": [512, 768],
         "n_heads": [8, 12], "n_layers": [6, 12]}
    )  # fmt: skip
    configs.to_csv(path, index=False)
    assert main(["history", "--tracking-uri", uri, "--compare", str(path), "--json"]) == 0
    rows = pd.DataFrame(json.loads(capsys.readouterr().out))
    assert list(rows[f"{NAME}/1"]) == list(rows[f"{NAME}/2"])
    assert rows[f"{NAME}/1"].between(1, 1000).all()
    configs.loc[1, "n_layers"] = 0
    configs.to_csv(path, index=False)
    assert main(["history", "--tracking-uri", uri, "--compare", str(path)]) == 1
    assert "row 2, column 'n_layers'" in capsys.readouterr().err


def test_history_diff_fits_120_columns_and_none_is_no_change(recorded_fits, capsys):
    uri = recorded_fits[0]
    assert main(["history", "--tracking-uri", uri, "--diff", "1", "2"]) == 0
    text = capsys.readouterr().out
    assert f"model {NAME}: version 1 → 2" in text
    assert max(map(len, text.splitlines())) <= 120
    assert main(["history", "--tracking-uri", uri, "--diff", "1", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for row in rows:
        a, b = row[f"{NAME}/1"], row[f"{NAME}/2"]
        if a in (None, "") and b in (None, ""):
            assert row["change"] == "", row  # None → None is no change
    tags = {r["key"]: r for r in rows}
    assert tags["laws_from"]["change"] == "" if "laws_from" in tags else True


def test_history_compare_fits_120_columns(recorded_fits, tmp_path, capsys):
    path = tmp_path / "configs.csv"
    path.write_text("n_layers,batch_size,seq_len,d_model,n_heads\n6,64,320,512,8\n")
    assert main(["history", "--tracking-uri", recorded_fits[0], "--compare", str(path)]) == 0
    text = capsys.readouterr().out
    assert f"model {NAME}: energy [J]" in text and " v1 " in text and " v2" in text
    assert max(map(len, text.splitlines())) <= 120
