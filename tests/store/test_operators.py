"""Precision, NeuSight's generic operators, store GPUs, GPU counts and import management.

Real SQLite, and PostgreSQL where ``POWERFIT_TEST_POSTGRES_URL`` is set.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from powerfit.exceptions import DataError, StoreError
from powerfit.hardware.gpus import get_gpu
from powerfit.kernels.counts import operator_bytes, operator_flops
from powerfit.store import open_store, schema
from powerfit.store.queries import single_precision
from powerfit.store.readers.read import detect_format, read_measurements

A100 = "NVIDIA A100 80GB PCIe"
RTX = "NVIDIA GeForce RTX 2080 Ti"
RTX3090 = "NVIDIA GeForce RTX 3090"  # not in the catalogue


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, tmp_path):
    """A fresh store on SQLite, then on PostgreSQL (skipped without a server)."""
    if request.param == "sqlite":
        url = str(tmp_path / "store.db")
    else:
        url = request.getfixturevalue("postgres_schema_url")
    with open_store(url) as opened:
        yield opened


@pytest.fixture(scope="module")
def neusight(data_home) -> Path:
    folder = data_home / "neusight2025" / "ops"
    if not folder.is_dir():
        pytest.skip(
            pytest.skip(
                "needs the neusight2025 data set (github.com/sitar-lab/NeuSight, see "
                "powerfit/datasets/neusight2025.py): set POWERFIT_DATA_HOME to a folder "
                "holding neusight2025/"
            )
        )
    return folder


def _slice(source: Path, target: Path, rows: int, *, every: int = 1) -> Path:
    """The first ``rows`` data rows (one in ``every``) of a gzipped CSV, gzipped again."""
    frame = pd.read_csv(source).iloc[::every].head(rows)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    target.write_bytes(gzip.compress(buffer.getvalue().encode()))
    return target


# ------------------------------------------------------------------------- precision
def test_published_data_are_labelled_tf32_on_the_a100_and_fp32_on_the_rtx(ingested_store):
    ops = ingested_store.operation_measurements()
    labels = ops.groupby("gpu")["precision"].unique().map(list).to_dict()
    assert labels == {A100: ["tf32"], RTX: ["fp32"]}
    runs = ingested_store.run_measurements()
    assert runs.groupby("gpu")["precision"].unique().map(list).to_dict() == labels
    # The evidence: A100 matrix products run far above the FP32 peak, RTX ones below it.
    rate = ops["flops"] / ops["duration_s"]
    assert rate[ops["gpu"] == A100].max() > 5 * get_gpu(A100).peak_flops["fp32"]
    rtx = rate[ops["gpu"] == RTX].max()
    assert 0.7 * get_gpu(RTX).peak_flops["fp32"] < rtx < get_gpu(RTX).peak_flops["fp32"]
    assert ops["efficiency"].max() <= 1.0


def test_precision_filter_and_mixing_refused(store, tmp_path):
    path = tmp_path / "ops.csv"
    path.write_text(
        "gpu,arch,operation,batch_size,seq_len,d_model,precision,flops,duration_s\n"
        f"{A100},transformer,qkv_projections,8,128,512,tf32,1e10,1e-3\n"
        f"{A100},transformer,qkv_projections,8,128,512,FP32,1e9,1e-3\n"
        f"{A100},transformer,qkv_projections,8,128,512,amp-bf16,1e10,1e-4\n"
    )
    store.ingest(path)
    ops = store.operation_measurements(A100, "transformer")
    assert list(ops["precision"]) == ["tf32", "fp32", "amp-bf16"]
    # amp-bf16 is bounded by the BF16 peak.
    assert ops.loc[2, "peak_flops"] == get_gpu(A100).peak_flops["bf16"]
    with pytest.raises(DataError, match=r"mix precisions: .*tf32 \(1 rows\).*--precision"):
        single_precision(ops, "operation measurements")
    only = store.operation_measurements(A100, "transformer", precision="tf32")
    assert len(only) == 1 and single_precision(only) == "tf32"
    with pytest.raises(ValueError, match="unknown precision 'fp64'"):
        store.operation_measurements(precision="fp64")


@pytest.mark.parametrize(
    ("precision", "message"),
    [
        ("int8", r"precision 'int8' unknown; known: fp32, tf32"),
        ("tf32", r"precision 'tf32' has no peak throughput for NVIDIA GeForce RTX 2080 Ti"),
    ],
)
def test_bad_precisions_are_refused(tmp_path, precision, message):
    path = tmp_path / "ops.csv"
    path.write_text(
        "gpu,arch,operation,batch_size,seq_len,d_model,precision,flops,duration_s\n"
        f"{RTX},transformer,qkv_projections,8,128,512,{precision},1e9,1e-3\n"
    )
    with pytest.raises(DataError, match=rf"data row 1 \(line 2\), column 'precision': {message}"):
        read_measurements(path)


def test_migration_labels_existing_published_rows(tmp_path, data_home):
    processed = data_home / "mayaki2025" / "processed"
    path = tmp_path / "old.db"
    with open_store(path) as store:
        store.ingest(processed / "dataForTransformerHEF.csv")
        schema.downgrade(store.engine, "0002")
        with store.engine.begin() as conn:
            conn.execute(sa.text("UPDATE operation_measurements SET precision = 'unknown'"))
        schema.upgrade(store.engine)
        ops = store.operation_measurements()
    assert ops.groupby("gpu")["precision"].unique().map(list).to_dict() == {
        A100: ["tf32"],
        RTX: ["fp32"],
    }


# ---------------------------------------------------------------------------- NeuSight
def test_neusight_matrix_products_are_stored_as_generic_operators(any_store, neusight, tmp_path):
    path = _slice(neusight / "test" / "bmm.csv.gz", tmp_path / "bmm.csv.gz", 300, every=40)
    assert detect_format(pd.read_csv(path).columns) == "neusight2025-operators"
    result = any_store.ingest(path)
    assert (result.format, result.kind, result.rows) == (
        "neusight2025-operators",
        "operation",
        300,
    )
    again = any_store.ingest(path)
    assert again.duplicate and again.rows == 0
    assert any_store.counts()["operation_measurements"] == 300
    raw = pd.read_csv(path)
    ops = any_store.operator_measurements()
    assert list(ops["gpu"]) == [get_gpu(g).name for g in raw["Device"]]
    assert set(ops["op"]) == {"bmm"} and set(ops["precision"]) == {"fp32"}
    assert set(ops["tool"]) == {"neusight"} and ops["energy_j"].isna().all()
    assert list(ops["kernel"]) == list(raw["Kernel Name"])
    assert ops["duration_s"].to_numpy() == pytest.approx(raw["Latency"].to_numpy() / 1e3)
    shape = {c: raw[c].to_numpy(float) for c in "BMNK"}
    assert ops["flops"].to_numpy() == pytest.approx(operator_flops("bmm", **shape))
    assert ops["bytes"].to_numpy() == pytest.approx(operator_bytes("bmm", **shape))
    assert ops[["B", "M", "N", "K"]].to_numpy() == pytest.approx(raw[list("BMNK")].to_numpy())
    assert ops["H"].isna().all()
    # Generic operators stay out of the Transformer tables used by the paper's fits.
    assert any_store.operation_measurements(arch="transformer").empty
    assert len(any_store.operation_measurements(arch="generic")) == 300
    assert len(any_store.operator_measurements(op="matmul", precision="fp32")) == 300


def test_neusight_memory_bound_operators(store, neusight, tmp_path):
    elem = _slice(neusight / "test" / "elem.csv.gz", tmp_path / "elem.csv.gz", 200, every=20)
    ln = _slice(neusight / "train" / "ln" / "Tesla_T4.csv.gz", tmp_path / "ln.csv.gz", 50)
    for path in (elem, ln):
        store.ingest(path)
    ops = store.operator_measurements()
    raw = pd.read_csv(elem)
    assert set(ops["op"]) == set(raw["OPName"]) | {"ln"}
    assert ops[["M", "N", "K"]].isna().all().all() and ops["H"].notna().all()
    first = ops.iloc[0]
    expected = operator_bytes(raw["OPName"][0], raw["B"][0], H=raw["H"][0])
    assert first["bytes"] == pytest.approx(expected)
    assert (store.operator_measurements(op="layernorm")["gpu"] == "Tesla T4").all()


def test_neusight_unknown_operator_and_gpu(tmp_path):
    header = "OPName,Latency,Device,Kernel Name,B,H\n"
    bad_op = tmp_path / "op.csv"
    bad_op.write_text(header + "relu,0.1,Tesla T4,k,8,1024\nswish,0.1,Tesla T4,k,8,1024\n")
    with pytest.raises(
        DataError, match=r"data row 2 \(line 3\), column 'OPName': unknown operator"
    ):
        read_measurements(bad_op)
    bad_gpu = tmp_path / "gpu.csv"
    bad_gpu.write_text(header + "relu,0.1,NVIDIA GeForce RTX 3090,k,8,1024\n")
    with pytest.raises(DataError, match=r"column 'Device': unknown GPU .*powerfit gpus add"):
        read_measurements(bad_gpu)


@pytest.mark.slow
def test_full_neusight_test_file_ingests_once_and_fast(store, neusight):
    import time

    start = time.perf_counter()
    result = store.ingest(neusight / "test" / "bmm.csv.gz")
    elapsed = time.perf_counter() - start
    assert result.rows == 13461 and elapsed < 30
    assert store.ingest(neusight / "test" / "bmm.csv.gz").duplicate
    assert len(store.operator_measurements()["gpu"].unique()) == 8


# ------------------------------------------------------------------------- store GPUs
def test_added_gpu_makes_its_files_ingest(any_store, tmp_path):
    path = tmp_path / "ops.csv"
    path.write_text(
        "gpu,arch,operation,batch_size,seq_len,d_model,flops,duration_s\n"
        f"{RTX3090},transformer,qkv_projections,8,128,512,1e10,1e-3\n"
    )
    with pytest.raises(DataError, match=r"unknown GPU 'NVIDIA GeForce RTX 3090'.*gpus add"):
        any_store.ingest(path)
    any_store.add_gpu(
        RTX3090, {"fp32": 35.6e12, "fp16": 71e12}, memory_bandwidth=0.936e12,
        power_limit_w=350.0, sm_count=82,
    )  # fmt: skip
    result = any_store.ingest(path)
    assert result.rows == 1
    ops = any_store.operation_measurements(RTX3090)
    assert ops.loc[0, "precision"] == "fp32"
    assert ops.loc[0, "efficiency"] == pytest.approx(1e10 / 1e-3 / 35.6e12)
    listed = {g["name"]: g for g in any_store.gpus()}
    assert listed[RTX3090]["origin"] == "user" and listed[RTX3090]["operation_rows"] == 1
    assert listed[RTX3090]["memory_bandwidth"] == 0.936e12
    with pytest.raises(ValueError, match="already in the store"):
        any_store.add_gpu(RTX3090, {"fp32": 1e12})
    with pytest.raises(ValueError, match="in powerfit's catalogue"):
        any_store.add_gpu("a100", {"fp32": 1e12})


def test_gpus_list_catalogue_with_laws():
    from powerfit.store.gpus import list_gpus

    gpus = {g["name"]: g for g in list_gpus()}
    neusight = [
        "NVIDIA A100 80GB PCIe", "NVIDIA A100-PCIE-40GB", "NVIDIA H100 80GB HBM3",
        "NVIDIA L4", "Tesla P100-PCIE-16GB", "Tesla P4", "Tesla T4", "Tesla V100-PCIE-32GB",
        RTX,
    ]  # fmt: skip
    assert set(neusight) <= set(gpus)
    assert "mayaki2025-a100" in gpus[A100]["profiles"]
    assert "mayaki2025-rtx2080ti" in gpus[RTX]["profiles"]
    assert gpus["Tesla T4"]["peak_flops"]["fp32"] == 8.1e12


# ------------------------------------------------------------------ CodeCarbon GPU count
EMISSIONS = """\
timestamp,project_name,run_id,duration,emissions,energy_consumed,gpu_energy,cpu_energy,ram_energy,codecarbon_version,gpu_count,gpu_model
2024-05-27T11:31:35,codecarbon,a,300.0,0.0165,{energy},0.0277,0.0035,0.0026,2.4.2,{count},{model}
"""


def test_codecarbon_gpu_count(any_store, tmp_path):
    config = {"arch": "transformer", "n_layers": "6", "batch_size": "64"}
    path = tmp_path / "emissions.csv"
    path.write_text(EMISSIONS.format(energy=0.0338, count=4, model="4 x NVIDIA A100-SXM4-40GB"))
    any_store.ingest(path, overrides=config)
    run = any_store.run_measurements().iloc[0]
    assert (run["gpu"], run["gpu_count"]) == ("NVIDIA A100-SXM4-40GB", 4)
    assert run["energy_j"] == pytest.approx(0.0338 * 3.6e6)  # the total, not per GPU
    # 30 kW in 300 s: refused for one GPU, plausible for four (bound 10 kW per GPU).
    energy = 30e3 * 300 / 3.6e6
    one = tmp_path / "one.csv"
    one.write_text(EMISSIONS.format(energy=energy, count="", model="1 x NVIDIA A100-SXM4-40GB"))
    with pytest.raises(DataError, match=r"mean power 3e\+04 W > 10000 W per GPU"):
        any_store.ingest(one, overrides=config)
    four = tmp_path / "four.csv"
    four.write_text(EMISSIONS.format(energy=energy, count="", model="4 x NVIDIA A100-SXM4-40GB"))
    assert any_store.ingest(four, overrides=config).rows == 1
    clash = tmp_path / "clash.csv"
    clash.write_text(
        "gpu,gpu_count,arch,n_layers,batch_size,duration_s,energy_j\n"
        "2 x NVIDIA A100-SXM4-40GB,4,transformer,6,64,1.0,100\n"
    )
    with pytest.raises(DataError, match="says 2 GPUs but gpu_count is 4"):
        any_store.ingest(clash)


# ------------------------------------------------------------------------------ imports
def test_list_and_remove_imports(any_store, data_home):
    processed = data_home / "mayaki2025" / "processed"
    first = any_store.ingest(processed / "dataForTransformerHEF.csv")
    second = any_store.ingest(processed / "SubsetDataForLSTM_energyModel.csv")
    listed = any_store.imports()
    assert [i["id"] for i in listed] == [first.import_id, second.import_id]
    assert listed[0]["rows"] == 3000 and listed[0]["sha256"] == first.sha256
    assert listed[0]["overrides"] == {} and listed[0]["imported_at"].endswith("+00:00")
    removed = any_store.remove_import(first.import_id)
    assert removed == {"operation_measurements": 3000, "run_measurements": 0, "imports": 1}
    counts = any_store.counts()
    assert (counts["operation_measurements"], counts["run_measurements"]) == (0, 741)
    assert [i["id"] for i in any_store.imports()] == [second.import_id]
    with pytest.raises(StoreError, match="no import"):
        any_store.remove_import(first.import_id)
    # Removed content can be ingested again.
    assert any_store.ingest(processed / "dataForTransformerHEF.csv").rows == 3000


def test_upgrade_from_0001_keeps_rows_and_labels_them(tmp_path):
    """Migrations recreate tables on SQLite: the measurements must survive (no cascade)."""
    with open_store(tmp_path / "old.db", migrate=False) as store:
        schema.upgrade(store.engine, "0001")
        with store.engine.begin() as conn:
            for sql in (
                f"INSERT INTO gpus (id, name, peak_flops, default_precision) "
                f"VALUES (1, '{A100}', '{{}}', 'tf32')",
                "INSERT INTO imports (id, source, sha256, format, kind, row_count, imported_at, "
                "imported_by, tool) VALUES (1, 'x.csv', 'ab', "
                "'mayaki2025-transformer-operations', 'operation', 1, '2026-01-01', 'me', 'p')",
                "INSERT INTO operation_measurements (import_id, source_row, gpu_id, arch, "
                "operation, precision, flops, duration_s) VALUES (1, 1, 1, 'transformer', "
                "'qkv_projections', 'fp32', 1e9, 1e-3)",
            ):
                conn.execute(sa.text(sql))
        schema.upgrade(store.engine)
        assert store.operation_measurements()["precision"].tolist() == ["tf32"]
        schema.downgrade(store.engine, "0001")
        schema.upgrade(store.engine)
        assert store.counts()["operation_measurements"] == 1
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_fit_refuses_mixed_precisions_and_selects_one(store, data_home, tmp_path):
    from powerfit.tracking.fitting import fit_coefficients

    processed = data_home / "mayaki2025" / "processed"
    store.ingest(processed / "dataForTransformerHEF.csv")
    store.ingest(processed / "SubsetDataForTransformer_energyModel.csv")
    extra = tmp_path / "fp32.csv"
    extra.write_text(
        "gpu,arch,operation,batch_size,seq_len,d_model,precision,flops,duration_s\n"
        f"{A100},transformer,qkv_projections,8,128,512,fp32,1e9,1e-3\n"
    )
    store.ingest(extra)
    with pytest.raises(DataError, match=r"mix precisions: tf32 \(\d+ rows\), fp32 \(1 rows\)"):
        fit_coefficients(store, A100, "transformer")
    with pytest.raises(DataError, match="no operation measurements"):
        fit_coefficients(store, A100, "transformer", precision="bf16")
