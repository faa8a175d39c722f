"""The paper's CodeCarbon power laws fitted and scored, and the power bundle built.

The estimates' power comes from the board power laws of
:mod:`powerfit.evaluation.board_power` (measured NVML board power, the bundle's
``boards`` section, added by ``experiments/build_power_models.py``); the CodeCarbon
laws below are kept to score the paper's energy.

Where energy is measured (Mayaki & Charpenay 2025: training steps of small BERT- and
GPT-style encoder stacks on an A100 80GB PCIe and a GeForce RTX 2080 Ti), each step
gives a mean power ``energy_joules / duration`` [W] and a utilisation computed from
its operator graph and its **measured** duration (so the fit sees no step-time
model error). The bounded laws (:mod:`powerfit.power.law`) are fitted per GPU by
least squares on log power, and scored on configurations held out (the published file
repeats many rows exactly: folds are grouped by configuration).

The paper's models (their ``params`` column pins them down, within the head's 1,000
bias parameters): a token embedding of 1,000 rows, learned positions (BERT-style
only), ``n_layers`` PyTorch ``nn.TransformerEncoderLayer`` (post-LayerNorm, ReLU,
``dim_feedforward`` = 2048, fused QKV projection, dropout 0.1) and a 1,000-way linear
head; GPT-style models are causal. The 75 BERT steps at seq_len 256 publish 2–27 M
more parameters than this reading gives (an unknown variant): they are left out of
the fits (``params_match``). The published A100 steps ran with TF32 products (the
paper's peak is the TF32 one), the RTX 2080 Ti's in FP32 (no TF32 there). Assumed,
not published: a cross-entropy loss and an AdamW step (under 1 % of the FLOP).

:func:`evaluate_power` scores the fitted and transferred laws, :func:`evaluate_energy_chain`
the whole chain (predicted step time × power law), and :func:`build_power_bundle` builds
``powerfit/data/power/power_models.json`` (:mod:`powerfit.power.bundle`) from them,
run by ``experiments/build_power_models.py``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from powerfit.power.law import POWER_BOUNDS, Z90, PowerFit, fit_power, transfer_power

__all__ = [
    "build_power_bundle",
    "evaluate_energy_chain",
    "evaluate_power",
    "mayaki_power_frame",
    "paper_model_config",
]

#: Published source labels of the energy file -> NVML names.
SOURCES = {"a100": "NVIDIA A100 80GB PCIe", "grid": "NVIDIA GeForce RTX 2080 Ti"}

#: Precision the published steps ran in, per GPU.
PAPER_PRECISION = {"NVIDIA A100 80GB PCIe": "tf32", "NVIDIA GeForce RTX 2080 Ti": "fp32"}

_CONFIG_KEY = ["gpu", "model", "n_layers", "d_model", "n_heads", "batch_size", "seq_len"]


def paper_model_config(model: str, n_layers: int, d_model: int, n_heads: int, seq_len: int):
    """The :class:`~powerfit.architectures.model.ModelConfig` of one of the paper's models.

    ``model`` is ``bert`` (bidirectional, learned positions) or ``gpt`` (causal, no
    position table: the published parameter counts have none).
    """
    from powerfit.architectures.model import ModelConfig

    if model not in ("bert", "gpt"):
        raise ValueError(f"model must be 'bert' or 'gpt', got {model!r}")
    return ModelConfig(
        # gpt_neox's operator rules without its rotary: scale, mask when causal, no
        # embedding LayerNorm, a bare linear head
        family="gpt_neox",
        n_layers=int(n_layers),
        d_model=int(d_model),
        n_heads=int(n_heads),
        n_kv_heads=int(n_heads),
        d_kv=max(1, int(d_model) // int(n_heads)),
        d_ff=2048,
        vocab_size=1000,
        max_positions=int(seq_len) if model == "bert" else 0,
        activation="relu",
        positional="learned",
        tie_word_embeddings=False,
        causal=model == "gpt",
        pre_norm=False,
        qkv_fused=True,
        bias=True,
        attention_dropout=0.1,
        hidden_dropout=0.1,
    )


def _flop_time_at_peak(graph: pd.DataFrame, gpu: str) -> float:
    """Σ FLOP / peak of a graph [s] (products at their precision's peak, the rest FP32)."""
    from powerfit.steps.latency import _gpu, _row_peaks

    peak = _row_peaks(graph, _gpu(gpu))
    return float(np.sum(graph.flop.to_numpy() * graph["count"].to_numpy() / peak))


def mayaki_power_frame(data_home: Any = None) -> pd.DataFrame:
    """The published Transformer training steps with their mean power and utilisation.

    Returns
    -------
    pandas.DataFrame
        One row per published step: ``gpu, model, n_layers, d_model, n_heads,
        batch_size, seq_len, precision, duration_s, energy_j, power_w, tdp_w,
        peak_time_s`` (Σ FLOP / peak of the step's graph [s]), ``utilisation``
        (``peak_time_s / duration_s`` [-]), ``n_parameters`` (published),
        ``graph_parameters`` (the graph's), ``params_match`` (they agree within 1 %;
        fits use these rows only) and ``config_id`` (one id per distinct
        configuration and GPU).
    """
    from powerfit.datasets.mayaki2025 import fetch_mayaki2025
    from powerfit.steps.graph import training_step_graph
    from powerfit.steps.latency import _gpu

    t = fetch_mayaki2025(data_home=data_home).transformer_energy
    unknown = sorted(set(t["source"]) - set(SOURCES))
    if unknown:
        raise ValueError(f"SubsetDataForTransformer_energyModel.csv: unknown source {unknown}")
    frame = pd.DataFrame(
        {
            "gpu": t["source"].map(SOURCES),
            "model": t["model"].astype(str),
            "n_layers": t["num_layers"].astype(int),
            "d_model": t["d_model"].astype(int),
            "n_heads": t["num_attention_heads"].astype(int),
            "batch_size": t["batch_size"].astype(int),
            "seq_len": t["seq_length"].astype(int),
            "duration_s": t["duration"].astype(float),
            "energy_j": t["energy_joules"].astype(float),
            "n_parameters": t["params"].astype(int),
        }
    ).reset_index(drop=True)
    bad = ~(np.isfinite(frame.duration_s) & (frame.duration_s > 0) & (frame.energy_j > 0))
    if bad.any():
        raise ValueError(
            "SubsetDataForTransformer_energyModel.csv: non-positive duration or "
            f"energy_joules in rows {list(frame.index[bad][:5])}"
        )
    frame["precision"] = frame.gpu.map(PAPER_PRECISION)
    frame["power_w"] = frame.energy_j / frame.duration_s
    frame["tdp_w"] = frame.gpu.map(lambda g: _gpu(g).power_limit_w)
    keys = frame[[*_CONFIG_KEY, "precision"]].drop_duplicates()
    peak_time, n_params = {}, {}
    for k in keys.itertuples(index=False):
        cfg = paper_model_config(k.model, k.n_layers, k.d_model, k.n_heads, k.seq_len)
        g = training_step_graph(cfg, k.batch_size, k.seq_len, k.precision, "adamw")
        peak_time[tuple(k)[:-1]] = _flop_time_at_peak(g, k.gpu)
        n_params[tuple(k)[:-1]] = cfg.n_parameters
    tuples = list(frame[_CONFIG_KEY].itertuples(index=False, name=None))
    frame["peak_time_s"] = [peak_time[k] for k in tuples]
    frame["graph_parameters"] = [n_params[k] for k in tuples]
    # the graph describes the published model when the parameter counts agree (within
    # 1 %: head bias, floor(d/h) head widths); 75 BERT steps at seq_len 256 have 2-27 M
    # more parameters than any reading of the paper's model gives: left out of fits
    rel = (frame.graph_parameters - frame.n_parameters).abs() / frame.n_parameters
    frame["params_match"] = rel <= 0.01
    frame["utilisation"] = np.clip(frame.peak_time_s / frame.duration_s, 0.0, 1.0)
    frame["config_id"] = pd.factorize(pd.Series(tuples))[0]
    return frame


def _r2(measured: np.ndarray, pred: np.ndarray) -> float:
    ss_res = float(np.sum((measured - pred) ** 2))
    ss_tot = float(np.sum((measured - measured.mean()) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")


def _metrics(
    measured: Any, pred: Any, lo: Any, hi: Any, duration: Any, constant_w: Any
) -> dict[str, float]:
    """Energy R²/MAPE/coverage, the same for power, and a constant-power baseline."""
    measured, pred, lo, hi, duration, constant_w = (
        np.asarray(v, dtype=float) for v in (measured, pred, lo, hi, duration, constant_w)
    )
    p_meas, p_pred = measured / duration, pred / duration
    return {
        "r2": _r2(measured, pred),
        "mape_pct": float(np.mean(np.abs(pred - measured) / measured) * 100),
        "coverage90_pct": float(np.mean((measured >= lo) & (measured <= hi)) * 100),
        "power_r2": _r2(p_meas, p_pred),
        "power_mape_pct": float(np.mean(np.abs(p_pred - p_meas) / p_meas) * 100),
        "constant_power_mape_pct": float(np.mean(np.abs(constant_w - p_meas) / p_meas) * 100),
        "n": int(measured.size),
    }


def evaluate_power(frame: pd.DataFrame, n_splits: int = 5) -> pd.DataFrame:
    """Held-out scores of the power law, per GPU and protocol.

    Protocols: ``configs`` (GroupKFold over configurations of the GPU: fitted on
    the others, the GPU's held-out configurations scored) and ``transfer`` (fitted on
    the other GPUs only, as fractions of TDP: the unseen-GPU path). The target is the
    energy of a step [J] = P(u) · measured duration (the power model alone; u from
    the measured duration); the interval is the nominal 90 % one.

    Returns
    -------
    pandas.DataFrame
        ``gpu, protocol, r2, mape_pct, coverage90_pct, n, n_configs``.
    """
    from sklearn.model_selection import GroupKFold

    rows = []
    for gpu, g in frame.groupby("gpu"):
        g = g.reset_index(drop=True)
        n_cfg = g.config_id.nunique()
        k = min(n_splits, n_cfg)
        pred, lo, hi, const = (np.full(len(g), np.nan) for _ in range(4))
        t = g.duration_s.to_numpy()
        if k >= 2:
            for train, test in GroupKFold(n_splits=k).split(g, groups=g.config_id):
                tr = g.iloc[train]
                fit = _fit_with_cv_sigma(gpu, tr, n_splits)
                u = g.utilisation.to_numpy()[test]
                pred[test] = fit.power(u) * t[test]
                a, b = fit.interval(u)
                lo[test], hi[test] = a * t[test], b * t[test]
                const[test] = tr.power_w.mean()
            m = _metrics(g.energy_j, pred, lo, hi, t, const)
            rows.append({"gpu": gpu, "protocol": "configs", **m, "n_configs": n_cfg})
        others = frame[frame.gpu != gpu]
        if others.gpu.nunique() >= 1:
            fit = transfer_power(_per_gpu_fits(others, n_splits), gpu, g.tdp_w.iloc[0])
            u = g.utilisation.to_numpy()
            a, b = fit.interval(u)
            const = (others.power_w / others.tdp_w).mean() * g.tdp_w
            m = _metrics(g.energy_j, fit.power(u) * t, a * t, b * t, t, const)
            rows.append({"gpu": gpu, "protocol": "transfer", **m, "n_configs": n_cfg})
    return pd.DataFrame(rows)


def _fit_with_cv_sigma(gpu: str, g: pd.DataFrame, n_splits: int = 5) -> PowerFit:
    """Fit on all of ``g``; ``sigma_log`` from grouped out-of-fold residuals."""
    from dataclasses import replace

    from sklearn.model_selection import GroupKFold

    fit = fit_power(gpu, g.utilisation, g.power_w, float(g.tdp_w.iloc[0]))
    k = min(n_splits, g.config_id.nunique())
    if k < 2:
        return fit
    resid = np.full(len(g), np.nan)
    for train, test in GroupKFold(n_splits=k).split(g, groups=g.config_id):
        tr = g.iloc[train]
        f = fit_power(gpu, tr.utilisation, tr.power_w, float(tr.tdp_w.iloc[0]))
        resid[test] = np.log(g.power_w.iloc[test] / f.power(g.utilisation.iloc[test]))
    # a robust spread (the published file holds a few outliers, e.g. 124 W on the A100)
    sigma = float(np.quantile(np.abs(resid), 0.9) / Z90)
    return replace(fit, sigma_log=max(sigma, fit.sigma_log))


def _per_gpu_fits(frame: pd.DataFrame, n_splits: int = 5) -> list[PowerFit]:
    return [_fit_with_cv_sigma(gpu, g, n_splits) for gpu, g in frame.groupby("gpu")]


def evaluate_energy_chain(
    frame: pd.DataFrame, n_splits: int = 5, operator_model: Any = None
) -> pd.DataFrame:
    """End to end on the published steps: predicted time × power law, with intervals.

    Each configuration's step time is predicted from its graph
    (:func:`powerfit.steps.latency.operator_latency`, bundled FP32 laws; TF32 products by the
    roofline at the TF32 peak plus the fixed cost of a queued call, memory-bound
    operators by the FP32 bandwidth laws, as the CLI would), its power by the law
    fitted on the *other* configurations of the GPU (GroupKFold) at the predicted
    utilisation, and the energy interval is the shipped step-time interval
    (:func:`powerfit.steps.intervals.half_width_for`: these GPUs/precisions have no
    measured training step, so it is widened; the specs-only mode's for a GPU without
    measured operators, the RTX 2080 Ti) times the power interval.

    Returns
    -------
    pandas.DataFrame
        Per GPU: ``time_mape_pct``, ``energy_mape_pct``, ``energy_r2``,
        ``coverage90_pct`` (measured energy inside the interval), ``half_width``
        (step-time q used), ``n`` (steps), ``n_configs``.
    """
    import warnings

    from sklearn.model_selection import GroupKFold

    from powerfit.steps.graph import training_step_graph
    from powerfit.steps.intervals import half_width_for, timed_by_transfer
    from powerfit.steps.latency import (
        bundled_operator_model,
        operator_latency_sources,
        utilisation,
    )

    model = bundled_operator_model("fp32") if operator_model is None else operator_model
    configs = frame.drop_duplicates("config_id").set_index("config_id")
    pred_t, pred_u, roof = {}, {}, {}
    for cid, k in configs.iterrows():
        cfg = paper_model_config(k.model, k.n_layers, k.d_model, k.n_heads, k.seq_len)
        g = training_step_graph(cfg, int(k.batch_size), int(k.seq_len), k.precision, "adamw")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lat, source, _notes = operator_latency_sources(g, k.gpu, model)
        pred_t[cid] = float(np.sum(lat * g["count"].to_numpy()))
        pred_u[cid] = utilisation(g, lat, k.gpu)
        roof[cid] = bool((source == "roofline").any())
    rows = []
    for gpu, g in frame.groupby("gpu"):
        g = g.reset_index(drop=True)
        t = g.config_id.map(pred_t).to_numpy(float)
        u = g.config_id.map(pred_u).to_numpy(float)
        # as the CLI: an FP32 step on a GPU without measured operators is timed by transfer
        precision = str(g.precision.iloc[0])
        key = "specs-only" if timed_by_transfer(model, gpu, precision) else "in-gpu"
        q = np.array([half_width_for(key, outside=True, roofline=roof[c]) for c in g.config_id])
        e, lo, hi = (np.full(len(g), np.nan) for _ in range(3))
        k = min(n_splits, g.config_id.nunique())
        for train, test in GroupKFold(n_splits=k).split(g, groups=g.config_id):
            fit = _fit_with_cv_sigma(gpu, g.iloc[train], n_splits)
            p = fit.power(u[test])
            p_lo, p_hi = fit.interval(u[test])
            e[test] = p * t[test]
            lo[test] = p_lo * t[test] * np.exp(-q[test])
            hi[test] = p_hi * t[test] * np.exp(q[test])
        y = g.energy_j.to_numpy(float)
        rows.append(
            {
                "gpu": gpu,
                "time_mape_pct": float(np.mean(np.abs(t - g.duration_s) / g.duration_s) * 100),
                "energy_mape_pct": float(np.mean(np.abs(e - y) / y) * 100),
                "energy_r2": _r2(y, e),
                "coverage90_pct": float(np.mean((y >= lo) & (y <= hi)) * 100),
                "half_width": float(np.mean(q)),
                "n": len(g),
                "n_configs": int(g.config_id.nunique()),
            }
        )
    return pd.DataFrame(rows)


def build_power_bundle(data_home: Any = None, n_splits: int = 5) -> dict[str, Any]:
    """Fit every measured GPU and the transfer; the JSON-serialisable bundle."""
    from powerfit.datasets.mayaki2025 import MAYAKI2025_URL

    full = mayaki_power_frame(data_home)
    frame = full[full.params_match].reset_index(drop=True)
    fits = []
    for gpu, g in frame.groupby("gpu"):
        f = _fit_with_cv_sigma(gpu, g, n_splits)
        fits.append(_with_counts(f, len(g), g.config_id.nunique()))
    scores = evaluate_power(frame, n_splits)
    out_fits = {}
    for f in fits:
        d = f.to_dict()
        d["heldout"] = scores[scores.gpu == f.gpu].drop(columns="gpu").to_dict(orient="records")
        d["ranges"] = _ranges(frame[frame.gpu == f.gpu])
        d["measured_power_w"] = {
            "mean": float(frame.power_w[frame.gpu == f.gpu].mean()),
            "std": float(frame.power_w[frame.gpu == f.gpu].std()),
        }
        out_fits[f.gpu] = d
    t = transfer_power(fits, "transfer", 1.0)
    chain = evaluate_energy_chain(frame, n_splits)
    return {
        "format": "powerfit.power/1",
        "law": "P = P_idle + (P_max - P_idle) * u**gamma [W], u = sum(FLOP/peak)/step time",
        "bounds": {k: list(v) for k, v in POWER_BOUNDS.items()},
        "interval": "P * exp(+-1.645 * sigma_log), nominal 90 %",
        "gpus": out_fits,
        "transfer": {
            "idle_fraction": t.p_idle_w,
            "max_fraction": t.p_max_w,
            "gamma": t.gamma,
            "sigma_log": t.sigma_log,
            "u_range": list(t.u_range),
            "from": sorted(out_fits),
        },
        "end_to_end": {
            "what": "predicted step time (graph, bundled FP32 laws, TF32 products by "
            "the roofline at the TF32 peak plus the fixed cost of a queued call) x "
            "power law fitted on the other configurations; energy "
            "interval = shipped step-time interval x power interval",
            "scores": chain.to_dict(orient="records"),
        },
        "provenance": {
            "data": "Mayaki & Charpenay (ECAI 2025), "
            "processed/SubsetDataForTransformer_energyModel.csv",
            "source": MAYAKI2025_URL,
            "target": "energy_joules / duration (CodeCarbon energy, GPU + CPU + RAM)",
            "rows_used": len(frame),
            "rows_left_out": int((~full.params_match).sum()),
            "left_out_why": "published params disagree with the graph's by > 1 % "
            "(BERT, seq_len 256)",
            "precision": PAPER_PRECISION,
            "graph": "paper_model_config + training_step_graph(optimizer='adamw', loss=True)",
            "built_by": "experiments/build_power_models.py",
            "built_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }


def _with_counts(f: PowerFit, n_runs: int, n_configs: int) -> PowerFit:
    from dataclasses import replace

    return replace(f, n_runs=int(n_runs), n_configs=int(n_configs))


def _ranges(g: pd.DataFrame) -> dict[str, list[float]]:
    return {
        c: [float(g[c].min()), float(g[c].max())]
        for c in ("utilisation", "n_parameters", "batch_size", "seq_len", "d_model", "n_layers")
    }
