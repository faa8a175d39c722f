"""Several real processes ingesting into one store at the same time lose no row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
