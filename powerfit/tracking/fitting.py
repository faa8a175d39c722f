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
   by model family and layer count where those columns exist);
4. a physics check of the fitted model on a grid over its whole input domain
   (:func:`check_physics`: energy > 0 everywhere, never less for more layers,
   tokens or batch); a model that fails it is recorded but never promoted
   (:mod:`powerfit.tracking.registry`).

Runs lacking a required input or the energy are left out, and an optional input
given in only part of the runs is either used (the runs lacking it left out) or
not used at all (:func:`_select_inputs` states the rule); every such decision is a
note of the fit, never silent.

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
from powerfit.laws import plain
from powerfit.pipeline import REQUIRED_COLUMNS

__all__ = [
    "ENERGY_MODELS",
    "MONOTONE_COLUMNS",
    "NO_LAW_OPERATIONS",
    "EnergyModelFactory",
    "FittedCoefficients",
    "PhysicsCheck",
    "check_physics",
    "default_energy_model",
    "fit_coefficients",
    "model_input_columns",
    "row_digests",
    "run_name",
    "step_energy_model",
    "version_tags",
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


#: Inputs along which the energy of a training step can never decrease: more
#: layers, more tokens per sequence or a larger batch never cost less.
MONOTONE_COLUMNS: tuple[str, ...] = ("n_layers", "seq_len", "batch_size")

#: Points per input of the physics check's grid.
_GRID_POINTS = 6
#: Base configurations of the physics check (seeded sample of the grid).
_GRID_BASES = 200


@dataclass
class PhysicsCheck:
    """Whether a fitted energy model is physically sane on its input domain.

    Attributes
    ----------
    passed : bool
        Every prediction on the grid is finite and > 0 [J], and the energy never
        decreases along :data:`MONOTONE_COLUMNS`.
    problems : list of str
        What failed, one line per kind of failure (first example and count).
    n_points : int
        Configurations predicted.
    min_energy_j : float
        Smallest prediction on the grid [J].
    domain : dict of str to list
        The grid values of each input.
    """

    passed: bool
    problems: list[str]
    n_points: int
    min_energy_j: float
    domain: dict[str, list[Any]]

    def summary(self) -> str:
        """One line: 'passed (N configurations)' or 'failed: <problems>'."""
        if self.passed:
            return f"passed ({self.n_points} configurations, min {self.min_energy_j:.4g} J)"
        return "failed: " + "; ".join(self.problems)


def _powers_of_two(high: float) -> list[float]:
    top = max(1, int(np.ceil(np.log2(max(float(high), 1.0)))))
    exponents = np.unique(np.round(np.linspace(0, top, _GRID_POINTS)).astype(int))
    return [float(2**e) for e in exponents]


def _grid_domain(X: pd.DataFrame) -> dict[str, list[Any]]:
    domain: dict[str, list[Any]] = {}
    for column in X.columns:
        if column == "model" or not pd.api.types.is_numeric_dtype(X[column]):
            domain[column] = sorted(X[column].dropna().astype(str).unique().tolist())
            continue
        high = 2.0 * float(np.nanmax(X[column].to_numpy(dtype=float)))
        domain[column] = _powers_of_two(high)
    return domain


def _describe(row: pd.Series) -> str:
    return ", ".join(
        f"{k}={plain(v):g}" if isinstance(plain(v), float) else f"{k}={plain(v)}"
        for k, v in row.items()
    )


def check_physics(model: Any, X: pd.DataFrame, *, random_state: int = 0) -> PhysicsCheck:
    """Check a fitted energy model on a grid over the input domain it accepts.

    The domain: every numeric input from 1 (the smallest size a model accepts) to
    twice the largest value in ``X``, on powers of two (``_GRID_POINTS`` values; a
    Transformer's ``n_heads`` is kept ≤ ``d_model``, so that it divides it), and
    every value of a text input (``model``) seen in ``X``. A seeded sample of
    ``_GRID_BASES`` base configurations (plus the all-smallest and the
    all-largest) is predicted, then each base again with each input of
    :data:`MONOTONE_COLUMNS` swept over its grid.

    The model is sane when every prediction is finite and > 0 [J] and no sweep
    ever goes down (relative tolerance 1e-9).

    Parameters
    ----------
    model : estimator
        Fitted; ``predict`` takes configurations and returns energy [J].
    X : pandas.DataFrame
        The configurations the model was trained with (its input columns).
    random_state : int, default 0
        Seed of the sample of base configurations.

    Returns
    -------
    PhysicsCheck
    """
    domain = _grid_domain(X)
    rng = np.random.default_rng(random_state)
    bases = pd.DataFrame(
        {c: rng.choice(np.asarray(v, dtype=object), _GRID_BASES) for c, v in domain.items()}
    )
    corners = pd.DataFrame(
        [{c: v[0] for c, v in domain.items()}, {c: v[-1] for c, v in domain.items()}]
    )
    bases = pd.concat([corners, bases], ignore_index=True)
    if "n_heads" in bases and "d_model" in bases:
        heads = bases["n_heads"].astype(float)
        bases["n_heads"] = np.minimum(heads, bases["d_model"].astype(float))
    sweeps = [c for c in MONOTONE_COLUMNS if c in domain and len(domain[c]) > 1]
    frames, keys = [bases.assign(_sweep="", _base=np.arange(len(bases)))], []
    for column in sweeps:
        for value in domain[column]:
            frames.append(
                bases.assign(**{column: value, "_sweep": column}).assign(
                    _base=np.arange(len(bases))
                )
            )
        keys.append(column)
    grid = pd.concat(frames, ignore_index=True)
    inputs = grid.drop(columns=["_sweep", "_base"])
    for column in inputs.columns:
        inputs[column] = (
            inputs[column].astype(str) if column == "model" else inputs[column].astype(float)
        )
    problems: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = np.asarray(model.predict(inputs), dtype=float).reshape(-1)
    except (ValueError, ArithmeticError) as exc:
        return PhysicsCheck(
            False, [f"cannot predict on the grid: {exc}"], len(inputs), float("nan"), domain
        )
    bad = ~np.isfinite(pred) | (pred <= 0)
    if bad.any():
        first = int(np.argmax(bad))
        problems.append(
            f"predicts {plain(pred[first]):.4g} J (energy must be > 0) for "
            f"{_describe(inputs.iloc[first])}; {int(bad.sum())} of {len(pred)} grid "
            "configurations are not > 0"
        )
    for column in keys:
        rows = np.flatnonzero(grid["_sweep"].to_numpy() == column)
        series = pred[rows].reshape(len(domain[column]), len(bases))  # value x base
        drop = series[1:] < series[:-1] - 1e-9 * np.abs(series[:-1])
        if drop.any():
            step, base = np.argwhere(drop)[0]
            before = inputs.iloc[rows[step * len(bases) + base]]
            lo, hi = domain[column][step], domain[column][step + 1]
            problems.append(
                f"energy decreases with {column}: {plain(series[step, base]):.4g} J at "
                f"{column}={lo:g} but {plain(series[step + 1, base]):.4g} J at {column}={hi:g} "
                f"({_describe(before.drop(labels=column))}); in {int(drop.any(axis=0).sum())} "
                f"of {len(bases)} sweeps"
            )
    finite = pred[np.isfinite(pred)]
    return PhysicsCheck(
        passed=not problems,
        problems=problems,
        n_points=len(pred),
        min_energy_j=float(finite.min()) if finite.size else float("nan"),
        domain=domain,
    )


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


def _select_inputs(
    runs: pd.DataFrame, required: list[str], optional: list[str]
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Rows and optional columns of a fit, with a note for everything left out.

    Rules (never silent):

    * a run without a measured energy, or lacking a required input, is left out
      (a note counts them);
    * an optional input given in every run is used; given in none, it is not;
    * given in some runs only: when at least half the runs and at least 10 have
      it, it is used and the runs lacking it are left out; otherwise it is not
      used at all. Either way a note says how many runs lacked it. No value is
      imputed (a default vocabulary or feed-forward width would be a guess).
    """
    notes: list[str] = []
    n_all = len(runs)
    missing = [c for c in required if c not in runs.columns]
    if missing:
        raise DataError(f"the run measurements lack the column(s) {', '.join(missing)}")
    no_energy = runs["energy_j"].isna().to_numpy()
    if no_energy.any():
        notes.append(f"{int(no_energy.sum())} of {n_all} runs have no measured energy: left out")
    runs = runs[~no_energy]
    lacking = runs[required].apply(pd.to_numeric, errors="coerce").isna()
    if lacking.any(axis=None):
        counts = lacking.sum()
        what = ", ".join(f"{c} ({int(n)})" for c, n in counts.items() if n)
        notes.append(
            f"{int(lacking.any(axis=1).sum())} of {len(runs)} runs lack a required input "
            f"({what}): left out of this fit"
        )
        runs = runs[~lacking.any(axis=1)]
    present: list[str] = []
    for column in optional:
        if column == "gpu" or column not in runs.columns:
            continue
        given = runs[column].notna()
        n_given = int(given.sum())
        if n_given == 0:
            continue
        if n_given == len(runs):
            present.append(column)
        elif n_given >= max(10, len(runs) / 2):
            notes.append(
                f"{len(runs) - n_given} of {len(runs)} runs lack the optional input {column}: "
                f"left out of this fit, which uses {column}"
            )
            runs = runs[given]
            present.append(column)
        else:
            notes.append(
                f"the optional input {column} is given in only {n_given} of {len(runs)} runs: "
                "not used by this fit"
            )
    return runs.reset_index(drop=True), present, notes


def _profiles_hint(arch: str, precision: str | None = None) -> str:
    """The bundled profiles with laws for ``arch`` (and ``precision``), for a message."""
    from powerfit.profiles import available_profiles, load_profile

    listed = []
    for name in available_profiles():
        profile = load_profile(name)
        if profile.arch == arch and precision in (None, profile.precision):
            listed.append(f"{name}: {profile.precision} laws of {profile.gpu}")
    return "; ".join(listed) or "none bundled"


def _no_measurements(store: Any, kind: str, gpu: str, arch: str) -> DataError:
    message = (
        f"no {kind} measurements for GPU {gpu!r} and architecture {arch!r} in the store "
        f"{store.url}. "
    )
    if kind == "operation":  # the hint first: the CLI shows the first 600 characters
        message += (
            "To fit the energy model on training steps alone, measure the operations "
            "(`powerfit measure ops`, then ingest them) or reuse a bundled profile's "
            f"efficiency laws with --laws-from PROFILE (laws_from= in Python; "
            f"{_profiles_hint(arch)}). "
        )
    return DataError(message + f"It holds: {_store_summary(store)}")


def _gpu_peak(store: Any, gpu: str, precision: str) -> float | None:
    """Peak [FLOP/s] of a catalogue or store GPU at ``precision`` (None: not known)."""
    from powerfit.hardware import get_gpu
    from powerfit.store.gpus import store_gpus
    from powerfit.store.validation import peak_precision

    try:
        spec = get_gpu(gpu)
    except ValueError:
        stored = store_gpus(store.engine).get(gpu)
        if stored is None:
            return None
        spec = stored[0]
    return spec.peak_flops.get(peak_precision(precision))


def _reused_laws(
    store: Any,
    name: str,
    gpu: str,
    arch: str,
    run_precision: str | None,
    explicit_precision: bool,
    operations: Any,
) -> tuple[Any, dict[str, Any], float, list[str]]:
    """(profile, laws, peak [FLOP/s], notes) of ``fit_coefficients(laws_from=name)``.

    The rules: the profile must be of ``arch``; its laws' precision must be that of
    the run measurements, unless the precision was chosen explicitly (then a note
    says the laws are of another precision); on another GPU than the profile's the
    laws are applied as fractions of that GPU's peak at the laws' precision.
    """
    from powerfit.profiles import load_profile

    profile = load_profile(name)
    if profile.arch != arch:
        raise DataError(
            f"profile {name!r} has laws of {profile.arch} operations, not {arch}; "
            f"profiles for {arch}: {_profiles_hint(arch)}"
        )
    notes: list[str] = []
    if run_precision is not None and run_precision != profile.precision:
        if not explicit_precision:
            raise DataError(
                f"profile {name!r} holds {profile.precision} laws but the run measurements "
                f"of {gpu!r} / {arch} are {run_precision}: an efficiency is a fraction of one "
                f"precision's peak, and {profile.precision} laws do not time "
                f"{run_precision} operations. Choose a profile of {run_precision} laws "
                f"({_profiles_hint(arch, run_precision)}), measure the operations at "
                f"{run_precision} "
                f"(`powerfit measure ops`), or pass --precision {run_precision} "
                f"(precision= in Python) to reuse the {profile.precision} laws for these "
                f"{run_precision} steps anyway"
            )
        notes.append(
            f"{profile.precision} laws of profile {name} reused for {run_precision} steps "
            f"(precision {run_precision} chosen explicitly): durations are those of "
            f"{profile.precision} operations"
        )
    if gpu == profile.gpu:
        peak = profile.peak_flops
    else:
        found = _gpu_peak(store, gpu, profile.precision)
        if found is None:
            raise DataError(
                f"profile {name!r} holds {profile.precision} laws of {profile.gpu}; {gpu!r} "
                f"has no {profile.precision} peak to apply them to (powerfit gpus shows its "
                "specs)"
            )
        peak = float(found)
        notes.append(
            f"laws of {profile.gpu} (profile {name}) applied to {gpu} as fractions of its "
            f"{profile.precision} peak ({peak:.4g} FLOP/s)"
        )
    laws = profile.law_estimators()
    if operations is not None:
        unknown = [op for op in operations if op not in laws]
        if unknown:
            raise DataError(
                f"profile {name!r} has no law for {', '.join(map(repr, unknown))}; "
                f"it has {', '.join(laws)}"
            )
        laws = {op: laws[op] for op in operations}
    laws = {op: law for op, law in laws.items() if op not in NO_LAW_OPERATIONS}
    return profile, laws, peak, notes


def _per_gpu_energy(runs: pd.DataFrame) -> tuple[pd.Series, list[str]]:
    """Energy of one GPU's share of each step [J]: the measured total over ``gpu_count``.

    A data-parallel step on N GPUs runs the configuration (``batch_size`` per GPU)
    on each of them: its measured energy is N times one GPU's. The energy models
    predict one GPU's energy per step, so the total is divided by ``gpu_count``
    (missing: 1).
    """
    energy = runs["energy_j"].astype(float)
    if "gpu_count" not in runs.columns:
        return energy, []
    count = pd.to_numeric(runs["gpu_count"], errors="coerce").fillna(1).astype(float)
    several = count > 1
    if not several.any():
        return energy, []
    counts = ", ".join(
        f"{int(n)} on {int(c)} GPUs" for c, n in count[several].value_counts().items()
    )
    note = (
        f"{int(several.sum())} of {len(runs)} runs ran on several GPUs ({counts}): their "
        "energy is divided by their GPU count; the model predicts one GPU's energy per "
        "step (batch_size per GPU)"
    )
    return energy / count, [note]


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
    precision : str, optional
        Use only the measurements of this precision (``fp32``, ``tf32``, ``fp16``,
        ``bf16``, ``amp-fp16``, ``amp-bf16``); default all, which must then be of
        one precision (:func:`powerfit.store.queries.single_precision`).
    laws_from : str, optional
        A bundled profile (:func:`powerfit.profiles.available_profiles`) whose
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
    from powerfit.hardware import get_gpu
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
