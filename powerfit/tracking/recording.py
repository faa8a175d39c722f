"""Record a fit in MLflow: one run, one model, one registered version.

:func:`fit_and_log` reads the measurements, fits (:mod:`powerfit.tracking.fitting`)
and records one MLflow run with

* **params** — the data selection (GPU, architecture, operations), the split, the
  energy model's hyper-parameters (``model.*``), the store URL (password masked),
  and the provenance of the data (import ids and sha256 of the imported files,
  sha256 of the rows used);
* **metrics** — every fitted coefficient (``law.<op>.eta_max`` [fraction],
  ``law.<op>.k`` [TFLOP^-alpha], ``law.<op>.alpha`` [-], ``h`` [J], ``h.<op>`` [W])
  and the fit quality (``law.<op>.r2``; ``test_r2``, ``test_mae_j`` [J],
  ``test_mape`` [fraction] on the held-out runs, and the same on the training runs);
* **artifacts** — ``coefficients.json``, ``plots/law_<op>.png`` and
  ``plots/predicted_vs_measured.png``;
* **the model** — the fitted pipeline (configurations → energy [J]) in MLflow's
  sklearn flavour, serialised with skops (only powerfit's own classes declared
  trusted: loading never unpickles arbitrary code), with a signature, an input
  example and explicit pip requirements (no requirement inference); its
  ``python_function`` flavour loads a JSON specification of the same pipeline
  instead (:mod:`powerfit.tracking.flavor`), which is faster to load cold.

The model is registered as a new version (:mod:`powerfit.tracking.registry`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from powerfit.exceptions import PowerfitError
from powerfit.tracking.energy_models import EnergyModelFactory, model_input_columns
from powerfit.tracking.fitting import FittedCoefficients, fit_coefficients
from powerfit.tracking.flavor import artifact_digest, import_skops_io
from powerfit.tracking.locations import (
    EXPERIMENT_NAME,
    artifact_location,
    mask_password,
    model_name_for,
    resolve_tracking_uri,
    slug,
    using_tracking_uri,
)
from powerfit.tracking.orphans import fail_orphan_runs, owner_tags
from powerfit.tracking.verify import DIGEST_TAG, download_model

__all__ = [
    "RECORDING_STAGES",
    "STEP_TIME_MODEL_NAME",
    "FitResult",
    "as_model_input",
    "fit_and_log",
    "log_fit",
    "log_step_time_model",
    "model_signature",
    "pip_requirements",
    "step_time_signature",
]

#: Artifact path of the model inside a run.
MODEL_NAME = "model"
#: Default registered-model name of the step-time model (:func:`log_step_time_model`).
STEP_TIME_MODEL_NAME = "powerfit-step-time"
#: Stages :func:`log_fit` announces to its ``progress`` callback, in order.
RECORDING_STAGES = (
    "recording in MLflow: checking the model's types",
    "recording in MLflow: the run and its coefficients",
    "recording in MLflow: the plots",
    "recording in MLflow: the model and its version",
    "recording in MLflow: tags and the champion",
)


@dataclass
class FitResult:
    """What :func:`fit_and_log` recorded.

    Attributes
    ----------
    run_id : str
        The MLflow run.
    model_name : str
        Registered model name.
    version : int
        The new model version.
    promoted : bool
        Whether the alias ``champion`` now points at this version.
    champion_version : int
        The version the alias points at after this fit.
    model_uri : str
        ``models:/<model_name>/<version>``.
    tracking_uri : str
        Where it was recorded.
    metrics : dict of str to float
        Fit quality (see :class:`~powerfit.tracking.fitting.FittedCoefficients`).
    coefficients : dict of str to float
        Every fitted coefficient.
    laws : dict of str to PowerLawEfficiency
        Operation → fitted law.
    pipeline : estimator
        The fitted energy model (configurations → energy [J]).
    notes : list of str
        Skipped operations and other remarks.
    fit : FittedCoefficients
        Everything the fit produced (splits, data provenance).
    """

    run_id: str
    model_name: str
    version: int
    promoted: bool
    champion_version: int
    model_uri: str
    tracking_uri: str
    metrics: dict[str, float]
    coefficients: dict[str, float]
    laws: dict[str, Any]
    pipeline: Any
    notes: list[str] = field(default_factory=list)
    fit: FittedCoefficients | None = field(default=None, repr=False)


def pip_requirements() -> list[str]:
    """Requirements of a logged model: powerfit and its runtime dependencies, pinned.

    scikit-learn and skops are pinned exactly (the serialised model depends on
    them); the rest at least at the installed versions.
    """
    from powerfit._version import __version__

    def installed(name: str) -> str:
        return metadata.version(name)

    return [
        f"powerfit=={__version__}",
        f"scikit-learn=={installed('scikit-learn')}",
        f"skops=={installed('skops')}",
        f"numpy>={installed('numpy')}",
        f"scipy>={installed('scipy')}",
        f"pandas>={installed('pandas')}",
    ]


#: Configuration columns holding text; every other configuration column is a count.
TEXT_COLUMNS = ("gpu", "model")


def model_signature(arch: str, columns: Sequence[str] | None = None) -> Any:
    """The model's signature: configuration columns in, energy [J] out.

    Every configuration column is a count (layers, batch, tokens, widths, heads) and
    is declared ``long``; ``gpu`` and ``model`` are ``string``. These are types MLflow
    checks column by column (an int64 column passes unchanged, an int32 one is
    widened): a column declared ``Any`` is instead copied value by value in Python,
    which made :func:`mlflow.pyfunc.load_model`'s ``predict`` ~20 times slower than
    the model itself on a million configurations. MLflow refuses a float column for a
    ``long`` one, naming the column (``Can not safely convert float64 to int64``):
    pass whole numbers as integers (:func:`as_model_input` converts a frame whose
    float columns hold whole numbers). powerfit's own checks then validate the
    values, with the same :class:`~powerfit.exceptions.DataError` (row and column
    named) as the library. ``d_ff`` (``seq_len`` for LSTM/GRU) and ``gpu`` are
    optional (give ``d_ff = 0`` for "4 d_model" in a table where only some rows
    set it). Columns outside the signature are dropped by MLflow before the model
    sees them.

    Parameters
    ----------
    arch : {'transformer', 'lstm', 'gru'}
    columns : sequence of str, optional
        The columns the model was trained with: the optional columns among them
        (e.g. ``vocab_size``, ``n_params``, ``model`` of the step model) are
        declared too. Default: those of the paper's model.

    Returns
    -------
    mlflow.models.ModelSignature
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    required, optional = model_input_columns(arch)
    if columns is not None:
        extra = [c for c in columns if c not in required and c not in optional]
        optional = [*optional[:-1], *extra, optional[-1]]

    def spec(name: str, needed: bool) -> Any:
        return ColSpec("string" if name in TEXT_COLUMNS else "long", name, required=needed)

    inputs = [spec(name, True) for name in required] + [spec(name, False) for name in optional]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec("double")]))


def as_model_input(X: Any, signature: Any) -> Any:
    """``X`` with its whole-number float columns as int64 where ``signature`` says ``long``.

    What MLflow's schema check accepts for a registered model's ``predict``. The
    measurement store reads counts as floats; a float column with a fraction or a
    missing value is left as it is (MLflow then refuses it, naming the column).

    Parameters
    ----------
    X : pandas.DataFrame
        Configurations.
    signature : mlflow.models.ModelSignature
        The model's signature (:func:`model_signature`).

    Returns
    -------
    pandas.DataFrame
        A copy when a column was converted, else ``X`` itself.
    """
    import numpy as np
    from mlflow.types import DataType

    longs = [c.name for c in signature.inputs.inputs if c.type == DataType.long and c.name in X]
    converted = {}
    for name in longs:
        values = X[name]
        if values.dtype.kind == "f":
            array = values.to_numpy()
            if np.all(np.isfinite(array)) and np.all(array == np.round(array)):
                converted[name] = values.astype("int64")
    return X.assign(**converted) if converted else X


def trusted_types(model: Any, extra: Sequence[str] = ()) -> list[str]:
    """Types skops must be told to trust to load ``model``: powerfit's own only.

    Raises
    ------
    PowerfitError
        When the model holds other types skops does not trust by default (pass
        them in ``extra`` after checking them).
    """
    skops_io = import_skops_io()
    untrusted = skops_io.get_untrusted_types(data=skops_io.dumps(model))
    foreign = [t for t in untrusted if not t.startswith("powerfit.") and t not in extra]
    if foreign:
        raise PowerfitError(
            "the energy model holds types that skops does not trust and that are not "
            f"powerfit's: {', '.join(foreign)}; check them and pass trusted_types=[...]"
        )
    return sorted(set(untrusted))


def _log_model_version(
    model: Any, name: str, signature: Any, input_example: Any, trusted: Sequence[str]
) -> int:
    """Log ``model`` in the active run (powerfit's flavour: skops for
    ``mlflow.sklearn`` trusting the types ``trusted``, the JSON specification for
    ``mlflow.pyfunc``) as a new version of the registered model ``name``; the
    version number."""
    from mlflow.models import Model

    from powerfit.tracking import flavor

    info = Model.log(
        artifact_path=None,
        name=MODEL_NAME,
        flavor=flavor,
        sk_model=model,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements(),
        serialization_format="skops",
        skops_trusted_types=list(trusted),
        registered_model_name=name,
        await_registration_for=0,
    )
    return int(info.registered_model_version)


def tag_model_version(client: Any, name: str, version: int, tags: Mapping[str, str]) -> None:
    """Set ``tags`` and the artifacts' digest (:data:`DIGEST_TAG`) on a model version."""
    for key, value in {**tags, DIGEST_TAG: _logged_digest(name, version)}.items():
        client.set_model_version_tag(name, str(version), key, value)


def _experiment_id(client: Any, tracking_uri: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(
            EXPERIMENT_NAME, artifact_location=artifact_location(tracking_uri)
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        # Another process created it since the check (several first fits at once).
        return client.get_experiment_by_name(EXPERIMENT_NAME).experiment_id


def _scalar_params(params: Mapping[str, Any], prefix: str) -> dict[str, str]:
    out = {}
    for key, value in params.items():
        if value is None or isinstance(value, (bool, int, float, str)):
            out[f"{prefix}{key}"] = str(value)
    return out


def _coefficients_document(fit: FittedCoefficients) -> dict[str, Any]:
    laws = {
        op: {
            "eta_max": law.eta_max_,
            "k": law.k_,
            "alpha": law.alpha_,
            "stderr": law.stderr_,
            "r2": law.r2_,
            "n_samples": law.n_samples_fit_,
            "converged": law.converged_,
        }
        for op, law in fit.laws.items()
    }
    energy = {k: v for k, v in fit.coefficients.items() if k == "h" or k.startswith("h.")}
    return {
        "gpu": fit.gpu,
        "arch": fit.arch,
        "peak_flops": fit.peak_flops,
        "units": {
            "eta_max": "fraction of peak",
            "k": "TFLOP^-alpha (c in TFLOP)",
            "alpha": "-",
            "h": "J",
            "h.<operation>": "W",
            "peak_flops": "FLOP/s",
        },
        "laws": laws,
        "energy": energy,
        "skipped_operations": fit.skipped,
        "laws_from": fit.laws_from,
        "laws_precision": fit.laws_precision,
        "metrics": fit.metrics,
        "data": fit.data,
    }


def _write_artifacts(fit: FittedCoefficients, folder: Path) -> None:
    from powerfit.tracking.plots import law_figure, prediction_figure, save_png

    (folder / "coefficients.json").write_text(
        json.dumps(_coefficients_document(fit), indent=2, default=float)
    )
    for op, law in fit.laws.items():
        rows = fit.operation_data[fit.operation_data["operation"] == op]
        if rows.empty:
            continue  # laws reused from a profile (laws_from): nothing measured to plot
        figure = law_figure(law, rows["flops"], rows["efficiency"], title=f"{op} on {fit.gpu}")
        save_png(figure, folder / "plots" / f"law_{op}.png")
    mape = 100 * fit.metrics["test_mape"]
    figure = prediction_figure(
        fit.y_test,
        fit.model.predict(fit.X_test),
        title=f"{fit.gpu}, {fit.arch}: held-out runs (MAPE {mape:.2f} %)",
    )
    save_png(figure, folder / "plots" / "predicted_vs_measured.png")


def _params(fit: FittedCoefficients, store_url: str, test_size: float, seed: int) -> dict:
    params = {
        "gpu": fit.gpu,
        "arch": fit.arch,
        "operations": ",".join(fit.laws),
        "skipped_operations": ",".join(fit.skipped) or "-",
        "peak_flops": repr(fit.peak_flops),
        "test_size": str(test_size),
        "random_state": str(seed),
        "stratify": ",".join(fit.stratify) or "-",
        "n_train": str(len(fit.X_train)),
        "n_test": str(len(fit.X_test)),
        "store_url": mask_password(store_url),
        "laws_from": fit.laws_from or "-",
        "data.operation_import_ids": ",".join(map(str, fit.data["operation_import_ids"])),
        "data.run_import_ids": ",".join(map(str, fit.data["run_import_ids"])),
        "data.n_operation_rows": str(fit.data["n_operation_rows"]),
        "data.n_run_rows": str(fit.data["n_run_rows"]),
        "data.sha256": fit.data["sha256"],
    }
    for import_id, digest in fit.data["import_sha256"].items():
        params[f"data.import_{import_id}.sha256"] = digest
    if hasattr(fit.model, "get_params"):
        params |= _scalar_params(fit.model.get_params(deep=True), "model.")
    first = next(iter(fit.laws.values()))
    params |= _scalar_params(first.get_params(), "law.")
    return params


def log_fit(
    fit: FittedCoefficients,
    *,
    tracking_uri: str | None = None,
    register: str | None = None,
    promote: bool = False,
    store_url: str = "",
    test_size: float = 0.33,
    random_state: int = 0,
    extra_trusted_types: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> FitResult:
    """Record an already computed fit as one MLflow run and a new model version.

    Parameters
    ----------
    fit : FittedCoefficients
        From :func:`~powerfit.tracking.fitting.fit_coefficients`.
    tracking_uri, register, promote
        See :func:`fit_and_log`.
    store_url : str
        The store the data came from (recorded with its password masked).
    test_size, random_state
        The split that was used (recorded as params).
    extra_trusted_types : sequence of str
        Non-powerfit types of the model that skops may load (checked by you).
    progress : callable, optional
        Called with the name of each stage as it starts (:data:`RECORDING_STAGES`).

    Returns
    -------
    FitResult
    """
    stage = progress or (lambda name: None)
    stage(RECORDING_STAGES[0])
    uri = resolve_tracking_uri(tracking_uri)
    name = register or model_name_for(fit.gpu, fit.arch)
    trusted = trusted_types(fit.model, extra_trusted_types)
    stage(RECORDING_STAGES[1])
    import mlflow
    from mlflow import MlflowClient

    from powerfit.tracking.registry import ensure_registered_model, update_champion

    signature = model_signature(fit.arch, list(fit.X_train.columns))
    with using_tracking_uri(uri):
        client = MlflowClient(uri)
        experiment_id = _experiment_id(client, uri)
        fail_orphan_runs(client, experiment_id)
        ensure_registered_model(client, name, fit.gpu, fit.arch)
        tags = {
            "powerfit.gpu": fit.gpu,
            "powerfit.arch": fit.arch,
            "powerfit.data_sha256": fit.data["sha256"],
        }
        with mlflow.start_run(
            experiment_id=experiment_id,
            run_name=f"{fit.gpu} / {fit.arch}",
            tags=tags | owner_tags(),
        ) as run:
            mlflow.log_params(_params(fit, store_url, test_size, random_state))
            mlflow.log_metrics(fit.coefficients | fit.metrics)
            stage(RECORDING_STAGES[2])
            with tempfile.TemporaryDirectory(prefix="powerfit-artifacts-") as folder:
                _write_artifacts(fit, Path(folder))
                mlflow.log_artifacts(folder)
            stage(RECORDING_STAGES[3])
            example = as_model_input(fit.X_train.head(3), signature)
            version = _log_model_version(fit.model, name, signature, example, trusted)
        stage(RECORDING_STAGES[4])
        tag_model_version(client, name, version, tags)
        promoted, champion = update_champion(client, name, version, force=promote, fit=fit)
    return FitResult(
        run_id=run.info.run_id,
        model_name=name,
        version=version,
        promoted=promoted,
        champion_version=champion,
        model_uri=f"models:/{name}/{version}",
        tracking_uri=uri,
        metrics=dict(fit.metrics),
        coefficients=dict(fit.coefficients),
        laws=dict(fit.laws),
        pipeline=fit.model,
        notes=list(fit.notes),
        fit=fit,
    )


def _logged_digest(name: str, version: int) -> str:
    """SHA-256 of a just-registered model's files, as the artifact store holds them."""
    with tempfile.TemporaryDirectory(prefix="powerfit-digest-") as folder:
        return artifact_digest(download_model(f"models:/{name}/{version}", folder))


def fit_and_log(
    store_url: str | os.PathLike[str] | None = None,
    gpu: str = "NVIDIA A100 80GB PCIe",
    arch: str = "transformer",
    *,
    tracking_uri: str | None = None,
    register: str | None = None,
    promote: bool = False,
    test_size: float = 0.33,
    random_state: int = 0,
    operations: Sequence[str] | None = None,
    energy_model: str | EnergyModelFactory = "paper",
    law_params: Mapping[str, Any] | None = None,
    extra_trusted_types: Sequence[str] = (),
    precision: str | None = None,
    laws_from: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> FitResult:
    """Fit the laws and energy model of a GPU and architecture, record and register them.

    Parameters
    ----------
    store_url : str or path, optional
        The measurement store (:func:`powerfit.store.open_store`); default
        ``POWERFIT_DB_URL``, else the default store.
    gpu : str, default 'NVIDIA A100 80GB PCIe'
        GPU name or alias.
    arch : {'transformer', 'lstm', 'gru'}, default 'transformer'
    tracking_uri : str, optional
        MLflow tracking URI; default ``MLFLOW_TRACKING_URI``, else
        ``sqlite:///<powerfit.store.default_home()>/mlflow.db``
        (:mod:`powerfit.tracking.locations`).
    register : str, optional
        Registered model name; default ``powerfit-<gpu slug>-<arch>``.
    promote : bool, default False
        Move the alias ``champion`` to the new version even if it is not better.
    test_size : float, default 0.33
        Held-out fraction of the run measurements.
    random_state : int, default 0
        Seed of the split.
    operations : sequence of str, optional
        Operations to fit laws for (default: every measured one with a law).
    energy_model : {'paper', 'step'} or callable, default 'paper'
        As in :func:`~powerfit.tracking.fitting.fit_coefficients`: the paper's
        model, powerfit's step model (:func:`~powerfit.tracking.energy_models.step_energy_model`)
        or a factory ``energy_model(laws, arch=..., peak_flops=...)``.
    law_params : dict, optional
        Keyword arguments of :class:`~powerfit.paper.laws.PowerLawEfficiency`.
    extra_trusted_types : sequence of str
        Non-powerfit types of a custom energy model that skops may load.
    precision : str, optional
        Fit only the measurements of this precision (``fp32``, ``tf32``, ``bf16``,
        ...); without it the measurements must all be of one precision.
    laws_from : str, optional
        Reuse this bundled profile's efficiency laws and fit only the energy model
        (a lab that measured training steps only); recorded as ``powerfit.laws_from``.
    progress : callable, optional
        Called with the name of each stage as it starts: those of
        :func:`~powerfit.tracking.fitting.fit_coefficients`, then those of
        :func:`log_fit` (:data:`RECORDING_STAGES`, each ``"recording in MLflow: ..."``).

    Returns
    -------
    FitResult

    Raises
    ------
    DataError
        No measurements for that GPU and architecture (says what the store holds).
    ConvergenceError
        An efficiency law did not converge.
    """
    from powerfit.store import open_store, resolve_url

    url = resolve_url(store_url)
    with open_store(url) as store:
        fit = fit_coefficients(
            store,
            gpu,
            arch,
            operations=operations,
            energy_model=energy_model,
            law_params=law_params,
            test_size=test_size,
            random_state=random_state,
            precision=precision,
            laws_from=laws_from,
            progress=progress,
        )
        shown_url = store.url
    return log_fit(
        fit,
        tracking_uri=tracking_uri,
        register=register,
        promote=promote,
        store_url=shown_url,
        test_size=test_size,
        random_state=random_state,
        extra_trusted_types=extra_trusted_types,
        progress=progress,
    )


# --------------------------------------------------------------------------------------
# The step-time model of real (Hugging Face) configurations, the GPU a column
# --------------------------------------------------------------------------------------


def step_time_signature() -> Any:
    """Signature of :class:`powerfit.steps.regressor.StepTimeRegressor`: one row per training step.

    ``gpu`` (name), ``config`` (the model's ``config.json`` as JSON text: a served
    model refuses a path, :mod:`powerfit.tracking.flavor`), ``batch_size`` and ``seq_len``
    (``long``) are required, ``precision`` (``fp32``, ``tf32``, ``bf16``...) is
    optional; out: the step time [s] (``double``).

    Returns
    -------
    mlflow.models.ModelSignature
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = [
        ColSpec("string", "gpu"),
        ColSpec("string", "config"),
        ColSpec("long", "batch_size"),
        ColSpec("long", "seq_len"),
        ColSpec("string", "precision", required=False),
    ]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec("double")]))


def _step_time_metrics(model: Any, X_test: Any, y_test: Any) -> tuple[dict, dict]:
    """(coefficients, metrics) of a fitted step-time model, as MLflow metrics."""
    import numpy as np

    coefficients = {}
    for gpu, (scale, launch_s) in sorted(model.calibrations_.items()):
        coefficients[f"calibration.{slug(gpu)}.scale"] = float(scale)
        coefficients[f"calibration.{slug(gpu)}.launch_s"] = float(launch_s)
    metrics: dict[str, float] = {}
    if X_test is not None:
        y = np.asarray(y_test, dtype=float)
        error = np.asarray(model.predict(X_test), dtype=float) - y
        metrics = {
            "test_mape": float(np.mean(np.abs(error) / y)),
            "test_mae_s": float(np.mean(np.abs(error))),
            "n_test": float(len(y)),
        }
    return coefficients, metrics


def log_step_time_model(
    model: Any,
    *,
    X_test: Any = None,
    y_test: Any = None,
    tracking_uri: str | None = None,
    register: str | None = None,
    promote: bool = False,
) -> FitResult:
    """Record a fitted :class:`~powerfit.steps.regressor.StepTimeRegressor` and register it.

    One MLflow run in powerfit's experiment (params: the hyper-parameters
    ``model.*`` and the calibrated GPUs; metrics: each GPU's calibration
    ``calibration.<gpu>.scale`` [-] and ``.launch_s`` [s], and with held-out steps
    ``test_mape`` [fraction] and ``test_mae_s`` [s]), the model in powerfit's MLflow
    format (sklearn flavour with skops, and the JSON specification that
    :func:`mlflow.pyfunc.load_model` reads: :mod:`powerfit.tracking.flavor`) with
    :func:`step_time_signature`, and a new version of ``register``, tagged with the
    SHA-256 of its files. One registered model serves every GPU: the GPU is an input
    column (uncalibrated GPUs are predicted from the operator laws alone).

    Parameters
    ----------
    model : StepTimeRegressor
        Fitted (:meth:`~powerfit.steps.regressor.StepTimeRegressor.fit`).
    X_test, y_test : pandas.DataFrame and array-like, optional
        Held-out measured steps (columns of :func:`step_time_signature`) and their
        times [s]: recorded as ``test_mape``, which the champion rule compares
        (:mod:`powerfit.tracking.registry`), and their first rows as the input example.
    tracking_uri : str, optional
        As in :func:`fit_and_log`.
    register : str, optional
        Registered model name; default :data:`STEP_TIME_MODEL_NAME`. Its
        ``powerfit.kind`` tag is ``step-time-model`` (not listed by
        :func:`~powerfit.tracking.history`).
    promote : bool, default False
        Move the alias ``champion`` to the new version even if it is not better.

    Returns
    -------
    FitResult
        ``coefficients`` holds the calibrations, ``pipeline`` the model, ``laws`` is
        empty.

    Raises
    ------
    TypeError
        ``model`` is not a :class:`~powerfit.steps.regressor.StepTimeRegressor`.
    sklearn.exceptions.NotFittedError
        It is not fitted.
    """
    import mlflow
    from mlflow import MlflowClient
    from sklearn.utils.validation import check_is_fitted

    from powerfit.steps.regressor import StepTimeRegressor
    from powerfit.tracking.registry import (
        STEP_TIME_KIND,
        ensure_registered_model,
        update_champion,
    )

    if not isinstance(model, StepTimeRegressor):
        raise TypeError(f"expected a StepTimeRegressor, got {type(model).__name__}")
    check_is_fitted(model, "calibrations_")
    coefficients, metrics = _step_time_metrics(model, X_test, y_test)
    uri = resolve_tracking_uri(tracking_uri)
    name = register or STEP_TIME_MODEL_NAME
    gpus = ", ".join(sorted(model.calibrations_)) or "none calibrated"
    signature = step_time_signature()
    example = None
    if X_test is not None:
        columns = [c.name for c in signature.inputs.inputs if c.name in X_test]
        example = as_model_input(X_test[columns].head(3), signature)
    with using_tracking_uri(uri):
        client = MlflowClient(uri)
        experiment_id = _experiment_id(client, uri)
        ensure_registered_model(
            client,
            name,
            gpus,
            "hf-config",
            kind=STEP_TIME_KIND,
            description=(
                "powerfit step-time model: (gpu, Hugging Face config.json, batch_size, "
                "seq_len[, precision]) in, time of one training step [s] out; "
                "calibrated on measured steps of: " + gpus
            ),
        )
        tags = {"powerfit.kind": STEP_TIME_KIND, "powerfit.gpus": gpus}
        fail_orphan_runs(client, experiment_id)
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"step time / {gpus}", tags=tags | owner_tags()
        ) as run:
            params = _scalar_params(model.get_params(deep=False), "model.")
            mlflow.log_params(params | {"calibrated_gpus": gpus})
            mlflow.log_metrics(coefficients | metrics)
            version = _log_model_version(model, name, signature, example, trusted_types(model))
        tag_model_version(client, name, version, tags)
        promoted, champion = update_champion(client, name, version, force=promote)
    return FitResult(
        run_id=run.info.run_id,
        model_name=name,
        version=version,
        promoted=promoted,
        champion_version=champion,
        model_uri=f"models:/{name}/{version}",
        tracking_uri=uri,
        metrics=metrics,
        coefficients=coefficients,
        laws={},
        pipeline=model,
    )
