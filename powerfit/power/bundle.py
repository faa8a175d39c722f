"""The power laws shipped with powerfit: fitted where power was measured, else transferred.

:func:`board_law_for` gives the board power law every estimate uses (the bundle's
``boards`` section: NVML power of Zeus 2023 and ML.ENERGY 2026 boards,
:mod:`powerfit.power.board`); :func:`power_model_for` the paper's CodeCarbon law
(below), kept to score the paper's energy.

The bundle ``powerfit/data/power/power_models.json`` (JSON, no pickle) is built by
:func:`powerfit.evaluation.power.build_power_bundle` (``experiments/build_power_models.py``).
:func:`power_model_for` reads a GPU's law from it: fitted on that GPU's measured
energy, else transferred from the measured GPUs' fractions of TDP (None when there is
no bundle).

The CodeCarbon section, and its caveat: the published energy is CodeCarbon's
(GPU + CPU + RAM), and its mean power is flat (A100: 98 ± 4 W over utilisations of
8–34 % of the TF32 peak, against a 300 W TDP; RTX 2080 Ti: 83 ± 3 W over 18–39 %,
against 250 W): the fitted laws are constants (P_max ≈ P_idle, γ at a bound), a
constant power does as well on held-out configurations, and the transfer to other
GPUs is ≈ 0.33 · TDP at any utilisation. The fitted law says what these measurements
say, not what a GPU draws at full load: above the measured utilisations the interval's
upper bound is stretched towards TDP (:meth:`~powerfit.power.law.PowerFit.interval`).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from powerfit.power.law import PowerFit

__all__ = ["BUNDLE_NAME", "board_law_for", "load_power_bundle", "power_model_for"]

BUNDLE_NAME = "power_models.json"


_BUNDLE: dict[str, Any] = {}


def load_power_bundle() -> dict[str, Any] | None:
    """The bundled ``powerfit/data/power/power_models.json`` (None when absent)."""
    if "b" not in _BUNDLE:
        try:
            text = resources.files("powerfit").joinpath("data", "power", BUNDLE_NAME).read_text()
        except (FileNotFoundError, OSError):
            _BUNDLE["b"] = None
        else:
            _BUNDLE["b"] = json.loads(text)
    return _BUNDLE["b"]


def power_model_for(gpu: str, bundle: dict[str, Any] | None = None) -> PowerFit | None:
    """The bundled power law of a GPU: fitted on it when measured, else transferred.

    Returns None when there is no bundle.
    """
    from powerfit.hardware.gpus import get_gpu as _gpu

    bundle = load_power_bundle() if bundle is None else bundle
    if bundle is None:
        return None
    spec = _gpu(gpu)
    d = bundle["gpus"].get(spec.name)
    if d is not None:
        fit = PowerFit(
            spec.name,
            float(d["tdp_w"]),
            float(d["p_idle_w"]),
            float(d["p_max_w"]),
            float(d["gamma"]),
            float(d["sigma_log"]),
            True,
            tuple(d["u_range"]),
            int(d["n_runs"]),
            int(d["n_configs"]),
        )
    else:
        t = bundle["transfer"]
        tdp = float(spec.power_limit_w)
        fit = PowerFit(
            spec.name,
            tdp,
            float(t["idle_fraction"]) * tdp,
            float(t["max_fraction"]) * tdp,
            float(t["gamma"]),
            float(t["sigma_log"]),
            False,
            tuple(t.get("u_range", (0.0, 0.0))),
        )
    fit.check_bounds()
    return fit


def board_law_for(gpu: str, bundle: dict[str, Any] | None = None) -> Any:
    """The board power law of a GPU (:class:`~powerfit.power.board.BoardPowerLaw`).

    Fitted on the GPU's measured board power where the bundle's ``boards`` section
    has it (Zeus 2023, ML.ENERGY 2026); else transferred from the measured GPUs by
    specs (TDP, memory type) with the leave-one-GPU-out interval; the unfitted prior
    (:func:`~powerfit.power.board.prior_board_power`) when nothing is bundled.
    """
    from powerfit.hardware.gpus import get_gpu as _gpu
    from powerfit.power.board import BoardPowerLaw, prior_board_power, transfer_board_power

    spec = _gpu(gpu)
    bundle = load_power_bundle() if bundle is None else bundle
    boards = (bundle or {}).get("boards")
    if not boards:
        return prior_board_power(spec.name, float(spec.power_limit_w))
    laws = {k: BoardPowerLaw.from_dict(v) for k, v in boards["gpus"].items()}
    if spec.name in laws:
        return laws[spec.name]
    q = boards.get("transfer_log_q")
    return transfer_board_power(
        list(laws.values()),
        spec.name,
        float(spec.power_limit_w),
        None if q is None else tuple(q),
        boards.get("transfer_shape"),
    )
