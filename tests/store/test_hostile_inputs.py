"""Hostile and careless measurement files (issue 26, findings 2–5, 7, 11, 12).

Each bad file is refused in one line naming the file (and the row and column where
there is one), writes nothing, and never hangs, on SQLite and, when
``POWERFIT_TEST_POSTGRES_URL`` is set, on PostgreSQL.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from powerfit.cli import main
from powerfit.exceptions import DataError
from powerfit.store import open_store

HEADER = "gpu,arch,model,n_layers,batch_size,seq_len,d_model,n_heads,duration_s,energy_j\n"
ROW = "a100,transformer,bert,6,64,320,512,8,0.2,40.0\n"
ROW2 = "a100,transformer,bert,12,64,320,512,8,0.4,80.0\n"
OPS_HEADER = "gpu,arch,operation,batch_size,seq_len,d_model,flops,duration_s,energy_j,repeats\n"
OPS_ROW = "a100,transformer,qkv_projections,8,512,1024,2.5e10,1e-3,0.2,100\n"
EMISSIONS_HEADER = (
    "timestamp,project_name,run_id,duration,emissions,energy_consumed,gpu_energy,"
    "codecarbon_version,gpu_model\n"
)
EMISSIONS_SET = {"arch": "transformer", "n_layers": "6", "batch_size": "64"}


def _emissions(duration: str, energy: str, gpu_energy: str, gpu_model: str) -> str:
    return (
        EMISSIONS_HEADER + f"2024-05-27T11:31:35,codecarbon,979336a5,{duration},0.0165,{energy},"
        f"{gpu_energy},2.4.2,{gpu_model}\n"
    )


def _write(text: str | bytes, name: str = "f.csv") -> Callable[[Path], tuple[Path, dict]]:
    def build(folder: Path) -> tuple[Path, dict]:
        path = folder / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return path, {}

    return build


def _with_set(build: Callable, overrides: dict) -> Callable[[Path], tuple[Path, dict]]:
    def wrapped(folder: Path) -> tuple[Path, dict]:
        path, _ = build(folder)
        return path, {"overrides": overrides}

    return wrapped


def _parquet_bytes(folder: Path) -> tuple[Path, dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "gpu": pa.array([b"a100", b"\xff\xfe"], pa.binary()),
            "arch": ["transformer", "transformer"],
            "n_layers": [6, 12],
            "batch_size": [64, 64],
            "duration_s": [0.2, 0.4],
            "energy_j": [40.0, 80.0],
        }
    )
    path = folder / "f.parquet"
    pq.write_table(table, path)
    return path, {}


def _gzip_members(*parts: str, trailer: bytes = b"") -> bytes:
    return b"".join(gzip.compress(p.encode()) for p in parts) + trailer


BIG = "1" + "0" * 20
DIGITS_400 = "9" * 400

#: case -> (build(folder) -> (path, ingest kwargs), regex the one-line error matches).
CASES: dict[str, tuple[Callable, str]] = {
    "gpu count 10^20 in the gpu column": (
        _write(HEADER + ROW.replace("a100,", f"{BIG} x NVIDIA A100-SXM4-40GB,", 1)),
        r"data row 1.*column 'gpu'.*out of range: must be <= 100,000",
    ),
    "gpu count 200000 in the gpu column": (
        _write(HEADER + ROW.replace("a100,", "200000 x NVIDIA A100-SXM4-40GB,", 1)),
        r"column 'gpu'.*out of range",
    ),
    "gpu count of 400 digits in the gpu column": (
        _write(HEADER + ROW.replace("a100,", f"{DIGITS_400} x NVIDIA A100-SXM4-40GB,", 1)),
        r"column 'gpu'.*(out of range|infinite|longer than)",
    ),
    "gpu count 0 in the gpu column": (
        _write(HEADER + ROW.replace("a100,", "0 x NVIDIA A100-SXM4-40GB,", 1)),
        r"column 'gpu'.*out of range",
    ),
    "codecarbon gpu_model count 10^20": (
        _with_set(
            _write(_emissions("300.0", "0.0338", "0.0277", f"{BIG} x NVIDIA A100-SXM4-40GB")),
            EMISSIONS_SET,
        ),
        r"column 'gpu_model'.*out of range",
    ),
    "codecarbon gpu_model of 400 digits": (
        _with_set(_write(_emissions("300.0", "0.0338", "0.0277", DIGITS_400)), EMISSIONS_SET),
        r"column 'gpu_model'",
    ),
    "codecarbon gpu_model count of 400 digits": (
        _with_set(
            _write(_emissions("300.0", "0.0338", "0.0277", f"{DIGITS_400} x NVIDIA A100")),
            EMISSIONS_SET,
        ),
        r"column 'gpu_model'",
    ),
    "gzip with trailing garbage": (
        _write(_gzip_members(HEADER + ROW, trailer=b"garbage!"), "f.csv.gz"),
        r"trailing garbage",
    ),
    "gzip truncated in its second member": (
        _write(_gzip_members(HEADER + ROW, ROW2)[:-6], "f.csv.gz"),
        r"truncated",
    ),
    "flops of 4.9e-324": (
        _write(OPS_HEADER + OPS_ROW.replace("2.5e10", "4.9e-324")),
        r"data row 1.*column 'flops'",
    ),
    "energy of 4.9e-324": (
        _write(HEADER + ROW.replace("40.0", "4.9e-324")),
        r"data row 1.*column 'energy_j'",
    ),
    "a row shorter than the header": (
        _write(HEADER + ROW + "a100,transformer,bert,12,64\n"),
        r"data row 2 \(line 3\).*fewer than the header",
    ),
    "a trailing comma on the data rows": (
        _write(HEADER + ROW.replace("\n", ",\n") + ROW2.replace("\n", ",\n")),
        r"data row 1 \(line 2\).*more than the header.*trailing comma",
    ),
    "a Parquet binary column that is not UTF-8": (
        _parquet_bytes,
        r"data row 2, column 'gpu': .*not UTF-8",
    ),
    "codecarbon energy in MWh (10 kW a GPU)": (
        _with_set(
            _write(_emissions("300.0", "33.8", "27.7", "1 x NVIDIA A100-SXM4-40GB")),
            EMISSIONS_SET,
        ),
        r"mean power",
    ),
    "codecarbon duration in ms (0.4 W)": (
        _with_set(
            _write(_emissions("300000", "0.0338", "0.0277", "1 x NVIDIA A100-SXM4-40GB")),
            EMISSIONS_SET,
        ),
        r"mean power 0\.4.* W < 1 W",
    ),
    "codecarbon gpu_energy above energy_consumed": (
        _with_set(
            _write(_emissions("300.0", "0.0138", "0.0277", "1 x NVIDIA A100-SXM4-40GB")),
            EMISSIONS_SET,
        ),
        r"column 'gpu_energy'.*more than the total",
    ),
    "GPU energy above twice the TDP": (
        _write(
            HEADER.replace("energy_j\n", "energy_j,gpu_energy_j\n")
            + ROW.replace("40.0\n", "400.0,400.0\n")
        ),
        r"column 'gpu_energy_j'.*twice",
    ),
}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def backend_store(request, tmp_path_factory):
    """A store on each backend, holding one good file (treat as append-only)."""
    if request.param == "sqlite":
        url = str(tmp_path_factory.mktemp("hostile") / "store.db")
    else:
        url = request.getfixturevalue("postgres_module_schema_url")
    seed = tmp_path_factory.mktemp("seed") / "seed.csv"
    seed.write_text(HEADER + ROW)
    with open_store(url) as store:
        store.ingest(seed)
        yield store


def _one_line(text: str, path: Path) -> None:
    assert "\n" not in text and "Traceback" not in text, text
    assert text.startswith(f"{path}, ") or text.startswith(f"{path}: "), text


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_file_is_refused_in_one_line_and_writes_nothing(backend_store, tmp_path, case):
    build, message = CASES[case]
    path, kwargs = build(tmp_path)
    before = backend_store.counts()
    with pytest.raises(DataError) as caught:
        backend_store.ingest(path, **kwargs)
    _one_line(str(caught.value), path)
    assert re.search(message, str(caught.value)), str(caught.value)
    assert backend_store.counts() == before


def test_every_gzip_member_is_read(backend_store, tmp_path):
    path = tmp_path / "two-members.csv.gz"
    path.write_bytes(
        _gzip_members(HEADER + ROW.replace(",6,", ",7,"), ROW2.replace(",12,", ",13,"))
    )
    before = backend_store.counts()["run_measurements"]
    result = backend_store.ingest(path)
    assert result.rows == 2
    assert backend_store.counts()["run_measurements"] == before + 2


def test_cr_only_line_endings_are_read(backend_store, tmp_path):
    path = tmp_path / "mac.csv"
    path.write_bytes((HEADER + ROW + ROW2).replace("\n", "\r").replace(",6,", ",8,").encode())
    assert backend_store.ingest(path).rows == 2


def test_cr_only_error_names_the_line(tmp_path, capsys):
    path = tmp_path / "mac.csv"
    path.write_bytes((HEADER + ROW + ROW2.replace("0.4", "x")).replace("\n", "\r").encode())
    assert main(["ingest", str(path), "--db", str(tmp_path / "s.db")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data row 2 (line 3), column 'duration_s'" in err, err


def _finishes(target: Callable[[], object], seconds: float = 20.0) -> object:
    """Run ``target`` in a daemon thread; fail when it is still running after ``seconds``."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = target()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_not_a_regular_file_is_refused_not_read(backend_store, tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "pipe.csv"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    with pytest.raises(DataError) as caught:
        _finishes(lambda: backend_store.ingest(path))
    _one_line(str(caught.value), path)
    assert "not a regular file" in str(caught.value)


def test_decompressed_size_is_bounded(backend_store, tmp_path, monkeypatch):
    monkeypatch.setenv("POWERFIT_MAX_INPUT_BYTES", str(64 * 1024))
    path = tmp_path / "bomb.csv.gz"
    path.write_bytes(gzip.compress((HEADER + ROW * 20_000).encode()))
    assert path.stat().st_size < 64 * 1024
    before = backend_store.counts()
    with pytest.raises(DataError, match=r"gzip content holds more than 0 MiB.*POWERFIT_MAX_INPUT"):
        backend_store.ingest(path)
    assert backend_store.counts() == before


def test_cli_ingest_of_a_fifo_is_one_line(tmp_path, capsys):
    path = tmp_path / "pipe.csv"
    os.mkfifo(path)
    assert _finishes(lambda: main(["ingest", str(path), "--db", str(tmp_path / "s.db")])) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a regular file (a FIFO" in err, err


def test_parquet_and_csv_of_the_same_rows_agree(tmp_path):
    """The streamed reader gives the rows the whole-file reader gave (no row lost)."""
    from powerfit.store.readers.read import read_measurements

    text = HEADER + ROW + "\n\n" + ROW2
    csv_path = tmp_path / "f.csv"
    csv_path.write_text(text)
    parquet = tmp_path / "f.parquet"
    pd.read_csv(io.StringIO(text)).to_parquet(parquet)
    a, b = read_measurements(csv_path), read_measurements(parquet)
    assert len(a) == len(b) == 2
    assert a.rows["n_layers"].tolist() == b.rows["n_layers"].tolist() == [6, 12]


#: Files read in chunks (finding 4): other types, blanks and quotes in a later chunk.
CHUNKED: dict[str, Callable] = {
    **{case: build for case, (build, _) in CASES.items()},
    "good rows, integers and decimals mixed": _write(
        HEADER + ROW + ROW2.replace("0.4", "1") + "\n" + ROW.replace("bert", " gpt2")
    ),
    "not a number in a later chunk": _write(HEADER + ROW + ROW2 + ROW.replace(",6,", ",six,")),
    "a blank in a later chunk": _write(HEADER + ROW + ROW2 + ROW.replace(",6,", ",,")),
    "a quoted value over two lines in a later chunk": _write(
        HEADER.replace("\n", ",tool\n")
        + ROW.replace("\n", ",x\n")
        + ROW2.replace("\n", ',"a\nb"\n')
    ),
    "a count in the gpu column of a later chunk": _write(
        HEADER + ROW + ROW2.replace("a100,", "2 x NVIDIA A100-SXM4-40GB,", 1)
    ),
}


@pytest.mark.parametrize("case", list(CHUNKED))
def test_a_csv_read_in_chunks_reads_as_a_whole(tmp_path, monkeypatch, case):
    """A large CSV is parsed in chunks (to bound memory): the same rows, or the same error."""
    import powerfit.store.readers.read as read

    path, kwargs = CHUNKED[case](tmp_path)

    def outcome() -> object:
        try:
            return read.read_measurements(path, **kwargs)
        except DataError as exc:
            return str(exc)

    whole = outcome()
    monkeypatch.setattr(read, "_PARSE_ROWS", 1)
    chunked = outcome()
    if isinstance(whole, str):
        assert chunked == whole
        return
    assert not isinstance(chunked, str), chunked
    assert chunked.identity == whole.identity
    pd.testing.assert_frame_equal(chunked.rows, whole.rows)


def test_columns_a_file_lacks_are_independent(tmp_path):
    """They share one column of NaN until written to: writing one leaves the others."""
    from powerfit.store.readers.read import read_measurements

    path = tmp_path / "f.csv"
    path.write_text(HEADER + ROW + ROW2)
    rows = read_measurements(path).rows
    assert rows["idle_power_w"].isna().all() and rows["n_params"].isna().all()
    rows.loc[0, "idle_power_w"] = 50.0
    rows.loc[1, "n_params"] = 1e6
    assert rows["idle_power_w"].tolist()[0] == 50.0
    assert rows["n_params"].isna().tolist() == [True, False]
    for column in ("gpu_energy_j", "cpu_energy_j", "duration_std_s", "energy_std_j"):
        assert rows[column].dtype == float and rows[column].isna().all(), column


# ------------------------------------------------------------ partial ingest (finding 9)
_FAIL_ON_99 = {
    "sqlite": [
        "CREATE TRIGGER full_disk BEFORE INSERT ON run_measurements WHEN NEW.n_layers = 99 "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION full_disk() RETURNS trigger AS $$ BEGIN IF NEW.n_layers = 99 THEN "
        "RAISE EXCEPTION 'could not extend file: No space left on device'; END IF; "
        "RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER full_disk BEFORE INSERT ON run_measurements FOR EACH ROW "
        "EXECUTE FUNCTION full_disk()",
    ],
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request, tmp_path):
    if request.param == "sqlite":
        return request.param, str(tmp_path / "store.db")
    return request.param, request.getfixturevalue("postgres_schema_url")


def test_a_failure_midway_says_which_files_were_committed(fresh_url, tmp_path, capsys):
    import sqlalchemy as sa

    backend, url = fresh_url
    with open_store(url) as store, store.engine.begin() as conn:
        for statement in _FAIL_ON_99[backend]:
            conn.execute(sa.text(statement))
    paths = []
    for i, layers in enumerate((6, 12, 99, 24), start=1):
        path = tmp_path / f"f{i}.csv"
        path.write_text(HEADER + ROW.replace(",6,", f",{layers},"))
        paths.append(str(path))
    assert main(["ingest", *paths, "--db", url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"committed: {paths[0]} (import 1), {paths[1]} (import 2)" in err, err
    assert f"not committed: {paths[2]}, {paths[3]}" in err, err
    with open_store(url) as store:
        assert store.counts()["run_measurements"] == 2
