"""The README's main job, end to end, in a temporary folder."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_runs_twice_and_prints_the_comparison(tmp_path, data_home):
    cmd = [
        sys.executable,
        "-m",
        "powerfit",
        "demo",
        "--workdir",
        str(tmp_path),
        "--data-home",
        str(data_home),
        "--json",
    ]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    rows = {r["candidate"]: r for r in json.loads(first.stdout)}
    a, b = rows["Model A (6x512)"], rows["Model B (12x768)"]
    assert round(a["published profile [J]"], 2) == 36.06
    assert round(b["published profile [J]"], 2) == 78.96
    assert 0 < a["energy [J]"] < b["energy [J]"]
    assert min(r["x cheapest"] for r in rows.values()) == pytest.approx(1.0)
    for step in range(1, 7):
        assert f"[{step}/6" in first.stderr
    assert (tmp_path / "powerfit.db").exists() and (tmp_path / "mlflow.db").exists()

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "already there" in again.stderr
    assert "version 2" in again.stderr
