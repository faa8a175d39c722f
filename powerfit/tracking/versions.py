"""The history of fitted coefficient sets, from the model registry.

:func:`history` lists every registered version of powerfit's energy models with
its energy model, precision, coefficients, metrics, data hash, physics check,
champion reason and date; :func:`compare` predicts the same configurations with
every version (or the ``versions=`` chosen), side by side; :func:`diff` shows
what changed between two versions (tags, data, coefficients, metrics).

A version is named ``NAME/3``, ``models:/NAME/3``, ``NAME@champion`` or, when
only one registered model matches the selection, ``3`` or ``@champion``.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from powerfit.exceptions import DataError
from powerfit.tracking.locations import resolve_tracking_uri, using_tracking_uri
from powerfit.tracking.registry import CHAMPION_METRIC, KIND_TAG, REASON_TAG

__all__ = ["compare", "diff", "history", "model_versions", "resolve_version"]

#: Leading columns of :func:`history`, in order.
HISTORY_COLUMNS = (
    "model",
    "version",
    "aliases",
    "created",
    "gpu",
    "arch",
    "precision",
    "energy_model",
    "data_sha256",
    "physics",
    "champion_reason",
    "run_id",
    "test_mape",
    "test_r2",
    "test_mae_j",
)


def _gpu_name(gpu: str) -> str:
    from powerfit.hardware.gpus import get_gpu

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
                "precision": tags.get("powerfit.precision"),
                "energy_model": tags.get("powerfit.energy_model"),
                "data_sha256": tags.get("powerfit.data_sha256"),
                "physics": tags.get("powerfit.physics"),
                "champion_reason": tags.get(REASON_TAG),
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
    versions: Any = None,
) -> pd.DataFrame:
    """Predict configurations with every registered version, side by side.

    Parameters
    ----------
    configs : pandas.DataFrame or path
        Configurations (columns as for the model), or a CSV file of them.
    gpu, arch, model, tracking_uri
        Which versions, as in :func:`history`.
    versions : sequence of int or str, optional
        Only these versions, in this order (module docstring: ``NAME/3``,
        ``NAME@champion``, or ``3`` when one registered model matches).

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
    from mlflow import MlflowClient

    from powerfit.tracking.verify import load_model

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
        chosen = versions
        versions = model_versions(client, gpu, arch, model)
        if chosen is not None:
            if isinstance(chosen, (str, int)):
                chosen = [chosen]
            versions = [_pick(client, versions, ref, uri) for ref in chosen]
        if not versions:
            raise DataError(f"no registered powerfit model version matches in {uri}")
        archs = {(v.tags or {}).get("powerfit.arch") for v in versions}
        if len(archs) > 1:
            raise DataError(
                f"the matching versions are of several architectures ({sorted(map(str, archs))});"
                " choose one with arch=... (--arch)"
            )
        from powerfit.paper.durations import check_configs

        check_configs(configs, archs.pop() or "transformer", source=source)
        for version in versions:
            pipeline = load_model(f"models:/{version.name}/{version.version}", uri)
            out[f"{version.name}/{version.version}"] = pipeline.predict(configs)
    return out


def _parse_ref(ref: Any) -> tuple[str | None, int | None, str | None]:
    """(name, version, alias) of a version reference."""
    text = str(ref).strip()
    if text.startswith("models:/"):
        text = text[len("models:/") :]
    name: str | None = None
    if "@" in text:
        name, alias = text.rsplit("@", 1)
        return name or None, None, alias
    if "/" in text:
        name, text = text.rsplit("/", 1)
    if not text.isdigit():
        raise DataError(
            f"{str(ref)!r} is not a model version: give NAME/3, models:/NAME/3, NAME@champion, "
            "or 3 when one registered model matches"
        )
    return name or None, int(text), None


def _pick(client: Any, versions: list[Any], ref: Any, uri: str) -> Any:
    name, number, alias = _parse_ref(ref)
    names = sorted({v.name for v in versions})
    if name is None:
        if len(names) != 1:
            listed = ", ".join(names) if names else "none"
            raise DataError(
                f"version {str(ref)!r} is ambiguous: {len(names)} registered models match "
                f"({listed}); name one, e.g. NAME/{number or 1} or NAME@{alias or 'champion'}"
            )
        name = names[0]
    for version in versions:
        if version.name != name:
            continue
        if number is not None and int(version.version) == number:
            return version
        if alias is not None and alias in (version.aliases or []):
            return version
    raise DataError(f"no registered powerfit model version {str(ref)!r} matches in {uri}")


def resolve_version(
    ref: Any,
    gpu: str | None = None,
    arch: str | None = None,
    *,
    model: str | None = None,
    tracking_uri: str | None = None,
) -> tuple[str, int]:
    """(registered model name, version) of a reference such as ``NAME/3`` or ``@champion``.

    Raises
    ------
    DataError
        Unknown, ambiguous (several registered models match a bare number) or
        malformed references.
    """
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    with using_tracking_uri(uri):
        client = MlflowClient(uri)
        version = _pick(client, model_versions(client, gpu, arch, model), ref, uri)
    return version.name, int(version.version)


#: Tags shown by :func:`diff`, as (row key, tag).
_DIFF_TAGS = (
    ("gpu", "powerfit.gpu"),
    ("arch", "powerfit.arch"),
    ("precision", "powerfit.precision"),
    ("energy_model", "powerfit.energy_model"),
    ("data_sha256", "powerfit.data_sha256"),
    ("physics", "powerfit.physics"),
    ("champion_reason", REASON_TAG),
)
#: Run params shown in the ``data`` section of :func:`diff` (besides ``data.*``).
_DIFF_DATA = ("store_url", "operations", "skipped_operations", "test_size", "random_state",
              "stratify", "n_train", "n_test", "peak_flops")  # fmt: skip


def _is_coefficient(key: str) -> bool:
    if key == "h" or key.startswith("h."):
        return True
    return key.startswith("law.") and key.rsplit(".", 1)[-1] in ("eta_max", "k", "alpha")


def _missing(value: Any) -> bool:
    """None, NaN, pandas' NA or empty text."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # an array-like value
        return False


def _change(a: Any, b: Any) -> str:
    """``b − a`` (and relative) for two numbers, 'changed' for other values, '' if equal.

    Missing values (None, NaN, '') are equal to each other: ``None → None`` is no change.

    Examples
    --------
    >>> _change(None, float("nan")), _change(None, None), _change(None, "x"), _change(1.0, 1.5)
    ('', '', 'changed', '+0.5 (+50.00 %)')
    """
    if _missing(a) and _missing(b):
        return ""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    if numbers and math.isfinite(a) and math.isfinite(b):
        if a == b:
            return ""
        rel = f" ({100 * (b - a) / abs(a):+.2f} %)" if a else ""
        return f"{b - a:+.6g}{rel}"
    if numbers and math.isnan(a) and math.isnan(b):
        return ""
    return "" if a == b else "changed"


def diff(
    a: Any,
    b: Any,
    gpu: str | None = None,
    arch: str | None = None,
    *,
    model: str | None = None,
    tracking_uri: str | None = None,
) -> pd.DataFrame:
    """What changed between two versions: tags, data, coefficients, metrics, side by side.

    Parameters
    ----------
    a, b : int or str
        The two versions (module docstring: ``NAME/3``, ``NAME@champion``, or ``3``
        when one registered model matches the selection).
    gpu, arch, model, tracking_uri
        The selection, as in :func:`history`.

    Returns
    -------
    pandas.DataFrame
        Columns ``section`` (``version``: tags and aliases; ``data``: provenance and
        split; ``coefficient``: ``law.<op>.eta_max`` [fraction], ``law.<op>.k``
        [TFLOP^-alpha], ``law.<op>.alpha`` [-], ``h`` [J], ``h.<op>`` [W];
        ``metric``: fit quality; ``hyper-parameter``: the model's, only those that
        differ), ``key``, one column per version labelled ``NAME/N``, and
        ``change`` (``b − a`` and its relative change for numbers, ``changed`` for
        text, empty when equal).

    Raises
    ------
    DataError
        A reference that matches no version, or is ambiguous.
    """
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    with using_tracking_uri(uri):
        client = MlflowClient(uri)
        found = model_versions(client, gpu, arch, model)
        pair = [_pick(client, found, ref, uri) for ref in (a, b)]
        runs = [client.get_run(v.run_id) if v.run_id else None for v in pair]
    labels = [f"{v.name}/{v.version}" for v in pair]
    if labels[0] == labels[1]:
        labels = [f"{labels[0]} (a)", f"{labels[1]} (b)"]
    rows: list[tuple[str, str, Any, Any]] = []
    tags = [v.tags or {} for v in pair]
    rows.append(("version", "aliases", *(",".join(v.aliases or []) for v in pair)))
    for key, tag in _DIFF_TAGS:
        rows.append(("version", key, *(t.get(tag) for t in tags)))
    params = [r.data.params if r else {} for r in runs]
    metrics = [r.data.metrics if r else {} for r in runs]
    data_keys = [k for k in _DIFF_DATA if any(k in p for p in params)]
    data_keys += sorted({k for p in params for k in p if k.startswith("data.")})
    for key in data_keys:
        rows.append(("data", key, *(p.get(key) for p in params)))
    keys = sorted(set(metrics[0]) | set(metrics[1]))
    coefficient = [k for k in keys if _is_coefficient(k)]
    for key in coefficient:
        rows.append(("coefficient", key, *(m.get(key) for m in metrics)))
    for key in (k for k in keys if k not in coefficient):
        rows.append(("metric", key, *(m.get(key) for m in metrics)))
    hyper = sorted({k for p in params for k in p if k.startswith(("model.", "law."))})
    for key in hyper:
        values = [p.get(key) for p in params]
        if values[0] != values[1]:
            rows.append(("hyper-parameter", key, *values))
    frame = pd.DataFrame(rows, columns=["section", "key", *labels])
    frame["change"] = [
        _change(x, y) for x, y in zip(frame[labels[0]], frame[labels[1]], strict=True)
    ]
    return frame


def champion_metric_name() -> str:
    """The held-out metric that decides promotion (lower is better)."""
    return CHAMPION_METRIC
