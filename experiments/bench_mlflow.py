"""Benchmark: recording a fit in MLflow, and loading it cold to predict.

Times, with a SQLite tracking store in a temporary folder:

* ``import_mlflow_s`` — ``import mlflow`` in this process (not part of the targets);
* ``new_tracking_db_s`` — the first connection to a brand-new MLflow database (its
  migrations; paid once per database);
* ``fit_s`` — fitting the laws and the energy model (:func:`fit_coefficients`, no MLflow);
* ``log_register_first_s`` — :func:`log_fit` of that fit (run, params, metrics,
  plots, skops model, registration, champion) the first time in the process: it
  includes importing skops, matplotlib and MLflow's sklearn flavour;
* ``log_register_s`` — the same again, warm (median of ``--repeats``);
* in a **cold** subprocess that imports only mlflow and pandas:
  ``cold_import_mlflow_s``, ``cold_load_by_alias_s`` (``models:/NAME@champion``,
  includes importing powerfit, scikit-learn and skops), ``cold_predict_10k_s``
  (10,000 configurations) and ``cold_load_predict_s`` = load + predict.

Targets: log + register ≤ 3 s after MLflow is imported; load by alias + predict
10,000 configurations ≤ 3 s in a cold process (after ``import mlflow``).

Run: ``python experiments/bench_mlflow.py [--repeats 3]`` (needs the published data:
``POWERFIT_DATA_HOME`` or ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

_COLD = textwrap.dedent(
    """
    import json, sys, time
    t0 = time.perf_counter()
    import mlflow
    import pandas as pd
    t1 = time.perf_counter()
    model = mlflow.pyfunc.load_model(f"models:/{sys.argv[1]}@champion")
    t2 = time.perf_counter()
    configs = pd.read_csv(sys.argv[2])
    energy = model.predict(configs)
    t3 = time.perf_counter()
    assert len(energy) == len(configs)
    print(json.dumps({"cold_import_mlflow_s": t1 - t0, "cold_load_by_alias_s": t2 - t1,
                      "cold_predict_10k_s": t3 - t2, "cold_load_predict_s": t3 - t1}))
    """
)


def _configs(path: Path, rows: int = 10_000, seed: int = 0) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    heads = rng.choice([2, 4, 8, 16], rows)
    pd.DataFrame(
        {
            "batch_size": rng.choice([8, 16, 32, 64, 128], rows),
            "seq_len": rng.choice([128, 256, 512, 1024], rows),
            "d_model": heads * rng.integers(8, 128, rows),
            "n_heads": heads,
            "n_layers": rng.integers(1, 25, rows),
        }
    ).to_csv(path, index=False)


def benchmark(repeats: int = 3) -> dict[str, float]:
    """Run the benchmark; return the timings [s]."""
    from powerfit.store import open_store

    out: dict[str, float] = {}
    home = os.environ.get("POWERFIT_DATA_HOME") or Path(__file__).parents[2] / "shared/data"
    processed = Path(home) / "mayaki2025" / "processed"
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as tmp:
        folder = Path(tmp)
        store = open_store(folder / "powerfit.db")
        for name in ("dataForTransformerHEF.csv", "SubsetDataForTransformer_energyModel.csv"):
            store.ingest(processed / name)

        t0 = time.perf_counter()
        import mlflow  # noqa: F401

        out["import_mlflow_s"] = time.perf_counter() - t0
        from mlflow import MlflowClient

        from powerfit.tracking.fitting import fit_coefficients
        from powerfit.tracking.recording import log_fit

        uri = f"sqlite:///{folder / 'mlflow' / 'mlflow.db'}"
        (folder / "mlflow").mkdir()
        t0 = time.perf_counter()
        MlflowClient(uri).search_experiments()
        out["new_tracking_db_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        fit = fit_coefficients(store, "NVIDIA A100 80GB PCIe", "transformer")
        out["fit_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = log_fit(fit, tracking_uri=uri, store_url=store.url)
        out["log_register_first_s"] = time.perf_counter() - t0
        warm = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            log_fit(fit, tracking_uri=uri, store_url=store.url)
            warm.append(time.perf_counter() - t0)
        out["log_register_s"] = statistics.median(warm)
        store.close()

        configs = folder / "configs.csv"
        _configs(configs)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env |= {"MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
        done = subprocess.run(
            [sys.executable, "-c", _COLD, result.model_name, str(configs)],
            env=env, cwd=folder, capture_output=True, text=True, check=True,
        )  # fmt: skip
        out |= json.loads(done.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm log+register repeats")
    args = parser.parse_args()
    for key, value in benchmark(args.repeats).items():
        print(f"{key:<24} {value:8.3f}")


if __name__ == "__main__":
    main()
