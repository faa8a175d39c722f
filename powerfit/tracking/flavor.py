"""The MLflow model format of powerfit pipelines: scikit-learn flavour + a safe pyfunc loader.

A powerfit model is saved twice in one MLflow model folder:

* the **sklearn flavour** (``model.skops``), for :func:`mlflow.sklearn.load_model`,
  serialised with skops and only powerfit's own types declared trusted;
* a **JSON specification** (``powerfit_model.json``) that the ``python_function``
  flavour loads with :func:`_load_pyfunc`: class names, hyper-parameters and
  fitted attributes (numbers, strings, arrays, tables). It does not import skops,
  whose start-up (it scans every scikit-learn estimator) dominated a cold
  ``mlflow.pyfunc.load_model``.

What loading a specification may do
-----------------------------------
A model file is data, never code. :func:`from_spec` builds only the classes of
:data:`ALLOWED_ESTIMATORS` (each a scikit-learn ``BaseEstimator``; no function,
no other class of powerfit or of any library), passes them only the
hyper-parameters their ``__init__`` declares, and sets only the fitted attributes
listed for that class there. The values themselves can only be JSON data, NumPy
arrays of numbers or strings, pandas tables and other allowlisted estimators.
Anything else — an unknown class or dotted path, an unknown hyper-parameter or
attribute, a dunder name, an object array dtype, a caching ``memory`` folder on a
``Pipeline`` — is refused with :class:`UnsafeModelError` before any estimator is
built. Loading imports no module named by the file: the classes are imported
from this fixed table. Files written before the package was arranged by stages
(powerfit 0.1.0 as of issue 22) name the classes by their old paths
(``powerfit.laws.PowerLawEfficiency``...): :data:`LEGACY_PATHS` maps each to its class's
path now, and nothing else; files are written with the new paths.

What is *not* covered: the ``MLmodel`` file itself. An edited ``MLmodel`` that
points the ``python_function`` flavour at another loader (MLflow's pickle-based
sklearn loader, say) is MLflow's side. :func:`artifact_digest` gives the SHA-256
of a model folder; :mod:`powerfit.tracking.recording` stores it on every model
version (tag ``powerfit.model_sha256``) and :func:`powerfit.tracking.verify_model`
compares a model's artifacts with it before you load them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from powerfit.exceptions import DataError, PowerfitError
from powerfit.files import read_input

__all__ = [
    "ALLOWED_ESTIMATORS",
    "LEGACY_PATHS",
    "SPEC_FILE",
    "UnsafeModelError",
    "artifact_digest",
    "from_spec",
    "import_skops_io",
    "load_spec_folder",
    "save_model",
    "to_spec",
]

SPEC_FILE = "powerfit_model.json"
SPEC_VERSION = 1

#: The classes a specification may build, and the fitted attributes each may carry.
#: Adding a class here is a security decision: it must be a ``BaseEstimator`` whose
#: ``__init__`` only stores its arguments and whose methods touch no file (other than
#: powerfit's own package data), no network and no process, whatever the input rows
#: hold (:func:`_refuse_config_paths`).
ALLOWED_ESTIMATORS: dict[str, frozenset[str]] = {
    "sklearn.pipeline.Pipeline": frozenset(),
    "powerfit.paper.laws.PowerLawEfficiency": frozenset(
        {
            "alpha_",
            "converged_",
            "correlation_",
            "eta_max_",
            "feature_names_in_",
            "inlier_mask_",
            "k_",
            "n_features_in_",
            "n_samples_fit_",
            "r2_",
            "rmse_",
            "stderr_",
        }
    ),
    "powerfit.paper.energy.EnergyRegressor": frozenset(
        {
            "bootstrap_coefficients_",
            "coef_",
            "coef_ci_",
            "feature_names_in_",
            "intercept_ci_",
            "intercept_",
            "n_features_in_",
        }
    ),
    "powerfit.paper.durations.OperationDurations": frozenset(
        {"feature_names_in_", "laws_", "n_features_in_", "operations_", "peak_flops_"}
    ),
    "powerfit.paper.step_features.StepFeatures": frozenset(
        {
            "feature_names_in_",
            "gpus_",
            "laws_",
            "memory_bandwidth_",
            "n_features_in_",
            "peak_flops_",
            "power_limit_",
        }
    ),
    "powerfit.paper.step_energy.StepEnergyRegressor": frozenset(
        {
            "bootstrap_params_",
            "bootstrap_power_fraction_",
            "bootstrap_power_w_",
            "correction_",
            "correction_features_",
            "correction_gpus_",
            "correction_grid_",
            "feature_names_in_",
            "fit_target_",
            "n_features_in_",
            "param_names_",
            "params_",
            "physical_residuals_",
            "power_fraction_",
            "power_w_",
            "residuals_",
        }
    ),
    # Operator latency laws: tables of coefficients and GPU specs (plain numbers and
    # strings, keyed by GPU name or (GPU, operator) tuples).
    "powerfit.kernels.model.OperatorTimeModel": frozenset(
        {"laws_", "n_features_in_", "n_rows_", "specs_", "transfer_"}
    ),
    # Step time of a Hugging Face config on a GPU: per-GPU (scale, launch [s]) pairs.
    # Its predict reads powerfit's bundled operator laws and GPU catalogue (fixed
    # package files, named by a validated precision); in Python it also opens a
    # config.json path a row names, which a loaded model refuses (_refuse_config_paths).
    "powerfit.steps.regressor.StepTimeRegressor": frozenset({"calibrations_", "n_features_in_"}),
    # Board power laws per GPU: plain dicts of numbers and strings; predict touches no file.
    "powerfit.power.regressor.BoardPowerRegressor": frozenset({"laws_", "n_features_in_"}),
}

#: Class paths written by earlier releases -> the allowlisted path of the same class now.
LEGACY_PATHS: dict[str, str] = {
    "powerfit.laws.PowerLawEfficiency": "powerfit.paper.laws.PowerLawEfficiency",
    "powerfit.energy.EnergyRegressor": "powerfit.paper.energy.EnergyRegressor",
    "powerfit.pipeline.OperationDurations": "powerfit.paper.durations.OperationDurations",
    "powerfit.models.StepFeatures": "powerfit.paper.step_features.StepFeatures",
    "powerfit.models.StepEnergyRegressor": "powerfit.paper.step_energy.StepEnergyRegressor",
    "powerfit.operators.OperatorTimeModel": "powerfit.kernels.model.OperatorTimeModel",
    "powerfit.graph.StepTimeRegressor": "powerfit.steps.regressor.StepTimeRegressor",
}

#: Hyper-parameters whose value must be ``None`` when loading (they name folders).
_MUST_BE_NONE = {"sklearn.pipeline.Pipeline": ("memory",)}

#: Array dtypes a specification may hold: booleans, integers, floats, text (and
#: object arrays of those, checked value by value).
_ARRAY_KINDS = "biufU"


class UnsafeModelError(PowerfitError, ValueError):
    """A model specification asks for something a model file may not do."""


def _class_for(path: str) -> type:
    """The allowlisted class at ``path`` (imported from a fixed table, not the file)."""
    if path == "sklearn.pipeline.Pipeline":
        from sklearn.pipeline import Pipeline

        return Pipeline
    if path == "powerfit.paper.laws.PowerLawEfficiency":
        from powerfit.paper.laws import PowerLawEfficiency

        return PowerLawEfficiency
    if path == "powerfit.paper.energy.EnergyRegressor":
        from powerfit.paper.energy import EnergyRegressor

        return EnergyRegressor
    if path == "powerfit.paper.durations.OperationDurations":
        from powerfit.paper.durations import OperationDurations

        return OperationDurations
    if path == "powerfit.paper.step_features.StepFeatures":
        from powerfit.paper.step_features import StepFeatures

        return StepFeatures
    if path == "powerfit.paper.step_energy.StepEnergyRegressor":
        from powerfit.paper.step_energy import StepEnergyRegressor

        return StepEnergyRegressor
    if path == "powerfit.kernels.model.OperatorTimeModel":
        from powerfit.kernels.model import OperatorTimeModel

        return OperatorTimeModel
    if path == "powerfit.steps.regressor.StepTimeRegressor":
        from powerfit.steps.regressor import StepTimeRegressor

        return StepTimeRegressor
    if path == "powerfit.power.regressor.BoardPowerRegressor":
        from powerfit.power.regressor import BoardPowerRegressor

        return BoardPowerRegressor
    raise UnsafeModelError(f"refusing to build {path!r}: not an allowlisted powerfit estimator")


def _path_of(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _encode(value: Any) -> Any:
    from sklearn.base import BaseEstimator

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in _ARRAY_KINDS + "O":
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
        path = _path_of(value)
        if path not in ALLOWED_ESTIMATORS:
            raise TypeError(f"{path} is not a powerfit estimator")
        params = value.get_params(deep=False)
        state = {k: v for k, v in vars(value).items() if k not in params}
        undeclared = sorted(set(state) - ALLOWED_ESTIMATORS[path])
        if undeclared:
            raise TypeError(
                f"{path} has attributes {undeclared} that powerfit.tracking.flavor."
                "ALLOWED_ESTIMATORS does not declare"
            )
        return {"__estimator__": path, "params": _encode(params), "state": _encode(state)}
    raise TypeError(f"cannot describe a {type(value).__name__}")


def _check_plain(value: Any, where: str) -> None:
    """Refuse object arrays holding anything but numbers, text, booleans and None."""
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_plain(item, where)
    elif not (value is None or isinstance(value, (bool, int, float, str))):
        raise UnsafeModelError(f"{where}: an object array may hold only plain values")


def _pairs(value: Any, where: str) -> list[tuple[Any, Any]]:
    items = value.get("__dict__") if isinstance(value, dict) else None
    if not isinstance(items, list) or not all(isinstance(p, list) and len(p) == 2 for p in items):
        raise UnsafeModelError(f"{where}: expected a table of [name, value] pairs")
    return [(_decode(k, where), v) for k, v in items]


def _decode_estimator(value: dict[str, Any], where: str) -> Any:
    from sklearn.base import BaseEstimator

    path = value["__estimator__"]
    if isinstance(path, str):
        path = LEGACY_PATHS.get(path, path)
    if not isinstance(path, str) or path not in ALLOWED_ESTIMATORS:
        raise UnsafeModelError(
            f"refusing to build {path!r}: not an allowlisted powerfit estimator"
        )
    cls = _class_for(path)
    if not issubclass(cls, BaseEstimator):  # pragma: no cover - the table is fixed
        raise UnsafeModelError(f"refusing to build {path!r}: not a scikit-learn estimator")
    where = f"{where} > {path.rpartition('.')[2]}"
    accepted = set(cls._get_param_names())
    params: dict[str, Any] = {}
    for key, raw in _pairs(value.get("params"), f"{where} params"):
        if not isinstance(key, str) or key not in accepted:
            raise UnsafeModelError(f"{where}: {key!r} is not a parameter of {path}")
        params[key] = _decode(raw, f"{where}.{key}")
        if key in _MUST_BE_NONE.get(path, ()) and params[key] is not None:
            raise UnsafeModelError(f"{where}: {key!r} must be empty in a model file")
    state: dict[str, Any] = {}
    declared = ALLOWED_ESTIMATORS[path]
    for key, raw in _pairs(value.get("state"), f"{where} state"):
        if not isinstance(key, str) or key not in declared:
            raise UnsafeModelError(f"{where}: {key!r} is not a fitted attribute of {path}")
        state[key] = _decode(raw, f"{where}.{key}")
    estimator = cls(**params)
    for key, attr in state.items():
        setattr(estimator, key, attr)
    return estimator


def _decode(value: Any, where: str = "model") -> Any:
    if isinstance(value, list):
        return [_decode(v, where) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if not isinstance(value, dict) or len(value) == 0:
        raise UnsafeModelError(f"{where}: unexpected entry {value!r:.60}")
    if "__ndarray__" in value:
        dtype = value.get("dtype")
        data = _decode(value["__ndarray__"], where)
        if not isinstance(dtype, str) or not dtype or len(dtype) > 8:
            raise UnsafeModelError(f"{where}: invalid array dtype {dtype!r:.60}")
        try:
            parsed = np.dtype(dtype)
        except TypeError as exc:
            raise UnsafeModelError(f"{where}: invalid array dtype {dtype!r}") from exc
        if parsed.kind == "O":
            _check_plain(data, where)
            return np.array(data, dtype=object)
        if parsed.kind not in _ARRAY_KINDS:
            raise UnsafeModelError(f"{where}: arrays of dtype {dtype!r} are not allowed")
        return np.array(data, dtype=parsed)
    if "__tuple__" in value:
        return tuple(_decode(value["__tuple__"], where))
    if "__dict__" in value:
        return {k: _decode(v, where) for k, v in _pairs(value, where)}
    if "__dataframe__" in value:
        d = value["__dataframe__"]
        return pd.DataFrame(
            _decode(d["values"], where),
            columns=_decode(d["columns"], where),
            index=_decode(d["index"], where),
        )
    if "__series__" in value:
        d = value["__series__"]
        return pd.Series(
            _decode(d["values"], where),
            index=_decode(d["index"], where),
            name=_decode(d["name"], where),
        )
    if "__estimator__" in value:
        return _decode_estimator(value, where)
    raise UnsafeModelError(f"{where}: unknown entry in a powerfit model specification")


def to_spec(model: Any) -> dict[str, Any]:
    """JSON-ready specification of a fitted powerfit estimator or pipeline.

    Raises
    ------
    TypeError
        When the model holds something the specification cannot describe (a class
        outside :data:`ALLOWED_ESTIMATORS`, an attribute it does not declare, a
        function...).
    """
    return {"powerfit_model_spec": SPEC_VERSION, "model": _encode(model)}


def from_spec(spec: dict[str, Any]) -> Any:
    """Rebuild the estimator of :func:`to_spec`, refusing anything not allowlisted.

    Raises
    ------
    UnsafeModelError
        When the specification names a class, hyper-parameter, attribute or value
        type outside the allowlist (see the module notes), or is malformed. Each
        estimator's parameters and attributes are checked before it is built, and
        the allowlisted constructors only store their arguments, so a refused file
        has run nothing.
    """
    if not isinstance(spec, dict) or spec.get("powerfit_model_spec") != SPEC_VERSION:
        raise UnsafeModelError(
            "not a powerfit model specification of a version this powerfit reads"
        )
    try:
        return _decode(spec["model"])
    except (KeyError, TypeError, RecursionError) as exc:
        raise UnsafeModelError(f"malformed powerfit model specification: {exc!r:.200}") from exc


def artifact_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a model folder: every file's relative path and content, in order.

    Parameters
    ----------
    path : str or path-like
        A local MLflow model folder (``MLmodel``, ``powerfit_model.json``, ...).

    Returns
    -------
    str
        Hex digest; equal for two folders exactly when they hold the same files with
        the same bytes.
    """
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(file.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


#: sklearn's vendored array-API wrapper of PyTorch: a package that imports PyTorch.
_SKLEARN_TORCH_WRAPPER = "sklearn.externals.array_api_compat.torch"


def import_skops_io() -> Any:
    """``skops.io``, imported without importing PyTorch when nothing else has.

    Importing ``skops.io`` lists scikit-learn's estimators
    (:func:`sklearn.utils.discovery.all_estimators`), which walks every package of
    scikit-learn, ``sklearn.externals`` included, and so imports
    ``sklearn.externals.array_api_compat.torch`` and PyTorch with it: 1.5–3 s of a
    ``powerfit fit`` for a module the list then skips (``externals`` holds no
    estimator). While ``skops.io`` is first imported, that one package stands as an
    empty module (no ``__path__``: the walk does not enter it) and is removed
    afterwards, so a later use of scikit-learn's array API with PyTorch imports it
    as usual. The estimator list, hence what skops trusts and writes, is the same.
    When PyTorch is already imported, nothing is saved and nothing is done.

    Returns
    -------
    module
        ``skops.io``.
    """
    if "skops.io" in sys.modules or "torch" in sys.modules:
        import skops.io

        return skops.io
    placeholder = types.ModuleType(_SKLEARN_TORCH_WRAPPER)
    placed = sys.modules.setdefault(_SKLEARN_TORCH_WRAPPER, placeholder) is placeholder
    try:
        import skops.io
    finally:
        if placed and sys.modules.get(_SKLEARN_TORCH_WRAPPER) is placeholder:
            del sys.modules[_SKLEARN_TORCH_WRAPPER]
    return skops.io


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

    import_skops_io()  # what mlflow.sklearn imports to save, without PyTorch
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
    """What ``mlflow.pyfunc.load_model`` wraps: the estimator's ``predict``."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def get_raw_model(self) -> Any:
        return self.model

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        _refuse_config_paths(self.model, model_input)
        if _is_step_time(self.model) and isinstance(model_input, pd.DataFrame):
            return _once_per_distinct_row(self.model, model_input)
        return np.asarray(self.model.predict(model_input))


def _is_step_time(model: Any) -> bool:
    return isinstance(model, _class_for("powerfit.steps.regressor.StepTimeRegressor"))


def _once_per_distinct_row(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """A row-wise model's predictions, each distinct row computed once (same values)."""
    if len(frame) < 2:
        return np.asarray(model.predict(frame))
    codes = frame.groupby(list(frame.columns), sort=False, dropna=False).ngroup().to_numpy()
    first = np.unique(codes, return_index=True)[1]
    return np.asarray(model.predict(frame.iloc[first]))[codes]


#: Default bound on the rows of one request to a served step-time model [-].
MAX_STEP_ROWS = 1000
#: Environment variable that overrides it (``powerfit serve --max-rows`` sets it).
MAX_ROWS_ENV = "POWERFIT_MAX_STEP_ROWS"


def max_step_rows() -> int:
    """Rows one request to a served step-time model may hold: the environment or 1000.

    Raises
    ------
    UnsafeModelError
        When ``POWERFIT_MAX_STEP_ROWS`` is not a positive integer.
    """
    from powerfit.files import positive_env_int

    return positive_env_int(MAX_ROWS_ENV, MAX_STEP_ROWS, "rows", UnsafeModelError)


def _refuse_config_paths(model: Any, model_input: Any) -> None:
    """A served step-time model takes ``config`` as JSON text only, never a file path.

    In Python, :class:`~powerfit.steps.regressor.StepTimeRegressor` also opens a
    ``config.json`` path the caller gives; through pyfunc (a model server, Spark) the
    caller is remote, and a path would make the server open one of its own files.
    """
    if not isinstance(model_input, pd.DataFrame) or "config" not in model_input:
        return
    if not _is_step_time(model):
        return
    limit = max_step_rows()
    if len(model_input) > limit:
        raise UnsafeModelError(
            f"{len(model_input):,} rows in one request; a served step-time model scores at "
            f"most {limit:,} (each row builds a training-step graph, ≈ 10 ms); split the "
            f"request, or raise the bound with powerfit serve --max-rows ({MAX_ROWS_ENV})"
        )
    for i, value in enumerate(model_input["config"]):
        if not (isinstance(value, str) and value.lstrip().startswith("{")):
            raise UnsafeModelError(
                f"row {i}, column 'config': a served step-time model takes the model's "
                "config.json as JSON text, not a file path or another value"
            )


def _read_spec(path: str | os.PathLike[str]) -> Any:
    """The estimator of a JSON specification file, built by :func:`from_spec`."""
    try:
        spec = json.loads(read_input(path).decode("utf-8"))
    except FileNotFoundError:
        raise UnsafeModelError(
            f"{Path(path).name}: the model has no powerfit specification"
        ) from None
    except DataError as exc:  # not a regular file, or too large
        raise UnsafeModelError(f"{path}: {exc.message}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, OSError) as exc:
        raise UnsafeModelError(f"{path}: not a readable JSON model specification") from exc
    return from_spec(spec)


def load_spec_folder(folder: str | os.PathLike[str]) -> Any:
    """The estimator of a local model folder, from its :data:`SPEC_FILE` only.

    The folder's ``MLmodel`` is not read: whatever loader it names, the estimator is
    rebuilt by the allowlisted :func:`from_spec`. Call it on a folder whose digest was
    checked (:func:`powerfit.tracking.load_model` does both).

    Raises
    ------
    UnsafeModelError
        When the folder has no specification or it is not allowlisted.
    """
    return _read_spec(Path(folder, SPEC_FILE))


def _load_pyfunc(path: str) -> _PyfuncModel:
    """MLflow's pyfunc entry point: rebuild the model from its JSON specification."""
    return _PyfuncModel(_read_spec(path))
