"""Where fitted models are tracked: tracking URIs, artifact folders, scoped URIs.

Defaults
--------
With nothing configured, MLflow runs and the model registry live in one SQLite file
beside powerfit's own measurement store, and artifacts (models, plots, JSON) in a
folder beside it::

    <powerfit.store.default_home()>/mlflow.db        tracking store + registry
    <powerfit.store.default_home()>/mlartifacts/     artifacts

both absolute (``$POWERFIT_HOME`` moves them with the store), never relative to the
current directory and never inside powerfit's own database file. An explicit URI
(``tracking_uri=...``, ``--tracking-uri``) wins, then ``MLFLOW_TRACKING_URI``;
``MLFLOW_REGISTRY_URI`` separates the registry when set.

Telemetry: MLflow sends usage telemetry unless ``MLFLOW_DISABLE_TELEMETRY=true``
(it turns itself off under ``CI`` and pytest). powerfit does not change the
environment; set the variable yourself to opt out.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from powerfit.store import default_home

__all__ = [
    "EXPERIMENT_NAME",
    "artifact_location",
    "default_artifact_root",
    "default_tracking_uri",
    "mask_password",
    "model_name_for",
    "resolve_tracking_uri",
    "using_tracking_uri",
]

#: MLflow experiment that holds powerfit's fits.
EXPERIMENT_NAME = "powerfit"


def default_tracking_uri() -> str:
    """``sqlite:///<default_home()>/mlflow.db``: powerfit's default tracking store.

    Examples
    --------
    >>> default_tracking_uri().endswith("/mlflow.db")
    True
    """
    return f"sqlite:///{default_home() / 'mlflow.db'}"


def default_artifact_root() -> Path:
    """``<default_home()>/mlartifacts``: powerfit's default artifact folder (absolute)."""
    return default_home() / "mlartifacts"


def resolve_tracking_uri(uri: str | os.PathLike[str] | None = None) -> str:
    """The tracking URI to use: ``uri``, else ``MLFLOW_TRACKING_URI``, else the default.

    Parameters
    ----------
    uri : str or path, optional
        An MLflow tracking URI (``sqlite:///abs/path.db``, ``http://host:5000``,
        ``postgresql://...``) or a plain path, taken as a SQLite file.

    Returns
    -------
    str
        An absolute URI; the folder of a SQLite file is created.

    Examples
    --------
    >>> resolve_tracking_uri("http://localhost:5000")
    'http://localhost:5000'
    """
    if uri is None:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    uri = os.fspath(uri)
    if "://" not in uri and uri != "databricks":
        uri = f"sqlite:///{Path(uri).expanduser().resolve()}"
    path = _sqlite_path(uri)
    if path is not None:
        if not path.is_absolute():
            raise ValueError(
                f"tracking URI {uri!r} names a relative SQLite file; use an absolute path "
                "(sqlite:////abs/path/mlflow.db) so that it does not depend on the current folder"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
    return uri


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :])


def artifact_location(tracking_uri: str) -> str | None:
    """Absolute artifact location for powerfit's experiment under ``tracking_uri``.

    ``<folder of the SQLite file>/mlartifacts/powerfit`` for a SQLite store; the
    default artifact folder for another database; None (the server decides) for a
    tracking server.

    Examples
    --------
    >>> artifact_location("sqlite:////data/mlflow.db")
    'file:///data/mlartifacts/powerfit'
    >>> artifact_location("http://localhost:5000") is None
    True
    """
    path = _sqlite_path(tracking_uri)
    if path is not None:
        root = path.parent / "mlartifacts"
    elif urlsplit(tracking_uri).scheme in ("http", "https", "databricks", "databricks-uc"):
        return None
    else:
        root = default_artifact_root()
    return (root / EXPERIMENT_NAME).as_uri()


def mask_password(url: str) -> str:
    """A URL with its password replaced by ``***``.

    Examples
    --------
    >>> mask_password("postgresql+psycopg://me:secret@db:5432/x")
    'postgresql+psycopg://me:***@db:5432/x'
    >>> mask_password("sqlite:////tmp/s.db")
    'sqlite:////tmp/s.db'
    """
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def model_name_for(gpu: str, arch: str) -> str:
    """Registered-model name for a GPU and architecture.

    Examples
    --------
    >>> model_name_for("NVIDIA A100 80GB PCIe", "transformer")
    'powerfit-nvidia-a100-80gb-pcie-transformer'
    """
    slug = re.sub(r"[^a-z0-9]+", "-", f"{gpu} {arch}".lower()).strip("-")
    return f"powerfit-{slug}"


@contextlib.contextmanager
def using_tracking_uri(tracking_uri: str, registry_uri: str | None = None) -> Iterator[None]:
    """Point MLflow's fluent API at ``tracking_uri`` for the block, then restore it.

    MLflow keeps the URIs in module globals and mirrors them in the
    ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI`` variables; both the globals
    and the variables are put back as they were.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    saved_tracking = getattr(tracking_utils, "_tracking_uri", None)
    saved_registry = getattr(registry_utils, "_registry_uri", None)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri or os.environ.get("MLFLOW_REGISTRY_URI") or tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved_tracking)
        registry_utils._registry_uri = saved_registry
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
