"""Benchmark: concurrent writers on one measurement store and one MLflow server.

Measures, on the real local services, what several users writing at once do:

**Store** (for PostgreSQL and, for comparison, SQLite). ``--writers`` W processes
(default 8) each run the real command line ``python -m powerfit ingest FILE --db
URL --json`` on a distinct synthetic file of ``--rows`` R valid rows (default
25,000; :func:`bench_ingest._synthetic` with seed k), all started together, into
one store: a fresh schema ``powerfit_bench_<random>`` on ``--postgres`` (default
``POWERFIT_TEST_POSTGRES_URL``; :func:`bench_ingest._postgres_schema`, dropped
afterwards) and one new SQLite file. One writer alone first measures a baseline
(and creates the schema). Then a race: W/2 processes re-ingest file 0 (already
stored) while W/2 others ingest one new file at the same time. Checked
afterwards: every process exited 0; per import, the rows in
``operation_measurements`` equal R (every row of every file arrived exactly
once); the re-ingested file added nothing and the new one was imported exactly
once. Reported: wall time [s] of the concurrent phase, rows/s, per-writer
min/max wall time [s], and whether any writer printed "database is locked"
(SQLite serialises writers: they queue on its busy timeout).

**Registry.** An ``mlflow server`` started here (backend store: a scratch schema
on the same PostgreSQL server, else a SQLite file with ``--registry-backend
sqlite``; artifacts in a temporary folder; a free port; waited on until
``/health`` answers; stopped at the end) and ``--fits`` F processes (default 4)
``python -m powerfit fit --gpu a100 --arch transformer --tracking-uri
http://127.0.0.1:PORT --db STORE --json`` started together on a SQLite store
holding the four published files (``POWERFIT_DATA_HOME`` or ../shared/data),
all registering versions of the same registered model on a brand-new server.
Checked: F distinct versions, each with its run (existing, with the
``split.json`` artifact), its ``powerfit.model_sha256`` tag and files matching
it (:func:`powerfit.tracking.verify_model`); exactly one version carries the
alias ``champion``; and how many fits reported themselves promoted. Reported:
wall time [s] of each fit process and of all.

Prints a table and writes everything to ``experiments/results/concurrency.json``
(``--out``). Exit status 1 when a check fails (the failures are listed).

Run: ``python experiments/bench_concurrency.py [--writers 8] [--rows 25000]
[--fits 4]``. The defaults take about 2–3 minutes on two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from bench_ingest import _postgres_schema, _synthetic  # experiments/ is sys.path[0]

from powerfit.store import open_store

#: The registered model the fits write to (``powerfit fit --gpu a100 --arch transformer``).
FIT_ARGS = ("--gpu", "a100", "--arch", "transformer")
#: Longest a writer or fit process may run [s].
PROCESS_TIMEOUT_S = 600.0
#: Longest the MLflow server may take to answer /health [s].
SERVER_START_TIMEOUT_S = 180.0


@dataclass
class Job:
    """One finished subprocess.

    Attributes
    ----------
    label : str
        What it did (file or fit number).
    returncode : int
    wall_s : float
        From the common start to its exit [s].
    stdout, stderr : str
    """

    label: str
    returncode: int
    wall_s: float
    stdout: str
    stderr: str


def _environment() -> dict[str, str]:
    """Child environment: one OpenMP thread, no telemetry, no inherited MLflow URIs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.pop("POWERFIT_DB_URL", None)
    return env | {"OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}


def run_together(commands: Sequence[tuple[str, list[str]]], cwd: Path) -> tuple[list[Job], float]:
    """Start every command at once and wait for all of them.

    Parameters
    ----------
    commands : sequence of (str, list of str)
        Label and argument list of each process.
    cwd : pathlib.Path
        Working folder of the processes.

    Returns
    -------
    (list of Job, float)
        The jobs in the order of ``commands`` (``wall_s`` counts from the moment the
        first one was started), and the CPU time [s] (user + system) they used in all.
    """
    env = _environment()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _, argv in commands
    ]
    jobs: list[Job | None] = [None] * len(procs)

    def wait(k: int) -> None:
        out, err = procs[k].communicate(timeout=PROCESS_TIMEOUT_S)
        jobs[k] = Job(commands[k][0], procs[k].returncode, time.perf_counter() - start, out, err)

    threads = [threading.Thread(target=wait, args=(k,)) for k in range(len(procs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return [job for job in jobs if job is not None], cpu_s


def _ingest_argv(path: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "powerfit", "ingest", str(path), "--db", url, "--json"]


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def _statuses(jobs: Sequence[Job], failures: list[str], what: str) -> list[str]:
    """``imported``/``duplicate`` of each ingest job; failed jobs are recorded."""
    statuses = []
    for job in jobs:
        if job.returncode != 0:
            failures.append(f"{what}: {job.label} exited {job.returncode}: {_tail(job.stderr)}")
            statuses.append("failed")
        else:
            statuses.append(json.loads(job.stdout)[0]["status"])
    return statuses


def _rows_per_import(url: str) -> dict[str, int]:
    """Operation-measurement rows per import, keyed by the import's source file name."""
    with open_store(url) as store:
        imports = {int(i["id"]): Path(str(i["source"])).name for i in store.imports()}
        with store.engine.connect() as conn:
            counted = conn.execute(
                sa.text(
                    "SELECT import_id, COUNT(*) FROM operation_measurements GROUP BY import_id"
                )
            ).all()
    out = {name: 0 for name in imports.values()}
    for import_id, count in counted:
        out[imports.get(int(import_id), f"import {import_id} (missing)")] = int(count)
    if len(set(imports.values())) != len(imports):  # the same file imported twice
        out["(files imported more than once)"] = len(imports) - len(set(imports.values()))
    return out


def store_benchmark(
    url: str, files: Sequence[Path], solo: Path, new: Path, rows: int, cwd: Path
) -> tuple[dict[str, Any], list[str]]:
    """Solo writer, W concurrent writers, then the duplicate race, on the store at ``url``.

    Parameters
    ----------
    url : str
        The store (empty; created by the solo writer).
    files : sequence of pathlib.Path
        One distinct file per concurrent writer.
    solo, new : pathlib.Path
        File of the solo baseline; file first ingested during the race.
    rows : int
        Rows of every file.
    cwd : pathlib.Path
        Working folder of the processes.

    Returns
    -------
    (dict, list of str)
        The figures, and the failed checks.
    """
    failures: list[str] = []
    (baseline,), _ = run_together([(solo.name, _ingest_argv(solo, url))], cwd)
    _statuses([baseline], failures, "solo writer")
    jobs, cpu_s = run_together([(p.name, _ingest_argv(p, url)) for p in files], cwd)
    concurrent = _statuses(jobs, failures, "concurrent writers")
    if any(s != "imported" for s in concurrent):
        failures.append(f"concurrent writers: statuses {concurrent}, all should be 'imported'")
    half = max(1, len(files) // 2)
    race = [(f"{files[0].name}#{k}", _ingest_argv(files[0], url)) for k in range(half)]
    race += [(f"{new.name}#{k}", _ingest_argv(new, url)) for k in range(half)]
    race_jobs, _ = run_together(race, cwd)
    race_statuses = _statuses(race_jobs, failures, "race")
    again, first = race_statuses[:half], race_statuses[half:]
    if again != ["duplicate"] * half:
        failures.append(f"race: re-ingesting {files[0].name} gave {again}, all 'duplicate'")
    if sorted(first) != ["duplicate"] * (half - 1) + ["imported"]:
        failures.append(f"race: {half} x {new.name} gave {first}, one 'imported'")

    per_import = _rows_per_import(url)
    expected = {p.name: rows for p in [solo, *files, new]}
    if per_import != expected:
        wrong = {
            k: (per_import.get(k), expected.get(k))
            for k in sorted(set(per_import) | set(expected))
            if per_import.get(k) != expected.get(k)
        }
        failures.append(f"rows per import differ (found, expected): {wrong}")
    everything = [baseline, *jobs, *race_jobs]
    locked = sum("database is locked" in job.stderr for job in everything)
    if locked:
        failures.append(f'{locked} writers printed "database is locked"')
    wall = max(job.wall_s for job in jobs)
    figures = {
        "writers": len(files),
        "rows_per_writer": rows,
        "solo_writer_s": baseline.wall_s,
        "concurrent_wall_s": wall,
        "concurrent_rows_per_s": len(files) * rows / wall,
        "writer_min_s": min(job.wall_s for job in jobs),
        "writer_max_s": wall,
        "writer_s": [round(job.wall_s, 3) for job in jobs],
        "writers_cpu_s": cpu_s,
        "race_processes": len(race_jobs),
        "race_wall_s": max(job.wall_s for job in race_jobs),
        "race_statuses": race_statuses,
        "database_is_locked": locked,
        "imports": len(per_import),
        "rows_total": sum(per_import.values()),
        "rows_expected": len(expected) * rows,
    }
    return figures, failures


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, workers: int, log: Path) -> Iterator[str]:
    """A fresh ``mlflow server`` on a free local port; its URL, stopped on exit.

    Parameters
    ----------
    backend_uri : str
        Backend (tracking and registry) store.
    artifacts : pathlib.Path
        Folder the server keeps artifacts in (``--artifacts-destination``).
    workers : int
        Server worker processes.
    log : pathlib.Path
        File receiving the server's output.

    Yields
    ------
    str
        ``http://127.0.0.1:PORT``.
    """
    port = _free_port()
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    argv = [
        mlflow, "server", "--backend-store-uri", backend_uri,
        "--artifacts-destination", artifacts.as_uri(), "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            argv, env=_environment(), stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited {proc.returncode}: {_tail(log.read_text())}"
                )
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not answer /health within {SERVER_START_TIMEOUT_S:g} s"
                )
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers (own session)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _check_registry(uri: str, jobs: Sequence[Job], failures: list[str]) -> dict[str, Any]:
    """Check the versions the fits registered; return what was found."""
    from mlflow import MlflowClient

    from powerfit.tracking import verify_model
    from powerfit.tracking.registry import CHAMPION_ALIAS, SPLIT_ARTIFACT

    results = []
    for job in jobs:
        if job.returncode != 0:
            failures.append(f"fit {job.label} exited {job.returncode}: {_tail(job.stderr)}")
        else:
            results.append(json.loads(job.stdout))
    names = {r["model_name"] for r in results}
    if len(names) != 1:
        failures.append(f"fits registered {len(names)} model names: {sorted(names)}")
        return {}
    (name,) = names
    client = MlflowClient(uri)
    # search_model_versions leaves aliases out: get each version.
    found = client.search_model_versions(f"name='{name}'")
    versions = [client.get_model_version(name, v.version) for v in found]
    numbers = sorted(int(v.version) for v in versions)
    reported = sorted(int(r["version"]) for r in results)
    if numbers != reported:
        failures.append(f"versions in registry {numbers}, reported by the fits {reported}")
    if len(set(numbers)) != len(jobs):
        failures.append(f"{len(jobs)} fits made {len(set(numbers))} distinct versions")
    run_ids = [v.run_id for v in versions]
    if len(set(run_ids)) != len(run_ids):
        failures.append(f"versions share runs: {run_ids}")
    verified = 0
    for v in versions:
        run = client.get_run(v.run_id)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        if SPLIT_ARTIFACT not in artifacts:
            failures.append(f"version {v.version}: run {v.run_id} lacks {SPLIT_ARTIFACT}")
        with tempfile.TemporaryDirectory(prefix="bench-verify-") as folder:
            try:
                verify_model(f"models:/{name}/{v.version}", tracking_uri=uri, dst_path=folder)
                verified += 1
            except Exception as exc:  # report every version that does not verify
                failures.append(f"version {v.version}: {type(exc).__name__}: {exc}")
    holders = [int(v.version) for v in versions if CHAMPION_ALIAS in (v.aliases or [])]
    aliases = client.get_registered_model(name).aliases
    if len(holders) != 1 or int(aliases.get(CHAMPION_ALIAS, -1)) not in numbers:
        failures.append(f"champion held by versions {holders} (aliases {aliases})")
    promoted = sorted(int(r["version"]) for r in results if r["promoted"])
    return {
        "model_name": name,
        "versions": numbers,
        "verified_versions": verified,
        "champion": holders[0] if len(holders) == 1 else holders,
        "fits_reporting_promoted": promoted,
    }


def registry_benchmark(
    fits: int, postgres_url: str | None, backend: str, workers: int, folder: Path
) -> tuple[dict[str, Any], list[str]]:
    """F concurrent ``powerfit fit`` on a fresh MLflow server (see the module docstring).

    Returns
    -------
    (dict, list of str)
        The figures, and the failed checks.
    """
    home = os.environ.get("POWERFIT_DATA_HOME") or Path(__file__).parents[2] / "shared/data"
    published = sorted((Path(home) / "mayaki2025" / "processed").glob("*.csv"))
    if not published:
        raise SystemExit(f"no published files under {home}/mayaki2025/processed")
    store = f"sqlite:///{folder / 'fit-store.db'}"
    argv = [sys.executable, "-m", "powerfit", "ingest", *map(str, published), "--db", store]
    subprocess.run(argv, env=_environment(), check=True, capture_output=True, cwd=folder)

    failures: list[str] = []
    with contextlib.ExitStack() as stack:
        if backend == "postgresql":
            if not postgres_url:
                raise SystemExit("--registry-backend postgresql needs --postgres URL")
            backend_uri = stack.enter_context(_postgres_schema(postgres_url))
        else:
            backend_uri = f"sqlite:///{folder / 'mlflow.db'}"
        (folder / "artifacts").mkdir()
        t0 = time.perf_counter()
        uri = stack.enter_context(
            mlflow_server(backend_uri, folder / "artifacts", workers, folder / "server.log")
        )
        start_s = time.perf_counter() - t0
        fit = [sys.executable, "-m", "powerfit", "fit", *FIT_ARGS]
        fit += ["--tracking-uri", uri, "--db", store, "--json"]
        jobs, cpu_s = run_together([(str(k), fit) for k in range(fits)], folder)
        found = _check_registry(uri, jobs, failures)
    figures = {
        "fits": fits,
        "backend": backend,
        "server_workers": workers,
        "server_start_s": start_s,
        "fit_s": [round(job.wall_s, 3) for job in jobs],
        "fits_cpu_s": cpu_s,
        "fit_min_s": min(job.wall_s for job in jobs),
        "fit_max_s": max(job.wall_s for job in jobs),
        "total_s": max(job.wall_s for job in jobs),
        **found,
    }
    return figures, failures


def benchmark(
    writers: int = 8,
    rows: int = 25_000,
    fits: int = 4,
    postgres_url: str | None = None,
    registry_backend: str | None = None,
    server_workers: int = 2,
) -> dict[str, Any]:
    """Run both parts; return the figures and the failed checks.

    Parameters
    ----------
    writers : int, default 8
        Concurrent ingest processes per store.
    rows : int, default 25_000
        Rows of each writer's file.
    fits : int, default 4
        Concurrent ``powerfit fit`` processes (0: skip the registry part).
    postgres_url : str, optional
        PostgreSQL server for scratch schemas; default ``POWERFIT_TEST_POSTGRES_URL``.
        Without one, only SQLite is measured.
    registry_backend : {'postgresql', 'sqlite'}, optional
        Backend of the MLflow server; default PostgreSQL when a server is given.
    server_workers : int, default 2
        Worker processes of the MLflow server.

    Returns
    -------
    dict
        ``store`` (per backend), ``registry``, ``failures`` (list of str), ``machine``.
    """
    postgres_url = postgres_url or os.environ.get("POWERFIT_TEST_POSTGRES_URL")
    registry_backend = registry_backend or ("postgresql" if postgres_url else "sqlite")
    out: dict[str, Any] = {"store": {}, "failures": []}
    out["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    with tempfile.TemporaryDirectory(prefix="bench-concurrency-") as tmp:
        folder = Path(tmp)
        files = []
        for k in range(writers):
            files.append(folder / f"writer{k}.csv")
            _synthetic(files[-1], rows, seed=k)
        solo, new = folder / "solo.csv", folder / "new.csv"
        _synthetic(solo, rows, seed=writers)
        _synthetic(new, rows, seed=writers + 1)
        backends: dict[str, Any] = {
            "sqlite": lambda: contextlib.nullcontext(f"sqlite:///{folder / 'store.db'}")
        }
        if postgres_url:
            backends["postgresql"] = lambda: _postgres_schema(postgres_url)
        for backend, url_for in backends.items():
            with url_for() as url:
                figures, failures = store_benchmark(url, files, solo, new, rows, folder)
            out["store"][backend] = figures
            out["failures"] += [f"store {backend}: {f}" for f in failures]
        if fits > 0:
            work = folder / "registry"
            work.mkdir()
            figures, failures = registry_benchmark(
                fits, postgres_url, registry_backend, server_workers, work
            )
            out["registry"] = figures
            out["failures"] += [f"registry: {f}" for f in failures]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8, help="concurrent ingest processes")
    parser.add_argument("--rows", type=int, default=25_000, help="rows of each writer's file")
    parser.add_argument("--fits", type=int, default=4, help="concurrent fit processes (0: none)")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="PostgreSQL server for scratch schemas (default POWERFIT_TEST_POSTGRES_URL)",
    )
    parser.add_argument(
        "--registry-backend",
        choices=["postgresql", "sqlite"],
        help="backend store of the MLflow server (default postgresql when a server is given)",
    )
    parser.add_argument("--server-workers", type=int, default=2, help="MLflow server workers")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results" / "concurrency.json",
        help="JSON file of the results",
    )
    args = parser.parse_args()
    if args.writers < 2 or args.rows < 1 or args.fits < 0:
        parser.error("--writers must be ≥ 2, --rows ≥ 1 and --fits ≥ 0")
    t0 = time.perf_counter()
    r = benchmark(
        args.writers,
        args.rows,
        args.fits,
        args.postgres,
        args.registry_backend,
        args.server_workers,
    )
    r["total_runtime_s"] = time.perf_counter() - t0
    r["command"] = " ".join(["python", *sys.argv])

    print(f"{'store':<11}{'writers':>8}{'rows':>10}{'solo s':>8}{'wall s':>8}"
          f"{'rows/s':>10}{'min s':>7}{'max s':>7}{'locked':>7}")  # fmt: skip
    for backend, f in r["store"].items():
        print(
            f"{backend:<11}{f['writers']:>8}{f['rows_per_writer']:>10,}{f['solo_writer_s']:>8.2f}"
            f"{f['concurrent_wall_s']:>8.2f}{f['concurrent_rows_per_s']:>10,.0f}"
            f"{f['writer_min_s']:>7.2f}{f['writer_max_s']:>7.2f}{f['database_is_locked']:>7}"
        )
    if "registry" in r:
        g = r["registry"]
        print(
            f"registry ({g['backend']}, {g['server_workers']} workers): {g['fits']} fits at once, "
            f"each {g['fit_min_s']:.1f}–{g['fit_max_s']:.1f} s, all {g['total_s']:.1f} s; "
            f"versions {g.get('versions')}, champion {g.get('champion')}, "
            f"fits reporting promotion {g.get('fits_reporting_promoted')}"
        )
    for failure in r["failures"]:
        print(f"FAILED {failure}")
    print(f"total {r['total_runtime_s']:.1f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(r, indent=2) + "\n")
    if r["failures"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
