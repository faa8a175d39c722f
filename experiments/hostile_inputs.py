"""Measure the trust figures of issue 26: ingest memory, a gzip bomb, a large served request.

Three measurements, each printed as one line (``--json`` for a dict):

* ``ingest_1m`` — peak resident memory [B] and wall time [s] of ``powerfit ingest`` of a
  1,000,000-row canonical runs CSV (≈ 75 MB) written to a temporary folder, into a new
  SQLite store, measured on the child process;
* ``gzip_3gib`` — the same for a ``.csv.gz`` that expands to 3 GiB (refused at
  ``POWERFIT_MAX_INPUT_BYTES``, 1 GiB by default): peak memory, time, and the error line
  (``/usr/bin/time -v``'s "Maximum resident set size" where it exists);
* ``served_rows`` — a step-time model fitted on NeuSight's measured steps (when
  ``POWERFIT_DATA_HOME`` holds them), wrapped as MLflow's pyfunc serves it: the time to
  refuse a 10^5-row request, to score the 1,000 rows a request may hold (NeuSight's
  steps repeated, and 1,000 distinct rows: the worst case), and the 10^5-row request
  if it were allowed (each distinct row is scored once).

Run: ``python experiments/hostile_inputs.py [--rows N] [--gzip-gib G] [--skip-served]``.
Each ingest runs in a fresh ``python -m powerfit`` process, so that the figure is the
command's own peak, not this script's.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER = (
    "gpu,arch,model,n_layers,batch_size,seq_len,d_model,n_heads,d_ff,vocab_size,"
    "precision,duration_s,energy_j,repeats,tool\n"
)


def write_runs_csv(path: Path, rows: int) -> int:
    """A canonical runs CSV of ``rows`` distinct rows; its size [B]."""
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        for i in range(rows):
            layers = 1 + i % 48
            batch = 8 * (1 + i % 16)
            duration = 0.01 * layers * batch / 64 + (i % 997) * 1e-6
            out.write(
                f"a100,transformer,bert,{layers},{batch},{128 + i % 512},768,12,3072,30522,"
                f"tf32,{duration:.6f},{duration * 250:.4f},{1 + i % 100},synthetic\n"
            )
    return path.stat().st_size


def write_gzip_bomb(path: Path, gib: float) -> int:
    """A .csv.gz whose content is a header and rows repeated to ``gib`` GiB; its size [B]."""
    row = "a100,transformer,bert,6,64,320,768,12,3072,30522,tf32,0.2,50.0,1,synthetic\n"
    block = (row * (2**20 // len(row))).encode()
    target = int(gib * 2**30)
    with gzip.open(path, "wb", compresslevel=6) as out:
        out.write(HEADER.encode())
        written = 0
        while written < target:
            out.write(block)
            written += len(block)
    return path.stat().st_size


def run_child(argv: list[str]) -> dict:
    """Run ``python -m powerfit ARGV`` alone; its exit code, time, peak RSS and last line.

    The peak is ``/usr/bin/time -v``'s "Maximum resident set size" when that program
    exists, else ``getrusage(RUSAGE_CHILDREN)`` (the largest of all children so far).
    """
    command = [sys.executable, "-m", "powerfit", *argv]
    timer = Path("/usr/bin/time")
    if timer.exists():
        command = [str(timer), "-v", *command]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    lines = []
    for line in (done.stdout + done.stderr).splitlines():
        if "Maximum resident set size" in line:
            peak_kib = int(line.rsplit(":", 1)[1])
        elif line.strip() and not line.startswith(("\t", "Command exited")):
            lines.append(line)
    return {
        "exit": done.returncode,
        "seconds": round(elapsed, 2),
        "peak_rss_bytes": peak_kib * 1024,
        "last_line": lines[-1][:300] if lines else "",
    }


def served_rows() -> dict | None:
    """Time a 10^5-row request (refused) and a 1,000-row one to a fitted step-time model."""
    import pandas as pd

    from powerfit.datasets.neusight2025 import neusight_training_steps
    from powerfit.steps.regressor import StepTimeRegressor
    from powerfit.tracking.flavor import MAX_STEP_ROWS, UnsafeModelError, _PyfuncModel

    steps = neusight_training_steps()
    if steps.empty:
        return None
    texts = {p: Path(p).read_text() for p in steps["config"].unique()}
    steps = steps.assign(config=steps["config"].map(texts))
    columns = ["gpu", "config", "batch_size", "seq_len"]
    model = _PyfuncModel(StepTimeRegressor().fit(steps[columns], steps["measured_s"]))
    big = pd.concat([steps[columns]] * (100_000 // len(steps) + 1), ignore_index=True)
    big = big.head(100_000)
    start = time.perf_counter()
    try:
        model.predict(big)
        refused = ""
    except UnsafeModelError as exc:
        refused = str(exc)
    refuse_s = time.perf_counter() - start
    start = time.perf_counter()
    model.predict(big.head(MAX_STEP_ROWS))
    cap_s = time.perf_counter() - start
    # The worst case a request may hold: 1,000 distinct rows (batch sizes 1..1000).
    distinct = big.head(MAX_STEP_ROWS).assign(batch_size=range(1, MAX_STEP_ROWS + 1))
    start = time.perf_counter()
    model.predict(distinct)
    distinct_s = time.perf_counter() - start
    # The probe, allowed: 10^5 rows (NeuSight's steps repeated).
    os.environ["POWERFIT_MAX_STEP_ROWS"] = str(len(big))
    start = time.perf_counter()
    model.predict(big)
    allowed_s = time.perf_counter() - start
    del os.environ["POWERFIT_MAX_STEP_ROWS"]
    return {
        "request_rows": len(big),
        "refused_in_s": round(refuse_s, 4),
        "refusal": refused[:200],
        "rows_per_request": MAX_STEP_ROWS,
        "seconds_for_max_rows": round(cap_s, 2),
        "ms_per_row": round(1000 * cap_s / MAX_STEP_ROWS, 2),
        "distinct_rows_in_max_rows": len(big.head(MAX_STEP_ROWS).drop_duplicates()),
        "seconds_for_max_distinct_rows": round(distinct_s, 2),
        "seconds_for_1e5_rows_if_allowed": round(allowed_s, 2),
        "distinct_rows_in_1e5": len(big.drop_duplicates()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--gzip-gib", type=float, default=3.0)
    parser.add_argument("--skip-served", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="powerfit-hostile-") as tmp:
        folder = Path(tmp)
        csv_path = folder / "runs.csv"
        size = write_runs_csv(csv_path, args.rows)
        child = run_child(["ingest", str(csv_path), "--db", str(folder / "a.db")])
        results["ingest_1m"] = {"rows": args.rows, "file_bytes": size, **child}
        csv_path.unlink()
        bomb = folder / "bomb.csv.gz"
        size = write_gzip_bomb(bomb, args.gzip_gib)
        child = run_child(["ingest", str(bomb), "--db", str(folder / "b.db")])
        results["gzip_3gib"] = {"expands_to_gib": args.gzip_gib, "file_bytes": size, **child}
    if not args.skip_served:
        results["served_rows"] = served_rows()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, value in results.items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
