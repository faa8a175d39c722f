"""``powerfit gpus``: list the catalogue and store GPUs, add one the catalogue lacks."""

from __future__ import annotations

import json

import pytest

from powerfit.cli import main

RTX3090 = "NVIDIA GeForce RTX 3090"  # not in the catalogue
NEUSIGHT_GPUS = (
    "NVIDIA A100 80GB PCIe", "NVIDIA A100-PCIE-40GB", "NVIDIA H100 80GB HBM3", "NVIDIA L4",
    "Tesla P100-PCIE-16GB", "Tesla P4", "Tesla T4", "Tesla V100-PCIE-32GB",
    "NVIDIA GeForce RTX 2080 Ti",
)  # fmt: skip


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_gpus_json_lists_the_nine_gpus_with_specs_and_laws(tmp_path, capsys):
    gpus = {
        g["name"]: g for g in _json(capsys, ["gpus", "--json", "--db", str(tmp_path / "s.db")])
    }
    assert set(NEUSIGHT_GPUS) <= set(gpus)
    for name in NEUSIGHT_GPUS:
        gpu = gpus[name]
        assert gpu["origin"] == "catalogue" and gpu["peak_flops"]["fp32"] > 0
        assert gpu["memory_bandwidth"] > 0 and gpu["power_limit_w"] > 0 and gpu["sm_count"] > 0
    assert "mayaki2025-a100" in gpus["NVIDIA A100 80GB PCIe"]["profiles"]
    assert gpus["Tesla V100-PCIE-32GB"]["memory_type"] == "HBM"
    assert gpus["Tesla T4"]["memory_type"] == "GDDR"
    assert main(["gpus", "--db", str(tmp_path / "s.db")]) == 0
    table = capsys.readouterr().out
    assert "Tesla P4" in table and "mayaki2025-rtx2080ti" in table


def test_gpus_add_then_ingest_an_rtx_3090(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    data = tmp_path / "ops.csv"
    data.write_text(
        "gpu,arch,operation,batch_size,seq_len,d_model,precision,flops,duration_s\n"
        f"{RTX3090},transformer,qkv_projections,8,128,512,fp16,1e10,1e-3\n"
    )
    assert main(["ingest", str(data), "--db", db]) == 1
    assert "powerfit gpus add" in capsys.readouterr().err
    argv = ["gpus", "add", RTX3090, "--peak-flops", "fp32=35.6T,fp16=71e12",
            "--memory-bandwidth", "0.936e12", "--tdp", "350", "--sm-count", "82",
            "--db", db]  # fmt: skip
    assert main(argv) == 0
    assert "added 'NVIDIA GeForce RTX 3090'" in capsys.readouterr().out
    assert main(argv) == 1
    assert "already in the store" in capsys.readouterr().err
    assert main(["ingest", str(data), "--db", db]) == 0
    assert "1 rows into operation_measurements" in capsys.readouterr().out
    gpus = {g["name"]: g for g in _json(capsys, ["gpus", "--json", "--db", db])}
    added = gpus[RTX3090]
    assert added["origin"] == "user" and added["operation_rows"] == 1
    assert added["peak_flops"] == {"fp32": 35.6e12, "fp16": 71e12}
    assert (added["power_limit_w"], added["sm_count"]) == (350.0, 82)


@pytest.mark.parametrize(
    ("peaks", "message"),
    [("fp33=1e12", "precision among"), ("fp32=abc", "not a number"), ("fp32=-1", "> 0")],
)
def test_gpus_add_refuses_bad_peaks(tmp_path, capsys, peaks, message):
    db = str(tmp_path / "s.db")
    assert main(["gpus", "add", "My GPU", "--peak-flops", peaks, "--db", db]) == 1
    assert message in capsys.readouterr().err


def test_gpus_add_refuses_a_catalogue_gpu(tmp_path, capsys):
    argv = ["gpus", "add", "Tesla T4", "--peak-flops", "fp32=8e12", "--db", str(tmp_path / "s.db")]
    assert main(argv) == 1
    assert "in powerfit's catalogue" in capsys.readouterr().err


# ------------------------------------------------------------- terminal escapes (issue 26)
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_db(request, tmp_path) -> str:
    """A new store's URL on each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "s.db")
    return request.getfixturevalue("postgres_schema_url")


def test_gpus_add_refuses_control_characters(any_db, capsys):
    db = any_db
    argv = ["gpus", "add", "GPU\x1b]0;owned\x07X", "--peak-flops", "fp32=1e13", "--db", db]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\\x1b" in err and "control characters" in err, err
    assert main(["gpus", "--db", db]) == 0
    assert "owned" not in capsys.readouterr().out


def test_gpus_add_refuses_infinite_specs(tmp_path, capsys):
    argv = ["gpus", "add", "My GPU", "--peak-flops", "fp32=1e13", "--tdp", "inf"]
    assert main([*argv, "--db", str(tmp_path / "s.db")]) == 1
    assert "--tdp: inf is not a finite number" in capsys.readouterr().err
    from powerfit.store import open_store
    from powerfit.store.gpus import add_gpu

    with open_store(tmp_path / "s.db") as store, pytest.raises(ValueError, match="TDP must be"):
        add_gpu(store.engine, "My GPU", {"fp32": 1e13}, power_limit_w=float("inf"))


def test_listings_escape_control_characters_already_stored(any_db, capsys):
    """Names written by an older powerfit, or straight into the database, print escaped."""
    import sqlalchemy as sa

    from powerfit.store import open_store
    from powerfit.store.gpus import add_gpu

    db = any_db
    with open_store(db) as store:
        add_gpu(store.engine, "Evil GPU", {"fp32": 1e13}, power_limit_w=300)
        with store.engine.begin() as conn:
            conn.execute(sa.text("UPDATE gpus SET name = :n WHERE name = 'Evil GPU'"),
                         {"n": "Evil\x1b]0;owned\x07GPU"})  # fmt: skip
            conn.execute(
                sa.text(
                    "INSERT INTO imports (source, sha256, identity, format, kind, row_count, "
                    "imported_at, imported_by, tool) VALUES (:s, :h, :i, 'powerfit-runs', "
                    "'run', 0, CURRENT_TIMESTAMP, 'me@here', 't')"
                ),
                {"s": "f\x1b[2J.csv", "h": "ab" * 32, "i": "cd" * 32},
            )
    assert main(["gpus", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "Evil\\x1b]0;owned\\x07GPU" in out
    assert main(["db", "imports", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "f\\x1b[2J.csv" in out, out
