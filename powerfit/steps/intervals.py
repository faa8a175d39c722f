"""The step-time intervals shipped with powerfit: log half-widths per mode, measured ranges.

The nominal 90 % interval of a step time t is ``[t·e^−q, t·e^q]``;
:func:`half_width_for` gives q for a mode (widened outside the measured steps),
:func:`law_half_width` the part of the operator laws that no measured step checks
(half-precision products, fused attention: their leave-one-GPU-out evidence),
:func:`load_step_intervals` the bundled ``powerfit/data/power/step_time_intervals.json``
(half-widths and measured ranges). The bundle is computed from NeuSight's measured
steps by :func:`powerfit.evaluation.steps.step_interval_bundle`
(``experiments/build_power_models.py``).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "half_width_for",
    "law_half_width",
    "load_step_intervals",
    "timed_by_transfer",
]

#: Factor on the interval's half-width outside the measured steps (model size, batch,
#: sequence, GPU, precision); the ``loo-gpu`` check applies it, as a GPU left out is
#: one without measured steps.
OUT_OF_RANGE_WIDEN = 2.0

STEP_INTERVALS_NAME = "step_time_intervals.json"


def load_step_intervals() -> dict[str, Any] | None:
    """The bundled ``powerfit/data/power/step_time_intervals.json`` (None when absent)."""
    import json
    from importlib import resources

    try:
        text = resources.files("powerfit").joinpath("data", "power", STEP_INTERVALS_NAME)
        return json.loads(text.read_text())
    except (FileNotFoundError, OSError):
        return None


#: Half-widths per mode when no bundle is there (≈ the bundled values of 2026-12-01).
DEFAULT_HALF_WIDTH = {"in-gpu": 0.17, "in-gpu+cal": 0.11, "specs-only": 0.30, "roofline": 0.48}


def half_width_for(
    mode: str, *, outside: bool, roofline: bool, bundle: dict[str, Any] | None = None
) -> float:
    """The log half-width q [-] of a step-time interval, as shipped.

    ``mode``: ``in-gpu``, ``in-gpu+cal``, ``specs-only`` or ``roofline``; ``outside``:
    the step is outside the measured ranges (×``widen_outside``); ``roofline``: some
    rows were timed by the roofline (matrix products of a precision without laws): q
    is then at least the roofline's, and that floor is widened outside the measured
    ranges too (the roofline's own q was measured on FP32 steps of the measured GPUs
    only; a tensor-core product's distance to its roof was never measured).

    ``q = widen^outside · max(q_mode, q_roofline if roofline else 0)``.
    """
    bundle = load_step_intervals() if bundle is None else bundle
    half = dict(DEFAULT_HALF_WIDTH)
    widen = OUT_OF_RANGE_WIDEN
    if bundle:
        half.update({k: float(v["half_width"]) for k, v in bundle["half_width"].items()})
        widen = float(bundle.get("widen_outside", widen))
    q = max(half[mode], half["roofline"]) if roofline else half[mode]
    return q * (widen if outside else 1.0)


def timed_by_transfer(operator_model: Any, gpu: str, precision: str) -> bool:
    """Whether an FP32 step on ``gpu`` is timed by FP32 operator laws transferred from
    other GPUs (``gpu`` has no measured FP32 operators): its step-time interval is then
    the ``specs-only`` mode's. False in other precisions, whose products' own laws carry
    their evidence (:func:`law_half_width`), and without operator laws."""
    return operator_model is not None and precision == "fp32" and not operator_model.measured(gpu)


def law_half_width(
    graph: Any, latency_s: Any, row_source: Any, gpu: str, specs_only: bool = False
) -> tuple[float, float]:
    """The interval part of laws no measured step checks, from their own evidence.

    Rows timed by the half-precision laws (FP16/BF16 rows of source ``laws``) and by the
    fused-attention laws were never checked on whole steps (NeuSight's steps are FP32,
    eager): their error is their laws' evidence, the log half-width q of the GPU's own
    laws (``fit``) or of laws transferred from the other GPUs (``transfer``,
    leave-one-GPU-out residuals; :func:`powerfit.kernels.half.half_precision_half_width`,
    :meth:`powerfit.kernels.attention.FusedAttentionLaws.half_width`).

    Returns
    -------
    q : float
        ``Σ share_i · q_i`` over those rows (their errors go together: one set of laws),
        share_i the row's part of the step time [-]; 0 when there are none.
    share : float
        Their part of the step time [-].
    """
    import numpy as np

    from powerfit.kernels.attention import FUSED_ATTENTION_OPS, load_fused_attention_laws
    from powerfit.kernels.attention_kernels import attention_kernels
    from powerfit.kernels.half import half_precision_half_width
    from powerfit.steps.latency import bundled_operator_model

    t = np.asarray(latency_s, float) * graph["count"].to_numpy(float)
    total = float(t.sum())
    if total <= 0:
        return 0.0, 0.0
    source = np.asarray(row_source, dtype=object)
    precision = graph["precision"].astype(str).to_numpy()
    op = graph["op"].astype(str).to_numpy()
    q = np.zeros(len(t))
    half = (source == "laws") & np.isin(precision, ["fp16", "bf16"])
    for p, o in {(p, o) for p, o in zip(precision[half], op[half], strict=True)}:
        model = bundled_operator_model(p)
        origin = "transfer" if specs_only or model is None else model.law(gpu, o)[1]
        q[half & (precision == p) & (op == o)] = half_precision_half_width(origin)
    fused = np.isin(op, list(FUSED_ATTENTION_OPS)) & (source != "roofline")
    if fused.any():
        laws = load_fused_attention_laws()
        kernel = np.full(len(t), "", dtype=object)
        kernel[fused] = attention_kernels(graph[fused])
        for p, k in set(zip(precision[fused], kernel[fused], strict=True)):
            rows = fused & (precision == p) & (kernel == k)
            family = k if p in ("fp16", "bf16") else "mem-efficient"
            origin = laws.law(gpu, family, specs_only)[1]
            if source[rows][0] == "fused attention assumed":
                origin = "assumed-fp32"
            q[rows] = laws.half_width(origin, family)  # assumed-fp32: fa2's evidence, doubled
    counted = (half | fused) & np.isfinite(q)
    share = float(t[counted].sum() / total)
    return float(np.sum(t[counted] * q[counted]) / total), share
