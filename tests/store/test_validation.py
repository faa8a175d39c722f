"""One validation layer for every reader and backend (issue 15, findings 2, 3, 4, 7, 8).

The bad-input suite runs every kind of bad file against a SQLite store and, when
``POWERFIT_TEST_POSTGRES_URL`` is set, a PostgreSQL store: each file is refused with
one line naming the file, the row and the column, and adds no row to the store.
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from powerfit.cli import main
from powerfit.exceptions import DataError
from powerfit.store import open_store
from powerfit.store.readers.read import read_measurements
from powerfit.store.validation import RULES, TEXT_LENGTHS, ValidationError, suggest

A100 = "NVIDIA A100 80GB PCIe"

RUNS = {
    "gpu": ["a100", "a100"],
    "arch": ["transformer", "transformer"],
    "model": ["bert", "bert"],
    "n_layers": [6, 12],
    "batch_size": [64, 64],
    "seq_len": [320, 320],
    "d_model": [512, 512],
    "n_heads": [8, 8],
    "duration_s": [0.2, 0.4],
    "energy_j": [40.0, 80.0],
}
OPS = {
    "gpu": ["a100", "a100"],
    "arch": ["transformer", "transformer"],
    "operation": ["qkv_projections", "attention_scores"],
    "batch_size": [8, 8],
    "seq_len": [512, 512],
    "d_model": [1024, 1024],
    "flops": [2.5e10, 4.2e9],
    "duration_s": [1e-3, 4e-4],
    "repeats": [100, 100],
    "tool": ["t", "t"],
}
EMISSIONS = (
    "timestamp,project_name,run_id,duration,emissions,energy_consumed,gpu_energy,"
    "codecarbon_version,gpu_model\n"
    "2024-05-27T11:31:35,codecarbon,979336a5,300.0,0.0165,0.0338,0.0277,2.4.2,"
    "1 x NVIDIA A100-SXM4-40GB\n"
)
EMISSIONS_SET = {"arch": "transformer", "n_layers": "6", "batch_size": "64"}


def _csv(path: Path, columns: dict, **changes: object) -> Path:
    frame = pd.DataFrame(columns)
    for key, value in changes.items():
        column, _, row = key.partition("__")
        frame[column] = frame[column].astype(object) if column in frame else None
        frame.loc[int(row or 1) - 1, column] = value
    frame.to_csv(path, index=False)
    return path


def _parquet(path: Path, columns: dict, **replace: object) -> Path:
    frame = pd.DataFrame(columns)
    for column, values in replace.items():
        frame[column] = values
    frame.to_parquet(path)
    return path


def _text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _runs_text(**changes: object) -> str:
    frame = pd.DataFrame(RUNS)
    for column, value in changes.items():
        frame[column] = frame[column].astype(object)
        frame.loc[0, column] = value
    return frame.to_csv(index=False)


# Each case: name -> (build(tmp_path) -> (path, kwargs), row, column, message regex).
# row: the 1-based data row named (None: a header or file-level problem);
# column: the column named (None: a file-level problem).
Case = tuple[Callable[[Path], tuple[Path, dict]], int | None, str | None, str]
# fmt: off
CASES: dict[str, Case] = {
    "int32 overflow (batch_size 3e9)": (
        lambda d: (_csv(d / "f.csv", RUNS, batch_size__2="3e9"), {}),
        2, "batch_size", r"3e\+09 is out of range: must be <= 2,147,483,647 \(SQL INTEGER\)",
    ),
    "int64 overflow (batch_size 1e20)": (
        lambda d: (_csv(d / "f.csv", RUNS, batch_size=1e20), {}),
        1, "batch_size", "out of range",
    ),
    "n_params beyond int64 (1.4e19)": (
        lambda d: (_csv(d / "f.csv", RUNS, n_params=14_000_000_000_000_000_000), {}),
        1, "n_params", r"1\.4e\+19 is out of range: must be <= 1e\+15",
    ),
    "repeats 1e15": (
        lambda d: (_csv(d / "f.csv", OPS, repeats="1e15"), {}),
        1, "repeats", "out of range",
    ),
    "tool longer than 255": (
        lambda d: (_csv(d / "f.csv", OPS, tool__2="x" * 256), {}),
        2, "tool", "256 characters, longer than the 255",
    ),
    "model longer than 64": (
        lambda d: (_csv(d / "f.csv", RUNS, model="m" * 65), {}),
        1, "model", "65 characters, longer than the 64",
    ),
    "control character in text": (
        lambda d: (_csv(d / "f.csv", RUNS, model="be\x07rt"), {}),
        1, "model", "control character",
    ),
    "efficiency above 1": (
        lambda d: (_csv(d / "f.csv", OPS, flops=1e15), {}),
        1, "duration_s", r"efficiency .* > 1\.1",
    ),
    "subnormal duration (5e-324)": (
        lambda d: (_csv(d / "f.csv", RUNS, duration_s__2="5e-324"), {}),
        2, "duration_s", r"must be >= 1e-09 s",
    ),
    "FLOPs 1e308": (
        lambda d: (_csv(d / "f.csv", OPS, flops="1e308"), {}),
        1, "flops", r"must be <= 1e\+24 FLOP",
    ),
    "infinite energy": (
        lambda d: (_csv(d / "f.csv", RUNS, energy_j="inf"), {}),
        1, "energy_j", "infinite",
    ),
    "zero energy": (
        lambda d: (_csv(d / "f.csv", RUNS, energy_j=0), {}),
        1, "energy_j", r"must be (> 0|>= 1e-09 J)",
    ),
    "power above 10 kW": (
        lambda d: (_csv(d / "f.csv", RUNS, energy_j=1e6), {}),
        1, "energy_j", r"mean power 5e\+06 W > 10000 W",
    ),
    "idle power 50 kW": (
        lambda d: (_csv(d / "f.csv", RUNS, idle_power_w=5e4), {}),
        1, "idle_power_w", "must be <= 10000 W",
    ),
    "d_model 1e308": (
        lambda d: (_csv(d / "f.csv", RUNS, d_model="1e308"), {}),
        1, "d_model", "out of range",
    ),
    "fractional n_layers": (
        lambda d: (_csv(d / "f.csv", RUNS, n_layers__2=6.5), {}),
        2, "n_layers", "not an integer: 6.5",
    ),
    "Parquet datetime duration": (
        lambda d: (_parquet(d / "f.parquet", RUNS, duration_s=pd.to_datetime(
            ["2026-01-01", "2026-01-02"])), {}),
        1, "duration_s", "date/time column",
    ),
    "Parquet timedelta duration": (
        lambda d: (_parquet(d / "f.parquet", RUNS, duration_s=pd.to_timedelta(
            [1, 2], unit="s")), {}),
        1, "duration_s", "date/time column",
    ),
    "Parquet boolean batch size": (
        lambda d: (_parquet(d / "f.parquet", RUNS, batch_size=[True, False]), {}),
        1, "batch_size", "boolean",
    ),
    "Parquet int64 beyond the column": (
        lambda d: (_parquet(d / "f.parquet", RUNS, vocab_size=np.array(
            [5, 2**40], dtype=np.int64)), {}),
        2, "vocab_size", "out of range",
    ),
    "duplicate header": (
        lambda d: (_text(d / "f.csv", _runs_text().replace(
            "energy_j", "duration_s", 1)), {}),
        None, "duration_s", r"duplicate column \(header fields 9, 10\)",
    ),
    "duplicate header up to spaces": (
        lambda d: (_text(d / "f.csv", _runs_text().replace(
            ",energy_j", ", duration_s ", 1)), {}),
        None, "duration_s", "duplicate column",
    ),
    "duplicate column in Parquet": (
        lambda d: (_parquet_duplicate(d / "f.parquet"), {}),
        None, "duration_s", "duplicate column",
    ),
    "unknown column": (
        lambda d: (_csv(d / "f.csv", {**RUNS, "colour": ["red", "red"]}), {}),
        None, "colour", "unknown column; known columns of this format: .*--ignore-extra",
    ),
    "near-miss column name (Energy_J)": (
        lambda d: (_text(d / "f.csv", _runs_text().replace("energy_j", "Energy_J")), {}),
        None, "Energy_J", "did you mean 'energy_j'",
    ),
    "near-miss even with --ignore-extra-columns": (
        lambda d: (_text(d / "f.csv", _runs_text().replace("energy_j", "Energy_J")),
                   {"ignore_extra_columns": True}),
        None, "Energy_J", "did you mean 'energy_j'.*case-sensitive",
    ),
    "Latin-1 text": (
        lambda d: (_text(d / "f.csv", _runs_text(model="camembért"), "latin-1"), {}),
        1, "model", r"not UTF-8: byte 0xe9 at line 2 looks like Latin-1/Windows-1252",
    ),
    "UTF-16 text with BOM": (
        lambda d: (_text(d / "f.csv", _runs_text(), "utf-16"), {}),
        None, None, r"not UTF-8: UTF-16 text \(byte-order mark ff fe\); re-save",
    ),
    "UTF-16 text without BOM": (
        lambda d: (_text(d / "f.csv", _runs_text(), "utf-16-le"), {}),
        None, None, "not UTF-8: looks like UTF-16",
    ),
    "binary content": (
        lambda d: (_bytes(d / "f.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(256)), {}),
        None, None, "binary content",
    ),
    "bad value in a gzip file": (
        lambda d: (_gz(d / "f.csv.gz", _runs_text(seq_len="long")), {}),
        1, "seq_len", "not a number: 'long'",
    ),
    "corrupt gzip file": (
        lambda d: (_bytes(d / "f.csv.gz", gzip.compress(_runs_text().encode())[:-12]), {}),
        None, None, "unreadable gzip file",
    ),
    "a directory": (
        lambda d: (_directory(d / "folder"), {}),
        None, None, "is a directory, not a file",
    ),
    "CodeCarbon --set batch_size 3e9": (
        lambda d: (_text(d / "emissions.csv", EMISSIONS),
                   {"overrides": {**EMISSIONS_SET, "batch_size": "3e9"}}),
        1, "batch_size", "out of range",
    ),
    "CodeCarbon energy beyond 1e12 J (kWh converted)": (
        lambda d: (_text(d / "emissions.csv", EMISSIONS.replace(",0.0338,", ",1e9,")),
                   {"overrides": EMISSIONS_SET}),
        1, "energy_consumed", r"3\.6e\+15 J \(energy_j as stored\) is out of range",
    ),
    "CodeCarbon timestamp as duration": (
        lambda d: (_text(d / "emissions.csv", EMISSIONS.replace(",300.0,", ",2024-05-27,")),
                   {"overrides": EMISSIONS_SET}),
        1, "duration", "not a number: '2024-05-27'",
    ),
    "published file with an out-of-range value": (
        lambda d: (_published_variant(d), {}),
        5, "elapsed_time_sec", "must be >= 1e-09 s",
    ),
    "negative hidden size": (
        lambda d: (_csv(d / "f.csv", {**RUNS, "arch": ["lstm", "lstm"],
                                      "hidden_size": [64, -64]}), {}),
        2, "hidden_size", "negative value",
    ),
}
# fmt: on


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _gz(path: Path, text: str) -> Path:
    path.write_bytes(gzip.compress(text.encode()))
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    (path / "a.csv").write_text(_runs_text())
    return path


def _parquet_duplicate(path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.DataFrame(RUNS)
    arrays = [pa.array(frame[c]) for c in frame.columns] + [pa.array([1.0, 2.0])]
    pq.write_table(pa.table(arrays, names=[*frame.columns, "duration_s"]), path)
    return path


def _published_variant(folder: Path) -> Path:
    """Rows of the published Transformer operations file, one duration too short."""
    lines = [
        ",operation,elapsed_time_sec,FLOPs,seq_len,d_model,source,HEF",
        *(f"{i},QKV Projections,0.0076,805306368,128,128,{A100},0.07" for i in range(6)),
    ]
    lines[5] = lines[5].replace(",0.0076,", ",1e-12,")
    path = folder / "dataForTransformerHEF.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------- stores
@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def backend_store(request, tmp_path_factory):
    """A store on each backend, holding one good file (treat as append-only)."""
    if request.param == "sqlite":
        url = str(tmp_path_factory.mktemp("validation") / "store.db")
    else:
        url = request.getfixturevalue("postgres_module_schema_url")
    folder = tmp_path_factory.mktemp("seed")
    with open_store(url) as store:
        store.ingest(_csv(folder / "seed.csv", RUNS))
        yield store


# -------------------------------------------------------------------- bad input
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_in_one_line_and_writes_nothing(backend_store, tmp_path, case):
    build, row, column, message = CASES[case]
    path, kwargs = build(tmp_path)
    before = backend_store.counts()
    with pytest.raises(DataError) as caught:
        backend_store.ingest(path, **kwargs)
    text = str(caught.value)
    assert "\n" not in text and len(text) < 2000, text
    assert text.startswith(f"{path}, ") or text.startswith(f"{path}: "), text
    if row is not None:
        assert f", data row {row}" in text and caught.value.row == row, text
    if column is not None:
        assert f"column {column!r}: " in text and caught.value.column == column, text
    if row is None and column is not None:
        assert ", header" in text, text
    assert isinstance(caught.value, ValidationError)
    assert re.search(message, text), text
    assert backend_store.counts() == before


def test_the_suite_covers_at_least_25_kinds():
    assert len(CASES) >= 25


def test_csv_messages_give_the_line_as_well_as_the_data_row(tmp_path):
    text = _runs_text().replace("\n", "\n\n", 1)  # a blank line after the header
    rows = text.splitlines()
    rows[3] = rows[3].replace(",0.4,", ",fast,")
    path = _text(tmp_path / "f.csv", "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"f\.csv, data row 2 \(line 4\), column 'duration_s'"):
        read_measurements(path)


# ----------------------------------------------- same values on both backends
EDGE = {
    "batch_size": RULES["batch_size"].maximum,
    "n_params": RULES["n_params"].maximum,
    "vocab_size": 2**31 - 1,
    "model": "m" * TEXT_LENGTHS["model"],
    "tool": "t" * TEXT_LENGTHS["tool"],
    "duration_s": 1e-9,
    "energy_j": 1e-9 * 9_999,
}


def test_edge_values_are_stored_exactly_on_every_backend(backend_store, tmp_path):
    frame = pd.DataFrame(RUNS).iloc[:1].assign(**EDGE)
    frame.to_csv(tmp_path / "edge.csv", index=False)
    result = backend_store.ingest(tmp_path / "edge.csv")
    runs = backend_store.run_measurements()
    stored = runs[runs["import_id"] == result.import_id].iloc[0]
    for column, value in EDGE.items():
        assert stored[column] == value, column


# -------------------------------------------------------------- column names
def test_suggestions():
    assert suggest("Energy_J", ["energy_j", "gpu_energy_j"]) == "energy_j"
    assert suggest("duraton_s", ["energy_j", "duration_s"]) == "duration_s"
    assert suggest("n layers", ["n_layers"]) == "n_layers"
    assert suggest("colour", ["energy_j", "duration_s"]) is None


def test_ignore_extra_columns_ignores_and_reports(store, tmp_path):
    path = _csv(tmp_path / "f.csv", {**RUNS, "colour": ["red", "blue"], "note": ["", "x"]})
    result = store.ingest(path, ignore_extra_columns=True)
    assert result.rows == 2 and result.ignored_columns == ("colour", "note")
    assert "colour" not in store.run_measurements().columns


def test_unnamed_index_column_is_accepted(store, tmp_path):
    path = tmp_path / "f.csv"
    pd.DataFrame(RUNS).to_csv(path)  # pandas writes its index as an unnamed first column
    assert store.ingest(path).rows == 2


def test_cannot_tell_the_format_suggests_names(tmp_path):
    path = _text(tmp_path / "f.csv", "GPU,Arch,Duration_S\na100,lstm,1\n")
    with pytest.raises(DataError, match=r"cannot tell the format.*'GPU' → 'gpu'"):
        read_measurements(path)


def test_unknown_override_suggests(tmp_path):
    path = _text(tmp_path / "emissions.csv", EMISSIONS)
    with pytest.raises(DataError, match=r"unknown column 'n_layer' .*did you mean 'n_layers'"):
        read_measurements(path, overrides={**EMISSIONS_SET, "n_layer": "6"})


# --------------------------------------------------------- gzip, the same rows
def test_gzip_file_gives_the_same_rows(store, tmp_path):
    text = _runs_text()
    plain = read_measurements(_text(tmp_path / "f.csv", text))
    packed = read_measurements(_gz(tmp_path / "f.csv.gz", text))
    pd.testing.assert_frame_equal(plain.rows, packed.rows)
    assert store.ingest(tmp_path / "f.csv.gz").rows == 2


# --------------------------------------------------------------- command line
def test_cli_directory_is_one_line(tmp_path, capsys):
    folder = _directory(tmp_path / "measurements")
    assert main(["ingest", str(folder), "--db", str(tmp_path / "s.db")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{folder}: is a directory, not a file" in err


def test_cli_latin1_is_not_called_binary(tmp_path, capsys):
    path = _text(tmp_path / "f.csv", _runs_text(model="camembért"), "latin-1")
    assert main(["ingest", str(path), "--db", str(tmp_path / "s.db")]) == 1
    err = capsys.readouterr().err
    assert "binary" not in err and "Latin-1" in err and "re-save the file as UTF-8" in err


def test_cli_ignore_extra_columns(tmp_path, capsys):
    path = _csv(tmp_path / "f.csv", {**RUNS, "colour": ["red", "blue"]})
    db = str(tmp_path / "s.db")
    assert main(["ingest", str(path), "--db", db]) == 1
    assert "column 'colour': unknown column" in capsys.readouterr().err
    assert main(["ingest", str(path), "--db", db, "--ignore-extra-columns"]) == 0
    assert "2 rows" in (out := capsys.readouterr().out) and "ignored columns: colour" in out
    assert main(["ingest", str(path), "--db", db, "--ignore-extra-columns", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["status"] == "duplicate" and result["ignored_columns"] == ["colour"]


def test_utf8_bom_is_fine(store, tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(codecs.BOM_UTF8 + _runs_text().encode())
    assert store.ingest(path).rows == 2
