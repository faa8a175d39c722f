"""Board power laws fitted and scored on measured boards (Zeus 2023, ML.ENERGY 2026).

Each measurement gives a GPU's average board power (NVML) and what its step
sustained, ``u_c`` and ``u_m`` (:mod:`powerfit.power.work`: how they follow from the
measured throughput, and what is assumed). Zeus rows at the board's default limit fit
the law; the rows at lower limits fit and score the power-limit law. ML.ENERGY's
power is summed over the run's GPUs: divided per GPU here; text-to-video is left out.

:func:`evaluate_board_power` scores the laws leave-one-workload-out within each GPU
and leave-one-GPU-out (transfer), with interval coverage;
:func:`build_board_bundle` gives the ``boards`` section of the shipped bundle.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from powerfit.power.board import (
    BoardPowerLaw,
    fit_board_power,
    fit_limit_law,
    fit_transfer_shape,
    log_half_width,
    transfer_board_power,
)
from powerfit.power.work import BERT_BASE, serving_fractions, training_fractions

__all__ = [
    "board_power_frame",
    "build_board_bundle",
    "evaluate_board_power",
    "evaluate_limit_law",
    "fit_board_laws",
    "mlenergy_power_frame",
    "power_suite",
    "zeus_power_frame",
]


def zeus_power_frame(data_home: Any = None) -> pd.DataFrame:
    """The Zeus rows with their fractions of peak (:func:`powerfit.power.work.training_fractions`).

    Returns
    -------
    pandas.DataFrame
        The :class:`~powerfit.datasets.zeus2023.Zeus2023` columns plus ``source``
        (``zeus2023``), ``tdp_w`` [W], ``feasible`` (False for the workloads whose
        counted work exceeds a board's compute peak or bandwidth on some row: BERT on
        Sentiment140 and DeepSpeech2 on LibriSpeech, whose samples per epoch Zeus does
        not publish; left out of fits and scores), ``default_limit`` (a feasible row
        at the board's default limit), ``step_s`` [s], ``flop_step``, ``bytes_step``, ``u_c``,
        ``u_m`` [-], ``num_gpus`` (1), ``group`` (the workload) and ``regime``
        (``training``).
    """
    from powerfit.datasets.zeus2023 import fetch_zeus2023

    z = training_fractions(fetch_zeus2023(data_home).power)
    # a workload whose counted work exceeds a board's peak on some row is one whose
    # samples per epoch (or model) Zeus did not publish as assumed: left out
    over = z.groupby("workload")[["u_c_raw", "u_m_raw"]].max().max(axis=1) > 1.0
    z["feasible"] = ~z.workload.map(over)
    z["default_limit"] = (z.power_limit_w >= z.tdp_w) & z.feasible
    z["source"] = "zeus2023"
    z["num_gpus"] = 1
    z["group"] = z.workload
    z["regime"] = "training"
    return z


def mlenergy_power_frame(data_home: Any = None) -> pd.DataFrame:
    """The ML.ENERGY rows with their per-GPU fractions of peak (video left out;
    :func:`powerfit.power.work.serving_fractions`).

    Returns
    -------
    pandas.DataFrame
        The :class:`~powerfit.datasets.mlenergy2026.MLEnergy2026` columns plus
        ``source`` (``mlenergy2026``), ``tdp_w`` [W], ``default_limit`` (True),
        ``u_c``, ``u_m`` [-], ``group`` (model and task) and ``regime``
        (``serving``).
    """
    from powerfit.datasets.mlenergy2026 import fetch_mlenergy2026

    m = fetch_mlenergy2026(data_home).power
    m = serving_fractions(m[m.kind != "video"])
    m["power_limit_w"] = m.tdp_w
    m["default_limit"] = True
    m["feasible"] = True
    m["source"] = "mlenergy2026"
    m["group"] = m.model_id + "/" + m.task
    m["regime"] = "serving"
    return m


_FRAME_COLUMNS = [
    "source",
    "gpu",
    "file",
    "row",
    "group",
    "regime",
    "precision",
    "num_gpus",
    "batch_size",
    "power_limit_w",
    "default_limit",
    "tdp_w",
    "u_c",
    "u_m",
    "power_w",
]


def board_power_frame(data_home: Any = None) -> pd.DataFrame:
    """Zeus and ML.ENERGY measurements in one frame (:data:`_FRAME_COLUMNS` + Zeus' timing)."""
    z = zeus_power_frame(data_home)
    m = mlenergy_power_frame(data_home)
    cols = [*_FRAME_COLUMNS, "optimizer", "epoch_s", "feasible"]
    return pd.concat([z[cols], m.reindex(columns=cols)], ignore_index=True)


def fit_board_laws(frame: pd.DataFrame) -> dict[str, BoardPowerLaw]:
    """One law per GPU, on its rows at the default limit (interval: leave-one-workload-out)."""
    laws = {}
    for gpu, g in frame[frame.default_limit].groupby("gpu"):
        laws[gpu] = fit_board_power(
            gpu,
            g.u_c,
            g.u_m,
            g.power_w,
            float(g.tdp_w.iloc[0]),
            groups=g.group,
            precision=",".join(sorted(set(g.precision))),
        )
    return laws


def _scores(measured: np.ndarray, pred: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> dict:
    ape = np.abs(pred - measured) / measured
    return {
        "power_mape_pct": float(np.mean(ape) * 100),
        "coverage90_pct": float(np.mean((measured >= lo) & (measured <= hi)) * 100),
        "n": int(measured.size),
    }


def evaluate_board_power(frame: pd.DataFrame) -> pd.DataFrame:
    """Held-out scores per GPU: ``lowo`` (leave one workload out, within the GPU) and
    ``logo`` (the GPU left out, the law transferred from the others by specs).

    The held-out law's interval comes from its own training rows (nested), so the
    coverage is out of sample. Energy per measurement is power × measured time, so
    its error equals the power's on these rows (the power-limit law's energy error
    is in :func:`evaluate_limit_law`).

    Returns
    -------
    pandas.DataFrame
        ``gpu, protocol, power_mape_pct, energy_mape_pct, coverage90_pct, n, groups``.
    """
    data = frame[frame.default_limit].reset_index(drop=True)
    rows = []
    laws = fit_board_laws(data)
    for gpu, g in data.groupby("gpu"):
        tdp = float(g.tdp_w.iloc[0])
        p = g.power_w.to_numpy(float)
        pred, lo, hi = (np.full(len(g), np.nan) for _ in range(3))
        for key in g.group.unique():
            test = (g.group == key).to_numpy()
            tr = g[~test]
            law = fit_board_power(gpu, tr.u_c, tr.u_m, tr.power_w, tdp, groups=tr.group)
            pred[test] = law.power(g.u_c[test], g.u_m[test])
            lo[test], hi[test] = law.interval(g.u_c[test], g.u_m[test])
        s = _scores(p, pred, lo, hi)
        rows.append(
            {
                "gpu": gpu,
                "protocol": "lowo",
                **s,
                "energy_mape_pct": s["power_mape_pct"],
                "groups": int(g.group.nunique()),
            }
        )
        rest = data[data.gpu != gpu]
        # the transferred interval: the other GPUs' own leave-one-GPU-out residuals
        q = _logo_quantiles(rest, [k for k in laws if k != gpu])
        pred, lo, hi = _transferred(g, rest, laws, q)
        s = _scores(p, pred, lo, hi)
        rows.append(
            {
                "gpu": gpu,
                "protocol": "logo",
                **s,
                "energy_mape_pct": s["power_mape_pct"],
                "groups": int(g.group.nunique()),
            }
        )
    return pd.DataFrame(rows)


def _shape(
    data: pd.DataFrame, laws: dict[str, BoardPowerLaw], regime: str | None = None
) -> dict[str, float]:
    """:func:`~powerfit.power.board.fit_transfer_shape` on the GPUs of ``data``: on its
    rows of ``regime`` (``training`` or ``serving``) where it has some, else on all.

    The regimes rise differently with the step's average utilisation: a training
    step's low ``u`` is mostly the board waiting (input pipeline, host work), a
    served model's small kernels launched back to back at full clocks: rows under
    5 % of the compute peak draw a median 0.22 × TDP on the Zeus boards and 0.63 ×
    TDP on the ML.ENERGY ones (none under 0.27 × TDP).
    """
    if regime is not None and (data.regime == regime).any():
        data = data[data.regime == regime]
    return fit_transfer_shape([(g.u_c, g.u_m, g.power_w, laws[k]) for k, g in data.groupby("gpu")])


def _transferred(
    g: pd.DataFrame,
    rest: pd.DataFrame,
    laws: dict[str, BoardPowerLaw],
    q: tuple[float, float] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(power, interval low, high) [W] of the rows ``g`` of one GPU by the law
    transferred from the GPUs of ``rest``, each row by the rise of its regime."""
    gpu = str(g.gpu.iloc[0])
    others = [laws[k] for k in sorted(set(rest.gpu))]
    pred, lo, hi = (np.full(len(g), np.nan) for _ in range(3))
    for regime in g.regime.unique():
        sel = (g.regime == regime).to_numpy()
        t = transfer_board_power(
            others, gpu, float(g.tdp_w.iloc[0]), q, _shape(rest, laws, regime)
        )
        pred[sel] = t.power(g.u_c[sel], g.u_m[sel])
        lo[sel], hi[sel] = t.interval(g.u_c[sel], g.u_m[sel])
    return pred, lo, hi


def _logo_quantiles(data: pd.DataFrame, gpus: list[str]) -> tuple[float, float] | None:
    """Symmetric 90 % log half-width of measured/transferred over ``gpus``, each left
    out in turn (:func:`~powerfit.power.board.log_half_width` of the pooled rows)."""
    if len(gpus) < 3:
        return None
    laws = fit_board_laws(data)
    res = []
    for gpu in gpus:
        g = data[data.gpu == gpu]
        pred, _, _ = _transferred(g, data[data.gpu != gpu], laws, (0.0, 0.0))
        res.append(np.log(g.power_w.to_numpy(float) / pred))
    half = log_half_width(np.concatenate(res))
    return -half, half


def evaluate_limit_law(frame: pd.DataFrame, laws: dict[str, BoardPowerLaw]) -> dict[str, Any]:
    """Fit and score the power-limit law on the Zeus rows below the default limit.

    Each capped row is paired with the same (GPU, workload, batch, optimizer) at the
    default limit: ``P₀`` is the law's power there (not the measured one, as in a
    prediction), the time ratio and the capped power are measured. Half the pairs
    (by workload) fit the law, the other half score it, and the reverse.

    Returns
    -------
    dict
        ``law`` (fitted on all pairs: ``eta``, ``rho``, in-sample errors) and
        ``heldout``: ``time_mape_pct``, ``power_mape_pct``, ``energy_mape_pct``
        (energy = power × time per epoch, from the default-limit time), ``n``.
    """
    z = frame[(frame.source == "zeus2023") & frame.feasible.astype(bool)]
    key = ["gpu", "group", "batch_size", "optimizer"]
    base = z[z.default_limit].set_index(key)
    capped = (
        z[~z.default_limit]
        .join(base[["epoch_s", "power_w", "u_c", "u_m"]], on=key, rsuffix="_0")
        .dropna(subset=["epoch_s_0"])
    )
    p0 = np.array(
        [
            float(laws[g].unconstrained(a, b))
            for g, a, b in zip(capped.gpu, capped.u_c_0, capped.u_m_0, strict=True)
        ]
    )
    idle = capped.gpu.map(lambda g: laws[g].p_idle_w).to_numpy(float)
    lim = capped.power_limit_w.to_numpy(float)
    ratio = (capped.epoch_s / capped.epoch_s_0).to_numpy(float)
    pw = capped.power_w.to_numpy(float)
    law = fit_limit_law(p0, idle, lim, ratio, pw)
    groups = capped.group.to_numpy()
    halves = np.isin(groups, sorted(set(groups))[::2])
    t_hat, p_hat = np.full(len(pw), np.nan), np.full(len(pw), np.nan)
    for test in (halves, ~halves):
        fit = fit_limit_law(p0[~test], idle[~test], lim[~test], ratio[~test], pw[~test])
        for i in np.flatnonzero(test):
            pp, s = fit.apply(p0[i], idle[i], lim[i])
            p_hat[i], t_hat[i] = float(pp), float(s)
    e_meas = pw * ratio
    e_hat = p_hat * t_hat
    return {
        "law": law.to_dict(),
        "heldout": {
            "time_mape_pct": float(np.mean(np.abs(t_hat - ratio) / ratio) * 100),
            "power_mape_pct": float(np.mean(np.abs(p_hat - pw) / pw) * 100),
            "energy_mape_pct": float(np.mean(np.abs(e_hat - e_meas) / e_meas) * 100),
            "n": len(pw),
        },
    }


def build_board_bundle(data_home: Any = None) -> dict[str, Any]:
    """The ``boards`` section of the power bundle: laws, transfer interval, scores."""
    from dataclasses import replace

    frame = board_power_frame(data_home)
    laws = fit_board_laws(frame)
    limit = evaluate_limit_law(frame, laws)
    from powerfit.power.board import LimitLaw

    lim = LimitLaw(**limit["law"])
    laws = {k: replace(v, limit_law=lim) for k, v in laws.items()}
    scores = evaluate_board_power(frame)
    q = _logo_quantiles(frame[frame.default_limit], sorted(laws))
    return {
        "law": "P = P_idle + (P_max - P_idle) * (1 - exp(-(k_c*u_c + k_m*u_m)))**gamma [W], "
        "capped at the power limit",
        "gpus": {k: v.to_dict() for k, v in laws.items()},
        "transfer_log_q": list(q) if q else None,
        # estimates are training steps: the rise of the boards measured training
        "transfer_shape": _shape(frame[frame.default_limit], laws, "training"),
        "limit_law": limit,
        "scores": scores.to_dict(orient="records"),
        "data": {
            "zeus2023": "single-GPU training, NVML average power per epoch (FP32 assumed)",
            "mlenergy2026": "H100/B200 serving, NVML power summed over GPUs (divided "
            "per GPU); text-to-video left out",
        },
    }


#: The busy training steps checked against measured boards of the same kind: (label,
#: HF config, GPU, batch, tokens, precision).
BUSY_STEPS = (
    (
        "GPT-2 large (774 M), bf16, batch 8 × 1024",
        {
            "model_type": "gpt2",
            "n_layer": 36,
            "n_embd": 1280,
            "n_head": 20,
            "vocab_size": 50257,
            "n_positions": 1024,
        },
        "NVIDIA H100 80GB HBM3",
        8,
        1024,
        "bf16",
    ),
    (
        "BERT-base, fp32, batch 32 × 384",
        BERT_BASE,
        "Tesla V100-PCIE-32GB",
        32,
        384,
        "fp32",
    ),
)


def busy_step_checks(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Power of busy training steps beside what measured boards of that kind drew.

    The measured range is the 5–100 % quantiles of the board's compute-bound rows
    (ML.ENERGY text-to-image on the H100; Zeus BERT and ResNet-50 at the default
    limit on the V100).
    """
    from powerfit.training import estimate_training

    out = []
    for label, cfg, gpu, batch, seq, precision in BUSY_STEPS:
        r = estimate_training(cfg, gpu, batch, seq, precision=precision)
        g = frame[(frame.gpu == gpu) & frame.default_limit]
        if gpu.startswith("NVIDIA H100"):
            ref = g[g.group.str.endswith("text-to-image")]
            what = "ML.ENERGY v3 text-to-image on H100 (per GPU)"
        else:
            ref = g[g.group.isin(["squad/bert_base_uncased", "imagenet/resnet50"])]
            what = "Zeus BERT-base/SQuAD and ResNet-50 at 250 W on V100"
        lo, hi = (float(v) for v in np.quantile(ref.power_w, [0.05, 1.0]))
        p = r["power_w"]
        out.append(
            {
                "step": label,
                "gpu": gpu,
                "power_w": p,
                "power_interval_w": r["power_interval_w"],
                "measured_range_w": [lo, hi],
                "measured": what,
                "inside": bool(lo <= p <= hi),
            }
        )
    return out


def power_suite(data_home: Any = None) -> dict[str, Any]:
    """Everything ``powerfit evaluate --suite power`` prints.

    Returns
    -------
    dict
        ``scores`` (per GPU and protocol, :func:`evaluate_board_power`),
        ``summary`` (ranges of the LOWO and LOGO MAPE, pooled coverage),
        ``limit`` (:func:`evaluate_limit_law`), ``busy_steps``
        (:func:`busy_step_checks`), ``paper`` (the paper's CodeCarbon energy on
        held-out configurations, :func:`powerfit.evaluation.power.evaluate_power`).
    """
    from powerfit.evaluation.power import evaluate_power, mayaki_power_frame

    frame = board_power_frame(data_home)
    laws = fit_board_laws(frame)
    scores = evaluate_board_power(frame)
    limit = evaluate_limit_law(frame, laws)
    summary = {}
    for proto, s in scores.groupby("protocol"):
        summary[proto] = {
            "power_mape_pct": [float(s.power_mape_pct.min()), float(s.power_mape_pct.max())],
            "coverage90_pct": float(np.average(s.coverage90_pct, weights=s.n)),
        }
    paper = mayaki_power_frame(data_home)
    paper = evaluate_power(paper[paper.params_match].reset_index(drop=True))
    paper = paper[paper.protocol == "configs"][["gpu", "mape_pct", "coverage90_pct", "n"]]
    return {
        "scores": scores.to_dict(orient="records"),
        "summary": summary,
        "limit": limit,
        "busy_steps": busy_step_checks(frame),
        "paper": paper.rename(columns={"mape_pct": "energy_mape_pct"}).to_dict(orient="records"),
    }
