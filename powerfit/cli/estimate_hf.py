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
import json
import sys
from pathlib import Path
from typing import Any


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
        choices=("fp32", "tf32", "fp16", "bf16", "amp-fp16", "amp-bf16"),
        help="precision of the step (default fp32)",
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
        "--power-limit",
        dest="power_limit",
        type=float,
        help="NVML power limit of the board [W] (default its TDP): power capped, step slowed",
    )
    _add(
        parser,
        "--specs-only",
        action="store_true",
        help="predict as if this GPU had never been measured (specs and other GPUs only)",
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
    from powerfit.training import estimate_training

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
        power_limit_w=getattr(args, "power_limit", None),
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
    print(f"step time: {result['step_time_s']:.4g} s  [{t_lo:.3g}, {t_hi:.3g}]")
    print(
        f"energy:    {result['energy_j']:.4g} J  [{e_lo:.3g}, {e_hi:.3g}] "
        f"at {result['power_w']:.0f} W"
    )
    p_lo, p_hi = result["power_interval_w"]
    print(
        f"power:     {result['power_w']:.0f} W  [{p_lo:.0f}, {p_hi:.0f}] per GPU "
        f"(limit {result['power_limit_w']:.0f} W, {result['power_model']['source']} law)"
    )
    print("power limit trade-off (limit W: step s, power W, energy J):")
    for row in result["power_limit_tradeoff"]:
        print(
            f"  {row['power_limit_w']:6.0f}: {row['step_time_s']:.4g} s, "
            f"{row['power_w']:.0f} W, {row['energy_j']:.4g} J"
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
