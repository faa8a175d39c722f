"""The step-energy model's boosted correction, kept as plain arrays and predicted fast.

The correction of :class:`~powerfit.paper.step_energy.StepEnergyRegressor` is a
scikit-learn ``HistGradientBoostingRegressor``; :func:`_flatten_trees` keeps its trees
as NumPy arrays (so that a fitted model is JSON-describable, no pickle), and
:func:`_predict_trees` predicts from them: once per *cell* of rows that no threshold
separates, with scikit-learn's compiled predictors rebuilt from the arrays
(:class:`_CompiledTrees`), or the NumPy walk :func:`_walk_trees` where that private
API is unavailable. Bit for bit the fitted model's own ``predict``.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd


def _flatten_trees(model: Any) -> dict[str, np.ndarray]:
    """The trees of a fitted HistGradientBoostingRegressor as plain arrays.

    Node indices are made global (one array for all trees), so that the fitted
    model holds NumPy arrays only (JSON-describable, no pickle). Prediction
    (:func:`_predict_trees`) derives what it needs from them once per model: the
    thresholds of each feature and scikit-learn's compiled predictors.
    ``tests/paper/test_trees.py`` checks it against ``model.predict`` and against the
    NumPy walk :func:`_walk_trees`.
    """
    nodes = [predictor.nodes for stage in model._predictors for predictor in stage]
    sizes = np.array([len(n) for n in nodes])
    offsets = np.r_[0, np.cumsum(sizes)[:-1]]
    every = np.concatenate(nodes)
    shift = np.repeat(offsets, sizes)
    return {
        "feature": every["feature_idx"].astype(np.int64),
        "threshold": every["num_threshold"].astype(float),
        "missing_left": every["missing_go_to_left"].astype(bool),
        "left": every["left"].astype(np.int64) + shift,
        "right": every["right"].astype(np.int64) + shift,
        "leaf": every["is_leaf"].astype(bool),
        "value": every["value"].astype(float),
        "roots": offsets.astype(np.int64),
        "depth": np.array([int(every["depth"].max()) if len(every) else 0]),
        "baseline": np.asarray(model._baseline_prediction, dtype=float).ravel()[:1],
    }


def _walk_trees(trees: Mapping[str, np.ndarray], X: np.ndarray, chunk: int = 20_000) -> np.ndarray:
    """Sum of the flattened trees' leaf values (no baseline): a vectorised NumPy walk.

    All trees advance one level at a time over a (n_trees, n_rows) block of node
    indices. Slow (every tree, every row, every level) but dependent on NumPy
    alone: the reference of :func:`_predict_trees`, and its fallback.
    """
    out = np.empty(len(X))
    roots = trees["roots"]
    for start in range(0, len(X), chunk):
        block = X[start : start + chunk]
        rows = np.arange(len(block))[None, :]
        node = np.repeat(roots[:, None], len(block), axis=1)
        for _ in range(int(trees["depth"][0])):
            x = block[rows, trees["feature"][node]]
            below = x <= trees["threshold"][node]
            go_left = np.where(np.isnan(x), trees["missing_left"][node], below)
            step = np.where(go_left, trees["left"][node], trees["right"][node])
            node = np.where(trees["leaf"][node], node, step)
        out[start : start + chunk] = trees["value"][node].sum(axis=0)
    return out


class _CompiledTrees:
    """What predicting with flattened trees needs, derived once from their arrays.

    * ``thresholds``: per feature, the sorted distinct thresholds the trees compare
      it with. A row's path through every tree depends only on where each of its
      features falls among them (its *cell*: ``x <= t`` for a sorted threshold
      ``t_k`` exactly when fewer than k + 1 thresholds are below x), so rows of the
      same cell have the same prediction and are predicted once.
    * ``sum_trees``: the sum of scikit-learn's compiled predictors of the trees,
      rebuilt from the arrays (:func:`_sklearn_predictors`; None where that private
      API is unavailable: the NumPy walk :func:`_walk_trees` is used then).
    """

    def __init__(self, trees: Mapping[str, np.ndarray], n_features: int) -> None:
        split = ~np.asarray(trees["leaf"], dtype=bool)
        feature = np.asarray(trees["feature"])
        threshold = np.asarray(trees["threshold"], dtype=float)
        self.thresholds = [np.unique(threshold[split & (feature == j)]) for j in range(n_features)]
        self.sum_trees = _sklearn_predictors(trees)


def _sklearn_predictors(trees: Mapping[str, np.ndarray]) -> Any:
    """A function summing scikit-learn's compiled predictions of every tree (or None).

    The trees are rebuilt as the node records of scikit-learn's
    ``HistGradientBoosting`` predictors (a private API: None where it is missing or
    laid out differently, and the NumPy walk is used).
    """
    try:
        from sklearn.ensemble._hist_gradient_boosting._predictor import (
            _predict_from_raw_data,
        )
        from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
    except ImportError:  # pragma: no cover - a scikit-learn without these modules
        return None
    needed = {"value", "feature_idx", "num_threshold", "missing_go_to_left", "left", "right"}
    if not needed | {"is_leaf"} <= set(PREDICTOR_RECORD_DTYPE.names or ()):
        return None  # pragma: no cover - another record layout
    roots = np.asarray(trees["roots"], dtype=np.int64)
    ends = np.r_[roots[1:], len(trees["feature"])]
    leaf = np.asarray(trees["leaf"], dtype=bool)
    records = []
    for start, end in zip(roots, ends, strict=True):
        part = slice(start, end)
        nodes = np.zeros(end - start, dtype=PREDICTOR_RECORD_DTYPE)
        nodes["value"] = trees["value"][part]
        nodes["feature_idx"] = trees["feature"][part]
        nodes["num_threshold"] = trees["threshold"][part]
        nodes["missing_go_to_left"] = trees["missing_left"][part]
        nodes["is_leaf"] = leaf[part]
        nodes["left"] = np.where(leaf[part], 0, trees["left"][part] - start)
        nodes["right"] = np.where(leaf[part], 0, trees["right"][part] - start)
        records.append(nodes)
    no_bitsets = np.zeros((0, 8), dtype=np.uint32)
    threads = _openmp_effective_n_threads()

    def sum_trees(X: np.ndarray) -> np.ndarray:
        f_idx_map = np.zeros(X.shape[1], dtype=np.uint32)
        # A thread team per tree costs more than it saves on a few thousand rows
        # (and far more on a busy machine).
        n_threads = threads if len(X) >= _THREADED_ROWS else 1
        total, tree = np.zeros(len(X)), np.empty(len(X))
        for nodes in records:
            _predict_from_raw_data(nodes, X, no_bitsets, no_bitsets, f_idx_map, n_threads, tree)
            total += tree
        return total

    return sum_trees


#: Most cells the integer key of :func:`_cells` may number (it must fit in int64).
_CELLS_LIMIT = 2**62

#: Distinct cells from which the compiled trees run on several threads.
_THREADED_ROWS = 50_000

#: Compiled trees by the identity of their ``value`` array (checked by a weak reference).
_COMPILED: dict[int, tuple[Any, _CompiledTrees]] = {}


def _compiled(trees: Mapping[str, np.ndarray], n_features: int) -> _CompiledTrees:
    """The :class:`_CompiledTrees` of ``trees``, cached while its arrays live."""
    key = id(trees["value"])
    hit = _COMPILED.get(key)
    if hit is not None and hit[0]() is trees["value"] and len(hit[1].thresholds) == n_features:
        return hit[1]
    compiled = _CompiledTrees(trees, n_features)
    try:
        ref = weakref.ref(trees["value"], lambda _, key=key: _COMPILED.pop(key, None))
    except TypeError:  # not weakly referenceable: do not cache
        return compiled
    _COMPILED[key] = (ref, compiled)
    return compiled


#: Most thresholds of a feature counted by comparisons rather than a binary search
#: (:func:`numpy.searchsorted`, slow on unsorted values): on a million rows, 128
#: vectorised comparisons counted in one byte per row take half its time, 8 a tenth.
#: The count, and the NaN code one past it, must fit in that byte.
_COMPARED_THRESHOLDS = 128


def _feature_columns(X: Any) -> list[np.ndarray]:
    """The columns of a 2-d array of features (or a sequence of columns) as float arrays."""
    if isinstance(X, np.ndarray) or not isinstance(X, (list, tuple)):
        X = np.asarray(X, dtype=float)
        if X.ndim != 2:
            raise ValueError(f"X must be a 2-d array of features, got shape {X.shape}")
        return list(X.T)
    return [np.asarray(x, dtype=float) for x in X]


def _cells(X: Any, thresholds: list[np.ndarray]) -> np.ndarray | None:
    """One integer per row naming its cell among the thresholds (None: too many cells).

    Feature j's code is the number of its thresholds below x (``x <= t_k`` exactly
    when that number is at most k), or one past the largest code for NaN; the codes
    are combined in mixed radix. ``X`` is a 2-d array or a sequence of its columns
    (contiguous columns are read fastest).
    """
    columns = _feature_columns(X)
    n = len(columns[0]) if columns else 0
    radix = [len(values) + 2 for values in thresholds if len(values)]
    cells = 1
    for size in radix:  # exact (Python integers)
        cells *= size
    if cells > _CELLS_LIMIT:
        return None
    dtype = np.int32 if cells <= np.iinfo(np.int32).max else np.int64
    key, term = np.zeros(n, dtype=dtype), np.empty(n, dtype=dtype)
    small = np.empty(n, dtype=np.uint8)
    stride = 1
    for x, values in zip(columns, thresholds, strict=True):
        if len(values) == 0:  # no tree reads this feature
            continue
        if len(values) <= _COMPARED_THRESHOLDS:  # comparisons beat a binary search
            code = small
            code[:] = 0
            for t in values:
                code += x > t
        else:
            code = np.searchsorted(values, x, side="left")
        missing = np.isnan(x)
        if missing.any():
            code[missing] = len(values) + 1
        np.multiply(code, stride, out=term, dtype=dtype, casting="unsafe")
        key += term
        stride *= len(values) + 2
    return key


def _predict_trees(trees: Mapping[str, np.ndarray], X: Any, chunk: int = 20_000):
    """Sum of the flattened trees' leaf values plus the baseline, per row of X.

    ``X`` is a 2-d array of features or a sequence of its columns. Rows are grouped
    by their cell among the trees' thresholds (see :class:`_CompiledTrees`), each
    distinct cell is predicted once, by scikit-learn's compiled tree predictors
    where available (the NumPy walk :func:`_walk_trees` otherwise, by blocks of
    ``chunk`` rows), trees summed in their order.
    """
    columns = _feature_columns(X)
    n = len(columns[0]) if columns else 0
    if n == 0:
        return np.zeros(0)
    compiled = _compiled(trees, len(columns))
    key = _cells(columns, compiled.thresholds)
    if key is None:
        inverse, first = None, slice(None)
    else:
        inverse, cells = pd.factorize(key)
        first = np.empty(len(cells), dtype=np.int64)
        first[inverse] = np.arange(n)  # any row of a cell stands for it
    unique = np.empty((n if key is None else len(first), len(columns)))
    for j, x in enumerate(columns):
        unique[:, j] = x[first]
    if compiled.sum_trees is None:
        values = _walk_trees(trees, unique, chunk)
    else:
        values = compiled.sum_trees(unique)
    values += float(trees["baseline"][0])
    return values if inverse is None else values[inverse]
