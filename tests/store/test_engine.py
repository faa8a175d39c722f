"""Store connections that cannot hang or write where they must not (issue 26, 5 and 12)."""

from __future__ import annotations

import os
import threading
import time

import pytest
import sqlalchemy as sa

from powerfit.cli import main
from powerfit.exceptions import StoreError
from powerfit.store import engine as engine_module
from powerfit.store import open_store


@pytest.mark.parametrize("special", ["/dev/null", "fifo"])
def test_a_store_path_that_is_not_a_regular_file_is_refused(tmp_path, special, capsys):
    if special == "fifo":
        path = tmp_path / "store.db"
        os.mkfifo(path)
    else:
        path = special
    before = set(os.listdir(os.path.dirname(str(path))))
    assert main(["db", "stats", "--db", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a regular file" in err, err
    assert set(os.listdir(os.path.dirname(str(path)))) == before  # no -journal, no -wal


def test_db_stats_on_a_missing_store_says_so_and_creates_nothing(tmp_path, capsys):
    path = tmp_path / "typo" / "stroe.db"
    assert main(["db", "stats", "--db", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no store here" in err, err
    assert not path.parent.exists()
    assert main(["db", "imports", "--db", str(path)]) == 1
    assert "no store here" in capsys.readouterr().err
    assert not path.parent.exists()


@pytest.mark.postgres
def test_db_stats_on_an_empty_postgresql_database_says_no_store(postgres_schema_url, capsys):
    assert main(["db", "stats", "--db", postgres_schema_url]) == 1
    assert "no store here" in capsys.readouterr().err
    engine = sa.create_engine(postgres_schema_url)
    try:
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []  # nothing created
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_postgresql_lock_held_elsewhere_times_out_by_name(
    postgres_schema_url, monkeypatch, capsys
):
    """Another session's lock ends a command after lock_timeout, in one line naming it."""
    with open_store(postgres_schema_url) as store:
        assert store.counts()["run_measurements"] == 0
    monkeypatch.setattr(engine_module, "LOCK_TIMEOUT_S", 1.0)
    holder = sa.create_engine(postgres_schema_url)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with holder.begin() as conn:
            conn.execute(sa.text("LOCK TABLE run_measurements IN ACCESS EXCLUSIVE MODE"))
            held.set()
            release.wait(60)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        assert held.wait(30)
        start = time.monotonic()
        assert main(["db", "stats", "--db", postgres_schema_url]) == 1
        elapsed = time.monotonic() - start
    finally:
        release.set()
        thread.join(30)
        holder.dispose()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lock_timeout" in err and "waited 1 s" in err, err
    assert elapsed < 20


@pytest.mark.postgres
def test_postgresql_connections_carry_the_timeouts(postgres_schema_url):
    with open_store(postgres_schema_url) as store, store.engine.connect() as conn:
        lock = conn.exec_driver_sql("SHOW lock_timeout").scalar()
        statement = conn.exec_driver_sql("SHOW statement_timeout").scalar()
    assert lock == "30s" and statement == "10min"


def test_timeout_message_names_the_setting():
    assert "lock_timeout" in engine_module.timeout_message(
        "canceling statement due to lock timeout"
    )
    with pytest.raises(StoreError, match="statement_timeout"):
        raise engine_module.store_error(
            sa.create_engine("sqlite://"),
            RuntimeError("canceling statement due to statement timeout"),
        )
