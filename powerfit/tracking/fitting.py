"""Fit a coefficient set from the measurement store, without MLflow.

One *fit* of a (GPU, architecture) pair is:

1. one :class:`~powerfit.laws.PowerLawEfficiency` per operation, fitted on the
   store's operation measurements of that pair (efficiency [fraction] against
   FLOPs of one call [FLOP]);
2. an energy model fitted on the store's run measurements of that pair
   (configurations in, energy of one training step [J] out), built by a factory
   from the fitted laws (default :func:`default_energy_model`: durations from
   the laws, then :class:`~powerfit.energy.EnergyRegressor`);
3. its evaluation on a held-out split of the run measurements (seeded, stratified
   by model family and layer count where those columns exist).

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

from powerfit import flops as _flops
from powerfit.exceptions import ConvergenceError, DataError
from powerfit.pipeline import REQUIRED_COLUMNS

__all__ = [
    "ENERGY_MODELS",
    "NO_LAW_OPERATIONS",
    "EnergyModelFactory",
    "FittedCoefficients",
    "default_energy_model",
    "fit_coefficients",
    "model_input_columns",
    "step_energy_model",
]

#: Operations measured in the published data for which the method has no efficiency
#: law (the softmax is memory-bound: its efficiency does not saturate with FLOPs, the
#: law fits it with R² ≈ 0.2, and the paper's energy model leaves it out).
NO_LAW_OPERATIONS: frozenset[str] = frozenset({"attention_softmax"})

#: Signature of an energy-model factory: ``factory(laws, arch=..., peak_flops=...)``
#: returns an unfitted scikit-learn estimator from configurations to energy [J].
EnergyModelFactory = Callable[..., Any]

#: Optional input columns of the model, beside the required ones.
_OPTIONAL_COLUMNS = {"transformer": ("d_ff",), "lstm": ("seq_len",), "gru": ("seq_len",)}
#: ... and those the step model reads as well (output head, model family). Not the
#: parameter count: the model computes it from the shape, as it must for a user's
#: configuration that does not give it.
_STEP_COLUMNS = {"transformer": ("vocab_size", "model"), "lstm": (), "gru": ()}


def default_energy_model(
    laws: Mapping[str, Mapping[str, Any]],
    *,
    arch: str = "transformer",
    peak_flops: Mapping[str, float] | None = None,
) -> Any:
    """The default energy model: the paper's durations → linear energy pipeline.

    Parameters
    ----------
    laws : dict of str to dict of str to law
        GPU name → operation → law (see :class:`~powerfit.pipeline.OperationDurations`).
    arch : {'transformer', 'lstm', 'gru'}, default 'transformer'
    peak_flops : dict of str to float, optional
        GPU name → peak throughput [FLOP/s] the efficiencies were measured against.

    Returns
    -------
    sklearn.pipeline.Pipeline
        ``make_energy_pipeline(laws, ...)`` with ``EnergyRegressor()``.
    """
    from powerfit.energy import EnergyRegressor
    from powerfit.pipeline import make_energy_pipeline

    return make_energy_pipeline(
        laws, arch=arch, peak_flops=peak_flops, regressor=EnergyRegressor()
    )


def step_energy_model(
    laws: Mapping[str, Mapping[str, Any]],
    *,
    arch: str = "transformer",
    peak_flops: Mapping[str, float] | None = None,
) -> Any:
    """powerfit's training-step model: physical step time × power, with a learned correction.

    Parameters
    ----------
    laws, arch, peak_flops
        As in :func:`default_energy_model`; ``arch`` 'transformer' or 'lstm'.

    Returns
    -------
    sklearn.pipeline.Pipeline
        :func:`powerfit.models.make_step_energy_pipeline` with a seeded
        :class:`~powerfit.models.StepEnergyRegressor` (20 bootstrap refits for
        prediction intervals). :func:`fit_coefficients` fits it on the measured
        step durations ``duration_s`` [s] as well as the energies.

    Raises
    ------
    DataError
        For 'gru' (the step model covers Transformers and LSTMs).
    """
    from powerfit.models import StepEnergyRegressor, make_step_energy_pipeline

    if arch not in ("transformer", "lstm"):
        raise DataError(f"the step energy model covers transformer and lstm, not {arch!r}")
    regressor = StepEnergyRegressor(n_bootstrap=20, random_state=0)
    return make_step_energy_pipeline(laws, arch=arch, peak_flops=peak_flops, regressor=regressor)


#: Energy models by name: ``paper`` (the published method, the default) and ``step``.
ENERGY_MODELS: dict[str, EnergyModelFactory] = {
    "paper": default_energy_model,
    "step": step_energy_model,
}


def model_input_columns(arch: str, model: str = "paper") -> tuple[list[str], list[str]]:
    """(required, optional) configuration columns of a model for ``arch``.

    Parameters
    ----------
    arch : {'transformer', 'lstm', 'gru'}
    model : {'paper', 'step'}, default 'paper'
        The energy model (:data:`ENERGY_MODELS`).

    Examples
    --------
    >>> model_input_columns("transformer")
    (['n_layers', 'batch_size', 'seq_len', 'd_model', 'n_heads'], ['d_ff', 'gpu'])
    >>> model_input_columns("transformer", "step")[1]
    ['d_ff', 'vocab_size', 'model', 'gpu']
    """
    optional = [*_OPTIONAL_COLUMNS[arch]]
    if model == "step":
        optional += _STEP_COLUMNS[arch]
    return ["n_layers", *REQUIRED_COLUMNS[arch]], [*optional, "gpu"]


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
        Things a user should know (skipped operations, a stratification given up).
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


def _store_summary(store: Any) -> str:
    runs = store.run_measurements()
    ops = store.operation_measurements()
    parts = []
    for name, frame in (("operation", ops), ("run", runs)):
        if len(frame):
            counts = frame.groupby(["gpu", "arch"]).size()
            parts.append(
                f"{name} measurements: "
                + "; ".join(f"{g} / {a} ({n} rows)" for (g, a), n in counts.items())
            )
        else:
            parts.append(f"no {name} measurements")
    return ". ".join(parts)


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
    from powerfit.laws import PowerLawEfficiency

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
) -> FittedCoefficients:
    """Fit the efficiency laws and the energy model of one GPU and architecture.

    Parameters
    ----------
    store : powerfit.store.Store
        The measurement store to read.
    gpu : str
        GPU name or alias (:func:`powerfit.hardware.get_gpu`).
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
        Keyword arguments of :class:`~powerfit.laws.PowerLawEfficiency`.
    test_size : float, default 0.33
        Fraction of the run measurements held out for evaluation.
    random_state : int, default 0
        Seed of the split.

    Returns
    -------
    FittedCoefficients

    Raises
    ------
    DataError
        No measurements of that GPU and architecture (the message lists what the
        store holds), or too few runs to split.
    ConvergenceError
        An efficiency law did not converge (names the operation).
    """
    from powerfit.hardware import get_gpu

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
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    try:
        gpu = get_gpu(gpu).name
    except ValueError:
        pass
    ops = store.operation_measurements(gpu, arch)
    runs = store.run_measurements(gpu, arch)
    if ops.empty or runs.empty:
        kind = "operation" if ops.empty else "run"
        raise DataError(
            f"no {kind} measurements for GPU {gpu!r} and architecture {arch!r} in the store "
            f"{store.url}. It holds: {_store_summary(store)}"
        )
    peaks = ops["peak_flops"].dropna().unique()
    if len(peaks) != 1:
        raise DataError(
            f"the operation measurements of {gpu!r} / {arch} mix precisions with different "
            f"peak throughputs ({sorted(peaks)} FLOP/s); fit one precision at a time"
        )
    peak = float(peaks[0])
    laws, skipped = _fit_laws(ops, arch, operations, law_params)

    required, optional = model_input_columns(arch, model_name)
    runs = runs[runs["energy_j"].notna()].reset_index(drop=True)
    present = [c for c in optional if c in runs.columns and c != "gpu" and runs[c].notna().all()]
    X = runs[required + present].copy()
    for column in X.columns:
        X[column] = X[column].astype(str) if column == "model" else X[column].astype(float)
    y = runs["energy_j"].astype(float)
    if len(runs) < 10:
        raise DataError(f"{len(runs)} run measurements of {gpu!r} / {arch}: need at least 10")
    train, test, stratify, notes = _split(runs, test_size, random_state)
    model = energy_model({gpu: dict(laws)}, arch=arch, peak_flops={gpu: peak})
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    duration = pd.to_numeric(runs["duration_s"], errors="coerce").to_numpy(dtype=float)
    if hasattr(final, "predict_time") and np.all(np.isfinite(duration) & (duration > 0)):
        model.fit(X.iloc[train].assign(duration_s=duration[train]), y.iloc[train])
    else:
        model.fit(X.iloc[train], y.iloc[train])

    metrics: dict[str, float] = {}
    coefficients: dict[str, float] = {}
    for op, law in laws.items():
        for key, value in law.coefficients_.items():
            coefficients[f"law.{op}.{key}"] = float(value)
        metrics[f"law.{op}.r2"] = float(law.r2_)
        metrics[f"law.{op}.n"] = float(law.n_samples_fit_)
    if hasattr(final, "coefficients_"):
        for key, value in final.coefficients_.items():
            coefficients["h" if key == "intercept" else f"h.{key}"] = float(value)
    metrics |= _quality(y.iloc[train].to_numpy(), model.predict(X.iloc[train]), "train")
    metrics |= _quality(y.iloc[test].to_numpy(), model.predict(X.iloc[test]), "test")
    notes += [f"{op}: {why}; skipped" for op, why in skipped.items()]

    op_ids = sorted(int(i) for i in ops["import_id"].unique())
    run_ids = sorted(int(i) for i in runs["import_id"].unique())
    hashes = _import_hashes(store, sorted(set(op_ids) | set(run_ids)))
    used_ops = ops[ops["operation"].isin(list(laws))]
    digest = hashlib.sha256((_frame_sha256(used_ops) + _frame_sha256(runs)).encode()).hexdigest()
    data = {
        "operation_import_ids": op_ids,
        "run_import_ids": run_ids,
        "import_sha256": {str(i): hashes.get(i, "") for i in sorted(hashes)},
        "n_operation_rows": len(used_ops),
        "n_run_rows": len(runs),
        "sha256": digest,
    }
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
    )
