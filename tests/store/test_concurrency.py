"""Several real processes ingesting into one store at the same time lose no row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from powerfit.store import open_store

PROCESSES = 2
ROWS = 2000


def _files(tmp_path: Path) -> list[Path]:
    paths = []
    header = "gpu,arch,operation,batch_size,input_size,hidden_size,seq_len,flops,duration_s"
    for k in range(PROCESSES):
        lines = [header]
        lines += [f"a100,lstm,hidden_gates,{k + 1},{i + 1},64,1,{8 * (k + 1) * 64 * 64},1e-4"
                  for i in range(ROWS)]  # fmt: skip
        path = tmp_path / f"part{k}.csv"
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths


def _ingest_concurrently(url: str, tmp_path: Path) -> None:
    files = _files(tmp_path)
    env = {**os.environ, "POWERFIT_DB_URL": url}
    # Every distinct file once, and the first one twice: a race on the same content.
    jobs = [*files, files[0]]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "powerfit", "ingest", str(path), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in jobs
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    statuses = [json.loads(out)[0]["status"] for out, _ in outputs]
    assert sorted(statuses) == ["duplicate"] + ["imported"] * PROCESSES
    with open_store(url) as store:
        assert store.counts() == {
            "gpus": 1,
            "operation_measurements": PROCESSES * ROWS,
            "run_measurements": 0,
            "imports": PROCESSES,
        }
        ops = store.operation_measurements()
    assert sorted(ops.groupby("batch_size").size()) == [ROWS] * PROCESSES


def test_concurrent_ingest_sqlite(tmp_path):
    # The database does not exist yet: the processes also race to create it.
    _ingest_concurrently(f"sqlite:///{tmp_path / 'shared.db'}", tmp_path)


@pytest.mark.postgres
def test_concurrent_ingest_postgresql(postgres_schema_url, tmp_path):
    _ingest_concurrently(postgres_schema_url, tmp_path)


# ------------------------------------------------------------------ tracking store
#: Run by each racing process: connect, say so, wait for the go, then do what the
#: first fit on a new tracking store does (powerfit.tracking.recording.log_fit).
_FIRST_FIT = """
import sys, time
from pathlib import Path
from mlflow import MlflowClient
from powerfit.tracking.recording import _experiment_id
from powerfit.tracking.registry import ensure_registered_model
uri, folder, k = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
client = MlflowClient(uri)
client.search_experiments()
(folder / f"ready{k}").touch()
while not (folder / "go").exists():
    time.sleep(0.001)
_experiment_id(client, uri)
ensure_registered_model(client, "racing-model", "NVIDIA A100 80GB PCIe", "transformer")
"""


@pytest.mark.slow
def test_first_fits_on_a_new_tracking_store_race(tmp_path):
    # Several users' first fits on a brand-new tracking store reach "create the
    # experiment / registered model unless it exists" at the same moment: none may fail.
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # MLflow's own migrations, once
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _FIRST_FIT, uri, str(tmp_path), str(k)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(4)
    ]
    while sum((tmp_path / f"ready{k}").exists() for k in range(4)) < 4:
        assert all(proc.poll() is None for proc in procs), "a racing process died early"
        time.sleep(0.01)
    (tmp_path / "go").touch()
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    for proc, err in zip(procs, errors, strict=True):
        assert proc.returncode == 0, err.strip().splitlines()[-1]
    client = MlflowClient(uri)
    assert [e.name for e in client.search_experiments() if e.name == "powerfit"] == ["powerfit"]
    assert client.get_registered_model("racing-model").tags["powerfit.kind"] == "energy-model"
