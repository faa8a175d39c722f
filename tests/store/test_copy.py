"""PostgreSQL's COPY and SQLite's executemany store exactly the same values.

The same files are ingested into a SQLite store (the driver's ``executemany``) and a
PostgreSQL store (``COPY ... FROM STDIN`` through psycopg 3), in several chunks, and
every row and column read back is compared between the two and with the validated
rows: NULLs, full-precision floats, 64-bit integers, text with backslashes, ``\\N``,
quotes, SQL parameter markers, non-ASCII characters and text at its column's length
limit. A database error inside the write leaves nothing, on both backends.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from powerfit.exceptions import DataError, StoreError
from powerfit.store import ingest as ingest_module
from powerfit.store import open_store
from powerfit.store.models import Gpu, Import, OperationMeasurement, RunMeasurement
from powerfit.store.readers.read import read_measurements

A100 = "NVIDIA A100 80GB PCIe"
FP32_PEAK = 19.5e12  # the A100's lowest peak [FLOP/s]: any precision's efficiency ≤ 1

#: Text that a COPY or a parameter binding could mangle (validation refuses control
#: characters: tabs and newlines never reach the store).
AWKWARD = [
    "back\\slash",
    "\\N",
    "\\\\N",
    "trailing backslash\\",
    "C:\\tools\\nvml\\x00\\t",
    "quote \"double\" and 'single'",
    "comma, separated; semi|pipe",
    "$1 %s %(x)s ? :name",
    '{"json": [1, 2.5, null]}',
    "ünïcödé 漢字 🚀",
    "  padded  ",
    "NULL",
    "",
    "x" * 255,
]


def _operations(path: Path, rows: int = 600, seed: int = 1) -> Path:
    """A powerfit-operations CSV: Transformer rows, then generic operators with kernels."""
    rng = np.random.default_rng(seed)
    half = rows // 2
    flops = rng.uniform(1e6, 1e12, rows)
    duration = np.maximum(flops / (FP32_PEAK * rng.uniform(0.01, 0.9, rows)), 1e-6)
    energy = duration * rng.uniform(10.0, 400.0, rows)
    energy[:150] = np.nan  # no energy in the whole first chunk: the column is left out
    energy[rng.random(rows) < 0.3] = np.nan
    transformer = np.arange(rows) < half
    frame = pd.DataFrame(
        {
            "gpu": np.where(rng.random(rows) < 0.5, A100, "a100"),
            "arch": np.where(transformer, "transformer", "generic"),
            "batch_size": rng.integers(1, 2**31 - 1, rows),
            "seq_len": np.where(transformer, rng.integers(1, 4096, rows), np.nan),
            "d_model": np.where(transformer, rng.integers(1, 8192, rows), np.nan),
            "n_heads": np.where(transformer & (rng.random(rows) < 0.7), 16, np.nan),
            "operation": np.where(
                transformer,
                "qkv_projections",
                np.where(np.arange(rows) % 2 == 0, "linear", "softmax"),
            ),
            "precision": rng.choice(["fp32", "tf32", "FP16", "bf16", "amp-bf16", ""], rows),
            "flops": flops,
            "duration_s": duration,
            "energy_j": energy,
            "repeats": rng.integers(1, 2**31 - 1, rows),
            "tool": rng.choice(AWKWARD, rows),
        }
    )
    generic = ~transformer
    linear = generic & (frame["operation"] == "linear")
    softmax = generic & (frame["operation"] == "softmax")
    for column in ("m", "n", "k"):
        frame[column] = np.where(linear, rng.integers(1, 2**31 - 1, rows), np.nan)
    frame["h"] = np.where(softmax, rng.integers(1, 2**20, rows), np.nan)
    frame["bytes"] = np.where(generic, rng.uniform(1.0, 1e18, rows), np.nan)
    kernels = [*AWKWARD, "k\\" * 512]  # 1,024 characters, the column's limit
    frame["kernel"] = np.where(generic, rng.choice(np.array(kernels, dtype=object), rows), None)
    frame.to_csv(path, index=False)
    return path


def _runs(path: Path, rows: int = 300, seed: int = 2) -> Path:
    """A powerfit-runs CSV with 64-bit parameter counts and optional columns."""
    rng = np.random.default_rng(seed)
    duration = rng.uniform(1e-3, 1e3, rows)
    gpus = rng.integers(1, 9, rows)
    energy = duration * gpus * rng.uniform(50.0, 400.0, rows)
    frame = pd.DataFrame(
        {
            "gpu": A100,
            "arch": "transformer",
            "batch_size": rng.integers(1, 1024, rows),
            "seq_len": rng.integers(1, 4096, rows),
            "d_model": rng.integers(1, 8192, rows),
            "model": rng.choice([s[:64] for s in AWKWARD], rows),
            "n_layers": rng.integers(1, 200, rows),
            "vocab_size": np.where(
                rng.random(rows) < 0.5, rng.integers(1, 2**31 - 1, rows), np.nan
            ),
            "precision": "tf32",
            "duration_s": duration,
            "energy_j": np.where(rng.random(rows) < 0.8, energy, np.nan),
            "gpu_energy_j": energy * 0.7,
            "cpu_energy_j": np.where(rng.random(rows) < 0.5, energy * 0.2, np.nan),
            "ram_energy_j": 0.0,
            "idle_power_w": rng.uniform(0.0, 10_000.0, rows),
            "repeats": rng.integers(1, 100, rows),
            "duration_std_s": np.where(rng.random(rows) < 0.5, duration * 1e-3, np.nan),
            "energy_std_j": energy * 1e-3,
            "tool": rng.choice(AWKWARD, rows),
            "n_params": rng.integers(2**31, 10**15, rows),  # beyond int32
            "gpu_count": gpus,
        }
    )
    frame.to_csv(path, index=False)
    return path


def _read_back(store) -> dict[str, list[dict[str, object]]]:
    """Every row of every table, in id order, as dicts of Python values."""
    out = {}
    with store.engine.connect() as conn:
        for model in (Gpu, Import, OperationMeasurement, RunMeasurement):
            table = model.__table__
            rows = conn.execute(sa.select(table).order_by(table.c.id)).mappings().all()
            out[table.name] = [dict(row) for row in rows]
    return out


def _same(a: object, b: object) -> bool:
    """Equal values of the same Python type (floats bit for bit)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return type(a) is type(b) and a == b


def _as_python(value: object) -> object:
    """A validated frame's cell as the store returns it: None for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


@pytest.mark.postgres
def test_copy_and_executemany_store_the_same_values(postgres_schema_url, tmp_path, monkeypatch):
    files = [_operations(tmp_path / "ops.csv"), _runs(tmp_path / "runs.csv")]
    monkeypatch.setattr(ingest_module, "CHUNK_ROWS", 128)  # several writes, other columns
    sql: list[str] = []
    started = dt.datetime.now(dt.timezone.utc)
    stores = {}
    for name, url in (("sqlite", str(tmp_path / "s.db")), ("postgresql", postgres_schema_url)):
        with open_store(url) as store:
            sa.event.listen(
                store.engine, "before_cursor_execute", lambda *args: sql.append(args[2])
            )
            results = [store.ingest(path) for path in files]
            assert [r.rows for r in results] == [600, 300]
            stores[name] = _read_back(store)
        if name == "sqlite":
            assert any(s.startswith("INSERT INTO operation_measurements") for s in sql)
            sql.clear()
    # PostgreSQL wrote its measurement rows with COPY, not with INSERT statements.
    assert not [s for s in sql if "_measurements" in s and s.lstrip().startswith("INSERT")]
    finished = dt.datetime.now(dt.timezone.utc)

    lite, pg = stores["sqlite"], stores["postgresql"]
    assert lite.keys() == pg.keys()
    for table in lite:
        assert len(lite[table]) == len(pg[table]) > 0, table
        for row, (a, b) in enumerate(zip(lite[table], pg[table], strict=True)):
            assert a.keys() == b.keys()
            for column in a:
                if column == "imported_at":  # written by INSERT on both; its own clock
                    for value in (a[column], b[column]):
                        aware = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
                        assert started <= aware <= finished
                    continue
                assert _same(a[column], b[column]), (table, row, column, a[column], b[column])

    # And both hold exactly the validated values, NULL where the file had none.
    gpu_names = {row["id"]: row["name"] for row in pg["gpus"]}
    for path, table in zip(files, ("operation_measurements", "run_measurements"), strict=True):
        expected = read_measurements(path).rows
        stored = pg[table]
        assert len(stored) == len(expected)
        for position, row in enumerate(expected.to_dict("records")):
            got = stored[position]
            assert gpu_names[got["gpu_id"]] == row.pop("gpu")
            for column, value in row.items():
                want = _as_python(value)
                if want is not None and isinstance(got[column], int | float):
                    want = type(got[column])(want)
                assert _same(got[column], want) or (got[column] is None and want is None), (
                    table, position, column, got[column], want,
                )  # fmt: skip
    # The awkward text arrived as validated: stripped, empty → NULL, backslashes kept.
    tools = {row["tool"] for row in pg["operation_measurements"]}
    assert {"\\N", "back\\slash", "padded", "ünïcödé 漢字 🚀", None} <= tools
    assert "k\\" * 512 in {row["kernel"] for row in pg["operation_measurements"]}


def _refusing_store(backend: str, tmp_path: Path, request) -> str:
    """A store whose database refuses batch_size ≥ 1000 in operation_measurements.

    The constraint is the database's own, so the error comes from inside the write
    (the COPY on PostgreSQL), after the import row was inserted.
    """
    if backend == "sqlite":
        url = str(tmp_path / "refusing.db")
        ddl = (
            "CREATE TRIGGER refuse BEFORE INSERT ON operation_measurements "
            "WHEN NEW.batch_size >= 1000 BEGIN SELECT RAISE(ABORT, 'batch too large'); END"
        )
    else:
        url = request.getfixturevalue("postgres_schema_url")
        ddl = (
            "ALTER TABLE operation_measurements ADD CONSTRAINT batch_too_large "
            "CHECK (batch_size < 1000)"
        )
    with open_store(url) as store, store.engine.begin() as conn:
        conn.exec_driver_sql(ddl)
    return url


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_a_database_error_inside_the_write_leaves_nothing(backend, tmp_path, request, monkeypatch):
    url = _refusing_store(backend, tmp_path, request)
    lines = ["gpu,arch,operation,batch_size,input_size,hidden_size,seq_len,flops,duration_s"]
    lines += [f"a100,lstm,hidden_gates,{8 if i < 250 else 1000},{i + 1},64,1,65536,1e-4"
              for i in range(300)]  # fmt: skip
    path = tmp_path / "late.csv"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(ingest_module, "CHUNK_ROWS", 100)  # the third write fails
    with open_store(url) as store:
        before = store.counts()
        with pytest.raises(StoreError, match="batch"):
            store.ingest(path)
        assert store.counts() == before  # no import row, no measurement row
        ok = tmp_path / "ok.csv"
        ok.write_text("\n".join(lines[:251]) + "\n")
        assert store.ingest(ok).rows == 250  # the store is usable afterwards


@pytest.mark.postgres
def test_control_characters_are_refused_before_copy(postgres_schema_url, tmp_path):
    path = tmp_path / "tab.csv"
    path.write_text(
        "gpu,arch,operation,batch_size,input_size,hidden_size,seq_len,flops,duration_s,tool\n"
        'a100,lstm,hidden_gates,8,16,64,1,65536,1e-4,"a\tb"\n'
        'a100,lstm,hidden_gates,8,16,64,1,65536,1e-4,"a\nb"\n'
    )
    with open_store(postgres_schema_url) as store:
        with pytest.raises(DataError, match=r"data row 1 \(line 2\), column 'tool': control"):
            store.ingest(path)
        assert store.counts()["imports"] == 0
