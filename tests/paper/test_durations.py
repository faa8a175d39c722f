"""Tests of powerfit.paper.durations: durations from laws, the energy pipeline in sklearn tools."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_validate

from powerfit import EnergyRegressor, OperationDurations, PowerLawEfficiency, make_energy_pipeline
from powerfit.exceptions import DataError
from powerfit.paper.laws import efficiency

A100, RTX = "NVIDIA A100 80GB PCIe", "NVIDIA GeForce RTX 2080 Ti"
LAWS = {
    A100: {
        "qkv_projections": (0.69, 6.1, 0.77),
        "attention_scores": (0.58, 7.2, 0.78),
        "attention_output": (0.66, 8.6, 0.79),
        "final_projection": (0.69, 11.4, 0.79),
    },
    RTX: {
        "qkv_projections": (0.81, 12.1, 0.48),
        "attention_scores": (0.72, 11.7, 0.50),
        "attention_output": (0.79, 19.4, 0.54),
        "final_projection": (0.81, 25.1, 0.57),
    },
}


def _configs(n=120, seed=0, gpus=(A100,)):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "gpu": rng.choice(gpus, n),
            "batch_size": rng.choice([16, 32, 64, 128], n),
            "seq_len": rng.choice([128, 256, 512], n),
            "d_model": rng.choice([256, 512, 768], n),
            "n_heads": rng.choice([4, 8], n),
            "n_layers": rng.choice([2, 4, 6, 12], n),
        }
    )


def _energy(configs):
    t = OperationDurations(LAWS).fit_transform(configs)
    return 3.0 + t.to_numpy() @ np.array([250.0, 150.0, 150.0, 200.0])


def test_durations_follow_the_formula():
    configs = _configs(5)
    out = OperationDurations({A100: LAWS[A100]}).fit_transform(configs)
    c = 6 * configs["batch_size"] * configs["seq_len"] * configs["d_model"] ** 2
    expected = configs["n_layers"] * c / (156e12 * efficiency(c, *LAWS[A100]["qkv_projections"]))
    np.testing.assert_allclose(out["qkv_projections"], expected)
    assert list(out.columns) == list(LAWS[A100])
    training = OperationDurations({A100: LAWS[A100]}, flops="training").fit_transform(configs)
    np.testing.assert_allclose(training, 3 * out)
    per_layer = OperationDurations({A100: LAWS[A100]}, per_layer=True).fit_transform(configs)
    np.testing.assert_allclose(per_layer.mul(configs["n_layers"], axis=0), out)


def test_several_gpus_pick_their_laws_and_peaks():
    configs = _configs(50, gpus=(A100, RTX))
    both = OperationDurations(LAWS).fit_transform(configs)
    for gpu in (A100, RTX):
        rows = configs["gpu"] == gpu
        alone = OperationDurations({gpu: LAWS[gpu]}).fit_transform(
            configs[rows].drop(columns="gpu")
        )
        np.testing.assert_allclose(both[rows], alone)
    # NVML aliases resolve to the catalogue's name
    alias = configs.assign(gpu=configs["gpu"].replace({RTX: "GeForce RTX 2080 Ti"}))
    np.testing.assert_allclose(OperationDurations(LAWS).fit_transform(alias), both)


def test_accepts_fitted_laws():
    c = np.logspace(9, 13, 30)
    law = PowerLawEfficiency().fit(c.reshape(-1, 1), efficiency(c, 0.6, 5.0, 0.8))
    t = OperationDurations({A100: {"final_projection": law}}).fit_transform(_configs(3))
    assert t.shape == (3, 1) and (t.to_numpy() > 0).all()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c: c.drop(columns="n_heads"), "n_heads"),
        (lambda c: c.assign(batch_size=0), "batch_size"),
        (lambda c: c.assign(d_model=np.nan), "d_model"),
        (lambda c: c.assign(n_heads=4096), "n_heads"),
        (lambda c: c.assign(gpu="Tesla T4"), "no efficiency laws for GPU"),
        (lambda c: c.assign(gpu="Imaginary GPU 9000"), "no efficiency laws for GPU"),
    ],
)
def test_bad_configurations_are_named(change, match):
    model = OperationDurations(LAWS).fit(_configs(3))
    with pytest.raises(ValueError, match=match):
        model.transform(change(_configs(3)))


def test_error_names_row_and_column():
    configs = _configs(5)
    configs.loc[3, "seq_len"] = -1
    with pytest.raises(DataError) as info:
        OperationDurations(LAWS).fit(configs).transform(configs)
    assert info.value.row == 4 and info.value.column == "seq_len"


def test_bad_laws():
    with pytest.raises(ValueError, match="laws is required"):
        OperationDurations().fit(_configs(2))
    with pytest.raises(ValueError, match="unknown transformer operation"):
        OperationDurations({A100: {"conv2d": (1, 1, 1)}}).fit(_configs(2))
    with pytest.raises(ValueError, match="no law for"):
        OperationDurations(LAWS, operations=["ffn"]).fit(_configs(2))


def test_pipeline_fits_and_works_in_sklearn_tools():
    configs = _configs(200, gpus=(A100, RTX))
    energy = _energy(configs)
    pipe = make_energy_pipeline(LAWS, regressor=EnergyRegressor(solver="ols"))
    pipe.fit(configs, energy)
    assert pipe.score(configs, energy) > 0.999
    coefs = pipe.named_steps["energy"].coefficients_
    assert coefs["qkv_projections"] == pytest.approx(250, rel=1e-6)
    clone(pipe).fit(configs, energy)
    scores = cross_validate(pipe, configs, energy, cv=3, scoring="r2")
    assert (scores["test_score"] > 0.99).all()
    grid = GridSearchCV(
        pipe,
        {"energy__solver": ["ols", "nnls"], "durations__flops": ["forward", "training"]},
        cv=3,
    ).fit(configs, energy)
    assert grid.best_score_ > 0.99


def _fitted_laws(gpus=(A100, RTX)):
    c = np.logspace(9, 13, 30)
    return {
        gpu: {
            op: PowerLawEfficiency().fit(c.reshape(-1, 1), efficiency(c, *law))
            for op, law in LAWS[gpu].items()
        }
        for gpu in gpus
    }


def test_fitted_laws_survive_clone_cross_validation_and_grid_search():
    # issue 16, finding 1: the README's example failed with "no attribute 'eta_max_'".
    from sklearn.model_selection import cross_val_score

    configs = _configs(90, gpus=(A100, RTX))
    energy = _energy(configs)
    pipe = make_energy_pipeline(_fitted_laws(), regressor=EnergyRegressor(solver="ols"))
    copy = clone(pipe)
    assert copy.named_steps["durations"].laws[A100]["qkv_projections"].eta_max_ > 0
    np.testing.assert_allclose(
        copy.fit(configs, energy).predict(configs), pipe.fit(configs, energy).predict(configs)
    )
    assert (cross_val_score(pipe, configs, energy, cv=3) > 0.99).all()
    grid = GridSearchCV(pipe, {"energy__solver": ["ols", "nnls"]}, cv=3).fit(configs, energy)
    assert grid.best_score_ > 0.99
    # An unfitted law is named as such, not an AttributeError.
    unfitted = {A100: {"qkv_projections": PowerLawEfficiency()}}
    with pytest.raises(ValueError, match="unfitted PowerLawEfficiency"):
        OperationDurations(unfitted).fit(configs)


def test_column_transformer_in_front_with_pandas_output():
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline

    configs = _configs(60)
    energy = _energy(configs)
    laws = _fitted_laws((A100,))
    reference = make_energy_pipeline(laws).fit(configs, energy).predict(configs)
    # The ColumnTransformer puts n_layers first and prefixes every name ("b__seq_len").
    front = ColumnTransformer(
        [("a", "passthrough", ["n_layers"]),
         ("b", "passthrough", ["batch_size", "seq_len", "d_model", "n_heads"])]
    ).set_output(transform="pandas")  # fmt: skip
    pipe = make_pipeline(front, *[step for _, step in make_energy_pipeline(laws).steps])
    np.testing.assert_allclose(pipe.fit(configs, energy).predict(configs), reference)
    # Without set_output it hands over an array in its own order: refused, not misread.
    front_array = clone(front).set_output(transform="default")
    pipe = make_pipeline(front_array, *[s for _, s in make_energy_pipeline(laws).steps])
    with pytest.raises(ValueError, match="array's order does not match"):
        pipe.fit(configs, energy)


def test_arrays_are_read_only_when_unambiguous():
    columns = ["batch_size", "seq_len", "d_model", "n_heads", "n_layers"]
    configs = _configs(20).drop(columns="gpu")
    expected = OperationDurations({A100: LAWS[A100]}).fit_transform(configs)
    array = configs[columns].to_numpy()
    out = OperationDurations({A100: LAWS[A100]}).fit_transform(array)
    np.testing.assert_allclose(out, expected)
    with pytest.raises(ValueError, match="exactly 5 columns"):
        OperationDurations({A100: LAWS[A100]}).fit(array[:, :4])
    reordered = configs[["n_layers", "batch_size", "seq_len", "d_model", "n_heads"]].to_numpy()
    with pytest.raises(ValueError, match="order does not match"):
        OperationDurations({A100: LAWS[A100]}).fit(reordered)
    with pytest.raises(ValueError, match="not a whole number"):
        OperationDurations({A100: LAWS[A100]}).fit(array + 0.5)
    fitted_on_names = OperationDurations({A100: LAWS[A100]}).fit(configs)
    with pytest.raises(ValueError, match="fitted on a DataFrame"):
        fitted_on_names.transform(array)


def test_messages_show_plain_numbers():
    # issue 16, finding 8: "got np.float64(-512.0)" read as NumPy internals.
    configs = _configs(3).astype({"d_model": float})
    configs.loc[1, "d_model"] = -512.0
    with pytest.raises(DataError) as info:
        OperationDurations(LAWS).fit(configs).transform(configs)
    assert "got -512.0" in str(info.value) and "np." not in str(info.value)
    with pytest.raises(ValueError, match=r"got 1\.5\)?$") as info:
        EnergyRegressor(confidence=np.float64(1.5)).fit(np.ones((3, 1)), np.ones(3))
    assert "np." not in str(info.value)
