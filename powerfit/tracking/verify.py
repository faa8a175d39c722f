"""Check a registered model's files against the digest recorded when it was logged.

Loading a powerfit model through its JSON specification never runs code from it
(:mod:`powerfit.tracking.flavor`). The ``MLmodel`` file that tells MLflow *which*
loader to use is outside that guarantee: an edited ``MLmodel`` can point at
MLflow's pickle-based loader. Each version recorded by
:func:`powerfit.tracking.fit_and_log` therefore carries the SHA-256 of its model
folder as the model-version tag ``powerfit.model_sha256``.

Every powerfit command that loads a registered model goes through
:func:`load_model`: it downloads the version into a temporary folder (refusing one
larger than :func:`max_model_bytes`), recomputes the digest, builds the estimator
with the allowlisted JSON loader (never the loader ``MLmodel`` names) and deletes
the folder, whatever happens. :func:`verified_model` gives the verified folder for
the time of a ``with`` block (to load it with ``mlflow.pyfunc``, or serve it), and
:func:`verify_model` downloads a verified copy into a folder you keep.

>>> from powerfit.tracking import load_model  # doctest: +SKIP
>>> uri = "models:/powerfit-nvidia-a100-80gb-pcie-transformer@champion"
>>> model = load_model(uri)  # doctest: +SKIP
>>> energy_j = model.predict(configs)  # doctest: +SKIP

The digest protects the artifacts against whoever can write the artifact store
but not the tracking database; someone who can write both can change both.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from powerfit.tracking.flavor import UnsafeModelError, artifact_digest, load_spec_folder

__all__ = [
    "DIGEST_TAG",
    "MAX_MODEL_BYTES",
    "download_model",
    "load_model",
    "max_model_bytes",
    "verified_model",
    "verify_model",
]

#: Model-version tag holding :func:`~powerfit.tracking.flavor.artifact_digest`.
DIGEST_TAG = "powerfit.model_sha256"

#: Default bound on a model's artifacts [B]; ``POWERFIT_MAX_MODEL_BYTES`` overrides it.
#: powerfit's own models are far smaller (a fitted pipeline is ≈ 1 MB).
MAX_MODEL_BYTES = 256 * 2**20

_MAX_BYTES_ENV = "POWERFIT_MAX_MODEL_BYTES"

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


def max_model_bytes() -> int:
    """The largest model [B] powerfit downloads: ``POWERFIT_MAX_MODEL_BYTES`` or the default.

    Raises
    ------
    UnsafeModelError
        When the environment variable is not a positive integer.
    """
    from powerfit.files import positive_env_int

    return positive_env_int(_MAX_BYTES_ENV, MAX_MODEL_BYTES, "bytes", UnsafeModelError)


def download_model(model_uri: str, dst_path: str | os.PathLike[str]) -> Path:
    """Download a model's artifacts with the tracking URI in force, without a progress bar.

    Parameters
    ----------
    model_uri : str
        Any MLflow artifact URI of a model (``models:/NAME/VERSION``, ``runs:/...``).
    dst_path : str or path-like
        An existing folder to download into.

    Returns
    -------
    pathlib.Path
        The local model folder.
    """
    import mlflow

    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        return Path(
            mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst_path))
        )
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _listed_bytes(model_uri: str, limit: int, label: str) -> int:
    """Total size [B] of a model's artifacts as the store lists them, refused above ``limit``."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(model_uri)
    total = 0
    folders: list[str | None] = [None]
    while folders:
        for info in repo.list_artifacts(folders.pop()):
            if info.is_dir:
                folders.append(info.path)
                continue
            total += int(info.file_size or 0)
            if total > limit:
                raise UnsafeModelError(_too_large(label, total, limit))
    return total


def _too_large(label: str, size: int, limit: int) -> str:
    return (
        f"{label}: its files hold more than {limit / 2**20:.0f} MiB ({size / 2**20:.0f} MiB "
        f"so far), more than powerfit loads; refused without loading it (raise "
        f"{_MAX_BYTES_ENV} if it is yours)"
    )


def _local_bytes(folder: Path, limit: int, label: str) -> int:
    """Size [B] of a downloaded folder; refuses links and anything above ``limit``."""
    total = 0
    for path in folder.rglob("*"):
        if path.is_symlink():
            raise UnsafeModelError(f"{label}: its files include a link ({path.name}); refused")
        if path.is_file():
            total += path.stat().st_size
            if total > limit:
                raise UnsafeModelError(_too_large(label, total, limit))
    return total


def _resolve_version(model_uri: str) -> tuple[str, Any]:
    """(name, model version) of a ``models:/`` URI, with the tracking URI in force."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    match = _MODELS_URI.match(model_uri)
    if match is None:
        raise UnsafeModelError(
            f"{model_uri!r}: give a registered model as models:/NAME/VERSION or models:/NAME@ALIAS"
        )
    client = MlflowClient()
    name = match["name"]
    try:
        if match["alias"]:
            version = client.get_model_version_by_alias(name, match["alias"])
        else:
            version = client.get_model_version(name, match["version"])
    except MlflowException as exc:
        from powerfit.exceptions import TrackingError

        what = f"@{match['alias']}" if match["alias"] else f"version {match['version']}"
        raise TrackingError(
            f"no registered model {name} {what} in the tracking store "
            f"({exc.error_code.lower() if exc.error_code else 'not found'})"
        ) from None
    return name, version


def _verify_into(model_uri: str, tracking_uri: str | None, folder: Path, max_bytes: int | None):
    """Download ``model_uri`` into ``folder`` and check it; the verified model folder."""
    from powerfit.tracking.locations import resolve_tracking_uri, using_tracking_uri

    limit = max_model_bytes() if max_bytes is None else int(max_bytes)
    uri = resolve_tracking_uri(tracking_uri)
    with using_tracking_uri(uri):
        name, version = _resolve_version(model_uri)
        label = f"{name} version {version.version}"
        expected = version.tags.get(DIGEST_TAG)
        if not expected:
            raise UnsafeModelError(
                f"{label} has no {DIGEST_TAG} tag: it was not recorded by a powerfit that "
                "records digests; it cannot be verified"
            )
        exact = f"models:/{name}/{version.version}"
        _listed_bytes(exact, limit, label)
        local = download_model(exact, folder)
    _local_bytes(local, limit, label)
    actual = artifact_digest(local)
    if actual != expected:
        raise UnsafeModelError(
            f"{label}: its files changed since they were logged "
            f"(sha256 {actual[:12]}… ≠ recorded {expected[:12]}…); do not load it"
        )
    return local


@contextlib.contextmanager
def verified_model(
    model_uri: str, tracking_uri: str | None = None, *, max_bytes: int | None = None
) -> Iterator[Path]:
    """A registered model's verified local folder, deleted when the block ends.

    Parameters
    ----------
    model_uri : str
        ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``.
    tracking_uri : str, optional
        The tracking store; powerfit's default when omitted.
    max_bytes : int, optional
        Largest model to download [B] (default :func:`max_model_bytes`).

    Yields
    ------
    pathlib.Path
        The verified model folder (``MLmodel``, ``powerfit_model.json``, ...).

    Raises
    ------
    UnsafeModelError
        When the URI is not a registered model's, the version has no recorded
        digest, its files are too large or hold a link, or they differ from what was
        logged. Nothing downloaded is left behind.
    """
    folder = Path(tempfile.mkdtemp(prefix="powerfit-model-"))
    try:
        yield _verify_into(model_uri, tracking_uri, folder, max_bytes)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def load_model(
    model_uri: str, tracking_uri: str | None = None, *, max_bytes: int | None = None
) -> Any:
    """Verify a registered model and build it with the allowlisted loader.

    This is how every powerfit command loads a registered model: the files are
    checked against the digest recorded at logging, the estimator is rebuilt from
    ``powerfit_model.json`` by :func:`~powerfit.tracking.flavor.from_spec` (the
    ``MLmodel`` file is never asked which loader to use) and the downloaded copy is
    deleted.

    Parameters
    ----------
    model_uri : str
        ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``.
    tracking_uri : str, optional
        The tracking store; powerfit's default when omitted.
    max_bytes : int, optional
        Largest model to download [B] (default :func:`max_model_bytes`).

    Returns
    -------
    estimator
        The fitted pipeline or estimator (``predict`` as in Python).

    Raises
    ------
    UnsafeModelError
        As :func:`verified_model`, or when the specification is not allowlisted.
    """
    with verified_model(model_uri, tracking_uri, max_bytes=max_bytes) as folder:
        return load_spec_folder(folder)


def verify_model(
    model_uri: str,
    tracking_uri: str | None = None,
    dst_path: str | os.PathLike[str] | None = None,
    *,
    max_bytes: int | None = None,
) -> Path:
    """Download a registered model into a folder you keep, checked against its digest.

    Prefer :func:`load_model` (or :func:`verified_model` for a ``with`` block), which
    leave nothing behind.

    Parameters
    ----------
    model_uri : str
        ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``.
    tracking_uri : str, optional
        The tracking store; powerfit's default when omitted.
    dst_path : str or path-like, optional
        Folder to download into. When omitted, a new temporary folder, deleted when
        the Python process exits.
    max_bytes : int, optional
        Largest model to download [B] (default :func:`max_model_bytes`).

    Returns
    -------
    pathlib.Path
        The verified local model folder: pass it to ``mlflow.pyfunc.load_model``.

    Raises
    ------
    UnsafeModelError
        As :func:`verified_model`; what was downloaded is deleted first.
    """
    own = dst_path is None
    folder = Path(tempfile.mkdtemp(prefix="powerfit-model-")) if own else Path(dst_path)
    folder.mkdir(parents=True, exist_ok=True)
    before = set(folder.iterdir())
    try:
        local = _verify_into(model_uri, tracking_uri, folder, max_bytes)
    except BaseException:
        if own:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            for path in set(folder.iterdir()) - before:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise
    if own:
        atexit.register(shutil.rmtree, folder, True)
    return local
