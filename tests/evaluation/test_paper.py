"""Tests of powerfit.evaluation on the published data (fewer seeds and bootstraps)."""

import numpy as np
import pandas as pd
import pytest

from powerfit import evaluation as ev


@pytest.fixture(scope="module")
def transformer(data_home):
    folder = data_home / "mayaki2025" / "processed"
    runs = ev.load_runs(folder / "SubsetDataForTransformer_energyModel.csv")
    laws = ev.fit_laws(ev.load_operations(folder / "dataForTransformerHEF.csv"))
    return runs, laws


def test_metrics_on_known_values():
    m = ev.metrics([100.0, 200.0, 50.0], [100.0, 180.0, 55.0], ([90, 150, 56], [110, 210, 60]))
    assert m["mape"] == pytest.approx((0 + 10 + 10) / 3)
    assert m["max_ape"] == pytest.approx(10.0)
    assert m["mae_j"] == pytest.approx(25 / 3)
    assert m["coverage"] == pytest.approx(200 / 3)  # the third value lies below its interval


def test_published_file_becomes_canonical_runs(transformer):
    runs, laws = transformer
    assert len(runs) == 1576
    assert {"n_layers", "seq_len", "d_model", "n_heads", "energy_j", "duration_s"} <= set(runs)
    # d_ff and vocab come from the parameter counts: the small BERT models use BERT's defaults.
    small = (runs.model == "bert") & (runs.seq_len == 256)
    assert (runs.loc[small, "vocab_size"] == 30522).mean() > 0.95
    assert (runs.loc[~small, "d_ff"] == 2048).all()
    assert set(laws) == {ev.A100, ev.RTX}
    assert all(len(ops) == 4 for ops in laws.values())


def test_protocol_splits_hold_out_what_they_say(transformer):
    runs, _ = transformer
    protocols = {p.name: p for p in (*ev.TRANSFORMER_PROTOCOLS, *ev.EXTRA_PROTOCOLS)}
    train, test = protocols["layers-12"].split(runs, 0)
    assert (runs.n_layers[test] == 12).all() and (runs.n_layers[train] < 12).all()
    train, test = protocols["gpu-rtx"].split(runs, 0)
    assert (runs.gpu[train] == ev.A100).all() and (runs.gpu[test] == ev.RTX).all()
    train, test = protocols["random"].split(runs, 1)
    assert not (train & test).any() and (train | test).all()
    assert test.mean() == pytest.approx(0.33, abs=0.01)
    assert not np.array_equal(test, protocols["random"].split(runs, 2)[1])
    train, test = protocols["gpu-rtx-10"].split(runs, 3)
    ids = ev.configuration_ids(runs)
    assert (runs.gpu[test] == ev.RTX).all() and (runs.gpu[~train] == ev.RTX).all()
    assert len(set(ids[train & (runs.gpu == ev.RTX).to_numpy()])) == 10
    assert not set(ids[train]) & set(ids[test])


def test_configuration_split_keeps_repeats_together(transformer):
    runs, _ = transformer
    ids = ev.configuration_ids(runs)
    # The published file repeats most rows: 1576 rows, 643 configurations.
    assert len(np.unique(ids)) == 643
    protocol = {p.name: p for p in ev.TRANSFORMER_PROTOCOLS}["random-configs"]
    train, test = protocol.split(runs, 0)
    assert not (train & test).any() and (train | test).all()
    assert not set(ids[train]) & set(ids[test])
    assert test.mean() == pytest.approx(0.33, abs=0.05)


def test_held_out_layers_powerfit_beats_both_baselines(transformer):
    runs, laws = transformer
    protocols = [p for p in ev.TRANSFORMER_PROTOCOLS if p.name == "layers-12"]
    result = ev.evaluate(runs, laws, protocols, n_bootstrap=2, paper_bootstrap=20)
    mape = result.table.set_index("model")["mape"]
    assert mape["powerfit"] < min(mape["paper"], mape["gbm"])
    assert mape["gbm"] > 15  # the black box does not extrapolate to deeper models
    cov = result.table.set_index("model")["coverage"]
    assert 0 <= cov["powerfit"] <= 100 and np.isnan(cov["gbm"])
    text = ev.format_table(result, ev.TARGETS)
    assert "layers-12" in text and "beats baselines" in text


def test_random_splits_powerfit_beats_the_tuned_black_box_in_parallel(transformer):
    runs, laws = transformer
    protocols = [p for p in ev.TRANSFORMER_PROTOCOLS if p.name in ("random", "random-configs")]
    kwargs = {"models": ["powerfit", "gbm"], "seeds": 2, "n_bootstrap": 2}
    result = ev.evaluate(runs, laws, protocols, n_jobs=2, **kwargs)
    mape = result.table.set_index(["protocol", "model"])["mape"]
    # issue #6's target was 2.5 %; the monotone correction (issue 16) gives 2.5-2.6 %
    # and no longer beats the (physically unconstrained) tuned black box here.
    assert mape["random", "powerfit"] < 3.0
    assert mape["random", "gbm"] < 2.5  # a tuned baseline
    # New configurations are harder for both; the physics keeps powerfit ahead.
    assert mape["random", "powerfit"] < mape["random-configs", "powerfit"] < 5
    assert mape["random-configs", "powerfit"] < mape["random-configs", "gbm"]
    serial = ev.evaluate(runs, laws, protocols, n_jobs=1, **kwargs)
    pd.testing.assert_frame_equal(result.runs, serial.runs)


def test_paper_model_close_to_published_accuracy(transformer):
    runs, laws = transformer
    protocols = [p for p in ev.TRANSFORMER_PROTOCOLS if p.name == "random"]
    result = ev.evaluate(runs, laws, protocols, models=["paper"], seeds=2, paper_bootstrap=30)
    row = result.table.iloc[0]
    assert row["r2"] == pytest.approx(0.9584, abs=0.01)  # Table 3: R² 0.9584
    assert row["mae_j"] == pytest.approx(6.30, abs=1.5)  # Table 3: MAE 6.30 J


def test_predict_files_keeps_test_order(transformer, tmp_path):
    runs, laws = transformer
    train = runs[runs.n_layers < 12].reset_index(drop=True)
    test = runs[runs.n_layers == 12].sample(frac=1.0, random_state=0).reset_index(drop=True)
    predictions, table = ev.predict_files(train, test, laws, n_bootstrap=0)
    assert len(predictions) == len(test)
    assert {"energy_j_paper", "energy_j_powerfit", "energy_j_gbm"} <= set(predictions)
    rel = predictions["energy_j_powerfit"] / test["energy_j"] - 1
    assert rel.abs().mean() < 0.1  # rows line up with the test rows
    assert set(table["model"]) == {"paper", "powerfit", "gbm"}


def test_bad_inputs():
    with pytest.raises(ValueError, match="energy_j"):
        ev.load_runs(pd.DataFrame({"arch": ["transformer"], "n_layers": [2]}))
    with pytest.raises(ValueError, match="unknown model"):
        ev.evaluate(pd.DataFrame({"energy_j": [1.0]}), {}, [], models=["forest"])
