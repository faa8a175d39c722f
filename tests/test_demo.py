"""The README's main job, end to end, as a new user runs it: fresh HOME, no data folder."""

import json
import os
import subprocess
import sys

import pytest


def _new_user_env(home) -> dict[str, str]:
    """A fresh HOME, and none of the developer's powerfit, MLflow or XDG settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POWERFIT_", "MLFLOW_", "XDG_")) and k != "HOME"
    }
    return env | {"HOME": str(home), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_demo_runs_offline_on_the_default_stores_twice(tmp_path):
    env = _new_user_env(tmp_path / "home")
    cmd = [sys.executable, "-m", "powerfit", "demo", "--json"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    rows = {r["candidate"]: r for r in json.loads(first.stdout)}
    a, b = rows["Model A (6x512)"], rows["Model B (12x768)"]
    assert round(a["published profile [J]"], 2) == 36.06
    assert round(b["published profile [J]"], 2) == 78.96
    assert 0 < a["energy [J]"] < b["energy [J]"]
    assert min(r["x cheapest"] for r in rows.values()) == pytest.approx(1.0)
    for step in range(1, 7):
        assert f"[{step}/6" in first.stderr
    assert "from the copy embedded in powerfit" in first.stderr
    assert "recording in MLflow" in first.stderr  # stages of the fit shown as they start
    home = tmp_path / "home" / ".local" / "share" / "powerfit"
    assert (home / "powerfit.db").exists() and (home / "mlflow.db").exists()
    assert f"sqlite:///{home / 'mlflow.db'}" in first.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
    for noise in ("INFO", "Registered model", "Successfully registered", "Downloading artifacts"):
        assert noise not in first.stderr  # MLflow's own messages stay out (--debug shows them)

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "already there" in again.stderr
    assert "version 2" in again.stderr


@pytest.mark.slow
def test_demo_workdir_keeps_its_own_stores(tmp_path):
    env = _new_user_env(tmp_path / "home")
    cmd = [sys.executable, "-m", "powerfit", "demo", "--workdir", str(tmp_path / "w")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "w" / "powerfit.db").exists() and (tmp_path / "w" / "mlflow.db").exists()
    assert not (tmp_path / "home" / ".local" / "share" / "powerfit" / "powerfit.db").exists()
    assert "Model B (12x768)" in done.stdout
