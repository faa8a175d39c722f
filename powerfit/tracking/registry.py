"""The model registry: one registered model per (GPU, architecture), alias ``champion``.

Each fit is a new version, tagged ``powerfit.gpu``, ``powerfit.arch`` and
``powerfit.data_sha256``. The alias ``champion`` moves to a new version only when
its held-out :data:`CHAMPION_METRIC` is lower than the current champion's, or when
asked (``promote=True``); the first version always becomes champion. Registered
models that powerfit created carry the tag ``powerfit.kind = energy-model``, which
is how :mod:`powerfit.tracking.versions` finds them.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "CHAMPION_ALIAS",
    "CHAMPION_METRIC",
    "KIND_TAG",
    "ensure_registered_model",
    "update_champion",
]

#: The alias of the version to use.
CHAMPION_ALIAS = "champion"
#: Held-out metric deciding promotion; lower is better.
CHAMPION_METRIC = "test_mape"
#: Tag (key, value) marking the registered models powerfit manages.
KIND_TAG = ("powerfit.kind", "energy-model")


def ensure_registered_model(client: Any, name: str, gpu: str, arch: str) -> None:
    """Create the registered model ``name`` (tagged) unless it exists."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name,
            tags={KIND_TAG[0]: KIND_TAG[1], "powerfit.gpu": gpu, "powerfit.arch": arch},
            description=(
                f"powerfit energy model for {arch} training on {gpu}: configurations in, "
                "energy of one training step [J] out."
            ),
        )
    else:
        client.set_registered_model_tag(name, *KIND_TAG)


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


def update_champion(
    client: Any, name: str, version: int, *, force: bool = False
) -> tuple[bool, int]:
    """Move ``champion`` to ``version`` if it is better (or forced, or there is none).

    Returns
    -------
    (bool, int)
        Whether it moved, and the champion version afterwards.
    """
    current = champion_version(client, name)
    better = current is None or _metric(client, name, version) < _metric(client, name, current)
    if force or better:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version))
        return True, version
    return False, current
