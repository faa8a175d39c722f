"""Benchmark: bulk ingestion of operation measurements into a fresh SQLite store.

Writes a canonical operation-measurements CSV of N rows (default 100,000) to a
temporary folder, then times, on a brand-new SQLite store:

* ``read``   — parse and validate the file (:func:`powerfit.store.readers.read_measurements`);
* ``insert`` — one transaction of Core ``executemany`` inserts
  (:func:`powerfit.store.ingest.ingest_measurements`);
* the same for the four published files of Mayaki & Charpenay (2025) when
  ``POWERFIT_DATA_HOME`` (or ../shared/data) holds them.

Run: ``python experiments/bench_ingest.py [--rows N]``. Target: 100,000 rows in ≤ 2 s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from powerfit.store import open_store
from powerfit.store.ingest import ingest_measurements
from powerfit.store.readers import read_measurements


def _synthetic(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    seq = rng.integers(1, 40, rows) * 32
    d = rng.integers(1, 40, rows) * 32
    frame = pd.DataFrame(
        {
            "gpu": "NVIDIA A100 80GB PCIe",
            "arch": "transformer",
            "operation": "qkv_projections",
            "batch_size": 64,
            "seq_len": seq,
            "d_model": d,
            "n_heads": 8,
            "precision": "tf32",
            "flops": 6.0 * 64 * seq * d * d,
            "duration_s": rng.uniform(1e-5, 1e-2, rows),
            "energy_j": rng.uniform(0.01, 1.0, rows),
            "repeats": 100,
            "tool": "bench",
        }
    )
    frame.to_csv(path, index=False)


def _time(store, path: Path) -> tuple[int, float, float]:
    t0 = time.perf_counter()
    measurements = read_measurements(path)
    t1 = time.perf_counter()
    result = ingest_measurements(store.engine, measurements)
    t2 = time.perf_counter()
    return result.rows, t1 - t0, t2 - t1


def benchmark(rows: int = 100_000) -> dict[str, float]:
    """Ingest ``rows`` synthetic rows and the published files into fresh SQLite stores."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "ops.csv"
        _synthetic(path, rows)
        with open_store(folder / "bench.db") as store:
            n, read_s, insert_s = _time(store, path)
        out.update(
            rows=n,
            read_validate_s=read_s,
            insert_s=insert_s,
            total_s=read_s + insert_s,
            insert_rows_per_s=n / insert_s,
            end_to_end_rows_per_s=n / (read_s + insert_s),
        )
        home = os.environ.get("POWERFIT_DATA_HOME") or Path(__file__).parents[2] / "shared/data"
        processed = Path(home) / "mayaki2025" / "processed"
        if processed.is_dir():
            with open_store(folder / "published.db") as store:
                t0 = time.perf_counter()
                for name in sorted(processed.glob("*.csv")):
                    _time(store, name)
                out["published_four_files_s"] = time.perf_counter() - t0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    r = benchmark(args.rows)
    print(
        f"synthetic: {r['rows']:,} rows  read+validate {r['read_validate_s']:.2f} s  "
        f"insert {r['insert_s']:.2f} s  total {r['total_s']:.2f} s  "
        f"({r['insert_rows_per_s']:,.0f} rows/s inserted, "
        f"{r['end_to_end_rows_per_s']:,.0f} rows/s end to end)"
    )
    if "published_four_files_s" in r:
        print(f"four published files: {r['published_four_files_s']:.2f} s in all")


if __name__ == "__main__":
    main()
