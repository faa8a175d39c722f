"""Benchmarks of powerfit, printed and written as a JSON summary to compare runs.

Sections:

* ``estimate`` — energy of 1,000,000 Transformer configurations through the public
  API (a published profile's scikit-learn pipeline) against a bare NumPy expression
  of the same formula and a per-configuration Python loop (on a sample, scaled);
* ``fit`` — fitting every efficiency law of the published per-operation data and
  the energy model on the published training steps;
* ``ingest`` — bulk insert into SQLite (``experiments/bench_ingest.py``);
* ``mlflow`` — log + register one fit, and cold load + predict
  (``experiments/bench_mlflow.py``), where present.

Run: ``python experiments/benchmarks.py [--only estimate,fit] [--out results/benchmarks.json]``.
The machine (CPU, cores, Python, NumPy) is recorded beside the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _best(fn, repeats: int = 5) -> float:
    """Best wall time of ``repeats`` calls [s]."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_estimate(n: int = 1_000_000, seed: int = 0) -> dict[str, float]:
    """Configurations per second: public API vs bare NumPy vs a Python loop."""
    from powerfit.laws import TFLOP
    from powerfit.profiles import load_profile

    profile = load_profile("mayaki2025-a100")
    pipe = profile.pipeline()
    rng = np.random.default_rng(seed)
    configs = pd.DataFrame(
        {
            "batch_size": rng.integers(8, 512, n),
            "seq_len": rng.integers(64, 2048, n),
            "d_model": rng.choice([256, 512, 768, 1024, 1280], n),
            "n_heads": rng.choice([4, 8, 16], n),
            "n_layers": rng.integers(2, 25, n),
        }
    )
    cols = {c: configs[c].to_numpy(dtype=float) for c in configs}
    laws, coef, peak = profile.laws, profile.coef, profile.peak_flops

    def bare_numpy() -> np.ndarray:
        b, t, d, h, n_layers = (cols[c] for c in configs.columns)
        w = b * t
        flops = {
            "qkv_projections": 6 * w * d * d,
            "attention_scores": 2 * b * h * t * t * np.floor(d / h),
            "final_projection": 2 * w * d * d,
        }
        flops["attention_output"] = flops["attention_scores"]
        energy = np.full(n, profile.intercept)
        for op, c in flops.items():
            eta_max, k, alpha = laws[op]
            eta = eta_max * -np.expm1(-k * (c / TFLOP) ** alpha)
            energy += coef[op] * n_layers * c / (peak * eta)
        return energy

    def python_loop(rows: int) -> list[float]:
        out = []
        for b, t, d, h, n_layers in zip(*(cols[c][:rows] for c in configs.columns), strict=True):
            w = b * t
            dk = d // h
            energy = profile.intercept
            for op, c in (
                ("qkv_projections", 6 * w * d * d),
                ("attention_scores", 2 * b * h * t * t * dk),
                ("attention_output", 2 * b * h * t * t * dk),
                ("final_projection", 2 * w * d * d),
            ):
                eta_max, k, alpha = laws[op]
                eta = eta_max * -np.expm1(-k * (c / TFLOP) ** alpha)
                energy += coef[op] * n_layers * c / (peak * eta)
            out.append(float(energy))
        return out

    np.testing.assert_allclose(pipe.predict(configs), bare_numpy(), rtol=1e-9)
    api = _best(lambda: pipe.predict(configs))
    bare = _best(bare_numpy)
    loop_rows = 20_000
    loop = _best(lambda: python_loop(loop_rows), repeats=2) * n / loop_rows
    return {
        "configurations": n,
        "api_s": api,
        "api_configs_per_s": n / api,
        "numpy_s": bare,
        "numpy_configs_per_s": n / bare,
        "api_over_numpy": api / bare,
        "loop_s_extrapolated": loop,
        "loop_configs_per_s": n / loop,
    }


def bench_fit() -> dict[str, float]:
    """Fit time of every published law and of the energy model on the published data."""
    from sklearn.model_selection import train_test_split

    from powerfit import EnergyRegressor, PowerLawEfficiency, make_energy_pipeline
    from powerfit.datasets import fetch_mayaki2025

    data = fetch_mayaki2025()
    groups = []
    t_ops = data.transformer_operations
    t_ops = t_ops[t_ops["operation"] != "attention_softmax"]
    groups += [g for _, g in t_ops.groupby(["source", "operation"])]
    groups += [g for _, g in data.lstm_operations.groupby(["source", "component"])]
    t0 = time.perf_counter()
    for g in groups:
        eta = g["FLOPs"] / g["elapsed_time_sec"] / g["peak"]
        PowerLawEfficiency().fit(g[["FLOPs"]].to_numpy(), eta.to_numpy())
    laws_s = time.perf_counter() - t0

    a100 = t_ops[t_ops["source"] == "NVIDIA A100 80GB PCIe"]
    names = {
        "QKV Projections": "qkv_projections",
        "Attention Scores": "attention_scores",
        "Attention Output": "attention_output",
        "Final Projection": "final_projection",
    }
    laws = {}
    for op, g in a100.groupby("operation"):
        eta = g["FLOPs"] / g["elapsed_time_sec"] / g["peak"]
        laws[names[op]] = PowerLawEfficiency().fit(g[["FLOPs"]].to_numpy(), eta.to_numpy())
    steps = data.transformer_energy
    steps = steps[steps["source"] == "a100"]
    configs = pd.DataFrame(
        {
            "batch_size": steps["batch_size"],
            "seq_len": steps["seq_length"],
            "d_model": steps["d_model"],
            "n_heads": steps["num_attention_heads"],
            "n_layers": steps["num_layers"],
        }
    )
    train_x, _, train_y, _ = train_test_split(
        configs, steps["energy_joules"], test_size=0.33, random_state=0
    )
    pipe = make_energy_pipeline(
        {"NVIDIA A100 80GB PCIe": laws},
        regressor=EnergyRegressor(n_bootstrap=1000, random_state=0),
    )
    t0 = time.perf_counter()
    pipe.fit(train_x, train_y)
    energy_s = time.perf_counter() - t0
    return {
        "law_groups": len(groups),
        "laws_s": laws_s,
        "energy_model_with_1000_bootstraps_s": energy_s,
        "energy_training_rows": len(train_x),
    }


def _sibling(name: str):
    path = HERE / f"{name}.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(f"powerfit_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SECTIONS = {
    "estimate": bench_estimate,
    "fit": bench_fit,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated sections (default: all)")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "benchmarks.json", help="JSON summary"
    )
    args = parser.parse_args(argv)
    wanted = args.only.split(",") if args.only else [*SECTIONS, "ingest", "mlflow"]
    summary: dict[str, object] = {"machine": machine()}
    for name in wanted:
        if name in SECTIONS:
            print(f"== {name}", file=sys.stderr)
            summary[name] = SECTIONS[name]()
        else:
            module = _sibling(f"bench_{name}")
            if module is None or not hasattr(module, "benchmark"):
                print(
                    f"== {name}: experiments/bench_{name}.py has no benchmark()", file=sys.stderr
                )
                continue
            print(f"== {name}", file=sys.stderr)
            summary[name] = module.benchmark()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2, default=float))
    print(json.dumps(summary, indent=2, default=float))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
