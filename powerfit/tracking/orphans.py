"""Runs left RUNNING by a process that ended without finishing them (killed, crashed).

Every run powerfit starts carries the host and process that started it
(:func:`owner_tags`). Before a fit records a new run, :func:`fail_orphan_runs` marks
FAILED the runs of powerfit's experiment that are still RUNNING although their
process is gone: a run of this host whose process no longer exists, or a run without
these tags (an older powerfit, another tool) started more than :data:`STALE_S` ago.
Runs of other hosts are left alone until they are that old: their process cannot be
checked from here.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

__all__ = ["HOST_TAG", "ORPHAN_TAG", "PID_TAG", "STALE_S", "fail_orphan_runs", "owner_tags"]

HOST_TAG = "powerfit.host"
PID_TAG = "powerfit.pid"
#: Tag set on a run marked FAILED here, saying why.
ORPHAN_TAG = "powerfit.orphan"
#: Age [s] after which a RUNNING run whose process cannot be checked is an orphan.
STALE_S = 24 * 3600.0


def owner_tags() -> dict[str, str]:
    """Tags naming the host and process that start a run."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists (another user's), or not a pid we can judge
    return True


def _orphan(run: Any, host: str, now_ms: float, stale_s: float) -> str | None:
    """Why a RUNNING run is an orphan, or None when it may still be running."""
    tags = run.data.tags
    age_s = (now_ms - (run.info.start_time or now_ms)) / 1000
    if tags.get(HOST_TAG) == host and tags.get(PID_TAG, "").isdigit():
        pid = int(tags[PID_TAG])
        if pid != os.getpid() and not _alive(pid):
            return f"its process {pid} on {host} ended without finishing it"
        return None
    if age_s > stale_s:
        return f"still RUNNING {age_s / 3600:.0f} h after it started"
    return None


def fail_orphan_runs(client: Any, experiment_id: str, *, stale_s: float = STALE_S) -> list[str]:
    """Mark FAILED the experiment's RUNNING runs whose process is gone.

    Parameters
    ----------
    client : mlflow.MlflowClient
    experiment_id : str
        powerfit's experiment.
    stale_s : float, default STALE_S
        Age [s] above which a run that cannot be checked is an orphan.

    Returns
    -------
    list of str
        The run ids marked FAILED (each tagged :data:`ORPHAN_TAG` with the reason).
    """
    runs = client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    )
    host = socket.gethostname()
    now_ms = time.time() * 1000
    failed = []
    for run in runs:
        why = _orphan(run, host, now_ms, stale_s)
        if why is None:
            continue
        client.set_tag(run.info.run_id, ORPHAN_TAG, f"marked FAILED by a later fit: {why}")
        client.set_terminated(run.info.run_id, status="FAILED")
        failed.append(run.info.run_id)
    return failed
