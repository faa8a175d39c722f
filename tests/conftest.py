"""Shared fixtures. Each fixture here is used by several test modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _one_openmp_thread():
    """Fit gradient boosting on one OpenMP thread: on a small machine, several threads
    per fit oversubscribe the cores (tests/paper/test_step_energy.py: 44 s on one, 470 s
    on two)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="session", autouse=True)
def _trace_cache(tmp_path_factory):
    """Traced steps cached in a temporary directory, never the user's cache."""
    old = os.environ.get("POWERFIT_CACHE_DIR")
    os.environ["POWERFIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("powerfit-cache"))
    yield
    if old is None:
        os.environ.pop("POWERFIT_CACHE_DIR", None)
    else:
        os.environ["POWERFIT_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def data_home(tmp_path_factory) -> Path:
    """Data home holding mayaki2025/ (``POWERFIT_DATA_HOME``, else ../shared/data).

    Without either, a data home holding the copy of the paper's processed files
    embedded in powerfit (decompressed, checksums verified): the tests of the
    published data need neither network nor a data folder. Other data sets are not
    in it (their tests skip, naming the data set).
    """
    from powerfit.datasets.home import get_data_home

    home = get_data_home()
    if os.environ.get("POWERFIT_DATA_HOME") is None:
        home = Path(__file__).resolve().parents[2] / "shared" / "data"
    if (home / "mayaki2025" / "processed").is_dir():
        return home
    import gzip
    import shutil

    from powerfit.datasets.mayaki2025 import MAYAKI2025_FILES, embedded_dir, fetch_mayaki2025

    home = tmp_path_factory.mktemp("embedded-data-home")
    processed = home / "mayaki2025" / "processed"
    processed.mkdir(parents=True)
    for name, _, _ in MAYAKI2025_FILES.values():
        with gzip.open(embedded_dir() / f"{name}.gz") as src, open(processed / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    fetch_mayaki2025(home, download_if_missing=False)  # checks every SHA-256
    return home


@pytest.fixture(scope="session")
def mayaki(data_home):
    """The four published tables (:class:`powerfit.datasets.mayaki2025.Mayaki2025`)."""
    from powerfit.datasets.mayaki2025 import fetch_mayaki2025

    return fetch_mayaki2025(data_home, download_if_missing=False)


@pytest.fixture(scope="session")
def neusight_labels() -> Path:
    """NeuSight's folder under ``POWERFIT_DATA_HOME`` (``neusight2025``); skip without labels."""
    home = os.environ.get("POWERFIT_DATA_HOME")
    path = Path(home) / "neusight2025" if home else None
    if path is None or not (path / "labels").is_dir():
        pytest.skip(NEUSIGHT_MISSING)
    return path


#: Skip reason of the tests that need NeuSight's data set (not embedded: too large).
NEUSIGHT_MISSING = (
    "needs the neusight2025 data set (github.com/sitar-lab/NeuSight at commit 6945927, "
    "laid out as powerfit/datasets/neusight2025.py says): set POWERFIT_DATA_HOME to a "
    "folder holding neusight2025/"
)


# ------------------------------------------------------------------ training steps
@pytest.fixture
def tiny_gpt2() -> dict:
    """The ``config.json`` of a two-layer GPT-2 (width 48, 4 heads, 97 tokens, 32 positions)."""
    return {
        "model_type": "gpt2",
        "n_layer": 2,
        "n_embd": 48,
        "n_head": 4,
        "vocab_size": 97,
        "n_positions": 32,
    }


class ConstantOperatorModel:
    """An operator model: every launch costs 1 µs plus its FLOP at 10 TFLOP/s."""

    def predict(self, X):
        assert list(X.columns) == ["gpu", "op", "precision", "B", "M", "N", "K", "H"]
        flop = 2.0 * X.B * X.M * X.N * X.K
        return (1e-6 + flop / 10e12).to_numpy()


@pytest.fixture
def constant_operator_model() -> ConstantOperatorModel:
    """An operator model with known latencies (:class:`ConstantOperatorModel`)."""
    return ConstantOperatorModel()


@pytest.fixture(scope="session")
def fp32_laws():
    """The bundled FP32 operator laws (skip when none are bundled)."""
    from powerfit.steps.latency import bundled_operator_model

    model = bundled_operator_model("fp32")
    if model is None:
        pytest.skip("no bundled fp32 operator laws")
    return model


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a real PostgreSQL server from POWERFIT_TEST_POSTGRES_URL; skip without it."""
    url = os.environ.get("POWERFIT_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("POWERFIT_TEST_POSTGRES_URL is not set")
    return url


# ------------------------------------------------------------------ measurement store
#: The four processed files of Mayaki & Charpenay (2025) and their row counts.
MAYAKI2025_ROWS = {
    "dataForTransformerHEF.csv": ("operation", 3000),
    "dataForLstmHEF.csv": ("operation", 11400),
    "SubsetDataForTransformer_energyModel.csv": ("run", 1576),
    "SubsetDataForLSTM_energyModel.csv": ("run", 741),
}


@pytest.fixture
def store(tmp_path):
    """A fresh, empty SQLite measurement store in tmp_path (:class:`powerfit.store.Store`)."""
    from powerfit.store import open_store

    with open_store(tmp_path / "powerfit.db") as opened:
        yield opened


@pytest.fixture(scope="session")
def ingested_store(data_home, tmp_path_factory):
    """One SQLite store holding the four published files (treat it as read-only)."""
    from powerfit.store import open_store

    processed = data_home / "mayaki2025" / "processed"
    path = tmp_path_factory.mktemp("ingested") / "powerfit.db"
    with open_store(path) as opened:
        for name in MAYAKI2025_ROWS:
            opened.ingest(processed / name)
        yield opened


def _fresh_postgres_schema(postgres_url: str):
    """URL of a new, empty PostgreSQL schema (search_path), dropped on exit."""
    from powerfit.store.engine import scratch_schema

    return scratch_schema(postgres_url, prefix="powerfit_test")


@pytest.fixture
def postgres_schema_url(postgres_url):
    """URL of a fresh, empty PostgreSQL schema (search_path), dropped afterwards.

    Each test gets its own schema on the shared server, so tests of other modules and
    concurrent test runs are never disturbed; only the schema created here is dropped.
    """
    with _fresh_postgres_schema(postgres_url) as url:
        yield url


@pytest.fixture(scope="module")
def postgres_module_schema_url(postgres_url):
    """As :func:`postgres_schema_url`, one schema shared by a test module."""
    with _fresh_postgres_schema(postgres_url) as url:
        yield url


# --------------------------------------------------------------------- MLflow tracking
@pytest.fixture(scope="session")
def mlflow_db_template(tmp_path_factory) -> Path:
    """One migrated, empty MLflow SQLite database per session (copy it, never write it).

    Creating an MLflow database runs its migrations (~2–3 s); tests copy this file
    instead (:func:`tracking_uri`).
    """
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    client = MlflowClient(f"sqlite:///{path}")
    client.search_experiments()
    client.search_registered_models()
    return path


def copy_mlflow_db(template: Path, folder: Path) -> str:
    """Copy the template MLflow database into ``folder``; return its tracking URI."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "mlflow.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def tracking_uri(mlflow_db_template, tmp_path) -> str:
    """URI of a fresh MLflow SQLite tracking store (a copy of the template) in tmp_path."""
    return copy_mlflow_db(mlflow_db_template, tmp_path / "mlflow")


@pytest.fixture(scope="session")
def recorded_fits(ingested_store, mlflow_db_template, tmp_path_factory):
    """Two fits of the A100 Transformer data recorded in one tracking store (read-only).

    Returns
    -------
    (str, FitResult, FitResult)
        The tracking URI and the two results (versions 1 and 2).
    """
    from powerfit.tracking import fit_and_log

    uri = copy_mlflow_db(mlflow_db_template, tmp_path_factory.mktemp("recorded"))
    url = ingested_store.engine.url.render_as_string(hide_password=False)
    first = fit_and_log(url, "NVIDIA A100 80GB PCIe", "transformer", tracking_uri=uri)
    second = fit_and_log(url, "NVIDIA A100 80GB PCIe", "transformer", tracking_uri=uri)
    return uri, first, second


def _run_with_terminal_stderr(args: list[str], cwd) -> tuple[int, str, str]:
    """Run the CLI in a subprocess with stderr on a pseudo-terminal; (code, stdout, terminal)."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "powerfit", *args], cwd=cwd, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    out = process.stdout.read().decode()
    code = process.wait()
    os.close(master)
    return code, out, b"".join(chunks).decode(errors="replace")


@pytest.fixture
def cli_on_terminal():
    """Run ``python -m powerfit ARGS`` with stderr on a pseudo-terminal.

    Returns the function ``(args, cwd) -> (exit code, stdout, what the terminal got)``.
    """
    return _run_with_terminal_stderr


#: Qwen 3.5's text model, small: layer 0 linear attention (the gated delta rule; 2 key
#: heads of 16, 2 value heads of 16), layer 1 full attention.
QWEN35_TEXT = {
    "model_type": "qwen3_5_text",
    "num_hidden_layers": 2,
    "layer_types": ["linear_attention", "full_attention"],
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 2,
    "linear_key_head_dim": 16,
    "linear_value_head_dim": 16,
    "vocab_size": 300,
}


#: Mamba 2, small: 4 heads of 32 channels in 2 groups, states of 16, chunks of 32; one
#: layer, its Δt clamp unbounded above as real configs have it.
MAMBA2_SMALL = {
    "model_type": "mamba2",
    "num_hidden_layers": 1,
    "hidden_size": 64,
    "expand": 2,
    "num_heads": 4,
    "head_dim": 32,
    "state_size": 16,
    "n_groups": 2,
    "chunk_size": 32,
    "vocab_size": 300,
    "time_step_limit": [0.0, float("inf")],
}
