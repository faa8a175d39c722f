"""Check a registered model's files against the digest recorded when it was logged.

Loading a powerfit model through its JSON specification never runs code from it
(:mod:`powerfit.tracking.flavor`). The ``MLmodel`` file that tells MLflow *which*
loader to use is outside that guarantee: an edited ``MLmodel`` can point at
MLflow's pickle-based loader. Each version recorded by
:func:`powerfit.tracking.fit_and_log` therefore carries the SHA-256 of its model
folder as the model-version tag ``powerfit.model_sha256``;
:func:`verify_model` downloads the folder, recomputes the digest and returns the
verified local copy, which you then load (so the files checked are the files
loaded).

>>> from powerfit.tracking import verify_model  # doctest: +SKIP
>>> uri = "models:/powerfit-nvidia-a100-80gb-pcie-transformer@champion"
>>> folder = verify_model(uri)  # doctest: +SKIP
>>> model = mlflow.pyfunc.load_model(str(folder))  # doctest: +SKIP

The digest protects the artifacts against whoever can write the artifact store
but not the tracking database; someone who can write both can change both.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from powerfit.tracking.flavor import UnsafeModelError, artifact_digest

__all__ = ["DIGEST_TAG", "download_model", "verify_model"]

#: Model-version tag holding :func:`~powerfit.tracking.flavor.artifact_digest`.
DIGEST_TAG = "powerfit.model_sha256"

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


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


def verify_model(
    model_uri: str,
    tracking_uri: str | None = None,
    dst_path: str | os.PathLike[str] | None = None,
) -> Path:
    """Download a registered model and check its files against the recorded digest.

    Parameters
    ----------
    model_uri : str
        ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``.
    tracking_uri : str, optional
        The tracking store; powerfit's default (:func:`~powerfit.tracking.locations.
        resolve_tracking_uri`) when omitted.
    dst_path : str or path-like, optional
        Folder to download into (a new temporary folder when omitted).

    Returns
    -------
    pathlib.Path
        The verified local model folder: pass it to ``mlflow.pyfunc.load_model``.

    Raises
    ------
    UnsafeModelError
        When the URI is not a registered model's, the version has no recorded
        digest, or the files differ from what was logged.
    """
    from mlflow import MlflowClient

    from powerfit.tracking.locations import resolve_tracking_uri, using_tracking_uri

    match = _MODELS_URI.match(model_uri)
    if match is None:
        raise UnsafeModelError(
            f"{model_uri!r}: give a registered model as models:/NAME/VERSION or models:/NAME@ALIAS"
        )
    uri = resolve_tracking_uri(tracking_uri)
    with using_tracking_uri(uri):
        client = MlflowClient(uri)
        name = match["name"]
        if match["alias"]:
            version = client.get_model_version_by_alias(name, match["alias"])
        else:
            version = client.get_model_version(name, match["version"])
        expected = version.tags.get(DIGEST_TAG)
        if not expected:
            raise UnsafeModelError(
                f"{name} version {version.version} has no {DIGEST_TAG} tag: it was not "
                "recorded by a powerfit that records digests; it cannot be verified"
            )
        target = Path(dst_path) if dst_path else Path(tempfile.mkdtemp(prefix="powerfit-model-"))
        target.mkdir(parents=True, exist_ok=True)
        local = download_model(f"models:/{name}/{version.version}", target)
    actual = artifact_digest(local)
    if actual != expected:
        raise UnsafeModelError(
            f"{name} version {version.version}: its files changed since they were logged "
            f"(sha256 {actual[:12]}… ≠ recorded {expected[:12]}…); do not load it"
        )
    return local
