"""Fit the operator laws of every NeuSight GPU and write the bundled profile.

Reads NeuSight's FP32 operator measurements through ``powerfit.datasets``
(``POWERFIT_DATA_HOME``), fits :class:`powerfit.kernels.model.OperatorTimeModel` on all
rows (training sweep and test collection weighted equally per (GPU, op); the groups
of ``NEUSIGHT_EXCLUDED`` left out), runs the operator evaluation, and writes
``powerfit/data/operators/fp32.json``: coefficients, the GPU specs used, the laws
transferred to catalogue GPUs without measurements (RTX 2080 Ti, A100-SXM4-40GB),
the data commit, row counts, the seed and the evaluation table.

The build is reproducible: every fit is seeded (``random_state=0``) and the file holds
no date or machine, so the same code and data write the same bytes (checked: one or
several OpenMP threads give the same file). ``--check`` rebuilds into a temporary file
and exits 1 when it differs from the shipped one.

Usage::

    POWERFIT_DATA_HOME=../shared/data python experiments/build_operator_profiles.py
    POWERFIT_DATA_HOME=../shared/data python experiments/build_operator_profiles.py --check
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from powerfit.datasets.neusight2025 import NEUSIGHT2025_COMMIT
from powerfit.evaluation import operators as op
from powerfit.kernels.model import OperatorTimeModel, _groups
from powerfit.kernels.transfer import gpu_specs

#: Catalogue GPUs without NeuSight operator measurements whose laws are transferred.
TRANSFERRED = ("NVIDIA GeForce RTX 2080 Ti", "NVIDIA A100-SXM4-40GB")

OUT = Path(__file__).resolve().parents[1] / "powerfit" / "data" / "operators" / "fp32.json"


def _round(value):
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--max-rows", type=int, default=3000)
    parser.add_argument(
        "--check",
        action="store_true",
        help="rebuild into a temporary file; exit 1 if it differs from --out (nothing written)",
    )
    args = parser.parse_args(argv)
    if args.check:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            rebuilt = Path(folder) / "rebuilt.json"
            main(["--out", str(rebuilt), "--max-rows", str(args.max_rows)])
            same = rebuilt.read_bytes() == args.out.read_bytes()
        print(f"{args.out}: {'reproduced byte for byte' if same else 'DIFFERS from a rebuild'}")
        return 0 if same else 1
    start = time.perf_counter()
    frame = op.neusight_operator_frame()
    y = frame["latency_s"].to_numpy(float)
    weights = op._weights(frame)
    # NeuSight timed each call on its own (synchronised): its laws' fixed costs are
    # those of isolated calls, which a step's queued kernels do not pay
    model = OperatorTimeModel(max_rows=args.max_rows, random_state=0, call_timing="isolated")
    model = model.fit(frame, y, weights)
    pred = model.predict(frame)
    fit_mape = {}
    for (gpu, kind), idx in _groups(frame).items():
        fit_mape[f"{gpu}|{kind}"] = float(100 * np.mean(np.abs(pred[idx] / y[idx] - 1)))
    table = op.evaluate_operators(frame)
    data = model.to_dict()
    for entry in data["laws"]:
        entry["fit_mape_percent"] = fit_mape[f"{entry['gpu']}|{entry['op']}"]
    rows = frame.groupby(["gpu", "op", "collection"]).size()
    data["transferred"] = {
        gpu: {
            "specs": gpu_specs(gpu),
            "laws": {k: model.transferred_law(gpu, k) for k in sorted(model.transfer_)},
        }
        for gpu in TRANSFERRED
    }
    data["provenance"] = {
        "data": "NeuSight (Lee et al., ASPLOS 2025), github.com/sitar-lab/NeuSight, MIT",
        "commit": NEUSIGHT2025_COMMIT,
        "precision_note": "FP32 with TF32 off (*_sgemm_* kernels); PyTorch 2.1.0, CUDA 12.1",
        "excluded": {"|".join(k): v for k, v in op.NEUSIGHT_EXCLUDED.items()},
        "rows": {"|".join(k): int(v) for k, v in rows.items()},
        "script": "experiments/build_operator_profiles.py",
        "hyperparameters": {"max_rows": args.max_rows, "random_state": 0},
    }
    evaluation = table.drop(columns=["ops"]).replace({np.nan: None})
    data["evaluation"] = evaluation.to_dict(orient="records")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_round(data), indent=1, sort_keys=False) + "\n")
    print(op.format_operator_table(table))
    print(f"wrote {args.out} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
