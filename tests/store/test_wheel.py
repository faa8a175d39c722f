"""An installed powerfit (a built wheel, not the editable checkout) creates its store."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
import powerfit
assert powerfit.__file__.startswith(sys.prefix), f"not the installed copy: {powerfit.__file__}"
from powerfit.cli import main
sys.exit(main(["db", "stats", "--json"]) or main(["db", "current"]))
"""


@pytest.mark.slow
def test_wheel_ships_migrations_and_creates_a_store(tmp_path):
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        # the test environment's setuptools builds it: no download, as on a machine
        # without network
        [*pip, "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("powerfit-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [*pip, "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    # Dependencies from the test environment, appended after the venv's own
    # site-packages; the editable install's .pth hook is not processed from there.
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"])
    env = {**os.environ, "POWERFIT_HOME": str(tmp_path / "home")}
    env.pop("POWERFIT_DB_URL", None)
    run = subprocess.run(
        [str(python), "-c", SCRIPT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert '"imports": 0' in run.stdout and "(head)" in run.stdout
    assert (tmp_path / "home" / "powerfit.db").exists()
