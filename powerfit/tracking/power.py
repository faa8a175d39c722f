"""Refit the board power laws on a lab's store and record them in MLflow.

:func:`fit_power_laws` reads the store's ``power_measurements`` (Zeus
``summary_power_*`` and ML.ENERGY ``models/*.json`` files ingested with ``powerfit
ingest``), derives each row's fractions of compute peak and DRAM bandwidth
(:mod:`powerfit.power.work`; rows whose work is not known, e.g. text-to-video, are
left out with a note), fits :class:`powerfit.power.regressor.BoardPowerRegressor`
(one law per GPU, rows at the default power limit) and records one MLflow run:

* **params** — GPUs, row counts, store URL (password masked), data digest;
* **metrics** — every coefficient ``law.<gpu>.<name>`` (``p_idle_w``, ``p_max_w``
  [W], ``k_c``, ``k_m``, ``gamma`` [-]) with its standard error ``stderr.<gpu>.<name>``,
  and the in-sample power MAPE per GPU ``mape.<gpu>`` [fraction];
* **artifacts** — ``power_laws.json``;
* **the model** — powerfit's flavour (sklearn via skops trusting only powerfit's
  types; ``python_function`` loaded from the JSON specification, allowlisted
  classes only, no pickle), registered as a new version of ``powerfit-power`` and
  tagged with the SHA-256 of its files.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from powerfit.exceptions import DataError
from powerfit.tracking.locations import resolve_tracking_uri, slug, using_tracking_uri
from powerfit.tracking.recording import (
    _experiment_id,
    _log_model_version,
    tag_model_version,
    trusted_types,
)

__all__ = ["POWER_KIND_TAG", "POWER_MODEL_NAME", "PowerFitResult", "fit_power_laws", "power_rows"]

POWER_MODEL_NAME = "powerfit-power"
POWER_KIND_TAG = ("powerfit.kind", "power-model")


@dataclass
class PowerFitResult:
    """What :func:`fit_power_laws` recorded (run, registered version, laws, notes)."""

    run_id: str
    model_name: str
    version: int
    model_uri: str
    tracking_uri: str
    gpus: list[str]
    n_rows: int
    metrics: dict[str, float]
    model: Any = field(repr=False)
    notes: list[str] = field(default_factory=list)


def power_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The store's power rows with ``u_c`` and ``u_m``, and notes on rows left out.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`powerfit.store.power.power_measurements`.
    """
    from powerfit.power.work import BERT_SEQ, ZEUS_WORK, serving_fractions, training_fractions

    notes = []
    train = frame[frame.throughput_unit == "samples/s"]
    known = train.workload.isin(set(ZEUS_WORK) | set(BERT_SEQ))
    if (~known).any():
        notes.append(f"{int((~known).sum())} training row(s) of workloads without known work "
                     f"left out: {sorted(set(train.workload[~known]))[:5]}")  # fmt: skip
    parts = []
    if known.any():
        parts.append(training_fractions(train[known]))
    serve = frame[frame.throughput_unit.isin(["tokens/s", "images/s"])].copy()
    if len(serve):
        cfg = [json.loads(c or "{}") for c in serve.config]
        serve["kind"] = np.where(serve.throughput_unit == "tokens/s", "llm", "image")
        serve["model_id"] = serve.workload.str.rsplit("/", n=1).str[0]
        serve["total_params"] = [
            float(c.get("total_params_billions") or np.nan) * 1e9 for c in cfg
        ]
        serve["active_params"] = [
            float(c.get("activated_params_billions") or c.get("total_params_billions") or np.nan)
            * 1e9
            for c in cfg
        ]
        serve["num_gpus"] = serve.gpu_count
        for key, col in (("image_width", "width"), ("image_height", "height"),
                         ("inference_steps", "inference_steps"),
                         ("output_len_mean", "output_len_mean"),
                         ("output_len_sq_mean", "output_len_sq_mean")):  # fmt: skip
            serve[col] = [float(c.get(key, np.nan)) for c in cfg]
        serve["data_parallel"] = [int(c.get("data_parallel", 1) or 1) for c in cfg]
        parts.append(serving_fractions(serve))
    left = int((frame.throughput_unit == "videos/s").sum())
    if left:
        notes.append(f"{left} text-to-video row(s) left out (their work is not modelled)")
    if not parts:
        return pd.DataFrame(), notes
    return pd.concat(parts, ignore_index=True), notes


def fit_power_laws(
    store_url: str | os.PathLike[str] | None = None,
    gpu: str | None = None,
    *,
    tracking_uri: str | None = None,
    register: str | None = None,
) -> PowerFitResult:
    """Fit the board power laws on the store's power measurements; record and register.

    Parameters
    ----------
    store_url : str or path, optional
        The measurement store; default ``POWERFIT_DB_URL``, else the default store.
    gpu : str, optional
        Only this GPU; default every GPU with power measurements.
    tracking_uri : str, optional
        MLflow tracking URI (default as :mod:`powerfit.tracking.locations`).
    register : str, optional
        Registered model name (default :data:`POWER_MODEL_NAME`).

    Returns
    -------
    PowerFitResult

    Raises
    ------
    DataError
        No power measurements (of that GPU) with known work.
    """
    import mlflow
    from mlflow import MlflowClient

    from powerfit.hardware.gpus import get_gpu
    from powerfit.power.regressor import BoardPowerRegressor
    from powerfit.store import open_store, resolve_url
    from powerfit.store.engine import mask_url
    from powerfit.store.power import power_measurements
    from powerfit.tracking.registry import create_registered_model_once

    name_gpu = None if gpu is None else get_gpu(gpu).name
    with open_store(resolve_url(store_url)) as store:
        raw = power_measurements(store.engine, name_gpu)
        shown_url = store.url
    rows, notes = power_rows(raw) if len(raw) else (pd.DataFrame(), [])
    if rows.empty:
        where = f"of {name_gpu}" if name_gpu else ""
        raise DataError(
            f"the store {mask_url(shown_url)} holds no power measurements {where} with known "
            "work; ingest them first (powerfit ingest .../zeus2023/summary_power_*.csv.gz)"
        )
    X = rows[["gpu", "u_c", "u_m", "workload", "power_limit_w"]].reset_index(drop=True)
    y = rows.power_w.to_numpy(float)
    model = BoardPowerRegressor().fit(X, y)
    metrics: dict[str, float] = {}
    for g, d in model.laws_.items():
        for key in ("p_idle_w", "p_max_w", "k_c", "k_m", "gamma"):
            metrics[f"law.{slug(g)}.{key}"] = float(d[key])
            metrics[f"stderr.{slug(g)}.{key}"] = float(d["std"].get(key, np.nan))
        m = (X.gpu == g).to_numpy() & ~(X.power_limit_w.to_numpy(float) < d["tdp_w"])
        pred = model.predict(X[m])
        metrics[f"mape.{slug(g)}"] = float(np.mean(np.abs(pred / y[m] - 1)))
    gpus = sorted(model.laws_)
    digest = hashlib.sha256(X.to_csv(index=False).encode() + y.tobytes()).hexdigest()
    params = {"kind": "power-laws", "gpus": ",".join(gpus), "n_rows": len(X),
              "store_url": mask_url(shown_url), "data_sha256": digest}  # fmt: skip
    name = register or POWER_MODEL_NAME
    uri = resolve_tracking_uri(tracking_uri)
    tags = {"powerfit.kind": POWER_KIND_TAG[1], "powerfit.gpus": ",".join(gpus),
            "powerfit.data_sha256": digest}  # fmt: skip
    with using_tracking_uri(uri):
        client = MlflowClient(uri)
        experiment_id = _experiment_id(client, uri)
        create_registered_model_once(
            client, name, tags=dict([POWER_KIND_TAG]),
            description="powerfit board power laws: (gpu, u_c, u_m[, power_limit_w]) in, "
            "average board power of one GPU [W] out.",
        )  # fmt: skip
        with mlflow.start_run(
            experiment_id=experiment_id, run_name="power laws", tags=tags
        ) as run:
            mlflow.log_params({k: str(v) for k, v in params.items()})
            mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
            mlflow.log_dict(model.laws_, "power_laws.json")
            version = _log_model_version(
                model, name, None, X[["gpu", "u_c", "u_m"]].head(3), trusted_types(model)
            )
        tag_model_version(client, name, version, tags)
    return PowerFitResult(
        run_id=run.info.run_id, model_name=name, version=version,
        model_uri=f"models:/{name}/{version}", tracking_uri=uri, gpus=gpus,
        n_rows=len(X), metrics=metrics, model=model, notes=notes,
    )  # fmt: skip
