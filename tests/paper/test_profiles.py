"""The published profiles reproduce the paper's worked example (method.md §5) and Table 9."""

import pandas as pd
import pytest

from powerfit.paper.profiles import available_profiles, load_profile

MODELS = pd.DataFrame(
    {
        "batch_size": 64,
        "seq_len": 320,
        "d_model": [512, 768],
        "n_heads": [8, 12],
        "n_layers": [6, 12],
    },
    index=["A", "B"],
)
# (model, op) -> FLOPs [TF], eta [%], t [paper us], as printed in method.md §5.
WORKED = {
    ("A", "qkv_projections"): (0.0322, 35.31, 35.08),
    ("A", "attention_scores"): (0.00671, 7.75, 33.29),
    ("A", "attention_output"): (0.00671, 9.76, 26.44),
    ("A", "final_projection"): (0.01074, 12.19, 33.87),
    ("B", "qkv_projections"): (0.0725, 51.19, 108.91),
    ("B", "attention_scores"): (0.01007, 10.43, 74.21),
    ("B", "attention_output"): (0.01007, 13.11, 59.05),
    ("B", "final_projection"): (0.02416, 21.04, 88.31),
}
TABLE9 = [14.44, 25.25, 36.06, 46.88, 57.69, 68.50, 79.31, 90.12, 100.93, 111.74, 122.56, 133.37]


def test_worked_example_to_the_printed_precision():
    table, energy = load_profile("mayaki2025-a100").estimate(MODELS)
    for row in table.itertuples():
        flops_tf, eta_pct, t_paper = WORKED[(row.config, row.op)]
        digits = len(str(flops_tf).split(".")[1])
        assert round(row.flops / 1e12, digits) == pytest.approx(flops_tf)
        assert round(100 * row.efficiency, 2) == pytest.approx(eta_pct)
        assert round(row.duration_paper, 2) == pytest.approx(t_paper)
        assert row.duration_s == pytest.approx(row.duration_paper / 1e4)
    assert round(energy["A"], 2) == 36.06
    assert round(energy["B"], 2) == 78.96


@pytest.mark.parametrize("heads", [2, 4, 8, 16])
def test_table9_layer_sweep(heads):
    sweep = pd.DataFrame(
        {
            "batch_size": 64,
            "seq_len": 320,
            "d_model": 512,
            "n_heads": heads,
            "n_layers": range(2, 25, 2),
        }
    )
    energy = load_profile("mayaki2025-a100").pipeline().predict(sweep)
    assert list(energy.round(2)) == pytest.approx(TABLE9, abs=0.01)


def test_profiles_listing_and_errors():
    assert {"mayaki2025-a100", "mayaki2025-rtx2080ti", "mayaki2025-lstm-a100"} <= set(
        available_profiles()
    )
    with pytest.raises(ValueError, match="unknown profile"):
        load_profile("mayaki2099")
    lstm = load_profile("mayaki2025-lstm-a100")
    assert not lstm.has_energy_model
    with pytest.raises(ValueError, match="no energy model"):
        lstm.pipeline()
    configs = pd.DataFrame(
        {"batch_size": [192], "input_size": [256], "hidden_size": [192], "n_layers": [1]}
    )
    table, energy = lstm.estimate(configs)
    assert energy is None and set(table["op"]) == set(lstm.laws)
    rtx = load_profile("mayaki2025-rtx2080ti")
    assert rtx.peak_flops == 11.34e12


def test_every_profile_says_the_precision_of_the_data_behind_it():
    import pandas as pd

    from powerfit.paper.profiles import available_profiles, load_profile
    from powerfit.store.readers.mayaki2025 import mayaki_precision

    for name in available_profiles():
        profile = load_profile(name)
        labelled = mayaki_precision(pd.Series([profile.gpu])).iloc[0]
        assert profile.precision == labelled, name


def test_law_estimators_predict_the_published_laws():
    import numpy as np
    import pandas as pd

    from powerfit.paper.laws import efficiency

    profile = load_profile("mayaki2025-rtx2080ti")
    flops = pd.DataFrame({"flops": np.logspace(8, 13, 6)})  # the name the laws know
    for op, law in profile.law_estimators().items():
        assert np.allclose(law.predict(flops), efficiency(flops["flops"], *profile.laws[op]))
        assert law.n_samples_fit_ == 0 and np.isnan(law.r2_)  # nothing of ours was fitted
