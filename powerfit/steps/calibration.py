"""The per-GPU correction of a summed step time, and its fit on measured step times.

:class:`Calibration` is ``t = scale · Σ t_op + n_ops · launch`` with physically bounded
coefficients; :func:`fit_calibration` fits it on measured steps (where they come from
is the caller's: :mod:`powerfit.steps.measured` for NeuSight's,
:class:`~powerfit.steps.regressor.StepTimeRegressor` for any).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

__all__ = ["Calibration", "fit_calibration"]


@dataclass(frozen=True)
class Calibration:
    """Per-GPU correction of a summed step time: ``t = scale · Σ t_op + n_ops · launch``.

    ``scale`` ∈ [0.8, 1.25] absorbs a systematic bias of the operator laws on whole
    graphs; ``launch`` ∈ [0, 20 µs] is host overhead per operator launch beyond the
    fixed cost of a queued call the summed latencies already hold
    (:data:`powerfit.steps.latency.QUEUED_CALL_S`). Both bounds are physical: an
    operator law off by more than 25 % should be refitted, not calibrated, and a
    kernel launch of eager PyTorch costs a few µs.

    ``mape_before``/``mape_after`` [%] are in-sample; ``mape_loo`` [%] is the
    leave-one-step-out error of the calibrated sums. ``used`` is False when the
    calibration did not beat the uncalibrated sum out of sample: it is then the
    identity (scale 1, no launch term) and only reported.
    """

    gpu: str
    scale: float = 1.0
    launch_s: float = 0.0
    n_steps: int = 0
    mape_before: float = float("nan")
    mape_after: float = float("nan")
    mape_loo: float = float("nan")
    used: bool = True

    BOUNDS: ClassVar[dict[str, tuple[float, float]]] = {
        "scale": (0.8, 1.25),
        "launch_s": (0.0, 20e-6),
    }

    def apply(self, summed_s: float, n_ops: float) -> float:
        return self.scale * summed_s + self.launch_s * n_ops


#: Fewest measured steps with which :func:`fit_calibration` fits the launch term besides
#: the scale (two coefficients, at least two degrees of freedom left to check them).
MIN_STEPS_FOR_LAUNCH = 4


def fit_calibration(
    gpu: str, summed_s: np.ndarray, n_ops: np.ndarray, measured_s: np.ndarray
) -> Calibration:
    """Fit :class:`Calibration` on measured steps (least relative squares, bounded).

    Parameters
    ----------
    gpu : str
        GPU name.
    summed_s, n_ops, measured_s : array-like
        Per measured step: the summed operator latencies [s], the operator launches
        [-] and the measured step time [s]. With fewer than
        :data:`MIN_STEPS_FOR_LAUNCH` steps only the scale is fitted.
    """
    from scipy.optimize import lsq_linear

    s = np.asarray(summed_s, float)
    n = np.asarray(n_ops, float)
    y = np.asarray(measured_s, float)
    if s.size == 0:
        raise ValueError("no measured steps to calibrate on")
    lo = [Calibration.BOUNDS["scale"][0], Calibration.BOUNDS["launch_s"][0]]
    hi = [Calibration.BOUNDS["scale"][1], Calibration.BOUNDS["launch_s"][1]]
    if s.size < MIN_STEPS_FOR_LAUNCH:  # too few steps for two coefficients: the scale alone
        hi[1] = lo[1] + 1e-12
    A = np.column_stack([s / y, n / y])
    fit = lsq_linear(A, np.ones_like(y), bounds=(lo, hi))
    scale, launch = (float(np.clip(v, a, b)) for v, a, b in zip(fit.x, lo, hi, strict=True))
    before = float(np.mean(np.abs(s - y) / y) * 100)
    after = float(np.mean(np.abs(scale * s + launch * n - y) / y) * 100)
    return Calibration(gpu, scale, launch, int(s.size), before, after)
