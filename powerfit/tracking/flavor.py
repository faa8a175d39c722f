"""The MLflow model format of powerfit pipelines: scikit-learn flavour + a light pyfunc loader.

A powerfit model is saved twice in one MLflow model folder:

* the **sklearn flavour** (``model.skops``), for :func:`mlflow.sklearn.load_model`,
  serialised with skops and only powerfit's own types declared trusted;
* a **JSON specification** (``powerfit_model.json``) that the ``python_function``
  flavour loads with :func:`_load_pyfunc`: class names, hyper-parameters and
  fitted attributes (numbers, strings, arrays, tables). Loading it rebuilds only
  classes from an allowlist (scikit-learn's ``Pipeline`` and powerfit's own
  estimators), so it never runs pickled code either — and it does not import skops,
  whose start-up (it scans every scikit-learn estimator) dominated a cold
  ``mlflow.pyfunc.load_model``.

A model holding a type the specification cannot describe keeps MLflow's default
``python_function`` loader (skops); :func:`save_model` says which in the flavour's
``powerfit_spec`` entry.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SPEC_FILE", "from_spec", "save_model", "to_spec"]

SPEC_FILE = "powerfit_model.json"
SPEC_VERSION = 1
_ALLOWED_OUTSIDE = {"sklearn.pipeline.Pipeline"}


def _allowed(path: str) -> bool:
    return path.startswith("powerfit.") or path in _ALLOWED_OUTSIDE


def _encode(value: Any) -> Any:
    from sklearn.base import BaseEstimator

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufOU":
            raise TypeError(f"cannot describe an array of dtype {value.dtype}")
        return {"__ndarray__": _encode(value.tolist()), "dtype": value.dtype.str}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, pd.DataFrame):
        return {
            "__dataframe__": {
                "columns": _encode(list(value.columns)),
                "index": _encode(list(value.index)),
                "values": _encode(value.to_numpy()),
            }
        }
    if isinstance(value, pd.Series):
        return {
            "__series__": {
                "name": _encode(value.name),
                "index": _encode(list(value.index)),
                "values": _encode(value.to_numpy()),
            }
        }
    if isinstance(value, BaseEstimator):
        path = f"{type(value).__module__}.{type(value).__qualname__}"
        if not _allowed(path):
            raise TypeError(f"{path} is not a powerfit estimator")
        params = value.get_params(deep=False)
        state = {k: v for k, v in vars(value).items() if k not in params}
        return {"__estimator__": path, "params": _encode(params), "state": _encode(state)}
    raise TypeError(f"cannot describe a {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ndarray__" in value:
        return np.array(_decode(value["__ndarray__"]), dtype=np.dtype(value["dtype"]))
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if "__dict__" in value:
        return {_decode(k): _decode(v) for k, v in value["__dict__"]}
    if "__dataframe__" in value:
        d = value["__dataframe__"]
        return pd.DataFrame(
            _decode(d["values"]), columns=_decode(d["columns"]), index=_decode(d["index"])
        )
    if "__series__" in value:
        d = value["__series__"]
        return pd.Series(_decode(d["values"]), index=_decode(d["index"]), name=_decode(d["name"]))
    if "__estimator__" in value:
        path = value["__estimator__"]
        if not _allowed(path):
            raise ValueError(f"refusing to build {path!r}: not a powerfit estimator")
        module, _, name = path.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        estimator = cls(**_decode(value["params"]))
        for key, attr in _decode(value["state"]).items():
            setattr(estimator, key, attr)
        return estimator
    raise ValueError(f"unknown entry in a powerfit model specification: {sorted(value)}")


def to_spec(model: Any) -> dict[str, Any]:
    """JSON-ready specification of a fitted powerfit estimator or pipeline.

    Raises
    ------
    TypeError
        When the model holds something the specification cannot describe (a class
        outside powerfit and scikit-learn's ``Pipeline``, a function...).
    """
    return {"powerfit_model_spec": SPEC_VERSION, "model": _encode(model)}


def from_spec(spec: dict[str, Any]) -> Any:
    """Rebuild the estimator of :func:`to_spec`; only allowlisted classes are built."""
    if spec.get("powerfit_model_spec") != SPEC_VERSION:
        raise ValueError("not a powerfit model specification of a version this powerfit reads")
    return _decode(spec["model"])


def save_model(sk_model: Any, path: str, mlflow_model: Any = None, **kwargs: Any) -> None:
    """MLflow flavour hook: save the sklearn flavour, then the JSON pyfunc loader.

    Parameters
    ----------
    sk_model : estimator
        The fitted pipeline.
    path : str
        The model folder to create.
    mlflow_model : mlflow.models.Model, optional
        The model description :meth:`mlflow.models.Model.log` passes in.
    **kwargs
        Passed to :func:`mlflow.sklearn.save_model` (signature, input example,
        ``serialization_format='skops'``, ``skops_trusted_types``, pip requirements).
    """
    import mlflow.sklearn
    from mlflow.models import Model

    if mlflow_model is None:
        mlflow_model = Model()
    mlflow.sklearn.save_model(sk_model, path, mlflow_model=mlflow_model, **kwargs)
    pyfunc = mlflow_model.flavors["python_function"]
    try:
        text = json.dumps(to_spec(sk_model))
    except TypeError as exc:
        pyfunc["powerfit_spec"] = f"not written: {exc}; pyfunc loads the sklearn flavour"
    else:
        Path(path, SPEC_FILE).write_text(text, encoding="utf-8")
        pyfunc.update(loader_module=__name__, data=SPEC_FILE, powerfit_spec=SPEC_FILE)
    mlflow_model.save(os.path.join(path, "MLmodel"))


class _PyfuncModel:
    """What ``mlflow.pyfunc.load_model`` wraps: predict energy [J] of configurations."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def get_raw_model(self) -> Any:
        return self.model

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        return np.asarray(self.model.predict(model_input))


def _load_pyfunc(path: str) -> _PyfuncModel:
    """MLflow's pyfunc entry point: rebuild the model from its JSON specification."""
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    return _PyfuncModel(from_spec(spec))
