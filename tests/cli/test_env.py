"""``powerfit env``, ``quiet_mlflow`` and ``working``: the front door's plumbing."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from powerfit.cli import main, quiet_mlflow, working


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    """A new user's environment: HOME in tmp_path, no powerfit/MLflow/XDG variables."""
    for key in list(os.environ):
        if key.startswith(("POWERFIT_", "MLFLOW_", "XDG_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_env_reports_the_default_stores_and_the_embedded_data(fresh_home, capsys):
    from powerfit.datasets.mayaki2025 import embedded_dir

    assert main(["env", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    home = fresh_home / ".local" / "share" / "powerfit"
    assert info["home"] == str(home)
    assert info["store"] == f"sqlite:///{home / 'powerfit.db'}"
    assert info["tracking_uri"] == f"sqlite:///{home / 'mlflow.db'}"
    assert info["published_data"] == str(embedded_dir()) and info["published_data_embedded"]
    assert info["packages"]["mlflow"] and info["powerfit"]
    assert main(["env", "--exports"]) == 0
    assert (
        capsys.readouterr().out == f"export MLFLOW_TRACKING_URI=sqlite:///{home / 'mlflow.db'}\n"
    )
    assert main(["env", "--published-data"]) == 0
    assert capsys.readouterr().out.strip() == str(embedded_dir())


def test_env_masks_passwords_and_exports_no_masked_uri(fresh_home, capsys):
    uri = "postgresql+psycopg://me:secret@db-host/mlflow"
    assert main(["env", "--tracking-uri", uri, "--db", uri]) == 0
    out = capsys.readouterr().out
    assert "secret" not in out and "me:***@db-host" in out
    assert "export MLFLOW_TRACKING_URI=" not in out and "MLFLOW_TRACKING_PASSWORD" in out


def test_env_exports_make_plain_mlflow_use_powerfit_s_store(fresh_home):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERFIT_", "MLFLOW_"))}
    script = (
        f'eval "$({sys.executable} -m powerfit env --exports)"; '
        f'{sys.executable} -c "import mlflow; print(mlflow.get_tracking_uri())"'
    )
    done = subprocess.run(
        ["bash", "-c", script], env=env | {"HOME": str(fresh_home)}, cwd=fresh_home,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    home = fresh_home / ".local" / "share" / "powerfit"
    assert done.stdout.strip() == f"sqlite:///{home / 'mlflow.db'}"


def test_quiet_mlflow_drops_mlflow_s_messages_only(capsys):
    from mlflow.utils.logging_utils import eprint

    with quiet_mlflow():
        eprint("Registered model 'x' already exists. Creating a new version of this model...")
        print("powerfit: kept", file=sys.stderr)
        assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
    err = capsys.readouterr().err
    assert err == "powerfit: kept\n"
    assert (
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR" not in os.environ
        or os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR") != "false"
    )
    with quiet_mlflow(False):  # --debug: everything shown
        eprint("Registered model 'x' already exists.")
    assert "already exists" in capsys.readouterr().err


class _Terminal(io.StringIO):
    """A text stream that says it is a terminal (what ``working`` writes to)."""

    def isatty(self) -> bool:
        return True


def test_working_shows_elapsed_time_on_a_terminal_only(monkeypatch):
    import time

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with working("predicting with every version", interval_s=0.05):
        time.sleep(0.3)
    text = terminal.getvalue()
    assert "\rpredicting with every version… 0 s" in text and text.endswith("\r\033[K")
    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    with working("x", interval_s=0.05, quiet=True):
        time.sleep(0.15)
    assert quiet.getvalue() == ""
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    with working("x", interval_s=0.05):
        time.sleep(0.15)
    assert piped.getvalue() == ""


def test_renamed_flags_keep_their_old_names():
    from powerfit.cli import build_parser

    parser = build_parser()
    new = parser.parse_args(["fit", "--gpu", "a100", "--energy-model", "step"])
    old = parser.parse_args(["fit", "--gpu", "a100", "--model", "step"])
    assert new.energy_model == old.energy_model == "step"
    new = parser.parse_args(["evaluate", "--db", "x.db", "--n-seeds", "2"])
    old = parser.parse_args(["evaluate", "--store", "x.db", "--seeds", "2"])
    assert (new.store, new.seeds) == (old.store, old.seeds) == ("x.db", 2)


def test_db_upgrade_and_measure_precision_help(capsys):
    with pytest.raises(SystemExit):
        main(["db", "upgrade", "--help"])
    assert "Alembic revision to upgrade to" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["measure", "steps", "--help"])
    assert "amp-bf16" in capsys.readouterr().out


def test_measure_ops_refuses_mixed_precision(tmp_path, capsys):
    args = ["measure", "ops", "--device", "cpu", "--quick", "--precision", "amp-bf16"]
    assert main([*args, "--out", str(tmp_path / "ops.csv")]) == 1
    assert "is a property of a training step" in capsys.readouterr().err
    assert not (tmp_path / "ops.csv").exists()
