"""Tests of powerfit.tracking.flavor: the JSON specification behind the pyfunc loader."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

from powerfit import EnergyRegressor, PowerLawEfficiency, make_energy_pipeline
from powerfit.laws import efficiency
from powerfit.tracking.flavor import from_spec, to_spec

GPU = "NVIDIA A100 80GB PCIe"


@pytest.fixture
def fitted_pipeline():
    rng = np.random.default_rng(0)
    c = np.logspace(9, 12, 40)
    laws = {
        op: PowerLawEfficiency().fit(c.reshape(-1, 1), efficiency(c, 0.6, k, 0.8))
        for op, k in (("qkv_projections", 6.0), ("final_projection", 11.0))
    }
    configs = pd.DataFrame(
        {
            "batch_size": rng.choice([32, 64], 60),
            "seq_len": 256,
            "d_model": rng.choice([256, 512], 60),
            "n_heads": 8,
            "n_layers": rng.choice([4, 6], 60),
        }
    )
    energy = rng.uniform(10, 50, 60)
    pipe = make_energy_pipeline(
        {GPU: laws}, regressor=EnergyRegressor(n_bootstrap=10, random_state=0)
    ).fit(configs, energy)
    return pipe, configs


def test_round_trip_through_json_predicts_the_same(fitted_pipeline):
    pipe, configs = fitted_pipeline
    rebuilt = from_spec(json.loads(json.dumps(to_spec(pipe))))
    assert isinstance(rebuilt, Pipeline)
    np.testing.assert_array_equal(rebuilt.predict(configs), pipe.predict(configs))
    energy = rebuilt.named_steps["energy"]
    pd.testing.assert_frame_equal(
        energy.bootstrap_coefficients_, pipe.named_steps["energy"].bootstrap_coefficients_
    )
    law = rebuilt.named_steps["durations"].laws[GPU]["qkv_projections"]
    assert isinstance(law, PowerLawEfficiency) and law.k_ == pytest.approx(6.0, rel=1e-3)


def test_classes_outside_the_allowlist_are_neither_written_nor_built(fitted_pipeline):
    with pytest.raises(TypeError, match="not a powerfit estimator"):
        to_spec(LinearRegression())
    pipe, _ = fitted_pipeline
    spec = json.loads(json.dumps(to_spec(pipe)))
    text = json.dumps(spec).replace("powerfit.energy.EnergyRegressor", "os.system")
    with pytest.raises(ValueError, match=r"refusing to build 'os\.system'"):
        from_spec(json.loads(text))
    with pytest.raises(ValueError, match="specification"):
        from_spec({"model": {}})
