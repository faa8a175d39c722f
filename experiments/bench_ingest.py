"""Benchmark: bulk ingestion of operation measurements into SQLite and PostgreSQL.

Writes a canonical operation-measurements CSV of N rows (default 100,000) to a
temporary folder, then times, on a brand-new store of each backend:

* ``read``   — parse and validate the file (:func:`powerfit.store.readers.read.read_measurements`);
* ``insert`` — the one write transaction of
  :func:`powerfit.store.ingest.ingest_measurements` (SQLite: the driver's
  ``executemany``; PostgreSQL: ``COPY ... FROM STDIN`` through psycopg 3);
* the same for the four published files of Mayaki & Charpenay (2025) when
  ``POWERFIT_DATA_HOME`` (or ../shared/data) holds them.

PostgreSQL is measured when a server URL is given (``--postgres URL``, default
``POWERFIT_TEST_POSTGRES_URL``): a fresh schema ``powerfit_bench_<random>`` is
created there for the run and dropped afterwards; nothing else is touched.

Run: ``python experiments/bench_ingest.py [--rows N] [--postgres URL]``.
Target (issue 17): 100,000 rows read, validated and written in ≤ 2 s on either backend.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from powerfit.hardware.gpus import get_gpu
from powerfit.store import open_store
from powerfit.store.engine import scratch_schema
from powerfit.store.ingest import ingest_measurements
from powerfit.store.readers.read import read_measurements

#: GPU of the synthetic rows, and its TF32 peak [FLOP/s].
GPU_NAME = "NVIDIA A100 80GB PCIe"
PEAK_TF32 = get_gpu(GPU_NAME).peak_flops["tf32"]


def _synthetic(path: Path, rows: int, seed: int = 0) -> None:
    """A canonical operations CSV of ``rows`` plausible Transformer measurements."""
    rng = np.random.default_rng(seed)
    seq = rng.integers(1, 40, rows) * 32
    d = rng.integers(1, 40, rows) * 32
    flops = 6.0 * 64 * seq * d * d
    # 5–90 % of the TF32 peak (validation refuses > 110 %), at least 10 µs a call.
    duration = np.maximum(flops / (PEAK_TF32 * rng.uniform(0.05, 0.9, rows)), 1e-5)
    frame = pd.DataFrame(
        {
            "gpu": GPU_NAME,
            "arch": "transformer",
            "operation": "qkv_projections",
            "batch_size": 64,
            "seq_len": seq,
            "d_model": d,
            "n_heads": 8,
            "precision": "tf32",
            "flops": flops,
            "duration_s": duration,
            "energy_j": duration * rng.uniform(50.0, 300.0, rows),  # 50–300 W
            "repeats": 100,
            "tool": "bench",
        }
    )
    frame.to_csv(path, index=False)


def _postgres_schema(url: str) -> contextlib.AbstractContextManager[str]:
    """URL of a new, empty schema on the server at ``url`` (search_path), dropped on exit."""
    return scratch_schema(url, prefix="powerfit_bench")


def _time(store, path: Path) -> tuple[int, float, float]:
    """Rows added, read+validate time [s] and write time [s] of one file."""
    t0 = time.perf_counter()
    measurements = read_measurements(path)
    t1 = time.perf_counter()
    result = ingest_measurements(store.engine, measurements)
    t2 = time.perf_counter()
    return result.rows, t1 - t0, t2 - t1


def _published() -> Path | None:
    home = os.environ.get("POWERFIT_DATA_HOME") or Path(__file__).parents[2] / "shared/data"
    processed = Path(home) / "mayaki2025" / "processed"
    return processed if processed.is_dir() else None


def _backend(url_for, synthetic: Path) -> dict[str, float]:
    """Figures of one backend; ``url_for(name)`` gives a fresh store's URL."""
    out: dict[str, float] = {}
    with url_for("bench") as url, open_store(url) as store:
        n, read_s, insert_s = _time(store, synthetic)
    out.update(
        rows=n,
        read_validate_s=read_s,
        insert_s=insert_s,
        total_s=read_s + insert_s,
        insert_rows_per_s=n / insert_s,
        end_to_end_rows_per_s=n / (read_s + insert_s),
    )
    processed = _published()
    if processed is not None:
        with url_for("published") as url, open_store(url) as store:
            t0 = time.perf_counter()
            for name in sorted(processed.glob("*.csv")):
                _time(store, name)
            out["published_four_files_s"] = time.perf_counter() - t0
    return out


def benchmark(rows: int = 100_000, postgres_url: str | None = None) -> dict[str, float]:
    """Ingest ``rows`` synthetic rows and the published files into fresh stores.

    Parameters
    ----------
    rows : int, default 100_000
        Rows of the synthetic file.
    postgres_url : str, optional
        A PostgreSQL server where a scratch schema may be created; default
        ``POWERFIT_TEST_POSTGRES_URL``. Without one, only SQLite is measured.

    Returns
    -------
    dict of str to float
        ``<backend>_<figure>`` for backend ``sqlite`` and ``postgresql``: ``rows``,
        ``read_validate_s``, ``insert_s``, ``total_s`` [s], ``insert_rows_per_s``,
        ``end_to_end_rows_per_s`` [rows/s], ``published_four_files_s`` [s].
    """
    postgres_url = postgres_url or os.environ.get("POWERFIT_TEST_POSTGRES_URL")
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "ops.csv"
        _synthetic(path, rows)

        @contextlib.contextmanager
        def sqlite_url(name: str) -> Iterator[str]:
            yield f"sqlite:///{folder / f'{name}.db'}"

        backends = {"sqlite": sqlite_url}
        if postgres_url:
            backends["postgresql"] = lambda _name: _postgres_schema(postgres_url)
        for backend, url_for in backends.items():
            figures = _backend(url_for, path)
            out.update({f"{backend}_{key}": value for key, value in figures.items()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="PostgreSQL server for a scratch schema (default POWERFIT_TEST_POSTGRES_URL)",
    )
    args = parser.parse_args()
    r = benchmark(args.rows, args.postgres)
    for backend in ("sqlite", "postgresql"):
        if f"{backend}_rows" not in r:
            print(f"{backend}: not measured (no --postgres URL or POWERFIT_TEST_POSTGRES_URL)")
            continue
        f = {key.removeprefix(f"{backend}_"): v for key, v in r.items() if key.startswith(backend)}
        print(
            f"{backend}: {f['rows']:,} rows  read+validate {f['read_validate_s']:.2f} s  "
            f"insert {f['insert_s']:.2f} s  total {f['total_s']:.2f} s  "
            f"({f['insert_rows_per_s']:,.0f} rows/s inserted, "
            f"{f['end_to_end_rows_per_s']:,.0f} rows/s end to end)"
        )
        if "published_four_files_s" in f:
            print(f"{backend}: four published files {f['published_four_files_s']:.2f} s in all")


if __name__ == "__main__":
    main()
