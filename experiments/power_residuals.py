"""Diagnose the board power law's held-out residuals and test candidate features.

Prints, per GPU, the leave-one-workload-out (lowo) residuals of the shipped law grouped
by (workload, precision, GPU count), largest contribution to the MAPE first, then the
lowo MAPE on the serving boards (H100, B200) of two candidate changes, each fitted only
on the rows the protocol allows:

* ``collective``: a tensor- or expert-parallel decode step spends ``2 · layers · τ`` in
  collectives (all-reduce or all-to-all latency ``τ`` per exchange, 10–100 µs), time the
  board does not compute: ``u_c`` and ``u_m`` per busy time are ``u / (1 − t_comm/t)``;
* ``spin``: a rank of a multi-GPU run that is neither computing nor moving DRAM data
  waits in a NCCL kernel that busy-polls at full clocks, while a single GPU with
  unexplained time waits on the host (launch gaps, lower power): a third term
  ``k_w · w`` in the exponent with ``w = 1 − min(1, u_c + u_m)`` on multi-GPU LLM rows,
  0 elsewhere (one more bounded parameter per GPU, ``0 ≤ k_w ≤ 50``).

The spin term was also tried inside the shipped law (``k_w`` fitted per GPU where
multi-GPU LLM rows exist, and in the transfer): one GPU's workloads held out it gives
what is printed here (H100 13.3 %, B200 13.2 %), but one GPU held out the B200 goes from
14.5 to 22.8 % (the H100's serving rise refitted without the waiting rows' power is
lower everywhere) or to 16.2 % (rise fitted without the term, the measured boards' mean
``k_w`` added): the law is shipped without it.

    POWERFIT_DATA_HOME=../shared/data .venv/bin/python experiments/power_residuals.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from powerfit.datasets.mlenergy2026 import fetch_mlenergy2026
from powerfit.evaluation.board_power import board_power_frame
from powerfit.hardware.gpus import memory_type
from powerfit.power.board import (
    IDLE_FRACTION,
    PRIOR_SIGMA_DATA,
    PRIOR_SIGMA_IDLE,
    fit_board_power,
)
from powerfit.power.work import decode_arch

SERVING = ("NVIDIA H100 80GB HBM3", "NVIDIA B200")


def _law(x: np.ndarray, uc, um, w, tdp: float) -> np.ndarray:
    idle = x[0] * tdp
    pmax = idle + x[1] * (tdp - idle)
    rise = np.maximum(-np.expm1(-(x[2] * uc + x[3] * um + x[5] * w)), 0.0) ** x[4]
    return np.minimum(idle + (pmax - idle) * rise, tdp)


def _fit(uc, um, w, p, tdp: float, prior: float) -> np.ndarray:
    """The law with the extra term, same bounds, idle prior and starts as the shipped fit."""
    lo, hi = [0.03, 0.0, 0.0, 0.0, 0.3, 0.0], [0.6, 1.0, 50.0, 50.0, 3.0, 50.0]

    def resid(x):
        r = np.log(_law(x, uc, um, w, tdp) / p)
        return np.append(r, np.log(x[0] / prior) * PRIOR_SIGMA_DATA / PRIOR_SIGMA_IDLE)

    best = None
    for kc in (1.0, 5.0):
        for km in (1.0, 5.0):
            for g in (0.7, 1.5):
                x0 = np.clip([np.min(p) / tdp, 0.9, kc, km, g, 1.0], lo, hi)
                r = least_squares(resid, x0, bounds=(lo, hi))
                best = r if best is None or r.cost < best.cost else best
    return best.x


def lowo(d: pd.DataFrame, w: str | None = None) -> dict[str, float]:
    """Leave-one-workload-out MAPE [%] of the serving boards (extra term ``w`` or none)."""
    out = {}
    for gpu, g in d[d.gpu.isin(SERVING)].groupby("gpu"):
        tdp = float(g.tdp_w.iloc[0])
        pred = np.full(len(g), np.nan)
        for key in g.group.unique():
            test = (g.group == key).to_numpy()
            tr = g[~test]
            if w is None:
                law = fit_board_power(gpu, tr.u_c, tr.u_m, tr.power_w, tdp, groups=tr.group)
                pred[test] = law.power(g.u_c[test], g.u_m[test])
            else:
                prior = IDLE_FRACTION[memory_type(gpu)]
                x = _fit(tr.u_c.values, tr.u_m.values, tr[w].values, tr.power_w.values, tdp, prior)
                pred[test] = _law(
                    x, g.u_c.values[test], g.u_m.values[test], g[w].values[test], tdp
                )
        out[gpu] = round(float(np.mean(np.abs(pred - g.power_w) / g.power_w) * 100), 2)
    return out


def main() -> None:
    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 60)
    f = board_power_frame()
    d = f[f.default_limit].reset_index(drop=True)
    m = fetch_mlenergy2026().power[["file", "row", "throughput", "model_id", "kind"]]
    d = d.merge(m, on=["file", "row"], how="left")
    rows = []
    for gpu, g in d.groupby("gpu"):
        tdp = float(g.tdp_w.iloc[0])
        for key in g.group.unique():
            test = (g.group == key).to_numpy()
            tr = g[~test]
            law = fit_board_power(gpu, tr.u_c, tr.u_m, tr.power_w, tdp, groups=tr.group)
            h = g[test].copy()
            h["pred"] = law.power(h.u_c, h.u_m)
            rows.append(h)
    r = pd.concat(rows)
    r["err_pct"] = (r.pred - r.power_w) / r.power_w * 100
    for gpu, g in r.groupby("gpu"):
        t = g.groupby(["group", "precision", "num_gpus"]).agg(
            n=("err_pct", "size"),
            bias=("err_pct", "mean"),
            u_c=("u_c", "mean"),
            u_m=("u_m", "mean"),
            measured_w=("power_w", "mean"),
            pred_w=("pred", "mean"),
        )
        share = g.assign(a=np.abs(g.err_pct) / len(g))
        t["mape_share"] = share.groupby(["group", "precision", "num_gpus"]).a.sum()
        print(f"== {gpu}: lowo MAPE {np.mean(np.abs(g.err_pct)):.1f} %")
        print(t.sort_values("mape_share", ascending=False).head(12).round(3).to_string())
    print("serving lowo MAPE, shipped law:", lowo(d))
    step = d.batch_size / d.throughput
    layers = d.model_id.map(
        lambda s: (a.layers + a.window_layers) if (a := decode_arch(str(s))) else 0
    )
    multi = (d.kind == "llm") & (d.num_gpus > 1)
    for tau in (10e-6, 30e-6, 100e-6):
        frac = np.clip(np.where(multi, 2 * layers * tau, 0.0) / step, 0.0, 0.9)
        c = d.assign(u_c=np.clip(d.u_c / (1 - frac), 0, 1), u_m=np.clip(d.u_m / (1 - frac), 0, 1))
        print(f"collective τ = {tau * 1e6:.0f} µs:", lowo(c))
    d["spin"] = np.where(multi, 1 - np.clip(d.u_c + d.u_m, 0, 1), 0.0)
    print("spin (k_w · w, multi-GPU LLM rows):", lowo(d, "spin"))


if __name__ == "__main__":
    main()
