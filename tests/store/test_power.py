"""Measured board power in the store: readers, validation, no-loss ingest, read-back."""

from __future__ import annotations

import gzip
import json

import pytest

from powerfit.exceptions import DataError
from powerfit.store.ingest import ingest_file
from powerfit.store.power import power_measurements
from powerfit.store.readers.read import read_measurements


@pytest.fixture
def zeus_v100(data_home, tmp_path):
    src = data_home / "zeus2023" / "summary_power_v100.csv.gz"
    if not src.is_file():
        pytest.skip(
            "needs the zeus2023 data set (github.com/ml-energy/zeus, laid out as "
            "its README says): set POWERFIT_DATA_HOME to a folder holding zeus2023/"
        )
    return src


@pytest.fixture
def mlenergy_file(data_home):
    src = (
        data_home
        / "mlenergy2026"
        / "models"
        / "meta-llama__Llama-3.1-8B-Instruct__lm-arena-chat.json.gz"
    )
    if not src.is_file():
        pytest.skip(
            "needs the mlenergy2026 data set (github.com/ml-energy/leaderboard, "
            "laid out as its README says): set POWERFIT_DATA_HOME to a folder "
            "holding mlenergy2026/"
        )
    return src


def _zeus_copy(tmp_path, edit, name="summary_power_v100.csv.gz"):
    text = (
        "dataset,network,batch_size,optimizer,power_limit,time_per_epoch,average_power\n"
        "imagenet,resnet50,64,adadelta,250,3754.3,222.9\n"
        "imagenet,resnet50,128,adadelta,250,3603.6,222.4\n"
    )
    path = tmp_path / name
    path.write_bytes(gzip.compress(edit(text).encode()))
    return path


def test_both_formats_are_read_per_gpu_and_ingested_once(store, zeus_v100, mlenergy_file):
    m = read_measurements(mlenergy_file)
    assert m.kind == "power" and m.format == "mlenergy2026-power"
    rows = m.rows
    doc = json.loads(gzip.decompress(mlenergy_file.read_bytes()))
    first = doc["configurations"][0]
    assert rows.power_w.iloc[0] == pytest.approx(first["avg_power_watts"] / first["num_gpus"])
    for path in (zeus_v100, mlenergy_file):
        r = ingest_file(store.engine, path)
        assert r.kind == "power" and r.rows > 0
        assert ingest_file(store.engine, path).duplicate
    frame = power_measurements(store.engine)
    assert len(frame) == 476 + len(doc["configurations"])
    assert set(frame.gpu) == {"Tesla V100-PCIE-32GB", "NVIDIA H100 80GB HBM3", "NVIDIA B200"}
    assert (frame.duration_s > 0).all() and (frame.throughput > 0).all()
    assert frame.precision.isin(["fp32", "bf16"]).all()


@pytest.mark.parametrize(
    ("edit", "column", "row"),
    [
        (lambda t: t.replace("222.4", "600.0"), "average_power", 2),  # > 2 × 250 W
        (lambda t: t.replace("3754.3", "0"), "time_per_epoch", 1),
        (lambda t: t.replace("3603.6", "-5"), "time_per_epoch", 2),
        (lambda t: t.replace("222.9", "abc"), "average_power", 1),
    ],
)
def test_impossible_zeus_values_are_refused_naming_file_row_column(
    store, tmp_path, edit, column, row
):
    path = _zeus_copy(tmp_path, edit)
    with pytest.raises(DataError) as err:
        ingest_file(store.engine, path)
    msg = str(err.value)
    assert "summary_power_v100.csv.gz" in msg and f"data row {row}" in msg and column in msg
    assert power_measurements(store.engine).empty  # nothing written


def test_unknown_gpu_and_zero_throughput_are_refused(store, tmp_path, mlenergy_file):
    path = _zeus_copy(tmp_path, lambda t: t, name="summary_power_mi300.csv.gz")
    with pytest.raises(DataError, match=r"unknown GPU 'mi300'.*gpus add"):
        ingest_file(store.engine, path)
    doc = json.loads(gzip.decompress(mlenergy_file.read_bytes()))
    doc["configurations"][1]["output_throughput_tokens_per_sec"] = 0
    bad = tmp_path / "m__x__lm-arena-chat.json.gz"
    bad.write_bytes(gzip.compress(json.dumps(doc).encode()))
    with pytest.raises(DataError) as err:
        ingest_file(store.engine, bad)
    assert "data row 2" in str(err.value) and "output_throughput_tokens_per_sec" in str(err.value)
    doc["configurations"][1]["output_throughput_tokens_per_sec"] = 10.0
    doc["configurations"][2]["gpu_model"] = "MI300X"
    bad.write_bytes(gzip.compress(json.dumps(doc).encode()))
    with pytest.raises(DataError, match=r"data row 3.*gpu_model|gpu_model.*data row 3"):
        ingest_file(store.engine, bad)
    assert power_measurements(store.engine).empty


def test_power_measurements_on_postgres(postgres_schema_url, zeus_v100, tmp_path):
    from powerfit.store import open_store

    with open_store(postgres_schema_url) as pg:
        r = ingest_file(pg.engine, zeus_v100)
        assert r.rows == 476
        frame = power_measurements(pg.engine, "Tesla V100-PCIE-32GB")
        assert len(frame) == 476 and frame.power_w.max() < 250


def test_a_labs_zeus_file_under_any_name_gives_its_gpu_with_set(store, tmp_path):
    path = _zeus_copy(tmp_path, lambda t: t, name="lab_power.csv.gz")
    with pytest.raises(DataError) as err:
        ingest_file(store.engine, path)
    assert "lab_power.csv.gz" in str(err.value) and "--set gpu=" in str(err.value)
    with pytest.raises(DataError, match=r"--set batch_size is not accepted.*only --set gpu"):
        ingest_file(store.engine, path, overrides={"gpu": "v100", "batch_size": "3"})
    assert power_measurements(store.engine).empty  # nothing written
    r = ingest_file(store.engine, path, overrides={"gpu": "v100"})
    assert r.kind == "power" and r.rows == 2
    assert ingest_file(store.engine, path, overrides={"gpu": "v100"}).duplicate
    again = ingest_file(store.engine, path, overrides={"gpu": "a40"})  # another board
    assert not again.duplicate
    frame = power_measurements(store.engine)
    assert sorted(frame.gpu.unique()) == ["NVIDIA A40", "Tesla V100-PCIE-32GB"]
    plain = tmp_path / "lab.csv"
    plain.write_bytes(gzip.decompress(path.read_bytes()))
    assert read_measurements(plain, overrides={"gpu": "p100"}).format == "zeus2023-power"


def test_a_csv_of_no_known_format_lists_the_power_formats_too(store, tmp_path):
    path = tmp_path / "what.csv"
    path.write_text("dataset,network,watts\nimagenet,resnet50,200\n")
    with pytest.raises(DataError, match=r"cannot tell the format.*zeus2023-power"):
        ingest_file(store.engine, path)
