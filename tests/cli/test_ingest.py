"""The ``powerfit ingest`` and ``powerfit db`` commands."""

from __future__ import annotations

import json

import pytest

from powerfit.cli import main
from powerfit.store import schema

COUNTS_ZERO = {"gpus": 0, "operation_measurements": 0, "run_measurements": 0, "imports": 0}


@pytest.fixture
def db(tmp_path) -> str:
    return str(tmp_path / "cli.db")


def _stats(db: str, capsys) -> dict[str, int]:
    capsys.readouterr()
    assert main(["db", "stats", "--json", "--db", db]) == 0
    return json.loads(capsys.readouterr().out)


def test_ingest_published_files_then_again(db, data_home, capsys):
    processed = data_home / "mayaki2025" / "processed"
    paths = [str(processed / "SubsetDataForLSTM_energyModel.csv"),
             str(processed / "SubsetDataForTransformer_energyModel.csv")]  # fmt: skip
    assert main(["ingest", *paths, "--db", db]) == 0
    out = capsys.readouterr().out
    assert "741 rows into run_measurements" in out and "1576 rows" in out
    assert _stats(db, capsys) == {**COUNTS_ZERO, "gpus": 2, "run_measurements": 2317, "imports": 2}
    assert main(["ingest", paths[0], "--db", db, "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["status"] == "duplicate" and result["rows"] == 0
    assert main(["ingest", paths[0], "--db", db]) == 0
    assert "already ingested" in capsys.readouterr().out
    assert _stats(db, capsys)["run_measurements"] == 2317


def test_bad_file_exits_1_and_writes_nothing(db, tmp_path, data_home, capsys):
    good = data_home / "mayaki2025" / "processed" / "SubsetDataForLSTM_energyModel.csv"
    bad = tmp_path / "bad.csv"
    bad.write_text("gpu,arch,n_layers,batch_size,duration_s\na100,lstm,1,64,fast\n")
    assert main(["ingest", str(good), str(bad), "--db", db]) == 1
    err = capsys.readouterr().err
    assert f"{bad}, data row 1 (line 2), column 'duration_s': not a number: 'fast'" in err
    assert _stats(db, capsys) == COUNTS_ZERO  # the good file was not written either


def test_set_overrides(db, tmp_path, capsys):
    path = tmp_path / "runs.csv"
    path.write_text("duration_s,energy_j\n0.5,60\n0.7,80\n")
    args = ["ingest", str(path), "--db", db, "--format", "powerfit-runs"]
    assert main(args) == 1
    assert "column 'gpu': missing column; add it or pass --set gpu=" in capsys.readouterr().err
    config = ["--set", "gpu=NVIDIA H200", "--set", "arch=gru", "--set", "n_layers=2",
              "--set", "batch_size=32", "--set", "hidden_size=256"]  # fmt: skip
    assert main([*args, *config]) == 0
    assert _stats(db, capsys)["run_measurements"] == 2
    assert main([*args, "--set", "oops"]) == 1
    assert "COLUMN=VALUE" in capsys.readouterr().err


def test_set_on_a_column_the_file_has_is_an_error(db, tmp_path, capsys):
    given = tmp_path / "given.csv"
    given.write_text("gpu,arch,n_layers,batch_size,duration_s\na100,lstm,1,64,0.5\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("gpu,arch,n_layers,batch_size,duration_s\na100,,1,64,0.5\n")
    assert main(["ingest", str(empty), str(given), "--db", db, "--set", "arch=gru"]) == 1
    err = capsys.readouterr().err
    assert (
        f"{given}, data row 1 (line 2), column 'arch': --set arch=gru would replace the "
        "file's own values of this column (here 'lstm')"
    ) in err
    assert _stats(db, capsys) == COUNTS_ZERO  # the other file was not written either
    # A column empty in every row is filled.
    assert main(["ingest", str(empty), "--db", db, "--set", "arch=gru", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert (result["rows"], result["overrides"]) == (1, {"arch": "gru"})
    with pytest.raises(SystemExit):
        main(["ingest", "--help"])
    assert "never silently replaced" in " ".join(capsys.readouterr().out.split())


def test_db_actions(db, capsys):
    assert main(["db", "current", "--db", db]) == 0
    assert "empty" in capsys.readouterr().out
    assert main(["db", "upgrade", "--db", db]) == 0
    head = schema.head_revision()
    assert f"at {head}" in capsys.readouterr().out
    assert main(["db", "current", "--db", db]) == 0
    assert f"{head} (head)" in capsys.readouterr().out
    assert main(["db", "stats", "--db", db]) == 0
    assert "operation_measurements" in capsys.readouterr().out
    assert main(["db", "downgrade", "base", "--db", db, "--yes"]) == 0
    assert "at base" in capsys.readouterr().out


def test_db_url_from_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POWERFIT_DB_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert main(["db", "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == COUNTS_ZERO
    assert (tmp_path / "env.db").exists()


def test_help_has_examples(capsys):
    for command in (["ingest", "--help"], ["db", "--help"]):
        with pytest.raises(SystemExit):
            main(command)
        assert "examples:" in capsys.readouterr().out


def test_ingest_neusight_operator_files(db, data_home, tmp_path, capsys):
    import gzip

    import pandas as pd

    folder = data_home / "neusight2025" / "ops"
    if not folder.is_dir():
        pytest.skip(
            pytest.skip(
                "needs the neusight2025 data set (github.com/sitar-lab/NeuSight, see "
                "powerfit/datasets/neusight2025.py): set POWERFIT_DATA_HOME to a folder "
                "holding neusight2025/"
            )
        )
    paths = []
    for source in (
        folder / "test" / "softmax.csv.gz",
        folder / "train" / "gelu" / "Tesla_P4.csv.gz",
    ):
        target = tmp_path / source.name.replace(".csv.gz", f"-{source.parent.name}.csv.gz")
        text = pd.read_csv(source).head(40).to_csv(index=False)
        target.write_bytes(gzip.compress(text.encode()))
        paths.append(str(target))
    assert main(["ingest", *paths, "--db", db, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [(r["format"], r["rows"], r["status"]) for r in results] == [
        ("neusight2025-operators", 40, "imported")
    ] * 2
    assert main(["ingest", *paths, "--db", db]) == 0
    assert capsys.readouterr().out.count("already ingested") == 2


def test_db_imports_and_remove_import(db, data_home, capsys):
    processed = data_home / "mayaki2025" / "processed"
    files = [
        processed / "dataForTransformerHEF.csv",
        processed / "SubsetDataForLSTM_energyModel.csv",
    ]
    assert main(["ingest", *map(str, files), "--db", db]) == 0
    capsys.readouterr()
    assert main(["db", "imports", "--json", "--db", db]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(i["id"], i["rows"], i["overrides"]) for i in listed] == [(1, 3000, {}), (2, 741, {})]
    assert set(listed[0]) >= {"id", "source", "sha256", "rows", "overrides", "imported_at"}
    assert main(["db", "imports", "--db", db]) == 0
    assert "dataForTransformerHEF.csv" in capsys.readouterr().out
    # Destructive: refused without a terminal unless --yes (pytest's stdin is not one).
    assert main(["db", "remove-import", "1", "--db", db]) == 1
    assert "--yes" in capsys.readouterr().err
    assert main(["db", "remove-import", "1", "--db", db, "--yes"]) == 0
    assert "removed import 1" in capsys.readouterr().out
    assert main(["db", "stats", "--json", "--db", db]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert (counts["operation_measurements"], counts["run_measurements"]) == (0, 741)
    assert main(["db", "remove-import", "1", "--db", db, "--yes"]) == 1
    assert "no import 1" in capsys.readouterr().err


EMISSIONS = (
    "timestamp,project_name,run_id,duration,emissions,energy_consumed,gpu_energy,"
    "codecarbon_version,gpu_count,gpu_model\n"
    "2024-05-27T11:31:35,codecarbon,979336a5,300.0,0.0165,0.0338,0.0277,2.4.2,1,"
    "1 x NVIDIA A100-SXM4-40GB\n"
)


def test_codecarbon_rows_no_energy_model_can_use_are_refused_by_name(db, tmp_path, capsys):
    path = tmp_path / "emissions.csv"
    path.write_text(EMISSIONS)
    partial = ["--set", "arch=transformer", "--set", "n_layers=6", "--set", "batch_size=64"]
    assert main(["ingest", str(path), "--db", db, *partial]) == 1
    err = capsys.readouterr().err
    assert (
        f"{path}: 1 of 1 rows lack d_model (1), n_heads (1), seq_len (1), needed by every "
        "energy model of transformer; give them with --set d_model=... --set n_heads=... "
        "--set seq_len=... (or pass --allow-incomplete"
    ) in err
    assert _stats(db, capsys) == COUNTS_ZERO
    assert main(["ingest", str(path), "--db", db, *partial, "--allow-incomplete"]) == 0
    assert "warning: " in capsys.readouterr().err
    assert _stats(db, capsys)["run_measurements"] == 1
    full = [*partial, "--set", "seq_len=512", "--set", "d_model=768", "--set", "n_heads=12"]
    assert main(["ingest", str(path), "--db", db, *full]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err and "1 rows into run_measurements" in captured.out
