"""Fit the collective laws on Vidur's NCCL measurements and bundle them.

Writes ``powerfit/data/network/collectives.json`` (:mod:`powerfit.kernels.collectives`)
and prints each law with its in-sample, leave-one-GPU-count-out and large-buffer
(fitted below 16 MB, scored above) errors.

    POWERFIT_DATA_HOME=../shared/data .venv/bin/python experiments/build_collective_laws.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from powerfit.datasets.vidur2024_network import load_vidur_network
from powerfit.kernels.collectives import fit_collective_laws, laws_to_json

OUT = Path(__file__).resolve().parents[1] / "powerfit" / "data" / "network" / "collectives.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="output file")
    args = parser.parse_args(argv)
    frame = load_vidur_network()
    laws = fit_collective_laws(frame)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(laws_to_json(laws), indent=2) + "\n")
    print(f"dropped copies: {frame.attrs['duplicates']}")
    print(
        "| topology | collective | links | α [µs] | B [GB/s] | GPUs | MAPE % "
        "| held-out n % | >16 MB % |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for w in laws:
        print(
            f"| {w.topology} | {w.collective} | {w.locality} | {w.latency_s * 1e6:.1f} | "
            f"{w.bandwidth / 1e9:.1f} | {','.join(map(str, w.workers))} | {w.mape_pct:.1f} | "
            f"{w.mape_heldout_pct:.1f} | {w.mape_large_pct:.1f} |"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
