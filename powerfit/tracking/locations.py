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

Timeouts
--------
A dead or wrong tracking store must not hang: :func:`using_tracking_uri` first checks
that the store answers (:func:`check_tracking_uri`: ``GET <uri>/health`` for a
tracking server, one connection with ``connect_timeout`` for a database, the file
for SQLite) within :func:`tracking_timeout` seconds (``POWERFIT_TRACKING_TIMEOUT``,
default 30; ``--tracking-timeout`` on the command line), and bounds MLflow's own
HTTP requests (``MLFLOW_HTTP_REQUEST_TIMEOUT``, ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``, each unless already set; and
``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT``, as MLflow would print the server's URL,
password included, on stdout). Failures raise
:class:`~powerfit.exceptions.TrackingError` naming the store, password masked.

Telemetry: MLflow sends usage telemetry unless ``MLFLOW_DISABLE_TELEMETRY=true``
(it turns itself off under ``CI`` and pytest). powerfit does not change the
environment; set the variable yourself to opt out.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from powerfit.exceptions import TrackingError
from powerfit.store import default_home
from powerfit.store.engine import check_sqlite_file, mask_url

__all__ = [
    "DEFAULT_TRACKING_TIMEOUT_S",
    "EXPERIMENT_NAME",
    "TRACKING_TIMEOUT_ENV",
    "artifact_location",
    "check_tracking_uri",
    "default_artifact_root",
    "default_tracking_uri",
    "mask_password",
    "mask_url",
    "model_name_for",
    "resolve_tracking_uri",
    "slug",
    "tracking_timeout",
    "using_tracking_uri",
]

#: MLflow experiment that holds powerfit's fits.
EXPERIMENT_NAME = "powerfit"

#: Environment variable holding the tracking-store timeout [s].
TRACKING_TIMEOUT_ENV = "POWERFIT_TRACKING_TIMEOUT"

#: Default tracking-store timeout [s].
DEFAULT_TRACKING_TIMEOUT_S = 30.0

#: MLflow's HTTP settings while powerfit talks to a tracking server (unless set):
#: retries and backoff factor [s]; the request timeout is :func:`tracking_timeout`.
_MLFLOW_HTTP_RETRIES = "2"
_MLFLOW_HTTP_BACKOFF = "1"

#: Tables of powerfit's measurement store (a store given as a tracking URI is refused).
_STORE_TABLES = frozenset({"gpus", "imports", "operation_measurements", "run_measurements"})


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
    """A URL with its password replaced by ``***`` (same as :func:`mask_url`).

    Examples
    --------
    >>> mask_password("postgresql+psycopg://me:secret@db:5432/x")
    'postgresql+psycopg://me:***@db:5432/x'
    >>> mask_password("sqlite:////tmp/s.db")
    'sqlite:////tmp/s.db'
    """
    return mask_url(url)


def tracking_timeout(seconds: float | None = None) -> float:
    """How long to wait for the tracking store before giving up [s].

    Parameters
    ----------
    seconds : float, optional
        Explicit value; default ``POWERFIT_TRACKING_TIMEOUT``, else
        :data:`DEFAULT_TRACKING_TIMEOUT_S` (30 s).

    Returns
    -------
    float
        A positive, finite number of seconds.

    Raises
    ------
    ValueError
        For a value (or environment variable) that is not a positive number.

    Examples
    --------
    >>> tracking_timeout(5)
    5.0
    """
    source = "timeout"
    if seconds is None:
        raw = os.environ.get(TRACKING_TIMEOUT_ENV, "").strip()
        if not raw:
            return DEFAULT_TRACKING_TIMEOUT_S
        source = TRACKING_TIMEOUT_ENV
        try:
            seconds = float(raw)
        except ValueError:
            seconds = math.nan
    value = float(seconds)
    if not (0 < value < math.inf):
        raise ValueError(f"{source} must be a positive number of seconds, got {seconds!r}")
    return value


def check_tracking_uri(uri: str, timeout_s: float | None = None) -> None:
    """Check that a tracking store answers, within ``timeout_s``; one clear error if not.

    * ``http(s)://``: ``GET <uri>/health`` (any HTTP answer will do: the server is
      there); a refused or timed-out connection fails. TLS errors are left to MLflow,
      which has its own certificate settings.
    * ``sqlite:///``: the path must be a SQLite file (or not exist yet), not a folder,
      and not powerfit's measurement store.
    * other databases: one connection (``connect_timeout`` for PostgreSQL and MySQL)
      and the list of tables (powerfit's measurement store is refused).

    Other schemes (``databricks``, ``file:``) are not checked.

    Parameters
    ----------
    uri : str
        A resolved tracking URI (:func:`resolve_tracking_uri`).
    timeout_s : float, optional
        See :func:`tracking_timeout`.

    Raises
    ------
    TrackingError
        Naming the store (password masked) and what is wrong.
    """
    timeout = tracking_timeout(timeout_s)
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("http", "https"):
        _check_server(uri, timeout)
    elif scheme == "sqlite" or scheme.split("+")[0] in ("postgresql", "mysql", "mariadb", "mssql"):
        path = _sqlite_path(uri.split("?", 1)[0])
        if path is not None:
            label, example = f"tracking URI {mask_url(uri)}", f"sqlite:///{path / 'mlflow.db'}"
            if check_sqlite_file(path, label, example, TrackingError) != "sqlite":
                return
        _check_database(uri, timeout)


def _check_server(uri: str, timeout: float) -> None:
    import requests

    where = mask_url(uri)
    url = uri.rstrip("/") + "/health"
    try:  # connecting, then waiting for the answer, each up to the timeout
        requests.get(url, timeout=(timeout, timeout), allow_redirects=False).close()
    except requests.exceptions.SSLError:
        return  # MLflow has its own TLS settings (MLFLOW_TRACKING_INSECURE_TLS...)
    except requests.exceptions.Timeout:
        raise TrackingError(
            f"tracking server {where} did not answer within {timeout:g} s "
            f"(--tracking-timeout, {TRACKING_TIMEOUT_ENV})"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise TrackingError(f"tracking server {where} is unreachable: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    """The short cause of a connection error (``Connection refused``...)."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found.group(1).strip()
    first = text.splitlines()[0] if text.strip() else type(exc).__name__
    return mask_url(first)[:300]


def _check_database(uri: str, timeout: float) -> None:
    import sqlalchemy as sa
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    where = mask_url(uri)
    try:
        url = sa.make_url(uri)
        connect_args: dict[str, object] = {}
        backend = url.get_backend_name()
        if backend in ("postgresql", "mysql", "mariadb") and "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = max(1, math.ceil(timeout))
        elif backend == "sqlite":
            connect_args["timeout"] = timeout
        engine = sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise TrackingError(f"cannot use the tracking URI {where}: {exc}") from None
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        lines = [line for line in str(cause).splitlines() if line.strip()]
        reason = mask_url(lines[0]) if lines else type(cause).__name__
        raise TrackingError(f"cannot reach the tracking database {where}: {reason}") from None
    finally:
        engine.dispose()
    if _STORE_TABLES <= tables and not {"experiments", "runs"} <= tables:
        raise TrackingError(
            f"tracking URI {where} is a powerfit measurement store, not an MLflow tracking "
            f"database; give it as --db, and a separate one as --tracking-uri "
            f"(default {default_tracking_uri()})"
        )


def slug(text: str) -> str:
    """``text`` lower-cased, every run of other characters than a-z and 0-9 one ``-``.

    For MLflow names and metric keys (``NVIDIA A100 80GB PCIe`` → ``nvidia-a100-80gb-pcie``).
    """
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")


def model_name_for(gpu: str, arch: str) -> str:
    """Registered-model name for a GPU and architecture.

    Examples
    --------
    >>> model_name_for("NVIDIA A100 80GB PCIe", "transformer")
    'powerfit-nvidia-a100-80gb-pcie-transformer'
    """
    return f"powerfit-{slug(f'{gpu} {arch}')}"


@contextlib.contextmanager
def using_tracking_uri(
    tracking_uri: str,
    registry_uri: str | None = None,
    *,
    timeout_s: float | None = None,
    check: bool = True,
) -> Iterator[None]:
    """Point MLflow's fluent API at ``tracking_uri`` for the block, then restore it.

    MLflow keeps the URIs in module globals and mirrors them in the
    ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI`` variables; both the globals
    and the variables are put back as they were.

    Parameters
    ----------
    tracking_uri : str
        A resolved tracking URI.
    registry_uri : str, optional
        Default ``MLFLOW_REGISTRY_URI``, else ``tracking_uri``.
    timeout_s : float, optional
        See :func:`tracking_timeout`: bounds the check and MLflow's HTTP requests.
    check : bool, default True
        Check first that the store answers (:func:`check_tracking_uri`).

    Raises
    ------
    TrackingError
        When the check fails (the URI is named with its password masked).
    """
    timeout = tracking_timeout(timeout_s)
    if check:
        check_tracking_uri(tracking_uri, timeout)

    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    http = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(timeout))),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": _MLFLOW_HTTP_RETRIES,
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": _MLFLOW_HTTP_BACKOFF,
        # MLflow writes "View run ... at: <server URL>" to stdout, password included.
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    }
    http = {key: value for key, value in http.items() if key not in os.environ}
    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", *http)
    saved_env = {k: os.environ.get(k) for k in keys}
    saved_tracking = getattr(tracking_utils, "_tracking_uri", None)
    saved_registry = getattr(registry_utils, "_registry_uri", None)
    os.environ.update(http)
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
