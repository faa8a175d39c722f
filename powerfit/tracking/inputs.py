"""The store's rows a fit reads, and the published laws it may reuse instead of fitting.

Which runs and optional inputs a fit uses (:func:`_select_inputs` states the rule;
every decision is a note of the fit), the per-GPU energy of the runs, the explanation
when the store holds no measurement of a (GPU, architecture) pair, and the laws of a
bundled profile reused with ``powerfit fit --laws-from``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from powerfit.exceptions import DataError

__all__ = ["NO_LAW_OPERATIONS"]

#: Operations measured in the published data for which the method has no efficiency
#: law (the softmax is memory-bound: its efficiency does not saturate with FLOPs, the
#: law fits it with R² ≈ 0.2, and the paper's energy model leaves it out).
NO_LAW_OPERATIONS: frozenset[str] = frozenset({"attention_softmax"})


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
    from powerfit.paper.profiles import available_profiles, load_profile

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
    from powerfit.hardware.gpus import get_gpu
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
    from powerfit.paper.profiles import load_profile

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
