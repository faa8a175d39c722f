"""``powerfit estimate``: energy of configurations from a published profile or a HF config.

Four modes, each importing only what it needs:

* ``--hf-config config.json --gpu NAME``: one training step of a Hugging Face
  architecture and its whole run (:mod:`powerfit.cli.estimate_hf`);

* one configuration from the options (``--n-layers ...``): a Transformer profile
  is evaluated in plain Python (:func:`_estimate_one`, no NumPy, pandas or
  scikit-learn: a cold call takes little more than the interpreter's start);
  other architectures go through :meth:`powerfit.paper.profiles.Profile.estimate`;
* ``--input FILE``: configurations streamed from a CSV file in blocks of
  :data:`CHUNK_ROWS` rows (read, check, predict, write), so that memory stays
  flat whatever the file's length (:func:`_run_many`);
* ``--list-profiles``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from pathlib import Path
from typing import Any

from powerfit.cli import add_format_arguments, estimate_hf, estimate_model, refuse_non_finite

HELP = """\
Estimate the energy [J] of one training step of a model configuration, from a
published profile (efficiency laws + energy model), or of a Hugging Face
architecture on any catalogue GPU (--hf-config: operator graph of the step timed
by per-GPU operator laws, a bounded power model, the whole run in kWh and CO2),
without running anything.

examples:
  powerfit estimate --hf-config gpt2-large/config.json --gpu h100 --batch-size 4 \\
      --seq-len 1024 --steps 50000 --grid-intensity 350 --json
  powerfit estimate --profile mayaki2025-a100 --arch transformer \\
      --n-layers 6 --d-model 512 --n-heads 8 --batch-size 64 --seq-len 320 --json
  powerfit estimate --profile mayaki2025-a100 --input configs.csv --output estimates.csv
  powerfit estimate --model models:/powerfit-nvidia-a100-80gb-pcie-transformer@champion \\
      --n-layers 6 --d-model 512 --n-heads 8 --batch-size 64 --seq-len 320
  powerfit estimate --list-profiles
"""

_SHAPE_OPTIONS = (
    ("--n-layers", "n_layers", "layers [-]"),
    ("--d-model", "d_model", "model width [-] (Transformer)"),
    ("--n-heads", "n_heads", "attention heads [-] (Transformer)"),
    ("--d-ff", "d_ff", "feed-forward width [-] (Transformer; default 4*d_model)"),
    ("--batch-size", "batch_size", "sequences per batch [-]"),
    ("--seq-len", "seq_len", "tokens (time steps) per sequence [-]"),
    ("--input-size", "input_size", "input width [-] (LSTM/GRU)"),
    ("--hidden-size", "hidden_size", "hidden width [-] (LSTM/GRU)"),
)

#: Rows read, estimated and written at a time by ``--input`` [-].
CHUNK_ROWS = 100_000

#: Shape columns each architecture needs (as :data:`powerfit.paper.durations.REQUIRED_COLUMNS`,
#: which is not imported here: it would import scikit-learn).
_REQUIRED = {
    "transformer": ("batch_size", "seq_len", "d_model", "n_heads"),
    "lstm": ("batch_size", "input_size", "hidden_size"),
    "gru": ("batch_size", "input_size", "hidden_size"),
}

#: Forward FLOPs of one layer and one batch [FLOP] of the Transformer operations, in
#: plain Python (as :mod:`powerfit.paper.flops`; ``tests/cli/test_estimate.py`` checks that
#: both agree). b: batch size, s: sequence length, d: d_model, h: heads.
_TRANSFORMER_FLOPS = {
    "qkv_projections": lambda b, s, d, h: 6.0 * b * s * d * d,
    "attention_scores": lambda b, s, d, h: 2.0 * b * h * s * s * math.floor(d / h),
    "attention_softmax": lambda b, s, d, h: 5.0 * b * h * s * s,
    "attention_output": lambda b, s, d, h: 2.0 * b * h * s * s * math.floor(d / h),
    "final_projection": lambda b, s, d, h: 2.0 * b * s * d * d,
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``estimate`` sub-command."""
    parser = subparsers.add_parser(
        "estimate",
        help="estimate the energy of a training step or run: from a published profile, "
        "a Hugging Face config.json on any GPU (--hf-config), or a registered model (--model)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--profile",
        default="mayaki2025-a100",
        help="published profile (default: mayaki2025-a100; see --list-profiles)",
    )
    parser.add_argument("--list-profiles", action="store_true", help="list the profiles and exit")
    parser.add_argument(
        "--arch",
        choices=("transformer", "lstm", "gru"),
        default=None,
        help="architecture (default: the profile's)",
    )
    for flag, dest, text in _SHAPE_OPTIONS:
        parser.add_argument(flag, dest=dest, type=float, default=None, help=text)
    parser.add_argument("--input", type=Path, help="CSV of configurations, one per row")
    parser.add_argument("--output", type=Path, help="CSV to write the estimates to (with --input)")
    add_format_arguments(parser)
    estimate_hf.add_arguments(parser)
    estimate_model.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``powerfit estimate``."""
    if getattr(args, "hf_config", None) is not None:
        return estimate_hf.run(args)
    if getattr(args, "model", None) is not None:
        return estimate_model.run(args)
    from powerfit.paper.profiles import available_profiles, load_profile

    if args.list_profiles:
        names = available_profiles()
        if args.json:
            print(json.dumps(names))
        else:
            for name in names:
                print(f"{name}: {load_profile(name).description}")
            for entry in _operator_profiles():
                fitted = ", ".join(entry["gpus"])
                moved = ", ".join(entry["transferred"]) or "-"
                print(
                    f"{entry['name']}: {entry['precision']} operator latency laws from "
                    f"{entry['source']}, used by --hf-config; fitted on: {fitted}; "
                    f"transferred from specs to: {moved}"
                )
        return 0
    if args.profile not in available_profiles():
        operators = ", ".join(e["name"] for e in _operator_profiles())
        raise ValueError(
            f"unknown profile {args.profile!r}; --profile takes {', '.join(available_profiles())}"
            + (f" ({operators}: operator laws, used by --hf-config)" if operators else "")
        )
    profile = load_profile(args.profile)
    arch = args.arch or profile.arch
    if arch != profile.arch:
        raise ValueError(
            f"profile {profile.name!r} is for {profile.arch} models, not {arch}; "
            "choose a profile of that architecture (--list-profiles)"
        )
    if args.input is not None:
        return _run_many(profile, args)
    return _run_one(profile, arch, args)


def _operator_profiles() -> list[dict[str, Any]]:
    """The bundled operator-law profiles (``powerfit/data/operators/<precision>.json``).

    Read with :mod:`json` only (no NumPy or scikit-learn: ``--list-profiles`` stays
    light); :func:`powerfit.kernels.model.load_operator_model` builds the model itself.

    Returns
    -------
    list of dict
        ``name`` (``operators-<precision>``), ``precision``, ``gpus`` (fitted),
        ``transferred`` (GPUs whose laws were predicted from specs), ``source``.
    """
    from importlib import resources

    folder = resources.files("powerfit").joinpath("data", "operators")
    entries = []
    for file in sorted(folder.iterdir(), key=lambda f: f.name):
        if not file.name.endswith(".json"):
            continue
        data = json.loads(file.read_text(encoding="utf-8"))
        source = str(data.get("provenance", {}).get("data", "unknown data"))
        source = source[: source.index(")") + 1] if ")" in source else source
        entries.append(
            {
                "name": f"operators-{data['precision']}",
                "precision": data["precision"],
                "gpus": sorted(data.get("specs", {})),
                "transferred": sorted(data.get("transferred", {})),
                "source": source,
            }
        )
    return entries


# ------------------------------------------------------------ one configuration
def _run_one(profile: Any, arch: str, args: argparse.Namespace) -> int:
    """Estimate the configuration given by the shape options, print it."""
    config = {dest: getattr(args, dest) for _, dest, _ in _SHAPE_OPTIONS}
    config = {k: v for k, v in config.items() if v is not None}
    _check_options(config, arch)
    if _plain_python(profile):
        operations, energy = _estimate_one(profile, config)
    else:
        operations, energy = _estimate_with_pandas(profile, config)
    result = {
        "profile": profile.name,
        "gpu": profile.gpu,
        "precision": profile.precision,
        "arch": arch,
        "config": {k: int(v) if float(v).is_integer() else v for k, v in config.items()},
        "energy_j": energy,
        "duration_s": math.fsum(o["duration_s"] for o in operations),
        "operations": operations,
    }
    refuse_non_finite(result, "the estimate")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"profile {profile.name} ({profile.gpu}, {profile.precision}), {arch}: "
        + ", ".join(f"{k}={v:g}" for k, v in config.items())
    )
    print(_table(operations))
    if energy is not None:
        print(f"energy: {energy:.2f} J per training step")
    return 0


def _check_options(config: dict[str, float], arch: str) -> None:
    """The checks of :func:`powerfit.paper.durations.check_configs`, worded for options."""
    needed = ("n_layers", *_REQUIRED[arch])
    missing = [f"--{c.replace('_', '-')}" for c in needed if c not in config]
    if missing:
        flags = ", ".join(f"--{c.replace('_', '-')}" for c in needed)
        raise ValueError(f"missing {', '.join(missing)} (a {arch} needs {flags})")
    for column in (*needed, *(c for c in ("d_ff", "seq_len") if c in config)):
        value = config[column]
        if not (math.isfinite(value) and value > 0):
            raise ValueError(
                f"--{column.replace('_', '-')}: {column} must be a finite number > 0, "
                f"got {value!r}"
            )
    if arch == "transformer" and config["n_heads"] > config["d_model"]:
        raise ValueError(
            f"--n-heads: n_heads ({config['n_heads']:g}) must not exceed "
            f"d_model ({config['d_model']:g})"
        )


def _operations(profile: Any) -> list[str]:
    """The operations a profile's estimate reports, in its order."""
    return list(profile.coef) if profile.coef else list(profile.laws)


def _plain_python(profile: Any) -> bool:
    """Whether :func:`_estimate_one` covers this profile (a Transformer energy model)."""
    return (
        profile.arch == "transformer"
        and bool(profile.coef)
        and all(op in _TRANSFORMER_FLOPS and op in profile.laws for op in _operations(profile))
    )


def _estimate_one(profile: Any, config: dict[str, float]) -> tuple[list[dict], float | None]:
    """Per-operation breakdown and energy of one Transformer configuration, in plain Python.

    The same numbers as :meth:`powerfit.paper.profiles.Profile.estimate` (to rounding):
    FLOPs of one layer's forward pass ``c`` [FLOP], efficiency
    ``η = η_max·(1 − exp(−k·(c/1e12)^α))`` [fraction], duration
    ``n_layers · c / (η · peak)`` [s], energy ``intercept + Σ coef · duration`` [J].

    Returns
    -------
    (list of dict, float or None)
        One record per operation (``op``, ``flops``, ``efficiency``, ``duration_s``
        and, for paper-unit profiles, ``duration_paper``), and the energy [J].
    """
    from powerfit.paper.profiles import PAPER_DURATION_SCALE

    b, s = config["batch_size"], config["seq_len"]
    d, h, layers = config["d_model"], config["n_heads"], config["n_layers"]
    operations = []
    for op in _operations(profile):
        c = _TRANSFORMER_FLOPS[op](b, s, d, h)
        eta_max, k, alpha = profile.laws[op]
        eta = -eta_max * math.expm1(-k * (c / 1e12) ** alpha)
        duration = c / (eta * profile.peak_flops) * layers
        record = {"op": op, "flops": c, "efficiency": eta, "duration_s": duration}
        if profile.paper_units:
            record["duration_paper"] = duration * PAPER_DURATION_SCALE
        operations.append(record)
    energy = None
    if profile.has_energy_model:
        times = {o["op"]: o["duration_s"] for o in operations}
        energy = profile.intercept + sum(coef * times[op] for op, coef in profile.coef.items())
    return operations, energy


def _estimate_with_pandas(profile: Any, config: dict[str, float]) -> tuple[list[dict], Any]:
    """:meth:`powerfit.paper.profiles.Profile.estimate` of one configuration (any architecture)."""
    import pandas as pd

    table, energy = profile.estimate(pd.DataFrame({k: [v] for k, v in config.items()}))
    operations = table.drop(columns="config").to_dict(orient="records")
    return operations, None if energy is None else float(energy.iloc[0])


def _table(operations: list[dict]) -> str:
    """The breakdown as a right-aligned text table (4 significant digits)."""
    names = {"flops": "FLOP", "efficiency": "eta", "duration_s": "time [s]"}
    keys = list(operations[0])
    rows = [[names.get(k, k) for k in keys]]
    rows += [[v if isinstance(v, str) else f"{v:.4g}" for v in o.values()] for o in operations]
    widths = [max(len(row[i]) for row in rows) for i in range(len(keys))]
    lines = [" ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------- many configurations
def _run_many(profile: Any, args: argparse.Namespace) -> int:
    """Estimate every row of ``--input``, block by block, and write or print them.

    Memory holds one block of :data:`CHUNK_ROWS` rows at a time. Errors name the
    file and the data row (counted over the whole file).
    """
    import pandas as pd

    from powerfit.exceptions import DataError
    from powerfit.files import open_input

    source = str(args.input)
    durations = profile.durations()
    writer = _Writer(args)
    rows, done = 0, False
    stack = contextlib.ExitStack()
    try:
        handle = stack.enter_context(open_input(args.input))
        for chunk in pd.read_csv(handle, chunksize=CHUNK_ROWS):
            chunk.index = pd.RangeIndex(rows, rows + len(chunk))
            try:
                out = _estimate_block(profile, durations, chunk, source)
            except DataError as exc:
                if exc.row is None:
                    raise
                raise DataError(
                    exc.message, source=source, row=rows + exc.row, column=exc.column
                ) from None
            writer.write(out)
            rows += len(chunk)
        done = True
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"not a readable CSV file ({exc})", source=source) from None
    finally:
        stack.close()
        writer.close(complete=done)
    if args.output is not None:
        print(f"wrote {rows} estimates to {args.output}", file=sys.stderr)
    return 0


def _estimate_block(profile: Any, durations: Any, configs: Any, source: str) -> Any:
    """Configurations with ``<op>_flops``, ``<op>_efficiency``, ``<op>_duration_s`` and
    ``energy_j`` columns: :meth:`powerfit.paper.profiles.Profile.estimate` in wide form, each
    efficiency evaluated once (duration = n_layers · c / (η · peak) [s])."""
    import numpy as np

    from powerfit.paper.durations import check_configs

    check_configs(configs, profile.arch, source=source)
    with np.errstate(over="ignore", invalid="ignore"):
        out = _estimate_columns(profile, durations, configs)
    computed = out[[c for c in out.columns if c.endswith(("_flops", "_duration_s"))]]
    if profile.has_energy_model:
        computed = computed.assign(energy_j=out["energy_j"])
    bad = ~np.isfinite(computed.to_numpy(dtype=float)).all(axis=1)
    if bad.any():
        from powerfit.exceptions import DataError

        raise DataError(
            "the estimate overflows (not a finite number): the configuration is beyond "
            "what the profile can compute; give smaller values",
            source=source,
            row=int(np.argmax(bad)) + 1,
        )
    return out


def _estimate_columns(profile: Any, durations: Any, configs: Any) -> Any:
    import numpy as np

    from powerfit.paper.laws import efficiency

    flops = durations.operation_flops(configs)
    layers = configs["n_layers"].to_numpy(dtype=float)
    ops = list(durations.operations_)
    out = configs.copy()
    eta = {op: efficiency(flops[op].to_numpy(dtype=float), *profile.laws[op]) for op in ops}
    for op in ops:
        out[f"{op}_flops"] = flops[op].to_numpy()
    for op in ops:
        out[f"{op}_efficiency"] = eta[op]
    times = {}
    for op in ops:
        times[op] = flops[op].to_numpy(dtype=float) / (eta[op] * profile.peak_flops) * layers
        out[f"{op}_duration_s"] = times[op]
    if profile.has_energy_model:
        coef = np.array(list(profile.coef.values()))
        out["energy_j"] = (
            profile.intercept + np.column_stack([times[op] for op in profile.coef]) @ coef
        )
    else:
        out["energy_j"] = float("nan")
    return out


class _Writer:
    """Writes blocks of estimates: a CSV file (``--output``), JSON records or a table.

    A CSV block is written on a second thread while the next one is computed (Arrow's
    writer releases the GIL); at most one block waits.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.first = True
        self.file = None
        self.pending = None
        if args.output is not None:
            from concurrent.futures import ThreadPoolExecutor

            self.file = open(args.output, "wb")  # closed by close()
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="powerfit-csv")

    def write(self, block: Any) -> None:
        if self.file is not None:
            self._wait()
            self.pending = self.pool.submit(_write_csv, block, self.file, self.first)
        elif self.args.json:
            records = block.to_json(orient="records", double_precision=15)[1:-1]
            sys.stdout.write(("[" if self.first else ",") + records)
        else:
            text = block.to_string(
                index=False, header=self.first, float_format=lambda x: f"{x:.4g}"
            )
            print(text)
        self.first = False

    def _wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()  # re-raises a failed write

    def close(self, complete: bool = True) -> None:
        """Finish the output; an incomplete CSV file (a failed run) is removed."""
        if self.file is not None:
            try:
                self._wait()
            finally:
                self.pool.shutdown()
                self.file.close()
                if not complete:
                    Path(self.file.name).unlink(missing_ok=True)
        elif self.args.json:
            print("]" if not self.first else "[]")


def _write_csv(block: Any, file: Any, header: bool) -> None:
    """Append a block to a CSV file: with Arrow's writer where available (10× faster
    than pandas' for floats, the same shortest round-trip numbers), pandas' otherwise.

    Float columns that hold whole numbers only (the FLOPs) are written as integers:
    the same values, 4× faster to format than ``2.74496067e+12``.
    """
    import numpy as np

    block = block.copy(deep=False)
    for name in block.columns:
        values = block[name].to_numpy()
        if values.dtype.kind == "f" and len(values):
            whole = np.isfinite(values).all() and np.abs(values).max() < 2.0**53
            if whole and np.array_equal(values, np.floor(values)):
                block[name] = values.astype(np.int64)
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
    except ImportError:  # pragma: no cover - pyarrow comes with MLflow
        block.to_csv(file, index=False, header=header)
        return
    table = pa.Table.from_pandas(block, preserve_index=False)
    pa_csv.write_csv(table, file, pa_csv.WriteOptions(include_header=header))
