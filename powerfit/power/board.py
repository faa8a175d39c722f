"""Board power of a GPU from what a step sustains: the law, its fit, transfer and power limit.

One law per GPU (NVML board power, averaged over a step or an epoch)::

    P(u_c, u_m) = P_idle + (P_max − P_idle) · (1 − exp(−(k_c·u_c + k_m·u_m)))^γ   [W]

with ``u_c`` the step's achieved fraction of the compute peak at its precision
(Σ FLOP / (peak · time)) and ``u_m`` its achieved fraction of the DRAM bandwidth
(Σ bytes / (bandwidth · time)), both from the step's operator graph and the operator
laws' latencies (:func:`step_fractions`). It is bounded
``0 ≤ P_idle ≤ P_max ≤ limit`` (:data:`BOARD_BOUNDS`), non-decreasing in ``u_c``
and ``u_m`` (k ≥ 0, γ > 0), and capped at the power limit.

:func:`fit_board_power` fits it by bounded least squares on log power
(:func:`scipy.optimize.least_squares`), with parameter uncertainties from the
Jacobian and the residuals, and the interval from cross-validated log residuals
(whole workloads held out). :func:`transfer_board_power` gives a GPU without measurements the
measured GPUs' rise in fractions of TDP (:func:`fit_transfer_shape`, on the boards
measured in the regime asked for: training or serving), its idle floor from GPUs of
the same memory type (:data:`powerfit.hardware.gpus.MEMORY_TYPE`), with a wider interval
(leave-one-GPU-out residuals).

Power limit (:class:`LimitLaw`, fitted on the Zeus traces): a board asked to draw
``P₀`` above its limit ``L`` runs at lower clocks; its power is ``min(P₀, ρ·L)`` and
its step takes ``((P₀ − P_idle) / (ρ·L − P_idle))^η`` times longer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from powerfit.hardware.gpus import memory_type

__all__ = [
    "BOARD_BOUNDS",
    "IDLE_FRACTION",
    "BoardPowerLaw",
    "LimitLaw",
    "board_power",
    "fit_board_power",
    "fit_limit_law",
    "fit_transfer_shape",
    "limit_range",
    "log_half_width",
    "prior_board_power",
    "step_fractions",
    "transfer_board_power",
]

#: Bounds of the fitted parameters: idle and maximum as fractions of the limit,
#: the rates and the exponent [-].
BOARD_BOUNDS: dict[str, tuple[float, float]] = {
    "idle_fraction": (0.03, 0.6),
    "max_fraction": (0.0, 1.0),  # of the span limit − idle
    "k_c": (0.0, 50.0),
    "k_m": (0.0, 50.0),
    "gamma": (0.3, 3.0),
}

#: Idle floor as a fraction of TDP when no GPU of that memory type was measured [-]
#: (NVML idle of a loaded process: HBM data-centre boards ≈ 0.12, GDDR boards ≈ 0.25).
IDLE_FRACTION: dict[str, float] = {"HBM": 0.12, "GDDR": 0.25}

#: A GPU's measurements pin its idle floor when one draws under this fraction of TDP [-]
#: (the transfer takes idle fractions from such GPUs only: serving never idles).
IDLE_MEASURED_FRACTION = 0.2

#: Spreads of the idle prior [-]: of log(P_idle / (fraction · TDP)), and the typical
#: log residual of a measurement it is weighed against.
PRIOR_SIGMA_IDLE = 0.3
PRIOR_SIGMA_DATA = 0.1

#: Lowest settable NVML power limit as a fraction of the default limit where the
#: catalogue does not know it [-] (V100 PCIe 100/250 W, A40 100/300, H100 SXM 200/700).
MIN_LIMIT_FRACTION = 0.3

#: Known lowest settable limits [W] (``nvidia-smi -q -d POWER``, Min Power Limit).
MIN_LIMIT_W: dict[str, float] = {
    "Tesla V100-PCIE-32GB": 100.0,
    "Tesla P100-PCIE-16GB": 125.0,
    "NVIDIA A40": 100.0,
    "Quadro RTX 6000": 100.0,
    "NVIDIA H100 80GB HBM3": 200.0,
    "NVIDIA A100 80GB PCIe": 150.0,
    "NVIDIA B200": 200.0,
}


def limit_range(gpu: str, tdp_w: float) -> tuple[float, float]:
    """The settable power limits of a board [W]: (lowest, default = TDP)."""
    return MIN_LIMIT_W.get(gpu, MIN_LIMIT_FRACTION * tdp_w), float(tdp_w)


def board_power(
    u_c: Any, u_m: Any, p_idle_w: float, p_max_w: float, k_c: float, k_m: float, gamma: float
) -> np.ndarray:
    """``P_idle + (P_max − P_idle)·(1 − exp(−(k_c·u_c + k_m·u_m)))^γ`` [W], u in [0, 1]."""
    uc = np.clip(np.asarray(u_c, dtype=float), 0.0, 1.0)
    um = np.clip(np.asarray(u_m, dtype=float), 0.0, 1.0)
    x = -np.expm1(-(k_c * uc + k_m * um))
    return p_idle_w + (p_max_w - p_idle_w) * np.power(np.maximum(x, 0.0), gamma)


@dataclass(frozen=True)
class LimitLaw:
    """How a board behaves under a power limit (fitted on the Zeus traces).

    Attributes
    ----------
    eta : float
        Exponent of the slowdown ``t_L / t = ((P₀ − P_idle)/(ρL − P_idle))^η`` [-].
    rho : float
        Average power reached under a binding limit, as a fraction of it [-].
    mape_time_pct, mape_power_pct : float
        Errors of the slowdown and of the capped power on the capped Zeus rows [%].
    n : int
        Capped rows behind the fit.
    """

    eta: float = 0.5
    rho: float = 0.97
    mape_time_pct: float = float("nan")
    mape_power_pct: float = float("nan")
    n: int = 0

    def apply(self, p0_w: Any, p_idle_w: float, limit_w: float) -> tuple[np.ndarray, np.ndarray]:
        """(power [W], time factor [-]) of a step drawing ``p0_w`` unconstrained."""
        p0 = np.asarray(p0_w, dtype=float)
        cap = self.rho * float(limit_w)
        binding = p0 > cap
        span = np.maximum(cap - p_idle_w, 1e-9)
        slow = np.where(binding, (np.maximum(p0 - p_idle_w, span) / span) ** self.eta, 1.0)
        return np.minimum(p0, cap), slow

    def to_dict(self) -> dict[str, Any]:
        return {
            "eta": self.eta,
            "rho": self.rho,
            "mape_time_pct": self.mape_time_pct,
            "mape_power_pct": self.mape_power_pct,
            "n": self.n,
        }


@dataclass(frozen=True)
class BoardPowerLaw:
    """The board power law of one GPU (see the module notes).

    Attributes
    ----------
    gpu : str
        NVML name.
    tdp_w : float
        Default power limit [W].
    p_idle_w, p_max_w : float
        Power of an idle step and of a saturated one [W].
    k_c, k_m, gamma : float
        Rates of compute and memory utilisation, exponent [-].
    log_q : tuple of float
        Log half-widths of the nominal 90 % interval [-]: ``P·exp(q[0]) … P·exp(q[1])``,
        within [0, limit]; from out-of-sample log(measured / predicted) (whole
        workloads held out): the 90 % quantile of its absolute value, either way
        (:func:`log_half_width`).
    std : dict
        Standard errors of the parameters (``p_idle_w``, ``p_max_w`` [W], ``k_c``,
        ``k_m``, ``gamma`` [-]) from the Jacobian and the residuals.
    source : str
        ``fitted`` (this GPU's measurements) or ``transferred`` (other GPUs').
    n : int
        Measurements behind the fit.
    precision : str
        Precisions of the measurements behind it.
    """

    gpu: str
    tdp_w: float
    p_idle_w: float
    p_max_w: float
    k_c: float
    k_m: float
    gamma: float
    log_q: tuple[float, float] = (-0.2, 0.2)
    std: dict[str, float] = field(default_factory=dict)
    source: str = "fitted"
    n: int = 0
    precision: str = ""
    limit_law: LimitLaw = field(default_factory=LimitLaw)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def fitted(self) -> bool:
        """True when fitted on this GPU's measurements."""
        return self.source == "fitted"

    @property
    def prior(self) -> bool:
        """True for the unfitted prior (:func:`prior_board_power`)."""
        return self.source == "prior"

    def limit_range(self) -> tuple[float, float]:
        """Settable power limits of this board [W]."""
        return limit_range(self.gpu, self.tdp_w)

    def check_limit(self, limit_w: float | None) -> float:
        """The limit to use [W]; ValueError (with the range) outside the board's range."""
        if limit_w is None:
            return self.tdp_w
        lo, hi = self.limit_range()
        if not (np.isfinite(limit_w) and lo <= float(limit_w) <= hi):
            raise ValueError(
                f"power limit {limit_w:g} W outside the range of {self.gpu}: {lo:g}–{hi:g} W"
            )
        return float(limit_w)

    def unconstrained(self, u_c: Any, u_m: Any = 0.0) -> np.ndarray:
        """Power at the default limit [W]."""
        p = board_power(u_c, u_m, self.p_idle_w, self.p_max_w, self.k_c, self.k_m, self.gamma)
        return np.minimum(p, self.tdp_w)

    def power(self, u_c: Any, u_m: Any = 0.0, limit_w: float | None = None) -> np.ndarray:
        """Average board power [W] of a step, capped at the limit (default TDP)."""
        limit = self.check_limit(limit_w)
        p0 = self.unconstrained(u_c, u_m)
        if limit >= self.tdp_w:
            return p0
        return self.limit_law.apply(p0, self.p_idle_w, limit)[0]

    def slowdown(self, u_c: Any, u_m: Any = 0.0, limit_w: float | None = None) -> np.ndarray:
        """Factor [-] ≥ 1 on the step time under a power limit."""
        limit = self.check_limit(limit_w)
        p0 = self.unconstrained(u_c, u_m)
        if limit >= self.tdp_w:
            return np.ones_like(p0)
        return self.limit_law.apply(p0, self.p_idle_w, limit)[1]

    def interval(self, u_c: Any, u_m: Any = 0.0, limit_w: float | None = None) -> tuple[Any, Any]:
        """Nominal 90 % interval of the power [W], within [0, limit]."""
        limit = self.check_limit(limit_w)
        p = self.power(u_c, u_m, limit_w)
        lo = np.maximum(p * np.exp(self.log_q[0]), 0.0)
        hi = np.minimum(p * np.exp(self.log_q[1]), limit)
        return lo, np.maximum(hi, lo)

    def outside(self, utilisation: float) -> bool:
        return not self.fitted

    def tradeoff(self, u_c: float, u_m: float, step_s: float, n: int = 6) -> list[dict]:
        """Step time [s], power [W] and energy [J] of a step over ``n`` settable limits,
        lowest to TDP (the energy–time trade-off); ``step_s`` is its time unlimited."""
        lo, hi = self.limit_range()
        out = []
        for limit in np.linspace(lo, hi, n):
            p = float(self.power(u_c, u_m, limit))
            t = step_s * float(self.slowdown(u_c, u_m, limit))
            out.append(
                {"power_limit_w": float(limit), "step_time_s": t, "power_w": p, "energy_j": p * t}
            )
        return out

    def describe(self) -> dict[str, Any]:
        """The law for an estimate's JSON: formula, coefficients, errors, provenance."""
        return {
            "law": "P = P_idle + (P_max - P_idle) * (1 - exp(-(k_c*u_c + k_m*u_m)))^gamma, "
            "capped at the power limit",
            "fitted": bool(self.fitted),
            "source": self.source,
            "p_idle_w": self.p_idle_w,
            "p_max_w": self.p_max_w,
            "k_c": self.k_c,
            "k_m": self.k_m,
            "gamma": self.gamma,
            "tdp_w": self.tdp_w,
            "std": dict(self.std),
            "log_q90": list(self.log_q),
            "measurements": self.n,
            "precision": self.precision,
            "power_limit_range_w": list(self.limit_range()),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu,
            "tdp_w": self.tdp_w,
            "p_idle_w": self.p_idle_w,
            "p_max_w": self.p_max_w,
            "k_c": self.k_c,
            "k_m": self.k_m,
            "gamma": self.gamma,
            "log_q": list(self.log_q),
            "std": dict(self.std),
            "source": self.source,
            "n": self.n,
            "precision": self.precision,
            "limit_law": self.limit_law.to_dict(),
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BoardPowerLaw:
        """Rebuild from :meth:`to_dict` (JSON values only; bounds checked)."""
        law = cls(
            str(d["gpu"]),
            float(d["tdp_w"]),
            float(d["p_idle_w"]),
            float(d["p_max_w"]),
            float(d["k_c"]),
            float(d["k_m"]),
            float(d["gamma"]),
            tuple(float(v) for v in d.get("log_q", (-0.2, 0.2))),
            {str(k): float(v) for k, v in d.get("std", {}).items()},
            str(d.get("source", "fitted")),
            int(d.get("n", 0)),
            str(d.get("precision", "")),
            LimitLaw(**{k: v for k, v in d.get("limit_law", {}).items()}),
            dict(d.get("metrics", {})),
        )
        law.check_bounds()
        return law

    def check_bounds(self) -> None:
        """ValueError when a parameter is outside :data:`BOARD_BOUNDS` or the limits."""
        tol = 1e-6 * self.tdp_w
        lo, hi = BOARD_BOUNDS["idle_fraction"]
        if not lo * self.tdp_w - tol <= self.p_idle_w <= hi * self.tdp_w + tol:
            raise ValueError(f"{self.gpu}: P_idle {self.p_idle_w:.1f} W outside bounds")
        if not self.p_idle_w - tol <= self.p_max_w <= self.tdp_w + tol:
            raise ValueError(f"{self.gpu}: P_max {self.p_max_w:.1f} W not in [P_idle, limit]")
        for name in ("k_c", "k_m", "gamma"):
            lo, hi = BOARD_BOUNDS[name]
            v = getattr(self, name)
            if not lo - 1e-9 <= v <= hi + 1e-9:
                raise ValueError(f"{self.gpu}: {name} {v:.3g} outside [{lo}, {hi}]")


def _unpack(x: np.ndarray, tdp_w: float) -> tuple[float, float, float, float, float]:
    idle = x[0] * tdp_w
    return idle, idle + x[1] * (tdp_w - idle), x[2], x[3], x[4]


def fit_board_power(
    gpu: str,
    u_c: Any,
    u_m: Any,
    power_w: Any,
    tdp_w: float,
    groups: Any = None,
    precision: str = "",
    idle_prior: bool = True,
) -> BoardPowerLaw:
    """Fit the board law of one GPU by bounded least squares on log power.

    Parameters
    ----------
    gpu : str
        NVML name.
    u_c, u_m : array-like
        Achieved fractions of compute peak and of DRAM bandwidth of each measurement [-].
    power_w : array-like
        Measured average board power per GPU [W] (at the default limit).
    tdp_w : float
        Default power limit [W].
    groups : array-like, optional
        Group of each measurement (e.g. its workload): the interval's residuals are
        out of fold, whole groups held out (≤ 5 folds); measurement-wise when None.
    precision : str
        Precisions of the measurements (recorded).
    idle_prior : bool, default True
        Pull ``P_idle / TDP`` towards :data:`IDLE_FRACTION` of the GPU's memory type
        (a log-normal prior of spread :data:`PRIOR_SIGMA_IDLE`, one more residual):
        workloads rarely leave a board idle, so the data alone pin the floor poorly.

    Returns
    -------
    BoardPowerLaw
        ``std`` from ``(JᵀJ)⁻¹·s²``; ``log_q`` from out-of-sample log residuals
        (see :class:`BoardPowerLaw`).
    """
    uc, um, p = (np.asarray(v, dtype=float) for v in (u_c, u_m, power_w))
    if uc.size < 5 or not (uc.shape == um.shape == p.shape):
        raise ValueError(f"{gpu}: need ≥ 5 measurements with u_c, u_m and power of equal length")
    if not np.all(np.isfinite(p) & (p > 0)):
        raise ValueError(f"{gpu}: measured power must be positive and finite")
    prior = IDLE_FRACTION[memory_type(gpu)] if idle_prior else None
    x, jac, resid = _least_squares(uc, um, p, float(tdp_w), prior)
    idle, pmax, k_c, k_m, gamma = _unpack(x, float(tdp_w))
    std = _standard_errors(jac, resid, x, float(tdp_w))
    oos = _out_of_sample(uc, um, p, float(tdp_w), groups, prior)
    # symmetric: the 90 % quantile of |out-of-sample log residual| either way (a
    # few held-out workloads say little about which side the next one falls on)
    half = log_half_width(oos)
    log_q = (-half, half)
    law = BoardPowerLaw(
        gpu,
        float(tdp_w),
        idle,
        pmax,
        k_c,
        k_m,
        gamma,
        log_q,
        std,
        "fitted",
        int(p.size),
        precision,
        metrics={"idle_measured": bool(np.min(p) < IDLE_MEASURED_FRACTION * tdp_w)},
    )
    law.check_bounds()
    return law


def log_half_width(log_resid: Any, weights: Any = None, level: float = 0.9) -> float:
    """Half-width ``q`` [-] of the symmetric interval ``P·exp(±q)`` that holds ``level`` of
    the (weighted) out-of-sample log residuals: their weighted ``level`` quantile of
    ``|log(measured / predicted)|``."""
    r = np.abs(np.asarray(log_resid, dtype=float))
    w = np.ones_like(r) if weights is None else np.asarray(weights, dtype=float)
    ok = np.isfinite(r) & (w > 0)
    r, w = r[ok], w[ok]
    if r.size == 0:
        return 0.0
    order = np.argsort(r)
    cum = np.cumsum(w[order]) / np.sum(w)
    return float(r[order][min(np.searchsorted(cum, level), r.size - 1)])


def _least_squares(uc, um, p, tdp_w, idle_prior=None):
    """Bounded least squares on log power, with the idle prior as one more residual."""
    from scipy.optimize import least_squares

    names = ("idle_fraction", "max_fraction", "k_c", "k_m", "gamma")
    lo = [BOARD_BOUNDS[n][0] for n in names]
    hi = [BOARD_BOUNDS[n][1] for n in names]
    a0 = float(np.clip(np.min(p) / tdp_w, lo[0] + 1e-3, hi[0] - 1e-3))

    def resid(x):
        r = np.log(board_power(uc, um, *_unpack(x, tdp_w)) / p)
        if idle_prior is None:
            return r
        prior = np.log(x[0] / idle_prior) * (PRIOR_SIGMA_DATA / PRIOR_SIGMA_IDLE)
        return np.append(r, prior)

    best = None
    starts = [[a0, 0.9, kc, km, g] for kc in (1.0, 5.0) for km in (1.0, 5.0) for g in (0.7, 1.5)]
    for x0 in starts:
        r = least_squares(resid, np.clip(x0, lo, hi), bounds=(lo, hi))
        if best is None or r.cost < best.cost:
            best = r
    return best.x, best.jac, best.fun


def _standard_errors(jac, resid, x, tdp_w) -> dict[str, float]:
    """Standard errors of (P_idle, P_max, k_c, k_m, γ) by the delta method."""
    n, k = jac.shape
    s2 = float(resid @ resid) / max(n - k, 1)
    cov = np.linalg.pinv(jac.T @ jac) * s2
    # P_idle = a·T; P_max = T·(a + b·(1 − a))
    grad_idle = np.array([tdp_w, 0, 0, 0, 0])
    grad_max = np.array([tdp_w * (1 - x[1]), tdp_w * (1 - x[0]), 0, 0, 0])
    return {
        "p_idle_w": float(np.sqrt(max(grad_idle @ cov @ grad_idle, 0.0))),
        "p_max_w": float(np.sqrt(max(grad_max @ cov @ grad_max, 0.0))),
        "k_c": float(np.sqrt(max(cov[2, 2], 0.0))),
        "k_m": float(np.sqrt(max(cov[3, 3], 0.0))),
        "gamma": float(np.sqrt(max(cov[4, 4], 0.0))),
    }


def _out_of_sample(uc, um, p, tdp_w, groups, idle_prior=None) -> np.ndarray:
    """log(measured / predicted) of each measurement, its group held out of the fit."""
    g = np.arange(p.size) if groups is None else np.asarray(groups)
    out = np.full(p.size, np.nan)
    uniq = np.unique(g)
    if uniq.size < 2:
        x, _, _ = _least_squares(uc, um, p, tdp_w, idle_prior)
        return np.log(p / board_power(uc, um, *_unpack(x, tdp_w)))
    # at most 5 folds of whole groups (leave-one-group-out when there are ≤ 5)
    fold = {key: i % 5 for i, key in enumerate(uniq)}
    folds = np.array([fold[key] for key in g])
    for k in np.unique(folds):
        test = folds == k
        train = ~test
        if train.sum() < 5:
            continue
        x, _, _ = _least_squares(uc[train], um[train], p[train], tdp_w, idle_prior)
        out[test] = np.log(p[test] / board_power(uc[test], um[test], *_unpack(x, tdp_w)))
    return out[np.isfinite(out)]


def fit_transfer_shape(data: list[tuple[Any, Any, Any, BoardPowerLaw]]) -> dict[str, float]:
    """The shape of the rise above idle shared by the measured GPUs, for the transfer.

    Each GPU's measurements ``(u_c, u_m, power_w, law)`` keep their own law's idle
    floor and span ``TDP − P_idle``; one curve ``b·(1 − exp(−(k_c·u_c + k_m·u_m)))^γ``
    of that span is fitted to all of them by bounded least squares on log power (the
    per-GPU fits' objective: relative errors, so a board's low-power rows count as
    much as its high-power ones), each GPU weighing the same whatever its number of
    measurements (its rows weigh 1/√n each in the residuals).

    Returns
    -------
    dict
        ``max_fraction`` (b, of the span TDP − idle), ``k_c``, ``k_m``, ``gamma`` [-].
    """
    from scipy.optimize import least_squares

    uc, um, pw, idle, span, w = [], [], [], [], [], []
    for u_c, u_m, p, law in data:
        p = np.asarray(p, dtype=float)
        uc.append(np.asarray(u_c, dtype=float))
        um.append(np.asarray(u_m, dtype=float))
        pw.append(p)
        idle.append(np.full(p.size, law.p_idle_w))
        span.append(np.full(p.size, law.tdp_w - law.p_idle_w))
        w.append(np.full(p.size, 1.0 / np.sqrt(max(p.size, 1))))
    uc, um, pw, idle, span, w = (np.concatenate(v) for v in (uc, um, pw, idle, span, w))
    names = ("max_fraction", "k_c", "k_m", "gamma")
    lo = [BOARD_BOUNDS[n][0] for n in names]
    hi = [BOARD_BOUNDS[n][1] for n in names]

    def resid(x):
        rise = board_power(uc, um, 0.0, x[0], x[1], x[2], x[3])
        return w * np.log((idle + rise * span) / pw)

    best = None
    for x0 in ([0.9, 3.0, 3.0, 1.0], [0.9, 10.0, 1.0, 1.5], [0.9, 1.0, 10.0, 0.7]):
        r = least_squares(resid, np.clip(x0, lo, hi), bounds=(lo, hi))
        if best is None or r.cost < best.cost:
            best = r
    return dict(zip(names, (float(v) for v in best.x), strict=True))


def transfer_board_power(
    laws: list[BoardPowerLaw],
    gpu: str,
    tdp_w: float,
    log_q: tuple[float, float] | None = None,
    shape: dict[str, float] | None = None,
) -> BoardPowerLaw:
    """The law of a GPU without measurements, from the measured GPUs' laws.

    P_idle / TDP is the mean over measured GPUs of the same memory type
    (:func:`~powerfit.hardware.gpus.memory_type`) whose measurements include near-idle steps, else
    :data:`IDLE_FRACTION`; the rise above it is ``shape``
    (:func:`fit_transfer_shape`: one curve fitted on the measured GPUs of the regime
    asked for, on the scale of each one's span TDP − idle; the bundle's is the
    training boards'), else the measured GPUs' mean parameters. The interval is
    ``log_q`` (leave-one-GPU-out residuals,
    :func:`powerfit.evaluation.board_power.evaluate_board_power`) or, without it, the
    widest of the measured GPUs' own intervals widened by half.
    """
    if not laws:
        raise ValueError("no measured GPU to transfer from")
    kind = memory_type(gpu)
    # only boards whose measurements reach near-idle steps pin their floor
    same = [
        law
        for law in laws
        if memory_type(law.gpu) == kind and law.metrics.get("idle_measured", False)
    ]
    idle = (
        float(np.mean([law.p_idle_w / law.tdp_w for law in same])) if same else IDLE_FRACTION[kind]
    )
    if shape is None:
        shape = {
            "max_fraction": float(
                np.mean(
                    [(law.p_max_w - law.p_idle_w) / (law.tdp_w - law.p_idle_w) for law in laws]
                )
            ),
            "k_c": float(np.mean([law.k_c for law in laws])),
            "k_m": float(np.mean([law.k_m for law in laws])),
            "gamma": float(np.mean([law.gamma for law in laws])),
        }
    pmax_frac = idle + shape["max_fraction"] * (1 - idle)
    if log_q is None:
        log_q = (1.5 * min(law.log_q[0] for law in laws), 1.5 * max(law.log_q[1] for law in laws))
    out = BoardPowerLaw(
        gpu,
        float(tdp_w),
        idle * tdp_w,
        pmax_frac * tdp_w,
        float(shape["k_c"]),
        float(shape["k_m"]),
        float(shape["gamma"]),
        (float(log_q[0]), float(log_q[1])),
        {},
        "transferred",
        0,
        ",".join(sorted({law.precision for law in laws if law.precision})),
        laws[0].limit_law,
        {"from": sorted(law.gpu for law in laws), "memory_type": kind},
    )
    out.check_bounds()
    return out


def fit_limit_law(
    p0_w: Any, p_idle_w: Any, limit_w: Any, time_ratio: Any, power_w: Any
) -> LimitLaw:
    """Fit the power-limit law on capped measurements.

    Parameters
    ----------
    p0_w : array-like
        Power of the same step at the default limit [W].
    p_idle_w : array-like
        Idle floor of the board [W].
    limit_w : array-like
        The lower limit [W].
    time_ratio : array-like
        Measured time at the limit / time at the default limit [-].
    power_w : array-like
        Measured power at the limit [W].
    """
    from scipy.optimize import least_squares

    p0, idle, lim, ratio, pw = (
        np.asarray(v, dtype=float) for v in (p0_w, p_idle_w, limit_w, time_ratio, power_w)
    )
    rho = float(np.clip(np.median((pw / lim)[p0 > lim]), 0.8, 1.0)) if np.any(p0 > lim) else 0.97
    cap = rho * lim
    sel = p0 > cap
    if sel.sum() < 3:
        return LimitLaw(rho=rho)
    base = np.log((p0[sel] - idle[sel]) / np.maximum(cap[sel] - idle[sel], 1e-9))
    r = least_squares(lambda e: e[0] * base - np.log(ratio[sel]), [0.5], bounds=([0.0], [3.0]))
    law = LimitLaw(float(r.x[0]), rho)
    pw_hat = np.minimum(p0, cap)
    slow = np.where(
        sel,
        np.exp(law.eta * np.log(np.maximum(p0 - idle, 1e-9) / np.maximum(cap - idle, 1e-9))),
        1.0,
    )
    return replace(
        law,
        mape_time_pct=float(np.mean(np.abs(slow - ratio) / ratio) * 100),
        mape_power_pct=float(np.mean(np.abs(pw_hat - pw) / pw) * 100),
        n=int(sel.sum()),
    )


def prior_board_power(gpu: str, tdp_w: float) -> BoardPowerLaw:
    """The unfitted law where no bundle is shipped: idle by memory type
    (:data:`IDLE_FRACTION`), a saturated step at TDP, k_c = k_m = 3, γ = 1, and an
    interval of a factor 1.65 either way (clipped to [0, TDP]).

    Examples
    --------
    >>> law = prior_board_power("NVIDIA H100 80GB HBM3", 700.0)
    >>> float(law.power(0.0, 0.0)), law.prior
    (84.0, True)
    """
    idle = IDLE_FRACTION[memory_type(gpu)] * float(tdp_w)
    law = BoardPowerLaw(
        gpu, float(tdp_w), idle, float(tdp_w), 3.0, 3.0, 1.0, (-0.5, 0.5), {}, "prior"
    )
    law.check_bounds()
    return law


def step_fractions(graph: Any, latency_s: Any, gpu: str) -> tuple[float, float]:
    """(u_c, u_m) of a step [-]: Σ FLOP / (peak · Σ time) and Σ bytes / (bandwidth · Σ time).

    ``graph`` is a step's operator graph (:func:`powerfit.steps.graph.training_step_graph`)
    and ``latency_s`` its rows' latencies [s] (one call each; rows repeat ``count`` times).
    """
    from powerfit.steps.latency import _gpu, utilisation

    spec = _gpu(gpu)
    u_c = utilisation(graph, latency_s, gpu)
    count = graph["count"].to_numpy()
    t = float(np.sum(np.asarray(latency_s, dtype=float) * count))
    if t <= 0 or not spec.memory_bandwidth:
        return u_c, 0.0
    moved = float(np.sum(graph["bytes"].to_numpy() * count))
    return u_c, float(np.clip(moved / (spec.memory_bandwidth * t), 0.0, 1.0))
