"""A fit killed midway leaves a RUNNING run; the next fit marks it FAILED (issue 26, 12)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from powerfit.cli import main
from powerfit.tracking.orphans import ORPHAN_TAG, fail_orphan_runs


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _runs(tracking_uri):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("powerfit")
    if experiment is None:
        experiment_id = client.create_experiment("powerfit")
    else:
        experiment_id = experiment.experiment_id
    return client, experiment_id


def _run(client, experiment_id, tags, start_time=None):
    run = client.create_run(experiment_id, start_time=start_time, tags=tags)
    return run.info.run_id


def test_only_runs_whose_process_is_gone_are_failed(tracking_uri):
    client, experiment_id = _runs(tracking_uri)
    here = socket.gethostname()
    dead = _run(client, experiment_id, {"powerfit.host": here, "powerfit.pid": str(_dead_pid())})
    live = _run(client, experiment_id, {"powerfit.host": here, "powerfit.pid": "1"})
    old = _run(client, experiment_id, {}, start_time=int((time.time() - 3 * 86400) * 1000))
    elsewhere = _run(client, experiment_id, {"powerfit.host": "other", "powerfit.pid": "7"})
    assert sorted(fail_orphan_runs(client, experiment_id)) == sorted([dead, old])
    status = {r: client.get_run(r).info.status for r in (dead, live, old, elsewhere)}
    assert status == {dead: "FAILED", live: "RUNNING", old: "FAILED", elsewhere: "RUNNING"}
    assert "ended without finishing" in client.get_run(dead).data.tags[ORPHAN_TAG]


def test_the_next_fit_marks_an_orphan_failed(ingested_store, tracking_uri, capsys):
    client, experiment_id = _runs(tracking_uri)
    here = socket.gethostname()
    orphan = _run(client, experiment_id, {"powerfit.host": here, "powerfit.pid": str(_dead_pid())})
    url = ingested_store.engine.url.render_as_string(hide_password=False)
    argv = ["fit", "--gpu", "a100", "--arch", "transformer", "--db", url,
            "--tracking-uri", tracking_uri, "--json"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    assert client.get_run(orphan).info.status == "FAILED"
    finished = client.search_runs([experiment_id], filter_string="attributes.status = 'FINISHED'")
    assert len(finished) == 1
    assert finished[0].data.tags["powerfit.host"] == here
