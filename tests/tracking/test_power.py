"""A lab's power measurements refit the board power laws, versioned in MLflow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def power_store(store, data_home):
    folder = data_home / "zeus2023"
    if not folder.is_dir():
        pytest.skip(
            "needs the zeus2023 data set (github.com/ml-energy/zeus, laid out as "
            "its README says): set POWERFIT_DATA_HOME to a folder holding zeus2023/"
        )
    for name in ("summary_power_v100.csv.gz", "summary_power_p100.csv.gz"):
        store.ingest(folder / name)
    return store


def test_fit_power_laws_registers_a_model_the_safe_loader_rebuilds(power_store, tracking_uri):
    import mlflow

    from powerfit.power.regressor import BoardPowerRegressor
    from powerfit.tracking.power import fit_power_laws
    from powerfit.tracking.verify import load_model

    r = fit_power_laws(power_store.url, tracking_uri=tracking_uri)
    assert r.gpus == ["Tesla P100-PCIE-16GB", "Tesla V100-PCIE-32GB"]
    assert r.version == 1 and r.model_name == "powerfit-power"
    assert r.metrics["law.tesla-v100-pcie-32gb.p_max_w"] <= 250.0
    assert r.metrics["stderr.tesla-v100-pcie-32gb.p_idle_w"] >= 0.0
    rows = pd.DataFrame(
        {"gpu": ["Tesla V100-PCIE-32GB", "NVIDIA A40"], "u_c": [0.5, 0.5], "u_m": [0.2, 0.2]}
    )
    loaded = load_model(r.model_uri, tracking_uri)
    assert isinstance(loaded, BoardPowerRegressor)
    expected = r.model.predict(rows)
    assert np.allclose(loaded.predict(rows), expected)
    from powerfit.tracking.locations import using_tracking_uri

    with using_tracking_uri(tracking_uri):
        pyfunc = mlflow.pyfunc.load_model(r.model_uri)
    assert np.allclose(pyfunc.predict(rows), expected)
    # the A40 was not measured here: transferred, still between idle and its limit
    assert 0 < expected[1] <= 300.0
    again = fit_power_laws(power_store.url, tracking_uri=tracking_uri)
    assert again.version == 2


def test_fit_power_laws_without_power_rows_is_a_clear_error(store, tracking_uri):
    from powerfit.exceptions import DataError
    from powerfit.tracking.power import fit_power_laws

    with pytest.raises(DataError, match="no power measurements"):
        fit_power_laws(store.url, tracking_uri=tracking_uri)


def test_cli_fit_power_prints_the_laws(power_store, tracking_uri, capsys):
    import json

    from powerfit.cli import main

    code = main(["fit", "--power", "--gpu", "v100", "--db", str(power_store.url),
                 "--tracking-uri", tracking_uri, "--json"])  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["gpus"] == ["Tesla V100-PCIE-32GB"] and out["version"] == 1
    law = out["laws"]["Tesla V100-PCIE-32GB"]
    assert 0 <= law["p_idle_w"] <= law["p_max_w"] <= 250.0
