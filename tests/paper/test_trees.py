"""Tests of powerfit.paper.trees: the correction's trees as arrays, predicted bit for bit."""

import numpy as np
import pytest


def test_flattened_trees_predict_as_scikit_learn():
    from sklearn.ensemble import HistGradientBoostingRegressor

    from powerfit.paper.trees import _flatten_trees, _predict_trees

    rng = np.random.default_rng(0)
    X = rng.random((400, 4))
    X[rng.random(X.shape) < 0.1] = np.nan  # missing values take the learned branch
    y = np.nan_to_num(X[:, 0]) * 2 + np.sin(6 * np.nan_to_num(X[:, 1]))
    model = HistGradientBoostingRegressor(max_iter=40, early_stopping=False).fit(X, y)
    np.testing.assert_allclose(
        _predict_trees(_flatten_trees(model), X, chunk=97), model.predict(X), atol=1e-12
    )


def _fitted_trees(rng, n_features=4, rows=400, **settings):
    from sklearn.ensemble import HistGradientBoostingRegressor

    X = rng.random((rows, n_features))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = np.nan_to_num(X[:, 0]) * 2 + np.sin(6 * np.nan_to_num(X[:, 1]))
    settings = {"max_iter": 40, "early_stopping": False, **settings}
    return HistGradientBoostingRegressor(**settings).fit(X, y), X


@pytest.mark.parametrize("compiled", [True, False])
def test_tree_prediction_groups_rows_by_cell_exactly(compiled, monkeypatch):
    # Rows repeated, on thresholds, between them, missing or infinite: the cells
    # (and scikit-learn's compiled trees or the NumPy walk) give what the walk of
    # every row gives, bit for bit.
    from powerfit.paper import trees as tree_module
    from powerfit.paper.trees import _flatten_trees, _predict_trees, _walk_trees

    if not compiled:
        monkeypatch.setattr(tree_module, "_sklearn_predictors", lambda trees: None)
        monkeypatch.setattr(tree_module, "_COMPILED", {})
    rng = np.random.default_rng(1)
    model, X = _fitted_trees(rng)
    trees = _flatten_trees(model)
    on_thresholds = trees["threshold"][~trees["leaf"]]
    features = trees["feature"][~trees["leaf"]]
    edge = rng.random((len(on_thresholds), X.shape[1]))
    edge[np.arange(len(edge)), features] = on_thresholds
    Z = np.vstack([X, X[::-1], edge, np.nextafter(edge, np.inf)])
    Z[:7, 2] = np.inf
    Z[7:11, 3] = -np.inf
    expected = _walk_trees(trees, Z, chunk=53) + trees["baseline"][0]
    got = _predict_trees(trees, Z)
    np.testing.assert_array_equal(got, expected)
    reverse = slice(len(X), 2 * len(X))  # X itself, untouched
    np.testing.assert_allclose(got[reverse], model.predict(X[::-1]), rtol=1e-12, atol=1e-12)
    assert tree_module._compiled(trees, X.shape[1]) is tree_module._compiled(trees, X.shape[1])
    assert _predict_trees(trees, Z[:0]).shape == (0,)
    np.testing.assert_array_equal(_predict_trees(trees, Z[:1]), expected[:1])


def test_tree_prediction_without_cells_when_they_are_too_many(monkeypatch):
    from powerfit.paper import trees as tree_module
    from powerfit.paper.trees import _flatten_trees, _predict_trees, _walk_trees

    model, X = _fitted_trees(np.random.default_rng(2), n_features=6, max_leaf_nodes=63)
    trees = _flatten_trees(model)
    monkeypatch.setattr(tree_module, "_CELLS_LIMIT", 50)
    assert tree_module._cells(X, tree_module._compiled(trees, X.shape[1]).thresholds) is None
    expected = _walk_trees(trees, X) + trees["baseline"][0]
    np.testing.assert_array_equal(_predict_trees(trees, X), expected)
