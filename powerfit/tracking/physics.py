"""The physics check of a fitted energy model, on a grid over its whole input domain.

:func:`check_physics`: energy > 0 everywhere, and never less for more layers, tokens or
batch (:data:`MONOTONE_COLUMNS`); a model that fails it is recorded but never promoted
(:mod:`powerfit.tracking.registry`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from powerfit.paper.laws import plain

__all__ = ["MONOTONE_COLUMNS", "PhysicsCheck", "check_physics"]

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
