"""The model registry: one registered model per (GPU, architecture), alias ``champion``.

Each fit is a new version, tagged with what it is and what it was fitted on
(:func:`powerfit.tracking.fitting.version_tags`: ``powerfit.gpu``,
``powerfit.arch``, ``powerfit.precision``, ``powerfit.energy_model``,
``powerfit.data_sha256``, ``powerfit.physics``); its run is named after the same
(:func:`~powerfit.tracking.fitting.run_name`).

The champion rule (:func:`update_champion`), in order:

1. a version whose physics check failed (energy ≤ 0 somewhere, or less energy for
   more layers, tokens or batch: :func:`~powerfit.tracking.physics.check_physics`)
   is never promoted, not even when asked;
2. asked (``promote=True``, ``powerfit fit --promote``): promoted;
3. no champion yet: promoted;
4. otherwise the new version and the champion are scored on the **same evidence**:
   the new fit's held-out runs, less those the champion was trained on (each run
   records the digests of its training and held-out runs in ``split.json``).
   The new version is promoted when its MAPE there is strictly lower. When the
   champion cannot be scored on them (an older version without ``split.json`` is
   scored on all of them; a model that cannot be loaded or fewer than 3 common
   runs), the stored held-out MAPEs are compared, and the reason says so.

The reason is recorded on the new version (tag ``powerfit.champion_reason``) and
added to the fit's notes. Registered models that powerfit created carry the tag
``powerfit.kind = energy-model``, which is how :mod:`powerfit.tracking.versions`
finds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CHAMPION_ALIAS",
    "CHAMPION_METRIC",
    "KIND_TAG",
    "REASON_TAG",
    "SPLIT_ARTIFACT",
    "STEP_TIME_KIND",
    "ChampionDecision",
    "decide_champion",
    "ensure_registered_model",
    "update_champion",
]

#: The alias of the version to use.
CHAMPION_ALIAS = "champion"
#: Held-out metric deciding promotion; lower is better.
CHAMPION_METRIC = "test_mape"
#: Tag (key, value) marking the energy models powerfit manages.
KIND_TAG = ("powerfit.kind", "energy-model")
#: ``powerfit.kind`` of a step-time model (:func:`powerfit.tracking.log_step_time_model`).
STEP_TIME_KIND = "step-time-model"
#: Model-version tag holding why the champion moved or stayed.
REASON_TAG = "powerfit.champion_reason"
#: Run artifact listing the digests of the training and held-out runs.
SPLIT_ARTIFACT = "split.json"
#: Fewest common held-out runs on which two versions are compared.
MIN_COMMON_RUNS = 3


@dataclass
class ChampionDecision:
    """Outcome of the champion rule.

    Attributes
    ----------
    promoted : bool
        Whether the alias moves to the new version.
    champion : int or None
        The champion version afterwards (None: there is none).
    reason : str
        Why, in one sentence (recorded as the tag :data:`REASON_TAG`).
    """

    promoted: bool
    champion: int | None
    reason: str


def ensure_registered_model(
    client: Any,
    name: str,
    gpu: str,
    arch: str,
    *,
    kind: str = KIND_TAG[1],
    description: str | None = None,
) -> None:
    """Create the registered model ``name`` (tagged) unless it exists.

    Parameters
    ----------
    client : mlflow.MlflowClient
    name : str
        Registered model name.
    gpu, arch : str
        Recorded as the tags ``powerfit.gpu`` and ``powerfit.arch``.
    kind : str, default 'energy-model'
        The tag ``powerfit.kind`` (:data:`KIND_TAG`); only energy models are listed
        by :func:`powerfit.tracking.history`. Set on an existing model too.
    description : str, optional
        Default: an energy model's (configurations in, energy [J] out).
    """

    if description is None:
        description = (
            f"powerfit energy model for {arch} training on {gpu}: configurations in, "
            "energy of one training step [J] out."
        )
    created = create_registered_model_once(
        client,
        name,
        tags={KIND_TAG[0]: kind, "powerfit.gpu": gpu, "powerfit.arch": arch},
        description=description,
    )
    if not created:
        client.set_registered_model_tag(name, KIND_TAG[0], kind)


def create_registered_model_once(
    client: Any, name: str, tags: dict[str, str], description: str
) -> bool:
    """Create the registered model ``name`` unless it exists; safe when several race.

    Parameters
    ----------
    client : mlflow.MlflowClient
    name : str
        Registered model name.
    tags : dict of str to str
        Tags of a new model.
    description : str
        Description of a new model.

    Returns
    -------
    bool
        True when this call created it; False when it existed (or another process
        created it between the check and the creation: several first fits at once
        against one tracking server).
    """
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
        return False
    except MlflowException:
        pass
    try:
        client.create_registered_model(name, tags=tags, description=description)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return False
    return True


def _metric(client: Any, name: str, version: int) -> float:
    run_id = client.get_model_version(name, str(version)).run_id
    value = client.get_run(run_id).data.metrics.get(CHAMPION_METRIC)
    return math.inf if value is None or math.isnan(value) else float(value)


def champion_version(client: Any, name: str) -> int | None:
    """The version the alias ``champion`` points at, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return int(client.get_model_version_by_alias(name, CHAMPION_ALIAS).version)
    except MlflowException:
        return None


def _mape(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import mean_absolute_percentage_error

    return float(mean_absolute_percentage_error(y, pred))


def _champion_split(client: Any, run_id: str) -> dict[str, Any] | None:
    import json
    import tempfile

    from mlflow.exceptions import MlflowException

    try:
        with tempfile.TemporaryDirectory(prefix="powerfit-split-") as folder:
            path = client.download_artifacts(run_id, SPLIT_ARTIFACT, folder)
            with open(path) as f:
                return json.load(f)
    except (MlflowException, OSError, ValueError):
        return None


def _stored_rule(client: Any, name: str, version: int, current: int, why: str) -> ChampionDecision:
    new, old = _metric(client, name, version), _metric(client, name, current)
    better = new < old
    reason = (
        f"{why}; compared the stored held-out MAPEs instead (different test sets): "
        f"{100 * new:.2f} % vs {100 * old:.2f} % of champion version {current}"
    )
    return ChampionDecision(better, version if better else current, reason)


def decide_champion(
    client: Any, name: str, version: int, fit: Any = None, *, force: bool = False
) -> ChampionDecision:
    """Apply the champion rule (module docstring) to a new version; change nothing.

    Parameters
    ----------
    client : mlflow.MlflowClient
        Its tracking URI must be MLflow's current one (to load the champion).
    name : str
        Registered model.
    version : int
        The new version.
    fit : FittedCoefficients, optional
        The new version's fit (its model, held-out runs and physics check). Without
        it, the stored held-out MAPEs are compared.
    force : bool, default False
        Promote unless the physics check failed.

    Returns
    -------
    ChampionDecision
    """
    current = champion_version(client, name)
    physics = getattr(fit, "physics", None)
    if physics is not None and not physics.passed:
        return ChampionDecision(
            False,
            current,
            f"not promoted: the physics check failed ({'; '.join(physics.problems)})",
        )
    if force:
        return ChampionDecision(True, version, "promoted on request (promote=True / --promote)")
    if current is None:
        return ChampionDecision(True, version, "promoted: the first physically sane version")
    if current == version:
        return ChampionDecision(True, version, "already champion")
    if fit is None:
        return _stored_rule(client, name, version, current, "no fit given to rescore on")
    return _same_evidence(client, name, version, current, fit)


def _same_evidence(
    client: Any, name: str, version: int, current: int, fit: Any
) -> ChampionDecision:
    from powerfit.tracking.fitting import row_digests
    from powerfit.tracking.flavor import UnsafeModelError
    from powerfit.tracking.verify import load_model

    X, y = fit.X_test, fit.y_test.to_numpy(dtype=float)
    keep = np.ones(len(X), dtype=bool)
    champion_run = client.get_model_version(name, str(current)).run_id
    split = _champion_split(client, champion_run)
    seen = (
        ", none used to train either"
        if split is not None
        else f" (version {current} records no split: some may have trained it)"
    )
    if split is not None:
        trained = set(split.get("train", []))
        keep = np.array([d not in trained for d in row_digests(X, y, fit.arch)], dtype=bool)
    if keep.sum() < MIN_COMMON_RUNS:
        why = (
            f"only {int(keep.sum())} held-out runs of this fit were not used to train "
            f"champion version {current}"
        )
        return _stored_rule(client, name, version, current, why)
    X, y = X[keep], y[keep]
    try:
        champion = load_model(f"models:/{name}/{current}")
        old = _mape(y, np.asarray(champion.predict(X), dtype=float).reshape(-1))
    except UnsafeModelError as exc:  # a tampered champion is never run, nor compared against
        return ChampionDecision(False, current, f"not promoted: champion refused: {exc}")
    except Exception as exc:  # any failure to load or score falls back, and says why
        why = f"champion version {current} could not be scored ({type(exc).__name__}: {exc})"
        return _stored_rule(client, name, version, current, why[:500])
    new = _mape(y, np.asarray(fit.model.predict(X), dtype=float).reshape(-1))
    better = new < old
    evidence = f"on the same {len(y)} held-out runs of data {fit.data['sha256'][:12]}{seen}"
    if better:
        reason = (
            f"promoted: held-out MAPE {100 * new:.2f} % vs {100 * old:.2f} % of champion "
            f"version {current} {evidence}"
        )
    else:
        reason = (
            f"not promoted: held-out MAPE {100 * new:.2f} % is not below {100 * old:.2f} % "
            f"of champion version {current} {evidence}"
        )
    return ChampionDecision(better, version if better else current, reason)


def _record(client: Any, name: str, version: int, fit: Any) -> None:
    """Tags, run name and ``split.json`` of a new version's fit."""
    from mlflow.entities import RunTag

    from powerfit.tracking.fitting import row_digests, run_name, version_tags

    run_id = client.get_model_version(name, str(version)).run_id
    tags = version_tags(fit)
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)
    client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])
    client.set_tag(run_id, "mlflow.runName", run_name(fit))
    split = {
        "arch": fit.arch,
        "digest": "sha256 of (required configuration columns, energy [J]), 16 hex digits",
        "train": row_digests(fit.X_train, fit.y_train, fit.arch),
        "test": row_digests(fit.X_test, fit.y_test, fit.arch),
    }
    client.log_dict(run_id, split, SPLIT_ARTIFACT)


def update_champion(
    client: Any, name: str, version: int, *, force: bool = False, fit: Any = None
) -> tuple[bool, int | None]:
    """Record a new version and move ``champion`` to it if the rule says so.

    With ``fit``, the version and its run are first tagged
    (:func:`~powerfit.tracking.fitting.version_tags`), the run renamed
    (:func:`~powerfit.tracking.fitting.run_name`) and its split recorded
    (:data:`SPLIT_ARTIFACT`). The reason of the decision is recorded on the
    version (:data:`REASON_TAG`) and appended to ``fit.notes``.

    Returns
    -------
    (bool, int or None)
        Whether it moved, and the champion version afterwards (None when no
        version is physically sane yet).
    """
    if fit is not None:
        _record(client, name, version, fit)
    decision = decide_champion(client, name, version, fit, force=force)
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version))
    client.set_model_version_tag(name, str(version), REASON_TAG, decision.reason[:4900])
    if fit is not None:
        fit.notes.append(f"champion: {decision.reason}")
    return decision.promoted, decision.champion
