"""The paper's CodeCarbon power law of a step's utilisation: the law, its fit, its transfer.

Estimates use the board power laws fitted on measured NVML power
(:mod:`powerfit.power.board`); this law is kept to fit and score the paper's
CodeCarbon energy (:mod:`powerfit.evaluation.power`), whose power is flat.

``P(u) = P_idle + (P_max − P_idle) · u^γ`` [W], with ``u`` ∈ [0, 1] the step's
compute utilisation (Σ FLOP / peak over the step's time,
:func:`powerfit.steps.latency.utilisation`). The parameters are physically bounded
(:data:`POWER_BOUNDS`): ``0 < P_idle < P_max ≤ TDP`` and γ in [0.2, 3].
:func:`fit_power` fits them on the mean powers of a GPU's measured steps by least
squares on log power (:mod:`powerfit.evaluation.power` builds those steps from the
published data and scores the fits on held-out configurations).

For a GPU without measured energy the model is **transferred** (:func:`transfer_power`):
the fractions of TDP (P_idle / TDP, P_max / TDP) and γ are the means over the measured
GPUs, applied to that GPU's TDP; its interval is wider (the measured GPUs' own spread plus the
leave-one-GPU-out error), and it is flagged ``fitted=False``.
Where nothing is bundled, :func:`prior_power` is the unfitted prior: the board draws
between idle and its limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["POWER_BOUNDS", "Z90", "PowerFit", "fit_power", "power_law", "prior_power"]

#: Bounds of the fitted parameters: fractions of the GPU's TDP and the exponent [-].
POWER_BOUNDS: dict[str, tuple[float, float]] = {
    "idle_fraction": (0.02, 0.9),
    "max_fraction": (0.05, 1.0),
    "gamma": (0.2, 3.0),
}

#: Two-sided 90 % quantile of a standard normal [-].
Z90 = 1.6448536269514722

#: The unfitted prior where no power law is bundled (:func:`prior_power`): fractions
#: of TDP at u = 0 and u = 1, and the exponent (0.5: power rises fast at low
#: utilisation because memory traffic also costs power) [-].
PRIOR = {"idle_fraction": 0.2, "max_fraction": 1.0, "gamma": 0.5}


def power_law(u: Any, p_idle_w: float, p_max_w: float, gamma: float) -> np.ndarray:
    """``P_idle + (P_max − P_idle) · clip(u, 0, 1)^γ`` [W]."""
    u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
    return p_idle_w + (p_max_w - p_idle_w) * u**gamma


@dataclass(frozen=True)
class PowerFit:
    """A fitted (or transferred) power law of one GPU.

    Attributes
    ----------
    gpu : str
        NVML name.
    tdp_w : float
        Board power limit [W].
    p_idle_w, p_max_w : float
        Power at u = 0 and u = 1 [W].
    gamma : float
        Exponent [-].
    sigma_log : float
        Standard deviation of log(measured / predicted power) out of sample [-]; the
        90 % interval is ``P · exp(± Z90 · sigma_log)``.
    fitted : bool
        True when fitted on this GPU's measured energy; False when transferred.
    u_range : tuple of float
        Utilisations measured [-] (empty range when transferred).
    n_runs, n_configs : int
        Published steps and distinct configurations behind the fit.
    prior : bool
        True for the unfitted prior (:func:`prior_power`): nothing measured behind it.
    """

    gpu: str
    tdp_w: float
    p_idle_w: float
    p_max_w: float
    gamma: float
    sigma_log: float
    fitted: bool = True
    u_range: tuple[float, float] = (0.0, 0.0)
    n_runs: int = 0
    n_configs: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    prior: bool = False

    def power(self, utilisation: Any) -> np.ndarray:
        """Mean board power [W] at a utilisation [-]."""
        return power_law(utilisation, self.p_idle_w, self.p_max_w, self.gamma)

    def interval(self, utilisation: Any, widen: Any = None) -> tuple[Any, Any]:
        """Nominal 90 % interval of the power [W], within [0, TDP].

        ``P · exp(± Z90 · sigma_log · widen)``; ``widen`` (default
        :meth:`widening`) grows outside the measured utilisations. Above them the
        upper bound is stretched linearly towards the TDP (reached at u = 1): the
        measured steps say nothing about a busier GPU but that it stays under TDP.
        """
        u = np.clip(np.asarray(utilisation, dtype=float), 0.0, 1.0)
        p = self.power(u)
        w = self.widening(u) if widen is None else np.asarray(widen, dtype=float)
        half = Z90 * self.sigma_log * w
        lo = np.maximum(p * np.exp(-half), 0.0)
        hi = np.minimum(p * np.exp(half), self.tdp_w)
        u_max = self.u_range[1]
        if u_max > 0:
            stretch = np.clip((u - u_max) / max(1.0 - u_max, 1e-9), 0.0, 1.0)
            hi = hi + (self.tdp_w - hi) * stretch
        return lo, hi

    def outside(self, utilisation: float) -> bool:
        """True when a utilisation is outside the measured ones (or not fitted here)."""
        lo, hi = self.u_range
        return (not self.fitted) or not (lo <= float(utilisation) <= hi)

    def widening(self, utilisation: Any) -> np.ndarray:
        """Factor [-] on the log half-width: 1 inside the measured range, then 1 + the
        distance to it in units of its width."""
        lo, hi = self.u_range
        u = np.asarray(utilisation, dtype=float)
        if hi <= lo:
            return np.ones_like(u)
        return 1.0 + (np.maximum(lo - u, 0.0) + np.maximum(u - hi, 0.0)) / (hi - lo)

    def check_bounds(self) -> None:
        """Raise ValueError when a parameter is outside :data:`POWER_BOUNDS`."""
        lo, hi = POWER_BOUNDS["idle_fraction"]
        if not lo * self.tdp_w - 1e-9 <= self.p_idle_w <= hi * self.tdp_w + 1e-9:
            raise ValueError(f"{self.gpu}: P_idle {self.p_idle_w:.1f} W outside bounds")
        if not self.p_idle_w < self.p_max_w <= self.tdp_w + 1e-9:
            raise ValueError(f"{self.gpu}: P_max {self.p_max_w:.1f} W not in (P_idle, TDP]")
        lo, hi = POWER_BOUNDS["gamma"]
        if not lo - 1e-12 <= self.gamma <= hi + 1e-12:
            raise ValueError(f"{self.gpu}: gamma {self.gamma:.3g} outside [{lo}, {hi}]")

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu,
            "tdp_w": self.tdp_w,
            "p_idle_w": self.p_idle_w,
            "p_max_w": self.p_max_w,
            "gamma": self.gamma,
            "idle_fraction": self.p_idle_w / self.tdp_w,
            "max_fraction": self.p_max_w / self.tdp_w,
            "sigma_log": self.sigma_log,
            "fitted": self.fitted,
            "u_range": list(self.u_range),
            "n_runs": self.n_runs,
            "n_configs": self.n_configs,
            "metrics": self.metrics,
        }


def fit_power(gpu: str, utilisation: Any, power_w: Any, tdp_w: float) -> PowerFit:
    """Fit the bounded power law of one GPU (least squares on log power).

    Parametrised as P_idle = a·TDP, P_max = P_idle + b·(TDP − P_idle) with a, b and
    γ inside :data:`POWER_BOUNDS`, so every fit satisfies 0 < P_idle < P_max ≤ TDP.
    ``sigma_log`` is the in-sample residual spread (see
    :func:`~powerfit.evaluation.power.evaluate_power` for the held-out one).
    """
    from scipy.optimize import least_squares

    u = np.clip(np.asarray(utilisation, float), 0.0, 1.0)
    p = np.asarray(power_w, float)
    if u.size < 3 or u.shape != p.shape:
        raise ValueError(f"{gpu}: need ≥ 3 (utilisation, power) pairs of equal length")
    if not np.all(p > 0):
        raise ValueError(f"{gpu}: measured power must be positive")
    a_lo, a_hi = POWER_BOUNDS["idle_fraction"]
    g_lo, g_hi = POWER_BOUNDS["gamma"]
    # b ≥ a small margin keeps P_max > P_idle; b ≤ 1 keeps P_max ≤ TDP
    lo, hi = [a_lo, 1e-3, g_lo], [a_hi, 1.0, g_hi]

    def model(x):
        idle = x[0] * tdp_w
        return power_law(u, idle, idle + x[1] * (tdp_w - idle), x[2])

    best = None
    for a0 in (0.1, 0.3, 0.6):
        for g0 in (0.5, 1.0, 2.0):
            x0 = [a0, 0.5, g0]
            r = least_squares(lambda x: np.log(model(x) / p), x0, bounds=(lo, hi))
            if best is None or r.cost < best.cost:
                best = r
    a, b, gamma = (float(v) for v in best.x)
    idle = a * tdp_w
    pmax = idle + b * (tdp_w - idle)
    resid = np.log(p / model(best.x))
    fit = PowerFit(
        gpu,
        float(tdp_w),
        idle,
        pmax,
        gamma,
        float(np.std(resid, ddof=min(3, u.size - 1))),
        True,
        (float(u.min()), float(u.max())),
        int(u.size),
    )
    fit.check_bounds()
    return fit


def transfer_power(fits: list[PowerFit], gpu: str, tdp_w: float) -> PowerFit:
    """A power law for a GPU without measured energy, from other GPUs' fits.

    Mean fractions of TDP and mean γ; ``sigma_log`` = the largest own spread plus the
    spread of the fits' relative power at their mean utilisation (a wider interval).
    """
    if not fits:
        raise ValueError("no fitted GPU to transfer from")
    idle = float(np.mean([f.p_idle_w / f.tdp_w for f in fits]))
    pmax = float(np.mean([f.p_max_w / f.tdp_w for f in fits]))
    gamma = float(np.mean([f.gamma for f in fits]))
    grid = np.linspace(0.0, 1.0, 21)
    mean = power_law(grid, idle, pmax, gamma)
    spread = 0.0
    for f in fits:
        own_curve = power_law(grid, f.p_idle_w, f.p_max_w, f.gamma) / f.tdp_w
        spread = max(spread, float(np.max(np.abs(np.log(own_curve / mean)))))
    own = max(f.sigma_log for f in fits)
    # at least a 15 % log spread: one or two GPUs say little about a third one
    sigma = max(own + spread / Z90, 0.15)
    u_range = (min(f.u_range[0] for f in fits), max(f.u_range[1] for f in fits))
    return PowerFit(gpu, float(tdp_w), idle * tdp_w, pmax * tdp_w, gamma, sigma, False, u_range)


def prior_power(gpu: str, tdp_w: float) -> PowerFit:
    """The unfitted prior power law of a GPU (:data:`PRIOR`), used when none is bundled.

    ``P_idle = 0.2·TDP``, ``P_max = TDP``, ``γ = 0.5``; its 90 % interval spans a
    factor ``TDP / P_idle`` either way of the law (clipped to [0, TDP]): the prior
    knows only that the board draws between idle and its limit.

    Examples
    --------
    >>> law = prior_power("NVIDIA A100 80GB PCIe", 300.0)
    >>> float(law.power(0.0)), float(law.power(1.0)), law.fitted, law.prior
    (60.0, 300.0, False, True)
    """
    idle = PRIOR["idle_fraction"]
    fit = PowerFit(
        gpu,
        float(tdp_w),
        idle * float(tdp_w),
        PRIOR["max_fraction"] * float(tdp_w),
        PRIOR["gamma"],
        float(np.log(1.0 / idle) / Z90),
        fitted=False,
        prior=True,
    )
    fit.check_bounds()
    return fit
