"""The history of fitted coefficient sets, from the model registry.

:func:`history` lists every registered version of powerfit's energy models with
its coefficients, metrics, data hash and date; :func:`compare` predicts the same
configurations with every version, side by side.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from powerfit.exceptions import DataError
from powerfit.tracking.locations import resolve_tracking_uri, using_tracking_uri
from powerfit.tracking.registry import CHAMPION_METRIC, KIND_TAG

__all__ = ["compare", "history", "model_versions"]

#: Leading columns of :func:`history`, in order.
HISTORY_COLUMNS = (
    "model",
    "version",
    "aliases",
    "created",
    "gpu",
    "arch",
    "data_sha256",
    "run_id",
    "test_mape",
    "test_r2",
    "test_mae_j",
)


def _gpu_name(gpu: str) -> str:
    from powerfit.hardware import get_gpu

    try:
        return get_gpu(gpu).name
    except ValueError:
        return gpu


def model_versions(
    client: Any, gpu: str | None = None, arch: str | None = None, model: str | None = None
) -> list[Any]:
    """Registered versions of powerfit's models, filtered, ordered by name then version.

    Each version's ``aliases`` is filled from its registered model (the search
    does not return them).
    """
    key, value = KIND_TAG
    if model is not None:
        names = [model]
    else:
        models = client.search_registered_models(filter_string=f"tags.`{key}` = '{value}'")
        names = sorted(m.name for m in models)
    gpu = None if gpu is None else _gpu_name(gpu)
    versions = []
    for name in names:
        aliases: dict[str, list[str]] = {}
        for alias, number in client.get_registered_model(name).aliases.items():
            aliases.setdefault(str(number), []).append(alias)
        found = client.search_model_versions(filter_string=f"name = '{name}'")
        for version in sorted(found, key=lambda v: int(v.version)):
            version.aliases = sorted(aliases.get(str(version.version), []))
            tags = version.tags or {}
            if gpu is not None and tags.get("powerfit.gpu") != gpu:
                continue
            if arch is not None and tags.get("powerfit.arch") != arch.lower():
                continue
            versions.append(version)
    return versions


def history(
    gpu: str | None = None,
    arch: str | None = None,
    *,
    model: str | None = None,
    tracking_uri: str | None = None,
) -> pd.DataFrame:
    """Every registered version with its coefficients, metrics, data hash and date.

    Parameters
    ----------
    gpu : str, optional
        Only versions fitted for this GPU (name or alias).
    arch : str, optional
        Only versions of this architecture.
    model : str, optional
        Only this registered model.
    tracking_uri : str, optional
        See :func:`powerfit.tracking.fit_and_log`.

    Returns
    -------
    pandas.DataFrame
        One row per version: the columns of :data:`HISTORY_COLUMNS` (``created`` a
        UTC timestamp, ``aliases`` comma-separated), then every other metric of the
        version's run (coefficients ``law.<op>.*``, ``h``, ``h.<op>`` and quality).
    """
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    rows = []
    with using_tracking_uri(uri):
        client = MlflowClient(uri)
        for version in model_versions(client, gpu, arch, model):
            tags = version.tags or {}
            metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
            created = datetime.fromtimestamp(version.creation_timestamp / 1000, tz=timezone.utc)
            row = {
                "model": version.name,
                "version": int(version.version),
                "aliases": ",".join(sorted(version.aliases or [])),
                "created": pd.Timestamp(created),
                "gpu": tags.get("powerfit.gpu"),
                "arch": tags.get("powerfit.arch"),
                "data_sha256": tags.get("powerfit.data_sha256"),
                "run_id": version.run_id,
            }
            rows.append(row | dict(sorted(metrics.items())))
    frame = pd.DataFrame(rows, columns=None if rows else list(HISTORY_COLUMNS))
    leading = [c for c in HISTORY_COLUMNS if c in frame.columns]
    return frame[leading + [c for c in frame.columns if c not in leading]]


def compare(
    configs: pd.DataFrame | str | os.PathLike[str],
    gpu: str | None = None,
    arch: str | None = None,
    *,
    model: str | None = None,
    tracking_uri: str | None = None,
) -> pd.DataFrame:
    """Predict configurations with every registered version, side by side.

    Parameters
    ----------
    configs : pandas.DataFrame or path
        Configurations (columns as for the model), or a CSV file of them.
    gpu, arch, model, tracking_uri
        Which versions, as in :func:`history`.

    Returns
    -------
    pandas.DataFrame
        The configurations, then one column ``<model>/<version>`` per version:
        predicted energy of one training step [J].

    Raises
    ------
    DataError
        No version matches, the versions span several architectures (pass
        ``arch``), or a configuration is invalid (names row and column).
    """
    import mlflow.sklearn
    from mlflow import MlflowClient

    source = None
    if not isinstance(configs, pd.DataFrame):
        source = os.fspath(configs)
        try:
            configs = pd.read_csv(source)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(f"not a readable CSV file ({exc})", source=source) from None
    uri = resolve_tracking_uri(tracking_uri)
    out = configs.copy()
    with using_tracking_uri(uri):
        client = MlflowClient(uri)
        versions = model_versions(client, gpu, arch, model)
        if not versions:
            raise DataError(f"no registered powerfit model version matches in {uri}")
        archs = {(v.tags or {}).get("powerfit.arch") for v in versions}
        if len(archs) > 1:
            raise DataError(
                f"the matching versions are of several architectures ({sorted(map(str, archs))});"
                " choose one with arch=... (--arch)"
            )
        from powerfit.pipeline import check_configs

        check_configs(configs, archs.pop() or "transformer", source=source)
        for version in versions:
            pipeline = mlflow.sklearn.load_model(f"models:/{version.name}/{version.version}")
            out[f"{version.name}/{version.version}"] = pipeline.predict(configs)
    return out


def champion_metric_name() -> str:
    """The held-out metric that decides promotion (lower is better)."""
    return CHAMPION_METRIC
