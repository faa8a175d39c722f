"""Choose the settings of the boosted models on splits the evaluation never uses.

Both boosted models of ``powerfit evaluate`` — powerfit's correction of the physical
step model (:data:`powerfit.models.CORRECTION_DEFAULTS`) and the black-box
baseline (:data:`powerfit.evaluation.GBM_DEFAULTS`) — get the same small grid,
scored by MAPE on the ``random`` protocol with seeds 100, 101, 102 (the evaluation
uses seeds 0–4), so neither is tuned on the rows it is judged on.

Run::

    POWERFIT_DATA_HOME=../shared/data python experiments/tune_models.py [--arch lstm]

Prints the grid sorted by MAPE [%] for both models.
"""

from __future__ import annotations

import argparse
import itertools
import warnings

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from powerfit import evaluation as ev
from powerfit.models import StepEnergyRegressor, make_step_energy_pipeline

SEEDS = (100, 101, 102)
GRID = {
    "learning_rate": (0.05, 0.1),
    "max_iter": (100, 300, 1000),
    "max_leaf_nodes": (15, 31),
    "min_samples_leaf": (5, 20),
}


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=("transformer", "lstm"), default="transformer")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    sources = ev.default_sources()
    runs = ev.load_runs(sources[f"{args.arch}_energy"], args.arch)
    operations = ev.load_operations(sources[f"{args.arch}_operations"], args.arch)
    laws = ev.fit_laws(operations, args.arch)
    y = runs["energy_j"].to_numpy(dtype=float)
    gbm = ev._GradientBoosting(args.arch)
    splits = []
    for seed in SEEDS:
        train, test = ev._random_split(runs, seed)
        pipe = make_step_energy_pipeline(
            laws, arch=args.arch, regressor=StepEnergyRegressor(correction=None, random_state=0)
        ).fit(runs[train], y[train])
        features = pipe[0].transform(runs.drop(columns=["duration_s"]))
        shape = features.filter(like="shape:").to_numpy(dtype=float)
        physical = pipe[-1].predict(features)
        splits.append((train, test, shape, physical, gbm._matrix(runs)))
    rows = []
    for values in itertools.product(*GRID.values()):
        settings = dict(zip(GRID, values, strict=True))
        for model in ("correction", "gbm"):
            scores = []
            for train, test, shape, physical, raw in splits:
                booster = HistGradientBoostingRegressor(
                    early_stopping=False, random_state=0, **settings
                )
                if model == "correction":
                    booster.fit(shape[train], np.log(y[train] / physical[train]))
                    pred = physical[test] * np.exp(booster.predict(shape[test]))
                else:
                    booster.fit(raw[train], np.log(y[train]))
                    pred = np.exp(booster.predict(raw[test]))
                scores.append(100 * np.mean(np.abs(pred / y[test] - 1)))
            rows.append({"model": model, **settings, "mape": float(np.mean(scores))})
    table = pd.DataFrame(rows).sort_values(["model", "mape"])
    for model, part in table.groupby("model"):
        print(f"\n{model} (random split, seeds {SEEDS}):")
        print(part.drop(columns="model").head(8).to_string(index=False, float_format="%.3f"))
    return table


if __name__ == "__main__":
    main()
