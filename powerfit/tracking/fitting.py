"""Fit a coefficient set from the measurement store, without MLflow.

One *fit* of a (GPU, architecture) pair is:

1. one :class:`~powerfit.paper.laws.PowerLawEfficiency` per operation, fitted on the
   store's operation measurements of that pair (efficiency [fraction] against
   FLOPs of one call [FLOP]);
2. an energy model fitted on the store's run measurements of that pair
   (configurations in, energy of one training step [J] out), built by a factory
   from the fitted laws (default
   :func:`~powerfit.tracking.energy_models.default_energy_model`: durations from
   the laws, then :class:`~powerfit.paper.energy.EnergyRegressor`);
3. its evaluation on a held-out split of the run measurements (seeded, stratified
   by model family and layer count where those columns exist);
4. a physics check of the fitted model on a grid over its whole input domain
   (:func:`check_physics`: energy > 0 everywhere, never less for more layers,
   tokens or batch); a model that fails it is recorded but never promoted
   (:mod:`powerfit.tracking.registry`).

Runs lacking a required input or the energy are left out, and an optional input
given in only part of the runs is either used (the runs lacking it left out) or
not used at all (:func:`powerfit.tracking.inputs._select_inputs` states the rule);
every such decision is a note of the fit, never silent. The energy models are
:mod:`powerfit.tracking.energy_models`', the physics check
:mod:`powerfit.tracking.physics`'.

Durations are always recomputed from configurations with the fitted laws: the
duration columns of the published energy data are defective (method.md §4).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from powerfit._moved import moved_getattr
from powerfit.exceptions import ConvergenceError, DataError
from powerfit.paper import flops as _flops
from powerfit.paper.laws import plain
from powerfit.tracking.energy_models import ENERGY_MODELS, EnergyModelFactory, model_input_columns
from powerfit.tracking.inputs import (
    NO_LAW_OPERATIONS,
    _no_measurements,
    _per_gpu_energy,
    _reused_laws,
    _select_inputs,
)
from powerfit.tracking.physics import PhysicsCheck, check_physics

__all__ = ["FittedCoefficients", "fit_coefficients", "row_digests", "run_name", "version_tags"]


@dataclass
class FittedCoefficients:
    """Everything one fit produced, before it is recorded.

    Attributes
    ----------
    gpu, arch : str
        The data selection.
    laws : dict of str to PowerLawEfficiency
        Operation → fitted law.
    skipped : dict of str to str
        Operation → why it has no law (measured, but left out).
    peak_flops : float
        Peak throughput the efficiencies refer to [FLOP/s].
    model : estimator
        The fitted energy model (configurations → energy [J]), trained on the
        training split.
    metrics : dict of str to float
        Law quality (``law.<op>.r2``) and energy-model quality on the held-out split
        (``test_r2``, ``test_mae_j`` [J], ``test_mape`` [fraction]) and on the
        training split (``train_*``).
    coefficients : dict of str to float
        Every fitted coefficient: ``law.<op>.eta_max`` [fraction],
        ``law.<op>.k`` [TFLOP^-alpha], ``law.<op>.alpha`` [-]; ``h`` [J] and
        ``h.<op>`` [W] when the energy model exposes ``coefficients_``.
    X_train, X_test : pandas.DataFrame
        Model inputs of the two splits (the model's input columns, float).
    y_train, y_test : pandas.Series
        Measured energy of one training step [J].
    stratify : list of str
        Columns the split was stratified by (empty: not stratified).
    operation_data : pandas.DataFrame
        The operation measurements used (for the law plots).
    data : dict
        Provenance: import ids, their sha256, row counts, and ``sha256`` of the
        selected rows themselves.
    notes : list of str
        Things a user should know (skipped operations, a stratification given up,
        runs left out, a failed physics check).
    energy_model : str
        ``paper``, ``step`` or ``custom`` (a factory).
    precision : str
        Precision of the operation measurements (comma-separated if several).
    physics : PhysicsCheck or None
        The physics check of the fitted model (:func:`check_physics`).
    laws_from : str or None
        The bundled profile whose published laws were reused instead of fitting
        laws on the store's operation measurements (``powerfit fit --laws-from``).
    laws_precision : str
        Precision of the laws (of the operation measurements, or of the profile).
    """

    gpu: str
    arch: str
    laws: dict[str, Any]
    skipped: dict[str, str]
    peak_flops: float
    model: Any
    metrics: dict[str, float]
    coefficients: dict[str, float]
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series
    stratify: list[str]
    operation_data: pd.DataFrame
    data: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    energy_model: str = "paper"
    precision: str = ""
    physics: PhysicsCheck | None = None
    laws_from: str | None = None
    laws_precision: str = ""


def _frame_sha256(frame: pd.DataFrame) -> str:
    text = frame.drop(columns=["import_id", "sha256"], errors="ignore").to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _import_hashes(store: Any, ids: list[int]) -> dict[int, str]:
    import sqlalchemy as sa

    from powerfit.store.engine import transaction
    from powerfit.store.models import Import

    if not ids:
        return {}
    with transaction(store.engine) as conn:
        rows = conn.execute(sa.select(Import.id, Import.sha256).where(Import.id.in_(ids)))
        return {int(i): str(h) for i, h in rows}


def _fit_laws(
    ops: pd.DataFrame, arch: str, operations: Any, law_params: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, str]]:
    from powerfit.paper.laws import PowerLawEfficiency

    measured = [op for op in _flops.OPERATIONS[arch] if op in set(ops["operation"])]
    wanted = measured if operations is None else list(operations)
    skipped: dict[str, str] = {}
    laws: dict[str, Any] = {}
    for op in _flops.OPERATIONS[arch]:
        if op not in wanted:
            if op in measured:
                skipped[op] = "not among the requested operations"
            continue
        if op not in measured:
            raise DataError(
                f"no operation measurements of {op!r} in the store for this GPU and architecture"
            )
        if operations is None and op in NO_LAW_OPERATIONS:
            skipped[op] = "measured, but the method has no efficiency law for it"
            continue
        group = ops[ops["operation"] == op]
        group = group[np.isfinite(group["efficiency"]) & (group["efficiency"] > 0)]
        law = PowerLawEfficiency(**(law_params or {}))
        try:
            laws[op] = law.fit(group[["flops"]], group["efficiency"])
        except ConvergenceError as exc:
            raise ConvergenceError(f"efficiency law of {op!r}: {exc}") from None
    if not laws:
        raise DataError(f"no operation of the {arch} architecture could be given a law")
    return laws, skipped


def _split(
    runs: pd.DataFrame, test_size: float, random_state: int
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    from sklearn.model_selection import train_test_split

    notes: list[str] = []
    columns = [c for c in ("model", "n_layers") if c in runs.columns and runs[c].notna().all()]
    index = np.arange(len(runs))
    strata = None
    if columns:
        strata = runs[columns].astype(str).agg("/".join, axis=1)
        counts = strata.map(strata.value_counts())
        strata = strata.where(counts >= 2, "other")
        if strata.value_counts().min() < 2 or strata.nunique() > test_size * len(runs):
            notes.append(f"split not stratified: too few runs per {'/'.join(columns)} group")
            strata, columns = None, []
    train, test = train_test_split(
        index, test_size=test_size, random_state=random_state, stratify=strata
    )
    return np.sort(train), np.sort(test), columns, notes


def _quality(y: np.ndarray, pred: np.ndarray, prefix: str) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, r2_score

    return {
        f"{prefix}_r2": float(r2_score(y, pred)),
        f"{prefix}_mae_j": float(mean_absolute_error(y, pred)),
        f"{prefix}_mape": float(mean_absolute_percentage_error(y, pred)),
    }


def row_digests(X: pd.DataFrame, y: Any, arch: str) -> list[str]:
    """A short digest per run (its required configuration columns and energy).

    Identifies the same measured run across fits (whatever optional columns each
    fit used), so that two versions can be scored on runs neither trained on.
    """
    required, _ = model_input_columns(arch)
    values = X[[c for c in required if c in X.columns]].to_numpy(dtype=float)
    energy = np.asarray(y, dtype=float)
    return [
        hashlib.sha256(repr((row.tolist(), float(e))).encode()).hexdigest()[:16]
        for row, e in zip(values, energy, strict=True)
    ]


def version_tags(fit: FittedCoefficients) -> dict[str, str]:
    """Tags of a fit's run and model version: what it is, on which data, and its check.

    ``powerfit.gpu``, ``powerfit.arch``, ``powerfit.precision`` (of the operation
    measurements the laws were fitted on), ``powerfit.energy_model`` (``paper``,
    ``step`` or ``custom``), ``powerfit.data_sha256`` and ``powerfit.physics``
    (:meth:`PhysicsCheck.summary`, when the fit was checked); with reused laws
    (``laws_from``) also ``powerfit.laws_from`` (the profile's name) and
    ``powerfit.laws_precision``.
    """
    tags = {
        "powerfit.gpu": fit.gpu,
        "powerfit.arch": fit.arch,
        "powerfit.precision": fit.precision or "unknown",
        "powerfit.energy_model": fit.energy_model,
        "powerfit.data_sha256": fit.data["sha256"],
    }
    if fit.laws_from:
        tags["powerfit.laws_from"] = fit.laws_from
        tags["powerfit.laws_precision"] = fit.laws_precision or "unknown"
    if fit.physics is not None:
        tags["powerfit.physics"] = fit.physics.summary()[:4000]
    return tags


def run_name(fit: FittedCoefficients) -> str:
    """The MLflow run name of a fit: GPU, architecture, precision, energy model, data.

    Examples: ``NVIDIA A100 80GB PCIe / transformer / tf32 / paper / data 3f2a9c1b0d4e``.
    """
    return (
        f"{fit.gpu} / {fit.arch} / {fit.precision or 'unknown'} / {fit.energy_model} / "
        f"data {fit.data['sha256'][:12]}"
    )


def fit_coefficients(
    store: Any,
    gpu: str,
    arch: str = "transformer",
    *,
    operations: Any = None,
    energy_model: str | EnergyModelFactory = "paper",
    law_params: Mapping[str, Any] | None = None,
    test_size: float = 0.33,
    random_state: int = 0,
    precision: str | None = None,
    laws_from: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> FittedCoefficients:
    """Fit the efficiency laws and the energy model of one GPU and architecture.

    Parameters
    ----------
    store : powerfit.store.Store
        The measurement store to read.
    gpu : str
        GPU name or alias (:func:`powerfit.hardware.gpus.get_gpu`).
    arch : {'transformer', 'lstm', 'gru'}, default 'transformer'
    operations : sequence of str, optional
        Operations to fit laws for; default every measured operation of ``arch``
        except those of :data:`NO_LAW_OPERATIONS` (reported in ``skipped``).
    energy_model : {'paper', 'step'} or callable, default 'paper'
        A name of :data:`ENERGY_MODELS`, or a factory
        ``energy_model(laws, arch=arch, peak_flops={gpu: peak})`` returning the
        unfitted estimator from configurations to energy [J]. A model with a
        ``predict_time`` method in its last step (the step model) is fitted with
        the measured step durations too, when every run has one.
    law_params : dict, optional
        Keyword arguments of :class:`~powerfit.paper.laws.PowerLawEfficiency`.
    test_size : float, default 0.33
        Fraction of the run measurements held out for evaluation.
    random_state : int, default 0
        Seed of the split.
    precision : str, optional
        Use only the measurements of this precision (``fp32``, ``tf32``, ``fp16``,
        ``bf16``, ``amp-fp16``, ``amp-bf16``); default all, which must then be of
        one precision (:func:`powerfit.store.queries.single_precision`).
    laws_from : str, optional
        A bundled profile (:func:`powerfit.paper.profiles.available_profiles`) whose
        published efficiency laws are reused, for a store with training steps but
        no operation measurements: only the energy model is fitted, on the store's
        runs. The profile must be of ``arch`` and its laws of the runs' precision;
        an explicit ``precision`` of other runs reuses them anyway, with a note. On
        another GPU than the profile's, the laws are applied as fractions of that
        GPU's peak at the laws' precision (a note says so). Recorded as the tags
        ``powerfit.laws_from`` and ``powerfit.laws_precision`` (:func:`version_tags`).
    progress : callable, optional
        Called with the name of each stage as it starts (reading the store, the
        laws, the energy model, its evaluation, the physics check).

    Returns
    -------
    FittedCoefficients

    Raises
    ------
    DataError
        No measurements of that GPU and architecture (the message lists what the
        store holds; without operation measurements it names ``--laws-from`` and
        ``powerfit measure ops``), too few runs to split, or a profile of another
        architecture or precision.
    ConvergenceError
        An efficiency law did not converge (names the operation).

    Notes
    -----
    Runs on several GPUs (``gpu_count`` > 1, e.g. CodeCarbon's
    ``4 x NVIDIA A100-SXM4-40GB``) are fitted on their energy per GPU: a
    data-parallel step on N GPUs costs N times one GPU's step with the same
    per-GPU batch, so the models predict one GPU's energy of a step.
    """
    from powerfit.hardware.gpus import get_gpu
    from powerfit.store.queries import single_precision

    stage = progress or (lambda name: None)
    arch = arch.lower()
    if arch not in _flops.OPERATIONS:
        raise DataError(f"arch must be one of {', '.join(_flops.ARCHITECTURES)}, got {arch!r}")
    model_name = energy_model if isinstance(energy_model, str) else "custom"
    if isinstance(energy_model, str):
        if energy_model not in ENERGY_MODELS:
            raise ValueError(
                f"energy_model must be one of {sorted(ENERGY_MODELS)} or a factory, "
                f"got {energy_model!r}"
            )
        energy_model = ENERGY_MODELS[energy_model]
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {plain(test_size)!r}")
    if laws_from is not None and law_params:
        raise ValueError("law_params has no effect with laws_from: the laws are not fitted")
    try:
        gpu = get_gpu(gpu).name
    except ValueError:
        pass
    stage("reading the store")
    runs = store.run_measurements(gpu, arch, precision=precision)
    law_notes: list[str] = []
    if laws_from is None:
        ops = store.operation_measurements(gpu, arch, precision=precision)
        if ops.empty or runs.empty:
            raise _no_measurements(store, "operation" if ops.empty else "run", gpu, arch)
        single_precision(ops, f"operation measurements of {gpu!r} / {arch}")
        single_precision(runs, f"run measurements of {gpu!r} / {arch}")
        peaks = ops["peak_flops"].dropna().unique()
        if len(peaks) != 1:
            raise DataError(
                f"the operation measurements of {gpu!r} / {arch} mix precisions with "
                f"different peak throughputs ({plain(sorted(peaks))} FLOP/s); fit one "
                "precision at a time"
            )
        peak = float(peaks[0])
        stage("fitting the efficiency laws")
        laws, skipped = _fit_laws(ops, arch, operations, law_params)
        laws_precision = ",".join(sorted(map(str, ops["precision"].dropna().unique())))
        run_precision = laws_precision
    else:
        if runs.empty:
            raise _no_measurements(store, "run", gpu, arch)
        run_precision = single_precision(runs, f"run measurements of {gpu!r} / {arch}") or ""
        profile, laws, peak, law_notes = _reused_laws(
            store, laws_from, gpu, arch, run_precision or None, precision is not None, operations
        )
        laws_precision = profile.precision
        skipped = {}
        ops = pd.DataFrame(
            {
                "operation": pd.Series(dtype=str),
                "flops": pd.Series(dtype=float),
                "efficiency": pd.Series(dtype=float),
                "import_id": pd.Series(dtype="int64"),
            }
        )

    required, optional = model_input_columns(arch, model_name)
    runs, present, input_notes = _select_inputs(runs, required, optional)
    X = runs[required + present].copy()
    for column in X.columns:
        X[column] = X[column].astype(str) if column == "model" else X[column].astype(float)
    y, count_notes = _per_gpu_energy(runs)
    if len(runs) < 10:
        left_out = f" ({'; '.join(input_notes)})" if input_notes else ""
        raise DataError(
            f"{len(runs)} usable run measurements of {gpu!r} / {arch}{left_out}: need at least 10"
        )
    train, test, stratify, notes = _split(runs, test_size, random_state)
    notes = law_notes + input_notes + count_notes + notes
    stage("fitting the energy model")
    model = energy_model({gpu: dict(laws)}, arch=arch, peak_flops={gpu: peak})
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    duration = pd.to_numeric(runs["duration_s"], errors="coerce").to_numpy(dtype=float)
    if hasattr(final, "predict_time") and np.all(np.isfinite(duration) & (duration > 0)):
        model.fit(X.iloc[train].assign(duration_s=duration[train]), y.iloc[train])
    else:
        model.fit(X.iloc[train], y.iloc[train])

    stage("evaluating on the held-out runs")
    metrics: dict[str, float] = {}
    coefficients: dict[str, float] = {}
    for op, law in laws.items():
        for key, value in law.coefficients_.items():
            coefficients[f"law.{op}.{key}"] = float(value)
        if laws_from is None:
            metrics[f"law.{op}.r2"] = float(law.r2_)
            metrics[f"law.{op}.n"] = float(law.n_samples_fit_)
    if hasattr(final, "coefficients_"):
        for key, value in final.coefficients_.items():
            coefficients["h" if key == "intercept" else f"h.{key}"] = float(value)
    metrics |= _quality(y.iloc[train].to_numpy(), model.predict(X.iloc[train]), "train")
    metrics |= _quality(y.iloc[test].to_numpy(), model.predict(X.iloc[test]), "test")
    notes += [f"{op}: {why}; skipped" for op, why in skipped.items()]
    stage("checking the physics")
    physics = check_physics(model, X)
    metrics["physics.min_energy_j"] = physics.min_energy_j
    metrics["physics.passed"] = float(physics.passed)
    if not physics.passed:
        notes.append(
            "physics check failed, this model will not be promoted: " + "; ".join(physics.problems)
        )

    op_ids = sorted(int(i) for i in ops["import_id"].unique())
    run_ids = sorted(int(i) for i in runs["import_id"].unique())
    hashes = _import_hashes(store, sorted(set(op_ids) | set(run_ids)))
    used_ops = ops[ops["operation"].isin(list(laws))]
    digest = hashlib.sha256((_frame_sha256(used_ops) + _frame_sha256(runs)).encode())
    if laws_from is not None:
        digest.update(f"laws_from={laws_from}".encode())
    data = {
        "operation_import_ids": op_ids,
        "run_import_ids": run_ids,
        "import_sha256": {str(i): hashes.get(i, "") for i in sorted(hashes)},
        "n_operation_rows": len(used_ops),
        "n_run_rows": len(runs),
        "sha256": digest.hexdigest(),
    }
    if laws_from is not None:
        data["laws_from"] = laws_from
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X_train, X_test = X.iloc[train], X.iloc[test]
    return FittedCoefficients(
        gpu=gpu,
        arch=arch,
        laws=laws,
        skipped=skipped,
        peak_flops=peak,
        model=model,
        metrics=metrics,
        coefficients=coefficients,
        X_train=X_train,
        X_test=X_test,
        y_train=y.iloc[train],
        y_test=y.iloc[test],
        stratify=stratify,
        operation_data=used_ops,
        data=data,
        notes=notes,
        energy_model=model_name,
        precision=run_precision,
        physics=physics,
        laws_from=laws_from,
        laws_precision=laws_precision,
    )


#: Names that moved out of this module serve their old path for one release, with a
#: DeprecationWarning (:mod:`powerfit._moved`).
__getattr__ = moved_getattr(__name__)
