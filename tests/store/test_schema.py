"""Schema of the measurement store: Alembic migrations, first use, backends, location."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from powerfit.exceptions import StoreError
from powerfit.store import default_home, default_url, open_store, resolve_url, schema
from powerfit.store.engine import create_engine

REPO = Path(__file__).resolve().parents[2]
TABLES = {"gpus", "imports", "operation_measurements", "run_measurements", "power_measurements"}


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def _canonical_file(path: Path, rows: int = 5) -> Path:
    lines = ["gpu,arch,operation,batch_size,seq_len,d_model,flops,duration_s"]
    lines += [f"a100,transformer,qkv_projections,64,{128 * (i + 1)},256,{1e9 * (i + 1)},0.01"
              for i in range(rows)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def _round_trip(url: str, tmp_path: Path) -> None:
    engine = create_engine(url)
    try:
        assert schema.current_revision(engine) is None
        schema.upgrade(engine, "head")
        assert schema.current_revision(engine) == schema.head_revision()
        assert _tables(engine) == TABLES
        schema.check(engine)  # models and migrations agree: no drift
        store = open_store(engine)
        store.ingest(_canonical_file(tmp_path / "ops.csv"))
        before = store.counts()
        schema.upgrade(engine, "head")  # already at head: data kept
        open_store(engine)  # first use of an up-to-date store: data kept
        assert (
            store.counts()
            == before
            == {
                "gpus": 1,
                "operation_measurements": 5,
                "run_measurements": 0,
                "imports": 1,
            }
        )
        schema.downgrade(engine, "base")
        assert _tables(engine) == set()
        assert schema.current_revision(engine) is None
        schema.upgrade(engine, "head")
        schema.check(engine)
        assert store.ingest(_canonical_file(tmp_path / "ops.csv")).rows == 5
    finally:
        engine.dispose()


def test_migrations_round_trip_sqlite(tmp_path):
    _round_trip(f"sqlite:///{tmp_path / 'store.db'}", tmp_path)


@pytest.mark.postgres
def test_migrations_round_trip_postgresql(postgres_schema_url, tmp_path):
    _round_trip(postgres_schema_url, tmp_path)


def test_new_database_is_created_at_head(tmp_path):
    path = tmp_path / "sub" / "dir" / "new.db"
    with open_store(path) as store:
        assert path.exists()
        assert schema.current_revision(store.engine) == schema.head_revision()
        assert store.counts() == dict.fromkeys(
            ["gpus", "operation_measurements", "run_measurements", "imports"], 0
        )


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "newer.db"
    open_store(path).close()
    engine = create_engine(path)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dcafe9999'"))
    with pytest.raises(StoreError, match=r"newer than this powerfit.*upgrade powerfit"):
        open_store(engine)
    with pytest.raises(StoreError, match="newer"):
        schema.upgrade(engine)
    engine.dispose()


def test_unknown_revision_is_a_store_error(store):
    with pytest.raises(StoreError, match="cannot upgrade"):
        schema.upgrade(store.engine, "nope")


def test_sqlite_settings(store):
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000


def test_foreign_keys_are_enforced(store):
    with pytest.raises(StoreError, match="FOREIGN KEY"):
        from powerfit.store.engine import transaction

        with transaction(store.engine, write=True) as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO operation_measurements (import_id, source_row, gpu_id, "
                    "operation, precision, flops, duration_s, arch) "
                    "VALUES (99, 1, 99, 'ffn', 'tf32', 1, 1, 'transformer')"
                )
            )


def test_default_location(monkeypatch, tmp_path):
    monkeypatch.delenv("POWERFIT_HOME", raising=False)
    monkeypatch.delenv("POWERFIT_DB_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_home() == tmp_path / "xdg" / "powerfit"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_home() == Path.home().resolve() / ".local" / "share" / "powerfit"
    monkeypatch.setenv("POWERFIT_HOME", str(tmp_path / "home"))
    assert default_home() == tmp_path / "home"
    assert default_url() == f"sqlite:///{tmp_path / 'home' / 'powerfit.db'}"
    assert resolve_url() == default_url()
    monkeypatch.setenv("POWERFIT_DB_URL", "sqlite:///elsewhere.db")
    assert resolve_url() == "sqlite:///elsewhere.db"
    assert resolve_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_bad_url_is_a_store_error():
    with pytest.raises(StoreError, match="cannot use the store URL"):
        create_engine("nosuchdialect://x/y")


def _alembic(*args: str, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "POWERFIT_DB_URL": url}
    alembic = Path(sys.executable).with_name("alembic")
    return subprocess.run(
        [str(alembic), *args], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )


def test_alembic_command_line_from_repository_root(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    _alembic("upgrade", "head", url=url)
    _alembic("check", url=url)
    assert schema.head_revision() in _alembic("current", url=url).stdout
    engine = create_engine(url)
    assert _tables(engine) == TABLES
    engine.dispose()


def test_env_accepts_an_engine(tmp_path):
    engine = create_engine(tmp_path / "e.db")
    command.upgrade(schema.alembic_config(engine), "head")
    assert _tables(engine) == TABLES
    engine.dispose()
