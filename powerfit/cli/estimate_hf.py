"""``powerfit estimate --hf-config``: a training step and a whole run of a Hugging Face model.

The estimate is :func:`powerfit.training.estimate_training` (its notes say how it is
made and where it extrapolates); ``--json`` prints the dict it returns. This module
exposes ``add_arguments(parser)`` and ``run(args) -> int``; the ``estimate``
sub-command calls them when ``--hf-config`` is given.

example::

  powerfit estimate --hf-config gpt2-large/config.json --gpu h100 --batch-size 4 \\
      --seq-len 1024 --precision amp-bf16 --steps 50000 --grid-intensity 350 --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: What each precision means for a training step (``--help`` and the output say it).
PRECISION_MEANING = {
    "fp32": "everything in fp32 on CUDA cores",
    "tf32": "matrix products on tensor cores in tf32, tensors in fp32",
    "fp16": "pure fp16: products, activations, norms, softmax, loss and optimizer in fp16",
    "bf16": "pure bf16: products, activations, norms, softmax, loss and optimizer in bf16",
    "amp-fp16": "mixed (torch.autocast fp16): products and element-wise in fp16; "
    "softmax, norms, loss and optimizer in fp32",
    "amp-bf16": "mixed (torch.autocast bf16): products and element-wise in bf16; "
    "softmax, norms, loss and optimizer in fp32 (slower than pure bf16)",
}


def _add(parser: argparse.ArgumentParser, *flags: str, **kwargs: Any) -> None:
    """Add an option unless the parser has it already (shared with ``estimate``)."""
    if any(flag in parser._option_string_actions for flag in flags):
        return
    parser.add_argument(*flags, **kwargs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--hf-config`` options to a parser (options it has are kept)."""
    _add(parser, "--hf-config", type=Path, help="a Hugging Face config.json (no download)")
    _add(parser, "--gpu", help="GPU name or alias (e.g. 'NVIDIA H100 80GB HBM3', h100)")
    _add(parser, "--batch-size", dest="batch_size", type=float, help="sequences per step [-]")
    _add(parser, "--seq-len", dest="seq_len", type=float, help="tokens per sequence [-]")
    _add(
        parser,
        "--precision",
        default="fp32",
        choices=tuple(PRECISION_MEANING),
        help="precision of the step (default fp32). bf16/fp16: the whole step in half "
        "precision; amp-bf16/amp-fp16: automatic mixed precision as torch.autocast runs "
        "it, products and element-wise operators in half precision but softmax, "
        "normalisations, loss and optimizer in fp32, so more bytes move and the step "
        "is slower (GPT-2 large on an H100: amp-bf16 ≈ 1.2× bf16). Give the one your "
        "training script uses",
    )
    _add(
        parser,
        "--optimizer",
        default="adamw",
        choices=("adamw", "sgd", "none"),
        help="parameter update (default adamw)",
    )
    _add(parser, "--checkpointing", action="store_true", help="activation checkpointing")
    _add(parser, "--steps", type=int, help="training steps of the whole run [-]")
    _add(parser, "--tokens", type=float, help="training tokens of the whole run [-]")
    _add(parser, "--grid-intensity", type=float, help="grid carbon intensity [gCO2/kWh]")
    _add(parser, "--pue", type=float, default=1.0, help="data-centre PUE [-] (default 1.0)")
    _add(
        parser,
        "--specs-only",
        action="store_true",
        help="predict as if this GPU had never been measured (specs and other GPUs only)",
    )
    _add(
        parser,
        "--db",
        metavar="URL",
        help="store whose GPUs (powerfit gpus add) are known besides the catalogue "
        "(default: POWERFIT_DB_URL, else the default store)",
    )
    _add(parser, "--json", action="store_true", help="print JSON")
    _add(parser, "--top", type=int, default=10, help="operators shown in the breakdown")


def _positive_int(value: Any, flag: str) -> int:
    if value is None:
        raise ValueError(f"{flag} is required with --hf-config")
    if value <= 0 or value != int(value):
        raise ValueError(f"{flag} must be a positive integer, got {value:g}")
    return int(value)


def estimate(args: argparse.Namespace) -> dict[str, Any]:
    """The estimate as a JSON-serialisable dict (what ``--json`` prints).

    :func:`powerfit.training.estimate_training` with the command's options (errors
    name the options).
    """

    # The options this command shares with ``estimate`` may be absent or None there.
    defaults = {
        "precision": "fp32",
        "optimizer": "adamw",
        "steps": None,
        "tokens": None,
        "grid_intensity": None,
        "pue": 1.0,
        "gpu": None,
        "batch_size": None,
        "seq_len": None,
    }
    args = argparse.Namespace(
        **{**vars(args), **{k: v for k, v in defaults.items() if getattr(args, k, None) is None}}
    )
    if args.gpu is None:
        raise ValueError("--gpu is required with --hf-config")
    batch = _positive_int(args.batch_size, "--batch-size")
    seq = _positive_int(args.seq_len, "--seq-len")
    if args.steps is not None and args.tokens is not None:
        raise ValueError("give --steps or --tokens, not both")
    if args.steps is None and args.tokens is None and args.grid_intensity is not None:
        raise ValueError("--grid-intensity needs --steps or --tokens")
    with _store_gpus(args.gpu, getattr(args, "db", None)):
        return _estimate_training(args, batch, seq)


@contextlib.contextmanager
def _store_gpus(gpu: str, db: str | None) -> Iterator[None]:
    """Within the block, the store's GPUs (``powerfit gpus add``) are known by name.

    The store is opened only for a GPU the catalogue lacks (and only if it exists).
    """
    from powerfit.hardware.gpus import extra_gpus, get_gpu

    try:
        get_gpu(gpu)
    except ValueError:
        specs = _user_gpus(db)
        if specs:
            with extra_gpus(specs):
                yield
            return
    yield


def _user_gpus(db: str | None) -> list[Any]:
    """Specs of the store's GPUs beyond the catalogue; none when there is no store yet."""
    from pathlib import Path

    from powerfit.store import open_store, resolve_url
    from powerfit.store.gpus import store_gpus

    url = resolve_url(db)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
        return []
    with open_store(url) as store:
        return [spec for spec, _origin in store_gpus(store.engine).values()]


def _estimate_training(args: argparse.Namespace, batch: int, seq: int) -> dict[str, Any]:
    from powerfit.training import estimate_training

    return estimate_training(
        args.hf_config,
        args.gpu,
        batch,
        seq,
        precision=args.precision,
        optimizer=args.optimizer,
        checkpointing=bool(getattr(args, "checkpointing", False)),
        specs_only=bool(getattr(args, "specs_only", False)),
        steps=args.steps,
        tokens=args.tokens,
        grid_intensity=args.grid_intensity,
        pue=args.pue,
        top=int(getattr(args, "top", 10)),
    )


def run(args: argparse.Namespace) -> int:
    """Run ``powerfit estimate --hf-config ...``; print text or ``--json``."""
    result = estimate(args)
    for note in result["warnings"]:
        print(f"warning: {note}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2))
        return 0
    t_lo, t_hi = result["step_time_interval_s"]
    e_lo, e_hi = result["energy_interval_j"]
    print(
        f"{result['model']['family']} ({result['model']['n_parameters'] / 1e9:.3g} B parameters) "
        f"on {result['gpu']}, batch {result['batch_size']} × {result['seq_len']} tokens, "
        f"{result['precision']}, {result['optimizer']} [{result['mode']}]"
    )
    print(f"precision: {result['precision']} = {PRECISION_MEANING[result['precision']]}")
    print(f"step time: {result['step_time_s']:.4g} s  [{t_lo:.3g}, {t_hi:.3g}]")
    print(
        f"energy:    {result['energy_j']:.4g} J  [{e_lo:.3g}, {e_hi:.3g}] "
        f"at {result['power_w']:.0f} W"
    )
    if "run_energy_kwh" in result:
        lo, hi = result["run_energy_interval_kwh"]
        print(
            f"run:       {result['steps']} steps, {result['run_energy_kwh']:.4g} kWh "
            f"[{lo:.3g}, {hi:.3g}]"
        )
        if "co2_kg" in result:
            lo, hi = result["co2_interval_kg"]
            print(f"           {result['co2_kg']:.4g} kg CO2 [{lo:.3g}, {hi:.3g}]")
    print("largest operators:")
    for op in result["operators"]:
        print(f"  {op['name']:<50} {op['time_s']:.4g} s  {100 * op['share']:.1f} %")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m powerfit.cli.estimate_hf``)."""
    parser = argparse.ArgumentParser(
        prog="powerfit estimate", description=__doc__.split("\n\n")[0]
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.hf_config is None:
        parser.error("--hf-config is required")
    try:
        return run(args)
    except ValueError as exc:
        print(f"powerfit estimate: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
