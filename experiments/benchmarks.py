"""Benchmarks of powerfit, printed and written as a JSON summary to compare runs.

Sections:

* ``estimate`` — energy of 1,000,000 Transformer configurations through the public
  API (a published profile's scikit-learn pipeline) against a bare NumPy expression
  of the same formula and a per-configuration Python loop (on a sample, scaled);
* ``step`` — the same 1,000,000 configurations through powerfit's step model
  (``powerfit fit --model step``: fitted here on the published A100 Transformer
  steps), through the Python API and through the model saved in powerfit's MLflow
  format and loaded with :func:`mlflow.pyfunc.load_model` (JSON specification, no
  pickle), against the paper's API timed in the same section; and the NumPy tree
  walk the correction used before (on a sample, scaled). Target: ≥ 1/5 of the
  paper API's throughput;
* ``cli`` — ``powerfit estimate --input`` on 1,000,000 configurations (wall time
  and peak RSS of the process; targets ≤ 5 s, ≤ 300 MB) and ``powerfit estimate``
  of one configuration in a cold process (target ≤ 0.5 s; beside the bare
  interpreter's start);
* ``fit`` — fitting every efficiency law of the published per-operation data and
  the energy model on the published training steps;
* ``ingest`` — bulk insert into SQLite and PostgreSQL (COPY; the server of
  ``POWERFIT_TEST_POSTGRES_URL``, in a scratch schema) (``experiments/bench_ingest.py``);
* ``mlflow`` — log + register one fit, and cold load + predict
  (``experiments/bench_mlflow.py``), where present.

* ``trace`` — ``estimate --hf-config`` of a traced model: first (empty trace
  cache) and cached, in cold processes, and re-timing a traced step in Python
  (``experiments/bench_trace.py``; targets ≤ 5 s, ≤ 0.5 s, ≤ 50 ms).

* ``concurrency`` — concurrent ``powerfit ingest`` writers on one store and
  concurrent ``powerfit fit`` runs on one MLflow server
  (``experiments/bench_concurrency.py``), where present.

Run: ``python experiments/benchmarks.py [--only estimate,step,cli] [--out FILE.json]
[--update-readme README.md]`` (default ``experiments/results/benchmarks.json``);
``--update-readme`` rewrites the README's benchmark table (between the markers
``<!-- benchmarks:start -->`` and ``<!-- benchmarks:end -->``) from this run.
The machine (CPU, cores, Python, NumPy, load average) is recorded beside the figures,
and a table of every figure against its target closes the output (``summary``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
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


def transformer_configs(n: int = 1_000_000, seed: int = 0) -> pd.DataFrame:
    """Random Transformer configurations (the ``estimate``, ``step`` and ``cli`` inputs)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "batch_size": rng.integers(8, 512, n),
            "seq_len": rng.integers(64, 2048, n),
            "d_model": rng.choice([256, 512, 768, 1024, 1280], n),
            "n_heads": rng.choice([4, 8, 16], n),
            "n_layers": rng.integers(2, 25, n),
        }
    )


def bench_estimate(n: int = 1_000_000, seed: int = 0) -> dict[str, float]:
    """Configurations per second: public API vs bare NumPy vs a Python loop."""
    from powerfit.paper.laws import TFLOP
    from powerfit.paper.profiles import load_profile

    profile = load_profile("mayaki2025-a100")
    pipe = profile.pipeline()
    configs = transformer_configs(n, seed)
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


def _step_pipeline():
    """powerfit's step model fitted on the published A100 Transformer steps.

    As ``powerfit fit --model step --gpu "NVIDIA A100 80GB PCIe"`` fits it (laws from
    the per-operation data, the step model on the measured steps), without the
    bootstrap refits, which prediction does not use. One OpenMP thread: the boosted
    correction's fit slows down many times on a busy machine otherwise.
    """
    from threadpoolctl import threadpool_limits

    from powerfit.evaluation.paper import default_sources, fit_laws, load_operations, load_runs
    from powerfit.paper.step_energy import StepEnergyRegressor, make_step_energy_pipeline

    gpu = "NVIDIA A100 80GB PCIe"
    sources = default_sources()
    runs = load_runs(sources["transformer_energy"])
    runs = runs[runs["gpu"] == gpu].reset_index(drop=True)
    laws = fit_laws(load_operations(sources["transformer_operations"]))
    regressor = StepEnergyRegressor(n_bootstrap=0, random_state=0)
    pipe = make_step_energy_pipeline({gpu: laws[gpu]}, regressor=regressor)
    with threadpool_limits(1, user_api="openmp"):
        return pipe.fit(runs, runs["energy_j"]), len(runs)


def bench_step(n: int = 1_000_000, seed: int = 0, repeats: int = 3) -> dict[str, Any]:
    """Configurations per second of the step model (API, pyfunc) beside the paper API's."""
    import tempfile

    from powerfit.paper.profiles import load_profile

    try:
        t0 = time.perf_counter()
        pipe, rows = _step_pipeline()
        fit_s = time.perf_counter() - t0
    except (FileNotFoundError, OSError, ValueError) as exc:
        return {"skipped": f"no published data to fit the step model on ({exc})"}
    configs = transformer_configs(n, seed)
    paper = load_profile("mayaki2025-a100").pipeline()
    paper_s = _best(lambda: paper.predict(configs), repeats)
    energy = pipe.predict(configs)  # first call: compiles the trees
    api_s = _best(lambda: pipe.predict(configs), repeats)
    out: dict[str, Any] = {
        "configurations": n,
        "training_rows": rows,
        "fit_s": fit_s,
        "paper_api_s": paper_s,
        "paper_api_configs_per_s": n / paper_s,
        "step_api_s": api_s,
        "step_api_configs_per_s": n / api_s,
        "step_api_over_paper_throughput": paper_s / api_s,
    }
    # The trees as the correction walked them before (NumPy, every tree and row).
    from powerfit.paper import trees

    regressor = pipe[-1]
    if hasattr(trees, "_walk_trees") and regressor.correction_ is not None:
        sample = pipe[0].transform(configs.head(10_000))[regressor.correction_features_]
        walk_s = _best(lambda: trees._walk_trees(regressor.correction_, sample.to_numpy()), 1)
        out["trees_numpy_walk_configs_per_s"] = len(sample) / walk_s
    try:
        import mlflow.pyfunc

        from powerfit.tracking.flavor import save_model
        from powerfit.tracking.recording import model_signature, trusted_types
    except ImportError as exc:
        out["pyfunc_skipped"] = f"MLflow unavailable ({exc})"
        return out
    # As registered (with the signature `powerfit fit` logs: MLflow checks the input
    # against it before the model runs), and without a signature (the model alone).
    signatures = {
        "step_pyfunc": model_signature("transformer", list(configs.columns)),
        "step_pyfunc_unsigned": None,
    }
    with tempfile.TemporaryDirectory(prefix="powerfit-bench-") as folder:
        for name, signature in signatures.items():
            path = str(Path(folder) / name)
            save_model(
                pipe,
                path,
                signature=signature,
                serialization_format="skops",
                skops_trusted_types=trusted_types(pipe),
            )
            t0 = time.perf_counter()
            model = mlflow.pyfunc.load_model(path)
            out[f"{name}_load_s"] = time.perf_counter() - t0
            loader = model.metadata.flavors["python_function"].get("loader_module")
            out[f"{name}_json_spec"] = loader == "powerfit.tracking.flavor"
            predicted = np.asarray(model.predict(configs))
            np.testing.assert_allclose(predicted, energy, rtol=1e-12)
            seconds = _best(lambda model=model: model.predict(configs), repeats)
            out[f"{name}_s"] = seconds
            out[f"{name}_configs_per_s"] = n / seconds
            out[f"{name}_over_paper_throughput"] = paper_s / seconds
    return out


#: Runs a command and prints its wall time [s], peak RSS [kB] and exit code. A small
#: process of its own: a child inherits the peak RSS of the process that forks it
#: (Linux keeps it across exec), so the benchmark's own gigabyte would show.
_MEASURE = (
    "import os, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "print(time.perf_counter() - t, usage.ru_maxrss, os.waitstatus_to_exitcode(status))\n"
)


def _run_measured(args: list[str]) -> tuple[float, float]:
    """Wall time [s] and peak resident memory [bytes] of a command (as ``time -v``)."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args], capture_output=True, text=True, check=True
    )
    wall, rss_kb, code = proc.stdout.split()
    if int(code) != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr[-2000:]}")
    return float(wall), float(rss_kb) * 1024.0  # kB on Linux


def bench_cli(n: int = 1_000_000, seed: int = 0, repeats: int = 5) -> dict[str, Any]:
    """``powerfit estimate``: a 1M-row file streamed, and one configuration cold."""
    import tempfile

    powerfit = [sys.executable, "-m", "powerfit", "estimate"]
    one = ["--n-layers", "6", "--d-model", "512", "--n-heads", "8", "--batch-size", "64"]
    one += ["--seq-len", "320", "--json"]
    out: dict[str, Any] = {"configurations": n}
    bare = sorted(_run_measured([sys.executable, "-c", "pass"])[0] for _ in range(repeats))
    cold = sorted(_run_measured([*powerfit, *one])[0] for _ in range(repeats))
    out["interpreter_start_s"] = bare[len(bare) // 2]
    out["estimate_one_cold_s"] = cold[len(cold) // 2]
    out["estimate_one_cold_best_s"] = cold[0]
    with tempfile.TemporaryDirectory(prefix="powerfit-bench-") as folder:
        src, dst = Path(folder) / "configs.csv", Path(folder) / "estimates.csv"
        transformer_configs(n, seed).to_csv(src, index=False)
        wall, rss = _run_measured([*powerfit, "--input", str(src), "--output", str(dst)])
        with dst.open() as f:
            written = sum(1 for _ in f) - 1
    if written != n:
        raise RuntimeError(f"estimate --input wrote {written} rows, not {n}")
    out["estimate_input_s"] = wall
    out["estimate_input_peak_rss_mb"] = rss / 1e6
    out["estimate_input_configs_per_s"] = n / wall
    return out


#: Targets of issue 17 (figure, target, whether larger is better), checked in ``summary``.
TARGETS = {
    ("step", "step_api_over_paper_throughput"): (0.2, True),
    ("step", "step_pyfunc_over_paper_throughput"): (0.2, True),
    ("step", "step_pyfunc_unsigned_over_paper_throughput"): (0.2, True),
    ("cli", "estimate_input_s"): (5.0, False),
    ("cli", "estimate_input_peak_rss_mb"): (300.0, False),
    ("cli", "estimate_one_cold_s"): (0.5, False),
    ("ingest", "sqlite_total_s"): (2.0, False),
    ("ingest", "postgresql_total_s"): (2.0, False),
    ("trace", "hf_first_cold_s"): (5.0, False),
    ("trace", "hf_cached_cold_s"): (0.5, False),
    ("trace", "retime_s"): (0.05, False),
}

#: The README's table: (section, figure, what it is, unit). Units: ``s``, ``rate``
#: (configurations/s), ``x`` (a ratio), ``MB``.
README_ROWS = (
    ("estimate", "api_s", "energy of 1 M Transformer configurations, public API", "s"),
    ("estimate", "numpy_s", "the same formula as bare NumPy", "s"),
    ("estimate", "loop_s_extrapolated", "a per-configuration Python loop (scaled)", "s"),
    ("step", "step_api_over_paper_throughput", "step model, Python API, vs paper API", "x"),
    ("step", "step_pyfunc_over_paper_throughput", "step model via `mlflow.pyfunc`, signed", "x"),
    ("step", "step_pyfunc_unsigned_over_paper_throughput", "the same, no signature", "x"),
    ("cli", "estimate_input_s", "`powerfit estimate --input`, 1 M configurations", "s"),
    ("cli", "estimate_input_peak_rss_mb", "its peak resident memory", "MB"),
    ("cli", "estimate_one_cold_s", "`powerfit estimate`, one configuration, cold", "s"),
    ("fit", "laws_s", "fit every published efficiency law", "s"),
    ("fit", "energy_model_with_1000_bootstraps_s", "energy model, 1000 bootstraps", "s"),
    ("ingest", "sqlite_total_s", "ingest 100 k rows into SQLite (parse, validate, insert)", "s"),
    ("ingest", "postgresql_total_s", "the same into PostgreSQL (COPY)", "s"),
    ("mlflow", "log_register_s", "MLflow: log + register one fit (warm)", "s"),
    ("mlflow", "cold_load_predict_s", "MLflow: cold process, load + predict 10 k", "s"),
    ("trace", "hf_first_cold_s", "`estimate --hf-config` Llama 2 70B, traced, cold", "s"),
    ("trace", "hf_cached_cold_s", "the same, trace cached, cold", "s"),
    ("trace", "retime_s", "re-time a traced step (another GPU, batch, precision)", "s"),
)


def _figure(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.3g}×"
    if unit == "MB":
        return f"{value:.0f} MB"
    return f"{value:.3g} s"


def readme_table(results: dict[str, Any]) -> str:
    """The README's Markdown benchmark table of one run (figures, targets, met)."""
    m = results.get("machine", {})
    lines = [
        f"Measured {str(m.get('date', '?'))[:10]} on {m.get('cpu', '?')}, "
        f"{m.get('cores', '?')} cores, Python {m.get('python', '?')}, "
        f"NumPy {m.get('numpy', '?')} (load average {m.get('load_average_1min', 0):.1f}) "
        "by `python experiments/benchmarks.py --update-readme README.md`:",
        "",
        "| what | figure | target |",
        "|---|---|---|",
    ]
    for section, name, what, unit in README_ROWS:
        figures = results.get(section)
        value = figures.get(name) if isinstance(figures, dict) else None
        if not isinstance(value, (int, float)):
            continue
        target = TARGETS.get((section, name))
        if target is None:
            goal = ""
        else:
            bound, larger = target
            met = value >= bound if larger else value <= bound
            goal = f"{'≥' if larger else '≤'} {_figure(bound, unit)} {'✓' if met else 'missed'}"
        lines.append(f"| {what} | {_figure(float(value), unit)} | {goal} |")
    return "\n".join(lines) + "\n"


def update_readme(path: Path, table: str) -> None:
    """Replace the text between the README's benchmark markers with ``table``."""
    start, end = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
    text = path.read_text(encoding="utf-8")
    if start not in text or end not in text:
        raise SystemExit(f"{path}: no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{table}{end}{tail}", encoding="utf-8")


def target_table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each targeted figure beside its target, with the ratio figure / target."""
    rows = []
    for (section, name), (target, larger) in TARGETS.items():
        figures = results.get(section)
        value = figures.get(name) if isinstance(figures, dict) else None
        if value is None:
            continue
        met = value >= target if larger else value <= target
        rows.append(
            {
                "figure": f"{section}.{name}",
                "value": value,
                "target": target,
                "ratio": value / target,
                "met": bool(met),
            }
        )
    return rows


def bench_fit() -> dict[str, float]:
    """Fit time of every published law and of the energy model on the published data."""
    from sklearn.model_selection import train_test_split

    from powerfit import EnergyRegressor, PowerLawEfficiency, make_energy_pipeline
    from powerfit.datasets.mayaki2025 import fetch_mayaki2025

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
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


SECTIONS = {
    "estimate": lambda args: bench_estimate(args.rows),
    "step": lambda args: bench_step(args.rows),
    "cli": lambda args: bench_cli(args.rows),
    "fit": lambda args: bench_fit(),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated sections (default: all)")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "benchmarks.json", help="JSON summary"
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=1_000_000,
        help="configurations of the estimate, step and cli sections (default 1,000,000)",
    )
    parser.add_argument(
        "--update-readme", type=Path, help="rewrite this README's benchmark table from the run"
    )
    args = parser.parse_args(argv)
    wanted = (
        args.only.split(",")
        if args.only
        else [*SECTIONS, "ingest", "mlflow", "concurrency", "trace"]
    )
    summary: dict[str, object] = {"machine": machine()}
    for name in wanted:
        if name in SECTIONS:
            print(f"== {name}", file=sys.stderr)
            summary[name] = SECTIONS[name](args)
        else:
            module = _sibling(f"bench_{name}")
            if module is None or not hasattr(module, "benchmark"):
                print(
                    f"== {name}: experiments/bench_{name}.py has no benchmark()", file=sys.stderr
                )
                continue
            print(f"== {name}", file=sys.stderr)
            summary[name] = module.benchmark()
    summary_rows = target_table(summary)
    if summary_rows:
        summary["summary"] = summary_rows
        print("== summary (figure, value, target, ratio value/target, met)", file=sys.stderr)
        for row in summary_rows:
            print(
                f"{row['figure']:45s} {row['value']:12.4g} {row['target']:8.4g} "
                f"{row['ratio']:8.3f} {'yes' if row['met'] else 'NO'}",
                file=sys.stderr,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2, default=float))
    print(json.dumps(summary, indent=2, default=float))
    print(f"wrote {args.out}", file=sys.stderr)
    if args.update_readme is not None:
        update_readme(args.update_readme, readme_table(summary))
        print(f"updated the benchmark table of {args.update_readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
