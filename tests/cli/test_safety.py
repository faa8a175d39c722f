"""The command line's safety: destructive commands ask, URLs are masked, dead stores fail fast.

Issue 15, findings 5 (``db downgrade`` dropped every table without asking), 6 (the
tracking URI's password was printed), 7 (a dead tracking server hung for minutes,
then dumped a traceback) and the store-opening parts of 8 (an MLflow database given
as ``--db``, an empty ``alembic_version``). Everything runs on real SQLite files,
a real PostgreSQL server (when ``POWERFIT_TEST_POSTGRES_URL`` is set), real MLflow
stores and real sockets.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from powerfit.cli import main

SECRET = "s3cret-Pw"

#: Rows written into ``gpus`` before a downgrade.
N_GPUS = 3


# --------------------------------------------------------------------------- helpers
@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """URL of an empty database on each backend (PostgreSQL: a fresh schema)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_schema_url")


def _filled(url: str) -> str:
    """Create the store at ``url`` and write N_GPUS rows into ``gpus``; return the URL."""
    from powerfit.store import open_store

    with open_store(url) as store, store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO gpus (name, peak_flops, default_precision) VALUES (:n, '{}', 'fp32')"
            ),
            [{"n": f"test gpu {i}"} for i in range(N_GPUS)],
        )
    return url


def _tables(url: str) -> dict[str, int]:
    """Rows per table of the database at ``url`` (without opening it as a store)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
            return {
                name: conn.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar()
                for name in names
            }
    finally:
        engine.dispose()


def _run(args: list[str], cwd, stdin=subprocess.DEVNULL, timeout: float = 120):
    """``python -m powerfit ARGS`` in a subprocess; (returncode, stdout, stderr, seconds)."""
    env = dict(os.environ, POWERFIT_HOME=str(cwd), MLFLOW_DISABLE_TELEMETRY="true")
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "powerfit", *args],
        stdin=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _silent_server() -> Iterator[int]:
    """A port that accepts TCP connections (kernel backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------------ finding 5: downgrade
def test_downgrade_needs_an_explicit_target(tmp_path, capsys):
    url = _filled(f"sqlite:///{tmp_path / 'store.db'}")
    with pytest.raises(SystemExit) as exit_info:
        main(["db", "downgrade", "--db", url])
    assert exit_info.value.code == 2
    assert "REV" in capsys.readouterr().err
    assert _tables(url)["gpus"] == N_GPUS


def test_downgrade_without_a_terminal_needs_yes(store_url, capsys):
    url = _filled(store_url)
    before = _tables(url)
    assert main(["db", "downgrade", "base", "--db", url]) == 1  # pytest's stdin: no terminal
    err = _one_line(capsys.readouterr().err)
    assert "stdin is not a terminal" in err and "--yes" in err
    assert f"{N_GPUS:,} rows" in err and "DROPPING every powerfit table" in err
    assert _tables(url) == before  # nothing dropped, every row still there

    assert main(["db", "downgrade", "base", "--db", url, "--yes"]) == 0
    assert "at base" in capsys.readouterr().out
    assert set(_tables(url)) <= {"alembic_version"}


def test_downgrade_target_is_checked_before_asking(tmp_path, capsys):
    url = _filled(f"sqlite:///{tmp_path / 'store.db'}")
    assert main(["db", "downgrade", "no-such-rev", "--db", url, "--yes"]) == 1
    assert "unknown revision 'no-such-rev' (known: base, " in _one_line(capsys.readouterr().err)
    assert main(["db", "downgrade", "-1", "--db", url]) == 1  # one step back asks too
    assert "undoing 1 revision(s)" in _one_line(capsys.readouterr().err)
    assert _tables(url)["gpus"] == N_GPUS


def test_downgrade_in_a_pipe_is_refused(tmp_path):
    url = _filled(f"sqlite:///{tmp_path / 'store.db'}")
    code, _, err, _ = _run(["db", "downgrade", "base", "--db", url], tmp_path)
    assert code == 1
    assert "stdin is not a terminal" in _one_line(err)
    assert _tables(url)["gpus"] == N_GPUS


def _answer_on_terminal(args: list[str], answer: str, cwd) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin and type ``answer``; (code, output)."""
    import pty

    master, slave = pty.openpty()
    try:
        os.write(master, f"{answer}\n".encode())
        code, out, err, _ = _run(args, cwd, stdin=slave)
    finally:
        os.close(slave)
        os.close(master)
    return code, out + err


@pytest.mark.slow
def test_downgrade_asks_on_a_terminal(tmp_path):
    url = _filled(f"sqlite:///{tmp_path / 'store.db'}")
    args = ["db", "downgrade", "base", "--db", url]
    code, output = _answer_on_terminal(args, "no", tmp_path)
    assert code == 1
    assert "Type 'yes' to continue" in output and "not confirmed" in output
    lost = [line.split() for line in output.splitlines() if line.strip().startswith("gpus")]
    assert lost == [["gpus", str(N_GPUS), "rows"]]  # what would be lost, table by table
    assert _tables(url)["gpus"] == N_GPUS
    code, output = _answer_on_terminal(args, "yes", tmp_path)
    assert code == 0, output
    assert "gpus" not in _tables(url)


# ---------------------------------------------------------------- finding 6: masking
def test_mask_url_hides_passwords_of_store_and_tracking_urls():
    from powerfit.store.engine import mask_url
    from powerfit.tracking.locations import mask_password

    cases = {
        f"postgresql+psycopg://me:{SECRET}@db:5432/x": "postgresql+psycopg://me:***@db:5432/x",
        f"http://me:{SECRET}@mlflow:5000/": "http://me:***@mlflow:5000/",
        f"https://me:{SECRET}@mlflow/prefix": "https://me:***@mlflow/prefix",
        f"postgresql://db/x?password={SECRET}&user=me": "postgresql://db/x?password=***&user=me",
        "sqlite:////tmp/store.db": "sqlite:////tmp/store.db",
        "http://localhost:5000": "http://localhost:5000",
    }
    for url, masked in cases.items():
        assert mask_url(url) == masked
        assert mask_password(url) == masked
    assert mask_url(sa.make_url(f"mysql://me:{SECRET}@db/x")) == "mysql://me:***@db/x"


def test_error_line_and_debug_traceback_are_masked(capsys):
    uri = f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:{_free_port()}/x"
    assert main(["history", "--tracking-uri", uri]) == 1
    err = _one_line(capsys.readouterr().err)
    assert SECRET not in err and "postgres:***@127.0.0.1" in err
    assert main(["--debug", "history", "--tracking-uri", uri]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "postgres:***@127.0.0.1" in err
    assert SECRET not in err


def test_log_records_are_masked_while_a_command_runs(caplog):
    from powerfit.cli import _masked_output

    with _masked_output(), caplog.at_level(logging.WARNING):
        logging.getLogger("powerfit.test").warning("cannot reach %s", f"http://u:{SECRET}@h/")
        try:
            raise ConnectionError(f"no answer from http://u:{SECRET}@h/")
        except ConnectionError:
            logging.getLogger("powerfit.test").exception("tracking failed")
    assert caplog.records[-2].getMessage() == "cannot reach http://u:***@h/"
    assert "no answer from http://u:***@h/" in caplog.text and SECRET not in caplog.text
    logging.getLogger("powerfit.test").warning("after: %s", f"http://u:{SECRET}@h/")
    assert SECRET in caplog.records[-1].getMessage()  # the factory is put back


@pytest.mark.slow
def test_fit_prints_the_tracking_uri_masked(ingested_store, postgres_schema_url, capsys):
    """The finding itself: ``fit`` printed ``run ... in postgresql+psycopg://postgres:s3cret@``."""
    tracking = sa.make_url(postgres_schema_url).set(password=SECRET)  # trust auth: any password
    uri = tracking.render_as_string(hide_password=False)
    store = ingested_store.engine.url.render_as_string(hide_password=False)
    args = ["fit", "--gpu", "a100", "--db", store, "--tracking-uri", uri]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    assert f"in {tracking.render_as_string(hide_password=True)}" in out
    assert main([*args, "--json"]) == 0
    assert SECRET not in capsys.readouterr().out


@pytest.fixture
def mlflow_server(mlflow_db_template, tmp_path) -> Iterator[int]:
    """A real ``mlflow server`` on a free port (its own process group, ended afterwards)."""
    import signal

    import requests

    shutil.copyfile(mlflow_db_template, tmp_path / "server.db")
    port = _free_port()
    command = [
        os.path.join(os.path.dirname(sys.executable), "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination", str(tmp_path / "server-artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=log, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"mlflow server did not start: {log.name}")
            time.sleep(1)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_fit_on_a_tracking_server_keeps_the_password_out_of_stdout(
    ingested_store, mlflow_server, capsys
):
    """MLflow itself wrote "View run ... at: http://user:password@host..." on stdout."""
    import json

    uri = f"http://me:{SECRET}@127.0.0.1:{mlflow_server}"
    store = ingested_store.engine.url.render_as_string(hide_password=False)
    assert main(["fit", "--gpu", "a100", "--db", store, "--tracking-uri", uri, "--json"]) == 0
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    result = json.loads(captured.out)  # stdout is the JSON document alone
    assert result["tracking_uri"] == f"http://me:***@127.0.0.1:{mlflow_server}"
    assert result["version"] == 1


# ----------------------------------------------------------- finding 7: fail fast, one line
@pytest.mark.slow
def test_dead_tracking_server_fails_fast_in_one_line(tmp_path):
    uri = f"http://user:{SECRET}@127.0.0.1:{_free_port()}"
    code, out, err, seconds = _run(["history", "--tracking-uri", uri], tmp_path, timeout=60)
    assert code == 1
    line = _one_line(err)
    assert "tracking server http://user:***@127.0.0.1" in line and "unreachable" in line
    assert SECRET not in out + err
    assert seconds < 30


def test_dead_tracking_server_in_process_is_quick(capsys):
    start = time.perf_counter()
    assert main(["history", "--tracking-uri", f"http://127.0.0.1:{_free_port()}"]) == 1
    assert time.perf_counter() - start < 10
    assert "is unreachable: Connection refused" in _one_line(capsys.readouterr().err)


def test_silent_tracking_server_times_out(capsys, monkeypatch):
    with _silent_server() as port:
        uri = f"http://127.0.0.1:{port}"
        start = time.perf_counter()
        assert main(["history", "--tracking-uri", uri, "--tracking-timeout", "1.5"]) == 1
        assert time.perf_counter() - start < 10
        assert "did not answer within 1.5 s" in _one_line(capsys.readouterr().err)
        monkeypatch.setenv("POWERFIT_TRACKING_TIMEOUT", "1")
        assert main(["history", "--tracking-uri", uri]) == 1
        assert "did not answer within 1 s" in _one_line(capsys.readouterr().err)
    monkeypatch.setenv("POWERFIT_TRACKING_TIMEOUT", "soon")
    assert main(["history", "--tracking-uri", uri]) == 1
    assert "POWERFIT_TRACKING_TIMEOUT must be a positive number" in capsys.readouterr().err


def test_dead_tracking_database_fails_in_one_masked_line(capsys):
    uri = f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:{_free_port()}/x"
    assert main(["history", "--tracking-uri", uri, "--tracking-timeout", "3"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "cannot reach the tracking database postgresql+psycopg://postgres:***@" in line


def test_folder_or_foreign_file_as_tracking_uri(tmp_path, capsys):
    assert main(["history", "--tracking-uri", str(tmp_path)]) == 1
    assert "names a folder, not a SQLite file" in _one_line(capsys.readouterr().err)
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    assert main(["history", "--tracking-uri", str(text)]) == 1
    assert "is not a SQLite database" in _one_line(capsys.readouterr().err)
    store = _filled(f"sqlite:///{tmp_path / 'powerfit.db'}")
    assert main(["history", "--tracking-uri", store]) == 1
    assert "is a powerfit measurement store" in _one_line(capsys.readouterr().err)


def test_folder_or_foreign_file_as_db(tmp_path, capsys):
    assert main(["db", "stats", "--db", str(tmp_path)]) == 1
    assert "names a folder, not a SQLite file" in _one_line(capsys.readouterr().err)
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    assert main(["db", "stats", "--db", str(text)]) == 1
    assert "is not a SQLite database" in _one_line(capsys.readouterr().err)
    assert text.read_text() == "not a database\n"


def test_tracking_timeout_option_is_checked(capsys):
    for bad in ("0", "-1", "inf", "soon"):
        with pytest.raises(SystemExit) as exit_info:
            main(["history", "--tracking-timeout", bad])
        assert exit_info.value.code == 2
    assert "positive number of seconds" in capsys.readouterr().err


# ------------------------------------------------------ finding 8: what a database is
def test_mlflow_database_as_db_is_named(mlflow_db_template, tmp_path, capsys):
    path = tmp_path / "mlflow.db"
    shutil.copyfile(mlflow_db_template, path)
    before = _tables(f"sqlite:///{path}")
    for action in ("stats", "current", "upgrade"):
        assert main(["db", action, "--db", str(path)]) == 1
        err = _one_line(capsys.readouterr().err)
        assert "is an MLflow tracking database" in err and "not a powerfit store" in err
        assert "newer than this powerfit" not in err
    assert _tables(f"sqlite:///{path}") == before  # nothing created or changed


def test_empty_alembic_version_is_explained_and_stamp_repairs_it(store_url, capsys):
    url = _filled(store_url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM alembic_version"))
    engine.dispose()
    assert main(["db", "stats", "--db", url]) == 1
    err = _one_line(capsys.readouterr().err)
    assert "alembic_version table is empty" in err and "powerfit db stamp" in err
    assert "already exists" not in err
    assert main(["db", "stamp", "--db", url]) == 0
    assert main(["db", "stats", "--db", url, "--json"]) == 0
    assert f'"gpus": {N_GPUS}' in capsys.readouterr().out
    assert main(["db", "stamp", "--db", url]) == 1  # a revision is there now
    assert "nothing to stamp" in capsys.readouterr().err


def test_stamp_refuses_tables_that_differ(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE gpus (id INTEGER PRIMARY KEY, label TEXT)"))
    engine.dispose()
    assert main(["db", "stats", "--db", url]) == 1
    assert "alembic_version table is missing" in _one_line(capsys.readouterr().err)
    assert main(["db", "stamp", "--db", url]) == 1
    assert "differ from powerfit's schema" in _one_line(capsys.readouterr().err)
    assert "alembic_version" not in _tables(url)
