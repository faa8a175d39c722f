"""Ingestion: the published files, CodeCarbon, our own format, and bad input."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from powerfit.cli import main
from powerfit.exceptions import DataError, StoreError
from powerfit.store import ingest as ingest_module
from powerfit.store import open_store, schema
from powerfit.store.engine import create_engine
from powerfit.store.models import Import
from powerfit.store.readers.read import detect_format, read_measurements

from ..conftest import MAYAKI2025_ROWS

A100 = "NVIDIA A100 80GB PCIe"
RTX = "NVIDIA GeForce RTX 2080 Ti"


@pytest.fixture(scope="module")
def processed(data_home) -> Path:
    return data_home / "mayaki2025" / "processed"


# ---------------------------------------------------------------- published files
def test_published_files_are_all_ingested_and_traceable(ingested_store, processed):
    counts = ingested_store.counts()
    assert counts == {
        "gpus": 2,
        "operation_measurements": 3000 + 11400,
        "run_measurements": 1576 + 741,
        "imports": 4,
    }
    with ingested_store.engine.connect() as conn:
        imports = pd.read_sql("SELECT * FROM imports", conn)
        per_import = pd.read_sql(
            "SELECT import_id, COUNT(*) AS n FROM operation_measurements GROUP BY import_id "
            "UNION ALL SELECT import_id, COUNT(*) FROM run_measurements GROUP BY import_id",
            conn,
        )
    for name, (kind, rows) in MAYAKI2025_ROWS.items():
        row = imports[imports["source"].str.endswith(name)].iloc[0]
        assert (row["kind"], row["row_count"]) == (kind, rows)
        assert row["sha256"] == hashlib.sha256((processed / name).read_bytes()).hexdigest()
        assert row["imported_by"] and row["tool"].startswith("powerfit ")
        assert per_import.set_index("import_id").loc[row["id"], "n"] == rows


def test_second_ingest_adds_nothing(store, processed):
    first = store.ingest(processed / "SubsetDataForLSTM_energyModel.csv")
    before = store.counts()
    again = store.ingest(processed / "SubsetDataForLSTM_energyModel.csv")
    assert (first.rows, first.duplicate) == (741, False)
    assert (again.rows, again.duplicate, again.import_id) == (0, True, first.import_id)
    assert store.counts() == before


def _duplicate_race(store, path, monkeypatch) -> None:
    first = store.ingest(path)
    before = store.counts()
    # A second process that checked before the first committed: the pre-check misses.
    real = ingest_module._existing_import
    calls = []

    def missed_once(conn, identity, sha256):
        calls.append(identity)
        return None if len(calls) == 1 else real(conn, identity, sha256)

    monkeypatch.setattr(ingest_module, "_existing_import", missed_once)
    result = ingest_module.ingest_measurements(store.engine, read_measurements(path))
    assert result.duplicate and result.rows == 0
    assert result.import_id == first.import_id >= 1
    assert store.counts() == before


def test_duplicate_race_is_handled_by_the_unique_constraint(store, processed, monkeypatch):
    _duplicate_race(store, processed / "SubsetDataForLSTM_energyModel.csv", monkeypatch)


@pytest.mark.postgres
def test_duplicate_race_is_handled_by_the_unique_constraint_postgresql(
    postgres_schema_url, processed, monkeypatch
):
    with open_store(postgres_schema_url) as store:
        _duplicate_race(store, processed / "SubsetDataForLSTM_energyModel.csv", monkeypatch)


def test_transformer_operations_units(ingested_store, mayaki):
    ops = ingested_store.operation_measurements(arch="transformer")
    published = mayaki.transformer_operations
    assert len(ops) == 3000
    assert set(ops["operation"]) == {
        "qkv_projections",
        "attention_scores",
        "attention_softmax",
        "attention_output",
        "final_projection",
    }
    assert (ops["batch_size"] == 64).all() and ops["n_heads"].isna().all()
    assert ops["energy_j"].isna().all()  # CodeCarbon window ≠ one call
    np.testing.assert_array_equal(ops["flops"], published["FLOPs"].to_numpy(float))
    np.testing.assert_array_equal(ops["duration_s"], published["elapsed_time_sec"])
    # Efficiency as a fraction, with the GPU's peak at the row's precision (A100: TF32
    # 156e12, RTX: FP32 13.45e12 — the peaks of this file); HEF is published in %.
    np.testing.assert_allclose(ops["efficiency"] * 100, published["HEF"], atol=0.0051)
    assert set(ops.loc[ops["gpu"] == A100, "precision"]) == {"tf32"}
    assert set(ops.loc[ops["gpu"] == RTX, "precision"]) == {"fp32"}


def test_lstm_operations_are_per_time_step(ingested_store, mayaki):
    ops = ingested_store.operation_measurements(arch="lstm")
    assert len(ops) == 11400
    assert (ops["seq_len"] == 1).all()
    assert set(ops["operation"]) == {
        "input_gates",
        "hidden_gates",
        "activations",
        "cell_update",
        "hidden_update",
    }
    gates = ops[ops["operation"] == "input_gates"]
    expected = 8.0 * gates["batch_size"] * gates["input_size"] * gates["hidden_size"]
    np.testing.assert_array_equal(gates["flops"], expected.astype(float))


def test_energy_files_units(ingested_store, mayaki):
    runs = ingested_store.run_measurements(arch="transformer")
    published = mayaki.transformer_energy
    assert len(runs) == 1576
    assert set(runs["gpu"]) == {A100, RTX} and set(runs["model"]) == {"bert", "gpt2"}
    np.testing.assert_array_equal(runs["energy_j"], published["energy_joules"])
    np.testing.assert_array_equal(runs["duration_s"], published["duration"])
    parts = runs[["gpu_energy_j", "cpu_energy_j", "ram_energy_j"]].sum(axis=1)
    np.testing.assert_allclose(parts, runs["energy_j"], rtol=1e-12)
    repeated = runs["repeats"] == 3
    assert runs.loc[~repeated, "energy_std_j"].isna().all()
    spread = runs.loc[repeated, "energy_std_j"] / runs.loc[repeated, "energy_j"]
    assert 0.001 < spread.median() < 0.004  # ≈ 0.2 % (method.md §6)
    lstm = ingested_store.run_measurements(arch="lstm")
    assert len(lstm) == 741 and lstm["duration_s"].isna().all()
    np.testing.assert_allclose(
        lstm["energy_j"], mayaki.lstm_energy["energy_consumed_kWh"] * 3.6e6, rtol=1e-12
    )
    assert (lstm["seq_len"] == 4).all() and (lstm["n_layers"] == 1).all()


def test_query_filters_and_columns(ingested_store):
    ops = ingested_store.operation_measurements("rtx2080ti", "transformer", "attention_scores")
    assert len(ops) == 200 and set(ops["gpu"]) == {RTX}
    assert list(ops.columns[-4:]) == ["tool", "peak_flops", "efficiency", "import_id"]
    assert ops["peak_flops"].eq(13.45e12).all()
    runs = ingested_store.run_measurements(gpu=A100)
    assert len(runs) == 1427 + 741
    for column in ("arch", "model", "n_layers", "batch_size", "seq_len", "d_model"):
        assert column in runs.columns
    assert runs["sha256"].str.len().eq(64).all()
    assert runs["n_layers"].dtype == "Int64" and runs["energy_j"].dtype == float


# ---------------------------------------------------------------------- formats
OPS_CSV = """\
gpu,arch,operation,batch_size,seq_len,d_model,n_heads,precision,flops,duration_s,energy_j,repeats,tool
NVIDIA H100 80GB HBM3,transformer,qkv_projections,8,512,1024,16,bf16,2.5e10,0.0001,0.05,100,t
h100,transformer,attention_scores,8,512,1024,16,,4.2e9,0.00004,,100,t
"""

RUNS_CSV = """\
gpu,arch,model,n_layers,batch_size,seq_len,d_model,n_heads,duration_s,energy_j
a100,transformer,bert,6,64,320,512,8,0.2,40
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_powerfit_csv_and_parquet(store, tmp_path):
    csv = _write(tmp_path, "ops.csv", OPS_CSV)
    assert store.ingest(csv).format == "powerfit-operations"
    parquet = tmp_path / "runs.parquet"
    pd.read_csv(_write(tmp_path, "runs.csv", RUNS_CSV)).to_parquet(parquet)
    result = store.ingest(parquet)
    assert (result.format, result.rows) == ("powerfit-runs", 1)
    ops = store.operation_measurements()
    assert list(ops["precision"]) == ["bf16", "tf32"]  # default precision filled in
    assert ops["gpu"].eq("NVIDIA H100 80GB HBM3").all()
    assert ops.loc[0, "efficiency"] == pytest.approx(2.5e10 / 1e-4 / 989.5e12)
    assert store.run_measurements().loc[0, "energy_j"] == 40.0


EMISSIONS = """\
timestamp,project_name,run_id,duration,emissions,emissions_rate,cpu_power,gpu_power,ram_power,cpu_energy,gpu_energy,ram_energy,energy_consumed,country_name,country_iso_code,region,cloud_provider,cloud_region,os,python_version,codecarbon_version,cpu_count,cpu_model,gpu_count,gpu_model,longitude,latitude,ram_total_size,tracking_mode,on_cloud,pue
2024-05-27T11:31:35,codecarbon,979336a5,300.0,0.0165,5.5e-05,42.5,302.3,31.3,0.0035,0.0277,0.0026,0.0338,Singapore,SGP,,,,Linux,3.10.12,2.4.2,12,Intel Xeon,1,1 x NVIDIA A100-SXM4-40GB,103.85,1.28,83.4,machine,N,1.0
"""  # noqa: E501


def test_codecarbon_with_configuration_overrides(store, tmp_path):
    path = _write(tmp_path, "emissions.csv", EMISSIONS)
    assert detect_format(pd.read_csv(path).columns) == "codecarbon"
    with pytest.raises(DataError, match=r"column 'arch'.*--set arch"):
        store.ingest(path)
    config = {"arch": "transformer", "model": "bert", "n_layers": "6", "batch_size": "64"}
    result = store.ingest(path, overrides={**config, "steps": "100"})
    assert result.rows == 1
    run = store.run_measurements().iloc[0]
    assert run["gpu"] == "NVIDIA A100-SXM4-40GB"
    assert run["duration_s"] == pytest.approx(3.0)  # 300 s / 100 steps
    assert run["energy_j"] == pytest.approx(0.0338 * 3.6e6 / 100)
    assert run["gpu_energy_j"] == pytest.approx(0.0277 * 3.6e6 / 100)
    assert run["repeats"] == 100 and run["tool"] == "codecarbon 2.4.2"


def test_unknown_override_column(store, tmp_path):
    path = _write(tmp_path, "emissions.csv", EMISSIONS)
    with pytest.raises(DataError, match="unknown column 'colour'"):
        store.ingest(path, overrides={"colour": "red"})


def test_override_never_replaces_values_the_file_has(store, tmp_path):
    path = _write(tmp_path, "runs.csv", RUNS_CSV)
    f = str(path).replace("\\", "\\\\")
    # Another value, or even the same one: the file's column is not replaced.
    for key, value in (("n_layers", "12"), ("arch", "transformer")):
        with pytest.raises(
            DataError,
            match=rf"{f}, data row 1 \(line 2\), column '{key}': --set {key}={value} would "
            r"replace the file's own values of this column",
        ):
            store.ingest(path, overrides={key: value})
    codecarbon = _write(tmp_path, "emissions.csv", EMISSIONS)  # has gpu_count 1
    with pytest.raises(DataError, match=r"column 'gpu_count': --set gpu_count=4 would replace"):
        store.ingest(codecarbon, overrides={**CONFIG, "gpu_count": "4"})
    # A column with a value in a later row only is refused at that row.
    header = "gpu,arch,n_layers,batch_size,duration_s,d_ff\n"
    rows = "a100,lstm,1,8,0.5,\na100,lstm,1,8,0.6,  \na100,lstm,1,8,0.7,256\n"
    later = _write(tmp_path, "later.csv", header + rows)
    with pytest.raises(DataError, match=r"data row 3 \(line 4\), column 'd_ff'.*\(here 256"):
        store.ingest(later, overrides={"d_ff": "512"})
    assert store.counts()["imports"] == 0


def test_override_fills_a_column_empty_in_every_row(store, tmp_path):
    header = "gpu,arch,n_layers,batch_size,duration_s,d_ff,model\n"
    path = _write(tmp_path, "runs.csv", header + "a100,lstm,1,8,0.5,,\na100,lstm,1,8,0.6,, \n")
    result = store.ingest(path, overrides={"d_ff": "512", "model": "lstm"})
    assert (result.rows, result.overrides) == (2, {"d_ff": "512", "model": "lstm"})
    runs = store.run_measurements()
    assert runs["d_ff"].tolist() == [512, 512] and runs["model"].tolist() == ["lstm"] * 2


def test_forced_format(store, tmp_path):
    path = _write(tmp_path, "ops.csv", OPS_CSV)
    with pytest.raises(DataError, match="column 'operation': unknown column"):
        store.ingest(path, format="powerfit-runs")
    with pytest.raises(DataError, match="unknown format"):
        store.ingest(path, format="excel")


# -------------------------------------------------------------------- bad input
def _bad_cases(processed: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Bad files: name -> (path, regex the error must match: file, row, column)."""
    source = pd.read_csv(processed / "dataForTransformerHEF.csv", nrows=30)

    def variant(name: str, change) -> Path:
        frame = source.copy()
        change(frame)
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        return path

    def set_cell(row: int, column: str, value: object):
        def change(frame):
            frame[column] = frame[column].astype(object)
            frame.loc[row, column] = value

        return change

    def f(name: str) -> str:
        return str(tmp_path / name).replace("\\", "\\\\")

    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header = tmp_path / "header.csv"
    header.write_text(",".join(source.columns) + "\n")
    return {
        "missing column": (
            variant("missing", lambda fr: fr.pop("elapsed_time_sec")),
            rf"{f('missing.csv')}, column 'elapsed_time_sec': missing column",
        ),
        "non-numeric": (
            variant("text", set_cell(6, "FLOPs", "lots")),
            rf"{f('text.csv')}, data row 7 \(line 8\), column 'FLOPs': not a number: 'lots'",
        ),
        "negative": (
            variant("negative", set_cell(11, "elapsed_time_sec", -0.5)),
            rf"{f('negative.csv')}, data row 12 \(line 13\), column 'elapsed_time_sec': "
            "negative value",
        ),
        "NaN": (
            variant("nan", set_cell(3, "d_model", np.nan)),
            rf"{f('nan.csv')}, data row 4 \(line 5\), column 'd_model': missing value",
        ),
        "unknown operation": (
            variant("op", set_cell(20, "operation", "Layer Norm")),
            rf"{f('op.csv')}, data row 21 \(line 22\), column 'operation': "
            "unknown transformer operation",
        ),
        "unknown GPU": (
            variant("gpu", set_cell(2, "source", "Voodoo 3")),
            rf"{f('gpu.csv')}, data row 3 \(line 4\), column 'source': unknown GPU 'Voodoo 3'",
        ),
        "empty": (empty, rf"{f('empty.csv')}: empty file"),
        "header only": (header, rf"{f('header.csv')}: no data rows"),
        "binary": (binary, rf"{f('binary.csv')}: binary content"),
    }


CASES = [
    "missing column",
    "non-numeric",
    "negative",
    "NaN",
    "unknown operation",
    "unknown GPU",
    "empty",
    "header only",
    "binary",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_changes_nothing(ingested_store, processed, tmp_path, case):
    path, message = _bad_cases(processed, tmp_path)[case]
    before = ingested_store.counts()
    with pytest.raises(DataError, match=message):
        ingested_store.ingest(path)
    assert ingested_store.counts() == before


def test_bad_row_deep_in_a_file_writes_nothing(store, processed, tmp_path):
    frame = pd.read_csv(processed / "dataForLstmHEF.csv", index_col=0)
    frame.iloc[11_000, frame.columns.get_loc("hidden_size")] = -64
    path = tmp_path / "late.csv"
    frame.to_csv(path)
    with pytest.raises(
        DataError, match=r"data row 11001 \(line 11002\), column 'hidden_size': negative value"
    ):
        store.ingest(path)
    assert store.counts()["operation_measurements"] == 0


def test_fractional_integer_and_zero_duration(store, tmp_path):
    path = _write(tmp_path, "runs.csv", RUNS_CSV.replace(",6,64,", ",6.5,64,"))
    with pytest.raises(
        DataError, match=r"data row 1 \(line 2\), column 'n_layers': not an integer: 6.5"
    ):
        store.ingest(path)
    path = _write(tmp_path, "runs0.csv", RUNS_CSV.replace(",0.2,40", ",0,40"))
    with pytest.raises(
        DataError, match=r"data row 1 \(line 2\), column 'duration_s': must be > 0"
    ):
        store.ingest(path)


def test_unknown_precision(store, tmp_path):
    path = _write(tmp_path, "ops.csv", OPS_CSV.replace("bf16", "fp4"))
    with pytest.raises(
        DataError, match=r"data row 1 \(line 2\), column 'precision': precision 'fp4'"
    ):
        store.ingest(path)


def test_undetectable_format(store, tmp_path):
    path = _write(tmp_path, "what.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match="cannot tell the format"):
        store.ingest(path)


def test_measurements_reference_their_gpu_and_import(store, processed, tmp_path):
    shutil.copy(processed / "SubsetDataForLSTM_energyModel.csv", tmp_path / "lstm.csv")
    result = store.ingest(tmp_path / "lstm.csv")
    with store.engine.connect() as conn:
        orphans = conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM run_measurements r LEFT JOIN imports i "
                "ON r.import_id = i.id LEFT JOIN gpus g ON r.gpu_id = g.id "
                "WHERE i.id IS NULL OR g.id IS NULL"
            )
        ).scalar()
        rows = conn.execute(
            sa.text("SELECT MIN(source_row), MAX(source_row) FROM run_measurements")
        ).one()
    assert orphans == 0 and tuple(rows) == (1, 741) and result.rows == 741


# ------------------------------------------------------------- import identity
CONFIG = {
    "arch": "transformer",
    "model": "bert",
    "n_layers": "6",
    "batch_size": "64",
    "d_model": "512",
    "n_heads": "8",
    "seq_len": "320",
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_store(request, tmp_path):
    """An empty store on SQLite, and on PostgreSQL when POWERFIT_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        url = str(tmp_path / "any.db")
    else:
        url = request.getfixturevalue("postgres_schema_url")
    with open_store(url) as opened:
        yield opened


def test_same_file_with_other_values_is_a_new_import(any_store, tmp_path):
    store = any_store
    path = _write(tmp_path, "emissions.csv", EMISSIONS)
    first = store.ingest(path, overrides=CONFIG)
    # The same values, written differently: the same import.
    same = store.ingest(path, overrides={**CONFIG, "n_layers": 6.0, "arch": " transformer"})
    assert (same.duplicate, same.rows, same.import_id) == (True, 0, first.import_id)
    other = store.ingest(path, overrides={**CONFIG, "n_layers": "12"})
    assert (other.duplicate, other.rows) == (False, 1)
    assert other.same_file_as == (first.import_id,) and other.sha256 == first.sha256
    assert sorted(store.run_measurements()["n_layers"]) == [6, 12]
    again = store.ingest(path, overrides={**CONFIG, "n_layers": "12"})
    assert again.duplicate and again.import_id == other.import_id
    with store.engine.connect() as conn:
        given = conn.execute(sa.select(Import.overrides).order_by(Import.id)).scalars().all()
    assert given == [CONFIG, {**CONFIG, "n_layers": "12"}]
    assert store.counts()["imports"] == 2


def test_cli_says_when_a_file_is_imported_again_with_other_values(tmp_path, capsys):
    path = _write(tmp_path, "emissions.csv", EMISSIONS)
    db = str(tmp_path / "cli.db")
    sets = [arg for key, value in CONFIG.items() for arg in ("--set", f"{key}={value}")]
    assert main(["ingest", str(path), "--db", db, *sets]) == 0
    assert "1 rows into run_measurements" in capsys.readouterr().out
    assert main(["ingest", str(path), "--db", db, *sets]) == 0
    out = capsys.readouterr().out
    assert "already ingested with the same --set values (import 1)" in out
    assert main(["ingest", str(path), "--db", db, *sets, "--set", "n_layers=12"]) == 0
    out = capsys.readouterr().out
    assert "(codecarbon, import 2); same file as import 1, with other --set values" in out


def _legacy_store(url: str, tmp_path: Path) -> None:
    path = _write(tmp_path, "emissions.csv", EMISSIONS)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    engine = create_engine(url)
    try:
        schema.upgrade(engine, "0001")  # a store written before imports had an identity
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO imports (source, sha256, format, kind, row_count, "
                    "imported_at, imported_by, tool) VALUES ('emissions.csv', :sha, "
                    "'codecarbon', 'run', 0, CURRENT_TIMESTAMP, 'me@here', 'powerfit 0.1.0')"
                ),
                {"sha": sha256},
            )
        schema.upgrade(engine, "head")
        schema.check(engine)
        store = open_store(engine)
        # Its --set values were not recorded: any values count as the same import.
        for config in (CONFIG, {**CONFIG, "n_layers": "12"}):
            result = store.ingest(path, overrides=config)
            assert result.duplicate and result.import_id == 1
        # A file imported twice with other values cannot go back to 0001.
        ops = _write(tmp_path, "ops.csv", OPS_CSV.replace(",t\n", ",\n"))
        store.ingest(ops, overrides={"tool": "a"})
        store.ingest(ops, overrides={"tool": "b"})
        with pytest.raises(StoreError, match="imported several times"):
            schema.downgrade(engine, "0001")
        assert store.counts()["imports"] == 3
    finally:
        engine.dispose()


def test_legacy_imports_keep_their_identity_sqlite(tmp_path):
    _legacy_store(f"sqlite:///{tmp_path / 'legacy.db'}", tmp_path)


@pytest.mark.postgres
def test_legacy_imports_keep_their_identity_postgresql(postgres_schema_url, tmp_path):
    _legacy_store(postgres_schema_url, tmp_path)


# ------------------------------------------------------------ kill -9 mid-ingest
_KILLED_INGEST = """
import sys, time
from powerfit.store import ingest, open_store
url, path, marker = sys.argv[1:]
write = ingest._insert_many

def write_then_hang(conn, table, frame):
    write(conn, table, frame)
    open(marker, "w").close()  # some rows are written, not committed
    time.sleep(120)

ingest.CHUNK_ROWS = 100
ingest._insert_many = write_then_hang
with open_store(url) as store:
    store.ingest(path)
"""


def _kill_mid_ingest(url: str, tmp_path: Path) -> None:
    lines = ["gpu,arch,operation,batch_size,input_size,hidden_size,seq_len,flops,duration_s"]
    lines += [f"a100,lstm,hidden_gates,8,{i + 1},64,1,65536,1e-4" for i in range(1000)]
    path = _write(tmp_path, "big.csv", "\n".join(lines) + "\n")
    marker = tmp_path / "written"
    with open_store(url) as store:
        before = store.counts()
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_INGEST, url, str(path), str(marker)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the ingest never started writing"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
    with open_store(url) as store:
        assert store.counts() == before  # nothing of the killed import is left
        result = store.ingest(path)  # and the file is not "already ingested"
        assert (result.duplicate, result.rows) == (False, 1000)
        assert store.counts()["operation_measurements"] == before["operation_measurements"] + 1000


def test_kill_9_mid_ingest_leaves_nothing_sqlite(tmp_path):
    _kill_mid_ingest(f"sqlite:///{tmp_path / 'killed.db'}", tmp_path)


@pytest.mark.postgres
def test_kill_9_mid_ingest_leaves_nothing_postgresql(postgres_schema_url, tmp_path):
    _kill_mid_ingest(postgres_schema_url, tmp_path)
