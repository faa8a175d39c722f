"""Record a fit of the operator latency laws in MLflow: one run, one model, one version.

:func:`fit_operator_laws` reads the generic operator measurements of the store
(NeuSight's ``bmm``, ``linear``, softmax, LayerNorm, element-wise...) of **one**
precision, fits :class:`powerfit.kernels.model.OperatorTimeModel` (one law per (GPU,
operator)) and records one MLflow run in the same experiment as the energy models
(:mod:`powerfit.tracking.recording`) with

* **params** — the GPUs, the precision, the operators, row counts (in the store and
  used by the fit), the model's hyper-parameters (``model.*``) and the store URL
  (password masked);
* **metrics** — every fitted coefficient, ``law.<gpu>.<op>.<name>`` (SI units: ``t0``
  and ``t_split`` [s], ``eta_max`` and ``eta_mem`` [fraction], ``n0``, ``h0``
  [elements], ``gamma``, ``k``, ``alpha`` [-]), the in-sample latency MAPE per (GPU,
  operator) ``mape.<gpu>.<op>`` and over all rows ``mape`` [fraction];
* **artifacts** — ``operator_laws.json`` (:meth:`OperatorTimeModel.to_dict`);
* **the model** — the fitted estimator (operator rows → latency [s]) as a
  ``python_function`` model whose loader is powerfit's JSON specification
  (:mod:`powerfit.tracking.flavor`: only allowlisted classes and attributes, no
  pickle), with a signature and explicit pip requirements.

The model is registered as a new version of ``powerfit-operators-<precision>``
(registered-model tag ``powerfit.kind = operator-model``, so the energy-model
history does not list it), tagged with the SHA-256 of its files
(``powerfit.model_sha256``, :func:`powerfit.tracking.verify_model`).

Unlike the energy models, no sklearn (skops) flavour is written: the fitted state
is keyed by (GPU, operator) tuples, which skops cannot serialise. The JSON
specification describes it exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from powerfit.exceptions import DataError
from powerfit.tracking.locations import resolve_tracking_uri, slug, using_tracking_uri
from powerfit.tracking.recording import (
    MODEL_NAME,
    _experiment_id,
    _scalar_params,
    pip_requirements,
    tag_model_version,
)

__all__ = ["OPERATOR_KIND_TAG", "OperatorFitResult", "fit_operator_laws", "operator_model_name"]

#: Tag (key, value) of the registered models of operator laws.
OPERATOR_KIND_TAG = ("powerfit.kind", "operator-model")


@dataclass
class OperatorFitResult:
    """What :func:`fit_operator_laws` recorded.

    Attributes
    ----------
    run_id : str
        The MLflow run.
    model_name : str
        Registered model name (``powerfit-operators-<precision>``).
    version : int
        The new model version.
    model_uri : str
        ``models:/<model_name>/<version>``.
    tracking_uri : str
        Where it was recorded.
    precision : str
        The precision of the measurements and of the peaks.
    gpus : list of str
        The GPUs fitted.
    n_rows : int
        Measurements read from the store.
    metrics : dict of str to float
        Coefficients and in-sample MAPE [fraction] (the run's metrics).
    model : OperatorTimeModel
        The fitted model.
    notes : list of str
        Rows dropped and other remarks.
    """

    run_id: str
    model_name: str
    version: int
    model_uri: str
    tracking_uri: str
    precision: str
    gpus: list[str]
    n_rows: int
    metrics: dict[str, float]
    model: Any = field(repr=False)
    notes: list[str] = field(default_factory=list)


def operator_model_name(precision: str) -> str:
    """Registered-model name of the operator laws of a precision.

    Examples
    --------
    >>> operator_model_name("fp32")
    'powerfit-operators-fp32'
    """
    return f"powerfit-operators-{slug(precision)}"


def _signature() -> Any:
    """Operator rows in (``gpu, op, precision`` text; shape columns any), latency [s] out.

    The shape columns are declared ``Any`` (as the energy models' are): integer
    shapes from a CSV file and float shapes with NaN (``M, N, K`` of a softmax, ``H``
    of a matrix product) must both pass; the model checks the values itself.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    from powerfit.kernels.model import OPERATOR_COLUMNS

    inputs = [
        ColSpec("string" if name in ("gpu", "op", "precision") else AnyType(), name)
        for name in OPERATOR_COLUMNS
    ]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec("double")]))


def _read(store_url: Any, gpu: str | None, precision: str | None):
    """Operator rows of the store (one precision), their latencies [s], notes, URL."""
    from powerfit.kernels.model import OPERATOR_COLUMNS
    from powerfit.store import open_store, resolve_url
    from powerfit.store.queries import single_precision

    with open_store(resolve_url(store_url)) as store:
        frame = store.operator_measurements(gpu=gpu, precision=precision)
        shown_url = store.url
    where = f"gpu {gpu!r}" if gpu else "any GPU"
    if frame.empty:
        raise DataError(
            f"the store {shown_url} holds no operator measurements of {where}"
            + (f" at precision {precision!r}" if precision else "")
            + "; ingest NeuSight's operator files first (powerfit ingest .../ops/test/bmm.csv.gz)"
        )
    found = single_precision(frame, f"operator measurements of {where}")
    notes = []
    y = frame["duration_s"].to_numpy(float)
    keep = np.isfinite(y) & (y > 0)
    if not keep.all():
        notes.append(f"{int((~keep).sum())} row(s) without a latency > 0 left out")
        frame, y = frame[keep].reset_index(drop=True), y[keep]
    X = frame[list(OPERATOR_COLUMNS)].copy()
    for column in ("gpu", "op", "precision"):
        X[column] = X[column].astype(str)
    return X, y, str(found), notes, shown_url


def _metrics(model: Any, X: Any, y: np.ndarray) -> dict[str, float]:
    from powerfit.kernels.counts import operator_kind

    metrics: dict[str, float] = {}
    for (gpu, op), law in sorted(model.laws_.items()):
        for name, value in law.items():
            metrics[f"law.{slug(gpu)}.{op}.{name}"] = float(value)
    error = np.abs(model.predict(X) / y - 1)
    kinds = X["op"].map(operator_kind)
    for (gpu, op), idx in X.groupby([X["gpu"], kinds], sort=True).indices.items():
        metrics[f"mape.{slug(gpu)}.{op}"] = float(np.mean(error[idx]))
    metrics["mape"] = float(np.mean(error))
    return metrics


def fit_operator_laws(
    store_url: str | os.PathLike[str] | None = None,
    gpu: str | None = None,
    precision: str | None = "fp32",
    *,
    tracking_uri: str | None = None,
    register: str | None = None,
    max_rows: int = 1500,
    random_state: int = 0,
    call_timing: str = "queued",
) -> OperatorFitResult:
    """Fit the operator latency laws from the store, record and register them in MLflow.

    Parameters
    ----------
    store_url : str or path, optional
        The measurement store (:func:`powerfit.store.open_store`); default
        ``POWERFIT_DB_URL``, else the default store.
    gpu : str, optional
        Fit only this GPU (name or alias); default every GPU with operator rows.
    precision : str or None, default 'fp32'
        Use only the measurements of this precision; None: the rows must all be of
        one precision (a mix is refused).
    tracking_uri : str, optional
        MLflow tracking URI; default ``MLFLOW_TRACKING_URI``, else powerfit's default
        (:mod:`powerfit.tracking.locations`).
    register : str, optional
        Registered model name; default ``powerfit-operators-<precision>``.
    max_rows : int, default 1500
        Rows per (GPU, operator) used by the fit (:class:`OperatorTimeModel`).
    random_state : int, default 0
        Seed of the subsample.
    call_timing : {'queued', 'isolated'}, default 'queued'
        How the measurements were timed (:class:`OperatorTimeModel`): ``queued`` as
        ``powerfit measure ops`` times them (a mean over a block of calls),
        ``isolated`` for calls timed one at a time (NeuSight's files): a step then
        replaces each call's fixed cost by that of a queued call.

    Returns
    -------
    OperatorFitResult

    Raises
    ------
    DataError
        No operator measurements (of that GPU / precision), or rows mixing
        precisions.

    Examples
    --------
    >>> result = fit_operator_laws("store.db", gpu="t4")  # doctest: +SKIP
    >>> import mlflow  # doctest: +SKIP
    >>> model = mlflow.pyfunc.load_model(result.model_uri)  # doctest: +SKIP
    >>> latency_s = model.predict(rows)  # doctest: +SKIP
    """
    import mlflow
    from mlflow import MlflowClient

    from powerfit.kernels.model import OperatorTimeModel
    from powerfit.store.engine import mask_url
    from powerfit.tracking.flavor import SPEC_FILE, to_spec
    from powerfit.tracking.registry import create_registered_model_once

    X, y, found, notes, shown_url = _read(store_url, gpu, precision)
    model = OperatorTimeModel(
        precision=found, max_rows=max_rows, random_state=random_state, call_timing=call_timing
    )
    model.fit(X, y)
    metrics = _metrics(model, X, y)
    gpus = sorted(model.specs_)
    ops = sorted({op for _g, op in model.laws_})
    rows_sha = hashlib.sha256(X.to_csv(index=False).encode() + y.tobytes()).hexdigest()
    params = {
        "kind": "operator-laws",
        "gpus": ",".join(gpus),
        "precision": found,
        "operators": ",".join(ops),
        "n_rows": len(X),
        "n_rows_fit": int(sum(model.n_rows_.values())),
        "store_url": mask_url(shown_url),
        "data_sha256": rows_sha,
        **{f"n_rows.{slug(g)}.{o}": n for (g, o), n in sorted(model.n_rows_.items())},
    }
    params |= _scalar_params(model.get_params(), "model.")
    name = register or operator_model_name(found)
    uri = resolve_tracking_uri(tracking_uri)
    tags = {
        "powerfit.kind": OPERATOR_KIND_TAG[1],
        "powerfit.precision": found,
        "powerfit.gpus": ",".join(gpus),
        "powerfit.data_sha256": rows_sha,
    }
    with using_tracking_uri(uri):
        client = MlflowClient(uri)
        experiment_id = _experiment_id(client, uri)
        create_registered_model_once(
            client,
            name,
            tags=dict([OPERATOR_KIND_TAG, ("powerfit.precision", found)]),
            description=(
                f"powerfit operator latency laws ({found}): operator rows (gpu, op, "
                "precision, B, M, N, K, H) in, latency [s] out."
            ),
        )
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"operators / {found}", tags=tags
        ) as run:
            mlflow.log_params({k: str(v) for k, v in params.items()})
            mlflow.log_metrics(metrics)
            mlflow.log_dict(model.to_dict(), "operator_laws.json")
            with tempfile.TemporaryDirectory(prefix="powerfit-operators-") as folder:
                spec = Path(folder, SPEC_FILE)
                spec.write_text(json.dumps(to_spec(model)), encoding="utf-8")
                info = mlflow.pyfunc.log_model(
                    name=MODEL_NAME,
                    loader_module="powerfit.tracking.flavor",
                    data_path=str(spec),
                    signature=_signature(),
                    input_example=X.head(3),
                    pip_requirements=pip_requirements(),
                    registered_model_name=name,
                    await_registration_for=0,
                )
        version = int(info.registered_model_version)
        tag_model_version(client, name, version, tags)
    return OperatorFitResult(
        run_id=run.info.run_id,
        model_name=name,
        version=version,
        model_uri=f"models:/{name}/{version}",
        tracking_uri=uri,
        precision=found,
        gpus=gpus,
        n_rows=len(X),
        metrics=metrics,
        model=model,
        notes=notes,
    )
