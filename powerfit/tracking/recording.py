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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from powerfit.exceptions import PowerfitError
from powerfit.tracking.fitting import (
    EnergyModelFactory,
    FittedCoefficients,
    fit_coefficients,
    model_input_columns,
)
from powerfit.tracking.flavor import artifact_digest
from powerfit.tracking.locations import (
    EXPERIMENT_NAME,
    artifact_location,
    mask_password,
    model_name_for,
    resolve_tracking_uri,
    using_tracking_uri,
)
from powerfit.tracking.verify import DIGEST_TAG, download_model

__all__ = ["FitResult", "fit_and_log", "log_fit", "model_signature", "pip_requirements"]

#: Artifact path of the model inside a run.
MODEL_NAME = "model"


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


def model_signature(arch: str, columns: Sequence[str] | None = None) -> Any:
    """The model's signature: configuration columns in, energy [J] out.

    The shape columns are required and declared ``Any``: MLflow converts neither
    int64 to double nor float to long, so a numeric type would reject either the
    integers of a CSV file or the floats of a DataFrame (and an integer column with
    a missing value). powerfit's own checks then validate the values, with the same
    :class:`~powerfit.exceptions.DataError` (row and column named) as the library.
    ``d_ff`` (``seq_len`` for LSTM/GRU) and ``gpu`` are optional. Columns outside
    the signature are dropped by MLflow before the model sees them.

    Parameters
    ----------
    arch : {'transformer', 'lstm', 'gru'}
    columns : sequence of str, optional
        The columns the model was trained with: the optional columns among them
        (e.g. ``vocab_size``, ``n_params``, ``model`` of the step model) are
        declared too. Default: those of the paper's model.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    required, optional = model_input_columns(arch)
    if columns is not None:
        extra = [c for c in columns if c not in required and c not in optional]
        optional = [*optional[:-1], *extra, optional[-1]]
    inputs = [ColSpec(AnyType(), name) for name in required]
    inputs += [
        ColSpec("string" if name in ("gpu", "model") else AnyType(), name, required=False)
        for name in optional
    ]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec("double")]))


def trusted_types(model: Any, extra: Sequence[str] = ()) -> list[str]:
    """Types skops must be told to trust to load ``model``: powerfit's own only.

    Raises
    ------
    PowerfitError
        When the model holds other types skops does not trust by default (pass
        them in ``extra`` after checking them).
    """
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    foreign = [t for t in untrusted if not t.startswith("powerfit.") and t not in extra]
    if foreign:
        raise PowerfitError(
            "the energy model holds types that skops does not trust and that are not "
            f"powerfit's: {', '.join(foreign)}; check them and pass trusted_types=[...]"
        )
    return sorted(set(untrusted))


def _experiment_id(client: Any, tracking_uri: str) -> str:
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(
        EXPERIMENT_NAME, artifact_location=artifact_location(tracking_uri)
    )


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

    Returns
    -------
    FitResult
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import Model

    from powerfit.tracking import flavor
    from powerfit.tracking.registry import ensure_registered_model, update_champion

    uri = resolve_tracking_uri(tracking_uri)
    name = register or model_name_for(fit.gpu, fit.arch)
    trusted = trusted_types(fit.model, extra_trusted_types)
    with using_tracking_uri(uri):
        client = MlflowClient(uri)
        experiment_id = _experiment_id(client, uri)
        ensure_registered_model(client, name, fit.gpu, fit.arch)
        tags = {
            "powerfit.gpu": fit.gpu,
            "powerfit.arch": fit.arch,
            "powerfit.data_sha256": fit.data["sha256"],
        }
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"{fit.gpu} / {fit.arch}", tags=tags
        ) as run:
            mlflow.log_params(_params(fit, store_url, test_size, random_state))
            mlflow.log_metrics(fit.coefficients | fit.metrics)
            with tempfile.TemporaryDirectory(prefix="powerfit-artifacts-") as folder:
                _write_artifacts(fit, Path(folder))
                mlflow.log_artifacts(folder)
            info = Model.log(
                artifact_path=None,
                name=MODEL_NAME,
                flavor=flavor,
                sk_model=fit.model,
                signature=model_signature(fit.arch, list(fit.X_train.columns)),
                input_example=fit.X_train.head(3),
                pip_requirements=pip_requirements(),
                serialization_format="skops",
                skops_trusted_types=trusted,
                registered_model_name=name,
                await_registration_for=0,
            )
        version = int(info.registered_model_version)
        tags[DIGEST_TAG] = _logged_digest(name, version)
        for key, value in tags.items():
            client.set_model_version_tag(name, str(version), key, value)
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
        model, powerfit's step model (:func:`~powerfit.tracking.fitting.step_energy_model`)
        or a factory ``energy_model(laws, arch=..., peak_flops=...)``.
    law_params : dict, optional
        Keyword arguments of :class:`~powerfit.laws.PowerLawEfficiency`.
    extra_trusted_types : sequence of str
        Non-powerfit types of a custom energy model that skops may load.
    precision : str, optional
        Fit only the measurements of this precision (``fp32``, ``tf32``, ``bf16``,
        ...); without it the measurements must all be of one precision.

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
    )
