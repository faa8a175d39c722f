"""Benchmark of ``estimate --hf-config`` on traced models (issue 24), for benchmarks.py.

Figures (section ``trace`` of ``experiments/benchmarks.py``):

Every command runs in a new process with powerfit's bytecode compiled beforehand (as
an installed package has it; ``PYTHONDONTWRITEBYTECODE`` would otherwise make each
process compile powerfit's modules again).

* ``hf_first_cold_s``: ``powerfit estimate --hf-config`` (Llama 2 70B, H100,
  amp-bf16, batch 1 × 4096) in a cold process with an empty trace cache: importing
  torch and transformers, building the model on the meta device, tracing, caching,
  timing (target ≤ 5 s); median of the runs;
* ``hf_cached_cold_s``: the same command again, the trace read from the cache, in a
  cold process (target ≤ 0.5 s), beside ``interpreter_start_s`` (a bare ``python -c
  pass``) and ``import_powerfit_training_s`` (``import powerfit.training`` alone:
  NumPy, pandas and powerfit's own modules, which any estimate pays; a cached estimate
  imports no torch, transformers, scikit-learn, SciPy or MLflow: ``imports_heavy``
  lists those the cached command imported, to be empty);
* ``*_cpu_s``: the CPU time (user + system) of the same commands, which the load of a
  shared machine changes less than the wall time; ``import_torch_transformers_cpu_s``:
  importing torch, transformers and Llama's config and model classes alone, the floor of
  a first estimate;
* ``cache_read_ms``: reading a cached trace in a warm process (no torch import);
* ``trace_warm_s``: tracing Llama 2 70B in a process where torch and transformers are
  imported already;
* ``retime_ms`` (median) and ``retime_max_ms``: re-timing a traced step in Python
  for another GPU, batch and precision (:func:`powerfit.steps.graph.traced_step_graph`
  + :func:`powerfit.steps.latency.step_time`), over 24 setups (target ≤ 50 ms).

Run alone: ``python experiments/bench_trace.py``.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

#: Llama 2 70B's config.json (public: meta-llama/Llama-2-70b-hf), the fields that set the cost.
LLAMA2_70B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
}

ARGS = ["--gpu", "h100", "--batch-size", "1", "--seq-len", "4096", "--precision", "amp-bf16"]


def _wall(cmd: list[str], env: dict[str, str], cpu: list[float] | None = None) -> float:
    """Wall time of ``cmd`` [s]; its CPU time (user + system) [s] appended to ``cpu``."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    if cpu is not None:
        cpu.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    return wall


#: What any first estimate of Llama 2 70B imports: torch, transformers, the model's class.
IMPORT_HF = "import torch, transformers; transformers.LlamaConfig; transformers.LlamaForCausalLM"

#: Packages a cached estimate must not import (top-level names).
HEAVY = ("torch", "transformers", "sklearn", "scipy", "mlflow")


def _heavy_imports(argv: list[str], env: dict[str, str]) -> list[str]:
    """Which of :data:`HEAVY` ``powerfit <argv>`` imports (run in a new process)."""
    probe = (
        "import sys\n"
        "from powerfit.cli import main\n"
        "main(sys.argv[1:])\n"
        f"heavy = {{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})\n"
        "print('heavy:', *sorted(heavy), file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, env=env
    )
    lines = [line for line in proc.stderr.splitlines() if line.startswith("heavy:")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"powerfit {' '.join(argv)} failed: {proc.stderr[-2000:]}")
    return lines[-1].split()[1:]


def benchmark(repeats: int = 3) -> dict[str, Any]:
    """The figures of the module notes."""
    out: dict[str, Any] = {"model": "Llama 2 70B", "setup": " ".join(ARGS)}
    root = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory(prefix="powerfit-trace-") as folder:
        config = Path(folder) / "config.json"
        config.write_text(json.dumps(LLAMA2_70B))
        # bytecode compiled once, as an installed package has it (pip compiles at
        # install time), into a scratch folder: the repository is left as it is
        env = {**os.environ, "PYTHONPATH": root, "PYTHONPYCACHEPREFIX": str(Path(folder) / "pyc")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        _wall([sys.executable, "-m", "compileall", "-q", str(Path(root) / "powerfit")], env)
        cmd = [sys.executable, "-m", "powerfit", "estimate", "--hf-config", str(config), *ARGS]
        first, cached, first_cpu, cached_cpu = [], [], [], []
        for i in range(repeats):
            env["POWERFIT_CACHE_DIR"] = str(Path(folder) / f"cache{i}")
            first.append(_wall([*cmd, "--json"], env, first_cpu))
            cached.extend(_wall([*cmd, "--json"], env, cached_cpu) for _ in range(2))
        out["hf_first_cold_s"] = statistics.median(first)
        out["hf_first_cold_cpu_s"] = statistics.median(first_cpu)
        out["hf_cached_cold_s"] = statistics.median(cached)
        out["hf_cached_cold_best_s"] = min(cached)
        out["hf_cached_cold_cpu_s"] = statistics.median(cached_cpu)
        out["imports_heavy"] = _heavy_imports([*cmd[3:], "--json"], env)
        out["interpreter_start_s"] = statistics.median(
            _wall([sys.executable, "-c", "pass"], env) for _ in range(repeats)
        )
        out["import_powerfit_training_s"] = statistics.median(
            _wall([sys.executable, "-c", "import powerfit.training"], env) for _ in range(repeats)
        )
        hf_cpu: list[float] = []
        for _ in range(repeats):
            _wall([sys.executable, "-c", IMPORT_HF], env, hf_cpu)
        out["import_torch_transformers_cpu_s"] = statistics.median(hf_cpu)
        os.environ["POWERFIT_CACHE_DIR"] = str(Path(folder) / "cache0")
        out.update(_in_process())
    return out


def _in_process() -> dict[str, float]:
    from powerfit.architectures.cache import cached_trace
    from powerfit.architectures.trace import trace_step
    from powerfit.steps.graph import traced_step_graph
    from powerfit.steps.latency import bundled_operator_model, step_time

    out: dict[str, float] = {}
    t = time.perf_counter()
    trace, hit = cached_trace(LLAMA2_70B, 4096, precision="amp-bf16")
    out["cache_read_ms"] = 1e3 * (time.perf_counter() - t)
    out["cache_hit"] = float(hit)
    import transformers  # imported beforehand: the trace alone is timed

    transformers.LlamaForCausalLM  # noqa: B018 - loads the model's module
    t = time.perf_counter()
    trace_step(LLAMA2_70B, 4096, precision="amp-bf16")
    out["trace_warm_s"] = time.perf_counter() - t
    model = bundled_operator_model("fp32")
    setups = [
        (gpu, batch, precision)
        for gpu in ("h100", "a100", "a100-sxm4-40gb", "h200")
        for batch in (1, 4, 16)
        for precision in ("amp-bf16", "bf16")
    ]
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        step_time(traced_step_graph(trace, 1, "bf16"), "h100", model)  # warm the laws
        for gpu, batch, precision in setups:
            t = time.perf_counter()
            step_time(traced_step_graph(trace, batch, precision), gpu, model)
            times.append(1e3 * (time.perf_counter() - t))
    out["retime_ms"] = statistics.median(times)
    out["retime_s"] = out["retime_ms"] / 1e3
    out["retime_max_ms"] = max(times)
    out["retime_setups"] = float(len(setups))
    return out


if __name__ == "__main__":
    print(json.dumps(benchmark(), indent=2))
