"""The steps suite: step time of real models against NeuSight's measured training steps.

For every training step in ``neusight2025/labels/`` (FP32, TF32 off; forward +
backward, no optimizer step), the operator graph of the step is built from the
model's Hugging Face config (:func:`powerfit.steps.measured.neusight_step_graph`) and its
operators' latencies are summed, in these modes:

* ``in-gpu``: the operator laws fitted with that GPU's operator measurements;
* ``specs-only``: the same laws, as if that GPU had never been measured;
* ``in-gpu+cal``: with the per-GPU calibration (:class:`powerfit.steps.calibration.Calibration`)
  fitted leave-one-step-out on the other measured steps of that GPU;
* ``specs-only+cal-other-gpus``: specs-only, calibrated on the other GPUs' steps
  (their specs-only sums from laws that never saw the held-out GPU either);
* ``roofline``: max(FLOP / peak, bytes / bandwidth) per operator;
* ``trace_sum``: the sum of the latencies NeuSight measured for each traced node.

Intervals: the nominal 90 % interval of a step time t is ``[t·e^−q, t·e^q]`` with
``q = t₀.₉₅(n−1) · RMS(log(pred / measured))`` over n measured steps, every GPU
weighing the same (:func:`interval_half_width`). Its coverage is checked out of
sample two ways: ``loo-step`` (q from every other step, all GPUs pooled) and
``loo-gpu`` (q from the other GPUs' steps only: the unseen-GPU case).
:func:`evaluate_steps` returns the per-GPU table; :func:`evaluate_half_precision_and_fused`
the half-precision and fused rows (:data:`HALF_PRECISION_ROWS` says what each is);
:func:`step_time_intervals` the
half-widths a CLI should use, and :func:`step_interval_bundle` the shipped bundle that
:mod:`powerfit.steps.intervals` reads. :func:`compare_products` checks the graph's
matrix products against a NeuSight trace
(:func:`powerfit.datasets.neusight2025.traced_products`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from powerfit.steps.graph import MATMUL_OPS
from powerfit.steps.intervals import OUT_OF_RANGE_WIDEN

__all__ = [
    "HALF_PRECISION_ROWS",
    "MODES",
    "NEUSIGHT_PUBLISHED",
    "compare_products",
    "evaluate_half_precision_and_fused",
    "evaluate_steps",
    "fit_queued_call",
    "inductor_fused_graph",
    "interval_coverage",
    "interval_half_width",
    "step_interval_bundle",
    "step_predictions",
    "step_time_intervals",
    "trace_sum",
]

#: NeuSight's published MAPE of training-step latency (Lee et al., ASPLOS 2025) [%].
NEUSIGHT_PUBLISHED = {
    "NVIDIA A100 80GB PCIe": 7.6,
    "Tesla V100-PCIE-32GB": 8.9,
    "NVIDIA H100 80GB HBM3": 6.6,
    "NVIDIA L4": 7.2,
}

#: The prediction modes, in the table's order.
MODES = (
    "in-gpu",
    "in-gpu+cal",
    "specs-only",
    "specs-only+cal-other-gpus",
    "roofline",
    "trace_sum",
)

#: Modes whose interval is checked (the ones a user gets).
INTERVAL_MODES = ("in-gpu", "in-gpu+cal", "specs-only", "roofline")

_LAYER0 = r"'[\w.]*\.(?:h|layer|layers|block)\.0'"


def trace_sum(trace: Path, num_layer: int) -> float:
    """Forward + backward latency of a traced step, layer 0 counted num_layer times [s]."""
    frame = pd.read_csv(trace)
    in_layer = frame.meta.astype(str).str.contains(_LAYER0, regex=True)
    lat = frame.fw_latency + frame.bw_latency + frame.acc_latency
    return float((lat[in_layer].sum() * num_layer + lat[~in_layer].sum()) * 1e-3)


def _operator_model(data_home: Any = None, precision: str = "fp32") -> Any:
    """The bundled operator laws, else laws fitted on NeuSight's operator files."""
    try:
        from powerfit.evaluation.operators import neusight_operator_frame
        from powerfit.kernels.model import OPERATOR_COLUMNS, OperatorTimeModel, load_operator_model
    except ImportError:
        return None
    try:
        return load_operator_model(precision=precision)
    except ValueError:
        from powerfit.datasets.home import get_data_home

        ops = neusight_operator_frame(get_data_home(data_home))
        return OperatorTimeModel(precision=precision, call_timing="isolated").fit(
            ops[list(OPERATOR_COLUMNS)], ops.latency_s
        )


def step_predictions(data_home: Any = None) -> pd.DataFrame:
    """One row per measured step: the measured time and each mode's prediction [s].

    Columns: ``gpu, model, seq_len, batch_size, num_layer, measured_s, n_ops`` and
    one column per mode of :data:`MODES` (NaN where a mode cannot predict). Empty
    when the labels are absent.
    """
    from powerfit.datasets.neusight2025 import neusight_training_steps
    from powerfit.steps.calibration import fit_calibration
    from powerfit.steps.latency import operator_latency, roofline_latency
    from powerfit.steps.measured import neusight_step_graph

    steps = neusight_training_steps(data_home)
    from powerfit.architectures.hf import from_hf_config

    cols = [
        "gpu",
        "model",
        "seq_len",
        "batch_size",
        "num_layer",
        "n_parameters",
        "measured_s",
        "n_ops",
    ]
    if steps.empty:
        return pd.DataFrame(columns=[*cols, *MODES])
    model = _operator_model(data_home)
    out, graphs = [], []
    for step in steps.itertuples(index=False):
        graph = neusight_step_graph(step)
        graphs.append(graph)
        count = graph["count"].to_numpy()
        row = {c: getattr(step, c) for c in cols if c not in ("n_ops", "n_parameters")}
        row["n_parameters"] = from_hf_config(step.config).n_parameters
        row["n_ops"] = float(count.sum())
        row["roofline"] = float(np.sum(roofline_latency(graph, step.gpu) * count))
        ok = step.trace is not None and step.num_layer
        row["trace_sum"] = trace_sum(step.trace, step.num_layer) if ok else np.nan
        for mode, specs in (("in-gpu", False), ("specs-only", True)):
            row[mode] = np.nan
            if model is None:
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    lat = operator_latency(graph, step.gpu, model, specs_only=specs)
                row[mode] = float(np.sum(lat * count))
            except (ValueError, KeyError):
                pass
        out.append(row)
    frame = pd.DataFrame(out)
    frame["in-gpu+cal"] = np.nan
    frame["specs-only+cal-other-gpus"] = np.nan
    for i in range(len(frame)):
        gpu = frame.gpu.iloc[i]
        mine = frame[(frame.gpu == gpu) & (frame.index != frame.index[i])]
        mine = mine[np.isfinite(mine["in-gpu"])]
        if not mine.empty and np.isfinite(frame["in-gpu"].iloc[i]):
            cal = fit_calibration(gpu, mine["in-gpu"], mine.n_ops, mine.measured_s)
            frame.loc[frame.index[i], "in-gpu+cal"] = cal.apply(
                frame["in-gpu"].iloc[i], frame.n_ops.iloc[i]
            )
    for gpu in frame.gpu.unique():
        others = frame[(frame.gpu != gpu) & np.isfinite(frame["specs-only"])]
        if others.empty or model is None:
            continue
        # the other GPUs' specs-only sums from laws that never saw this GPU either
        blind = model.without_gpus([gpu])
        summed = []
        for i in others.index:
            graph = graphs[i]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                lat = operator_latency(graph, others.gpu[i], blind, specs_only=True)
            summed.append(float(np.sum(lat * graph["count"].to_numpy())))
        cal = fit_calibration("others", np.array(summed), others.n_ops, others.measured_s)
        mine = (frame.gpu == gpu).to_numpy()
        frame.loc[mine, "specs-only+cal-other-gpus"] = cal.apply(
            frame.loc[mine, "specs-only"].to_numpy(), frame.loc[mine, "n_ops"].to_numpy()
        )
    return frame[[*cols, *MODES]]


#: The GPU whose measured training steps fit :data:`~powerfit.steps.latency.QUEUED_CALL_S`
#: (:func:`fit_queued_call`); the other GPU's steps stay held out of it.
QUEUED_CALL_GPU = "NVIDIA A100 80GB PCIe"


def fit_queued_call(data_home: Any = None, gpu: str = QUEUED_CALL_GPU) -> dict[str, float]:
    """Fit the fixed cost of a queued call on one GPU's measured training steps.

    Each step's operators are timed by the bundled laws with the fixed cost of an
    isolated call taken out (:func:`powerfit.steps.latency._queued` at zero cost); the
    cost ``l`` per call that minimises the MAPE of ``Σ kernels + l · calls`` against
    the measured steps is searched on a 0.5 µs grid over [0, 30 µs].

    Returns
    -------
    dict
        ``queued_call_s`` [s], ``mape_pct`` [%] at it, ``mape_isolated_pct`` [%] (the
        laws' latencies as measured, isolated calls), ``steps`` and ``gpu``.
    """
    from powerfit.datasets.neusight2025 import neusight_training_steps
    from powerfit.steps.latency import QUEUED_CALL_S, operator_latency
    from powerfit.steps.measured import neusight_step_graph

    steps = neusight_training_steps(data_home)
    steps = steps[steps.gpu == gpu]
    model = _operator_model(data_home)
    if steps.empty or model is None:
        raise ValueError(f"no measured training steps of {gpu} (or no operator laws)")
    kernels, calls, isolated = [], [], []
    for step in steps.itertuples(index=False):
        graph = neusight_step_graph(step)
        count = graph["count"].to_numpy(float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lat = operator_latency(graph, gpu, model)
        overhead = model.call_overhead(graph.assign(gpu=gpu))
        kernels.append(float(np.sum((lat - QUEUED_CALL_S) * count)))
        isolated.append(float(np.sum((lat - QUEUED_CALL_S + overhead) * count)))
        calls.append(float(count.sum()))
    y = steps.measured_s.to_numpy(float)
    k, n = np.array(kernels), np.array(calls)
    grid = np.arange(0.0, 30.5e-6, 0.5e-6)
    mape = [float(np.mean(np.abs((k + c * n) / y - 1.0)) * 100) for c in grid]
    best = int(np.argmin(mape))
    return {
        "gpu": gpu,
        "steps": len(y),
        "queued_call_s": float(grid[best]),
        "mape_pct": mape[best],
        "mape_isolated_pct": float(np.mean(np.abs(np.array(isolated) / y - 1.0)) * 100),
    }


def interval_half_width(log_ratios: Any, gpus: Any = None) -> float:
    """Half-width q [-] of a nominal 90 % interval ``[t·e^−q, t·e^q]``.

    ``q = t₀.₉₅(n − 1) · sqrt(Σ wᵢ rᵢ² / Σ wᵢ)`` over the log ratios r = log(pred /
    measured) of n measured steps (Student's t for the small samples at hand; an RMS,
    not a standard deviation, so that a bias widens the interval). With ``gpus`` (the
    GPU of each step) every GPU weighs the same, ``wᵢ = 1 / (steps of its GPU)``: the
    errors of one GPU's steps go together (one set of laws, one bias), so the GPU with
    most steps (the A100, 10 of 13) must not set the width for all; without, wᵢ = 1.
    NaN below 2 steps.
    """
    from scipy.stats import t as student_t

    r = np.asarray(log_ratios, dtype=float)
    ok = np.isfinite(r)
    r = r[ok]
    if r.size < 2:
        return float("nan")
    w = np.ones(r.size)
    if gpus is not None:
        g = pd.Series(np.asarray(gpus, dtype=object)[ok])
        w = 1.0 / g.map(g.value_counts()).to_numpy(float)
    return float(student_t.ppf(0.95, r.size - 1) * np.sqrt(np.sum(w * r**2) / np.sum(w)))


def _log_ratio(frame: pd.DataFrame, mode: str) -> np.ndarray:
    return np.log(frame[mode].to_numpy(float) / frame.measured_s.to_numpy(float))


def interval_coverage(frame: pd.DataFrame, modes: Any = INTERVAL_MODES) -> pd.DataFrame:
    """Out-of-sample coverage [%] of the nominal 90 % step-time interval.

    Returns
    -------
    pandas.DataFrame
        ``gpu, mode, protocol`` (``loo-step``: the half-width from every other step,
        all GPUs; ``loo-gpu``: from the other GPUs' steps only, widened by
        :data:`OUT_OF_RANGE_WIDEN` as for any GPU without measured steps;
        ``loo-gpu-unwidened``: the same without widening), ``n``,
        ``coverage90_pct`` and ``mean_half_width`` (mean q [-]).
    """
    rows = []
    for mode in modes:
        if mode not in frame:
            continue
        r = _log_ratio(frame, mode)
        gpus = frame.gpu.to_numpy()
        for protocol in ("loo-step", "loo-gpu", "loo-gpu-unwidened"):
            q = np.full(len(frame), np.nan)
            for i in range(len(frame)):
                keep = (np.arange(len(frame)) != i) if protocol == "loo-step" else gpus != gpus[i]
                q[i] = interval_half_width(r[keep], gpus[keep])
            if protocol == "loo-gpu":
                q = q * OUT_OF_RANGE_WIDEN
            for gpu in sorted(set(gpus)):
                m = (gpus == gpu) & np.isfinite(r) & np.isfinite(q)
                if not m.any():
                    continue
                rows.append(
                    {
                        "gpu": gpu,
                        "mode": mode,
                        "protocol": protocol,
                        "n": int(m.sum()),
                        "coverage90_pct": float(np.mean(np.abs(r[m]) <= q[m]) * 100),
                        "mean_half_width": float(np.mean(q[m])),
                    }
                )
    return pd.DataFrame(
        rows, columns=["gpu", "mode", "protocol", "n", "coverage90_pct", "mean_half_width"]
    )


def step_time_intervals(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Half-widths q [-] to use per mode, from all measured steps (with counts).

    ``in-gpu`` uses the calibrated errors when calibration is applied (the CLI
    calibrates in-GPU FP32 estimates); ``specs-only`` its own.
    """
    out = {}
    for mode in INTERVAL_MODES:
        if mode not in frame:
            continue
        r = _log_ratio(frame, mode)
        half = interval_half_width(r, frame.gpu.to_numpy())
        out[mode] = {"half_width": half, "n_steps": int(np.isfinite(r).sum())}
    return out


def step_interval_bundle(frame: pd.DataFrame) -> dict[str, Any]:
    """Half-widths per mode, the measured ranges and the coverage: a JSON-able dict."""
    from datetime import datetime, timezone

    cov = interval_coverage(frame)
    return {
        "format": "powerfit.step_time_intervals/1",
        "interval": "[t*exp(-q), t*exp(q)], nominal 90 %; q *= widen_outside outside ranges",
        "half_width": step_time_intervals(frame),
        "widen_outside": OUT_OF_RANGE_WIDEN,
        "ranges": {
            "gpus": sorted(frame.gpu.unique()),
            "n_parameters": [int(frame.n_parameters.min()), int(frame.n_parameters.max())],
            "batch_size": [int(frame.batch_size.min()), int(frame.batch_size.max())],
            "seq_len": [int(frame.seq_len.min()), int(frame.seq_len.max())],
            "precision": ["fp32"],
        },
        "coverage": cov.to_dict(orient="records"),
        "provenance": {
            "data": "NeuSight (Lee et al., ASPLOS 2025) labels/*/*-train-*.json",
            "built_by": "experiments/build_power_models.py",
            "built_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }


def evaluate_steps(data_home: Any = None, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """MAPE of step time [%] per GPU and mode, with interval coverage, beside NeuSight.

    Parameters
    ----------
    data_home : path, optional
        Data home holding ``neusight2025/`` (default:
        :func:`powerfit.datasets.home.get_data_home`).
    frame : pandas.DataFrame, optional
        :func:`step_predictions`' output (computed when absent).

    Returns
    -------
    pandas.DataFrame
        One row per GPU: ``gpu, steps``, one MAPE column per mode of :data:`MODES`,
        ``in-gpu_vs_trace_sum`` (the graph's summed operators against the traced
        nodes' sum), ``coverage90_<mode>_<protocol>`` [%] for the interval modes and
        ``neusight_published`` [%].
    """
    frame = step_predictions(data_home) if frame is None else frame
    cov = interval_coverage(frame)
    rows = []
    for gpu, group in frame.groupby("gpu"):
        row: dict[str, Any] = {"gpu": gpu, "steps": len(group)}
        for m in MODES:
            ok = np.isfinite(group[m].to_numpy(float))
            ape = (group[m][ok] - group.measured_s[ok]).abs() / group.measured_s[ok] * 100
            row[m] = float(ape.mean()) if ok.any() else np.nan
        ok = np.isfinite(group.trace_sum.to_numpy(float)) & np.isfinite(
            group["in-gpu"].to_numpy(float)
        )
        gap = (group["in-gpu"] - group.trace_sum).abs() / group.trace_sum * 100
        row["in-gpu_vs_trace_sum"] = float(gap[ok].mean()) if ok.any() else np.nan
        for c in cov[cov.gpu == gpu].itertuples(index=False):
            row[f"coverage90_{c.mode}_{c.protocol}"] = c.coverage90_pct
        row["neusight_published"] = NEUSIGHT_PUBLISHED.get(gpu, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def compare_products(graph: pd.DataFrame, traced: pd.DataFrame) -> pd.DataFrame:
    """Forward products of a graph beside a trace's, by shape (op, B, M, N, K).

    Returns
    -------
    pandas.DataFrame
        One row per shape: ``count_graph``, ``count_trace`` (0 where absent).
    """
    key = ["op", "B", "M", "N", "K"]
    fwd = graph[(graph.phase == "forward") & graph.op.isin(list(MATMUL_OPS))]
    a = fwd.groupby(key)["count"].sum().rename("count_graph")
    b = traced.groupby(key)["count"].sum().rename("count_trace")
    both = pd.concat([a, b], axis=1).fillna(0).astype("int64").reset_index()
    return both


#: The half-precision and fused rows of the steps suite: what each row is.
HALF_PRECISION_ROWS = {
    "fp16 layer": "Vidur's FP16 operators of one decoder layer (forward: projections, norms, "
    "rotary, activation, residual) summed per measured layer (model x tokens x TP); "
    "own: the GPU's own laws; logo: laws transferred from the other GPUs only",
    "fp16 layer products": "the same layers, their four matrix products only",
    "fused attention": "published FlashAttention-2 throughput figures (FP16/BF16; forward, "
    "backward, forward+backward) timed by the fused-attention laws; own: the GPU's law; "
    "logo: transferred from the other GPUs by tensor-core peak",
    "fused attention (cudnn)": "the same for cuDNN's fused attention (SDPA's CUDNN_ATTENTION "
    "backend, --attention-kernel cudnn); logo: the other GPUs' median law",
    "fused attention (triton)": "the same for the 2022-2023 Triton FlashAttention "
    "(--attention-kernel triton), published for the A100 only: no logo",
    "unfused fp32 forward": "NeuSight's A100-PCIE-40GB forward (inference) steps run eager "
    "against powerfit's eager forward graph (FP32 laws of that GPU); no logo",
    "fused fp32 forward": "the same steps run fused (torch.compile) against the forward "
    "graph as Inductor fuses it (:func:`inductor_fused_graph`: the eager attention core as "
    "one SDPA call, FP32 so the memory-efficient kernel, an assumed law; each run of "
    "consecutive memory-bound operators one kernel); logo column: the eager graph against "
    "the fused steps, for comparison",
    "fusion speed-up": "fused / unfused step time, predicted (the two graphs above) against "
    "measured, per step: what the fusion model gets right apart from the eager graph's "
    "own error",
    "fp32 forward steps": "all of NeuSight's FP32 (TF32 off) eager forward (inference) steps "
    "of each GPU against powerfit's forward graph (no dropout); own: the GPU's own FP32 "
    "operator laws; logo: specs-only, laws transferred from the other GPUs (that GPU held "
    "out); coverage: inside the shipped specs-only interval of a GPU without measured "
    "steps (q widened outside the measured ranges)",
}

#: The attention core of the hand-written eager graph, replaced by one SDPA row.
_EAGER_ATTENTION = ("scores", "scale", "mask", "softmax", "attn_dropout", "context")


def _mape(pred: Any, measured: Any) -> float:
    pred, measured = np.asarray(pred, float), np.asarray(measured, float)
    ok = np.isfinite(pred) & np.isfinite(measured) & (measured > 0)
    return float(np.mean(np.abs(pred[ok] / measured[ok] - 1)) * 100) if ok.any() else np.nan


def _logo_coverage(log_ratio: np.ndarray, gpus: np.ndarray) -> dict[str, float]:
    """Per GPU: share [%] of its log ratios inside the q of the other GPUs' ratios."""
    out = {}
    for gpu in np.unique(gpus):
        mine = gpus == gpu
        q = interval_half_width(log_ratio[~mine], gpus[~mine])
        out[gpu] = float(np.mean(np.abs(log_ratio[mine]) <= q) * 100) if np.isfinite(q) else np.nan
    return out


def _half_precision_rows(data_home: Any) -> list[dict]:
    from powerfit.datasets.vidur2024 import fetch_vidur2024
    from powerfit.kernels.half import half_precision_evidence, vidur_operator_frame
    from powerfit.kernels.model import load_operator_model

    frame = vidur_operator_frame(fetch_vidur2024(data_home))
    _per_op, layers = half_precision_evidence(frame, load_operator_model("fp16"))
    rows = []
    for name, prefix in (("fp16 layer", ""), ("fp16 layer products", "products_")):
        measured = layers[f"{prefix}measured_s"].to_numpy(float)
        logo = layers[f"{prefix}logo_s"].to_numpy(float)
        cover = _logo_coverage(np.log(logo / measured), layers.gpu.to_numpy())
        for gpu, x in layers.groupby("gpu"):
            rows.append(
                {
                    "row": name,
                    "gpu": gpu,
                    "precision": "fp16",
                    "n": len(x),
                    "mape_own": _mape(x[f"{prefix}own_s"], x[f"{prefix}measured_s"]),
                    "mape_logo": _mape(x[f"{prefix}logo_s"], x[f"{prefix}measured_s"]),
                    "coverage90_logo": cover[gpu],
                }
            )
    return rows


def _fused_attention_rows(data_home: Any) -> list[dict]:
    from powerfit.datasets.flashattn import fetch_flashattn
    from powerfit.kernels.attention import leave_one_gpu_out

    figures = fetch_flashattn(data_home).figures
    rows = []
    for family, name in (
        ("fa2", "fused attention"),
        ("cudnn", "fused attention (cudnn)"),
        ("triton", "fused attention (triton)"),
    ):
        logo = leave_one_gpu_out(figures, family)
        # own/logo are predicted/published throughput: the time ratio is their inverse
        log_ratio = -np.log(logo.logo.to_numpy(float))
        known = np.isfinite(log_ratio)
        cover = _logo_coverage(log_ratio[known], logo.gpu.to_numpy()[known])
        for gpu, x in logo.groupby("gpu"):
            rows.append(
                {
                    "row": name,
                    "gpu": gpu,
                    "precision": "fp16/bf16",
                    "n": len(x),
                    "mape_own": _mape(1 / x.own, np.ones(len(x))),
                    "mape_logo": _mape(1 / x.logo, np.ones(len(x)))
                    if x.logo.notna().all()
                    else np.nan,
                    "coverage90_logo": cover.get(gpu, np.nan),
                }
            )
    return rows


def inductor_fused_graph(graph: pd.DataFrame, config: Any, batch: int, seq: int) -> pd.DataFrame:
    """A forward graph as ``torch.compile`` (Inductor) runs it, in FP32: an evaluation model.

    * The eager attention core (scores, scale, mask, softmax, dropout, context) becomes one
      SDPA call (Inductor's attention pattern matcher), in FP32 the memory-efficient kernel
      (:func:`powerfit.kernels.attention.fused_attention_row`).
    * Each run of consecutive memory-bound rows of the same count (what lies between two
      products) becomes one kernel that reads and writes its largest tensor once (an
      ``addu`` over it): Inductor's pointwise and reduction fusion, intermediates kept in
      registers.

    An approximation for the steps suite's fused rows; the step model times eager graphs.
    """
    from powerfit.kernels.attention import fused_attention_row
    from powerfit.kernels.counts import operator_bytes

    core = graph.name.str.rsplit(".", n=1).str[-1].isin(_EAGER_ATTENTION)
    core &= graph.name.str.contains("self_attn")
    rows: list[dict] = []
    if core.any():
        first = int(np.flatnonzero(core.to_numpy())[0])
        sdpa = fused_attention_row(
            batch, config.n_heads, config.n_kv_heads, seq, seq, config.d_kv,
            bool(config.causal), False, "fp32",
        )  # fmt: skip
        layers = int(graph.loc[core, "count"].max())
        sdpa |= {"name": "attention.sdpa", "phase": "forward", "count": layers, "params": 0}
    run: list[dict] = []

    def flush() -> None:
        if run:
            big = max(run, key=lambda r: r["B"] * r["H"])
            fused = dict(big, op="addu", name=f"fused.{big['name']}")
            fused["flop"] = float(sum(r["flop"] for r in run))
            fused["bytes"] = float(operator_bytes("addu", big["B"], H=big["H"]))
            rows.append(fused)
            run.clear()

    for i, row in enumerate(graph.to_dict(orient="records")):
        if core.iloc[i]:
            if i == first:
                flush()
                rows.append(sdpa)
            continue
        if row["op"] in MATMUL_OPS:
            flush()
            rows.append(row)
            continue
        if run and run[-1]["count"] != row["count"]:
            flush()
        run.append(row)
    flush()
    return pd.DataFrame(rows).reset_index(drop=True)


def _inference_graph(step: Any) -> pd.DataFrame:
    """The forward graph of a NeuSight inference step: no backward, and no dropout (the
    identity in eval mode)."""
    from powerfit.steps.measured import neusight_step_graph

    graph = neusight_step_graph(step)
    graph = graph[(graph.phase == "forward") & ~graph.name.str.contains("dropout")]
    return graph.reset_index(drop=True)


def _fused_forward_rows(data_home: Any) -> list[dict]:
    """NeuSight's fused forward steps against the graph with SDPA attention."""
    import json
    from types import SimpleNamespace

    from powerfit.architectures.hf import from_hf_config
    from powerfit.datasets.home import get_data_home
    from powerfit.steps.latency import operator_latency_sources

    folder = get_data_home(data_home) / "neusight2025"
    unfused, measured, eager, fused = [], [], [], []
    gpu = None
    for path in sorted(folder.glob("fused/*/*-inf-*-fusion.json")):
        gpu = path.parent.name.replace("_", " ")
        name = path.name.removesuffix("-fusion.json")
        model, _, seq, batch = name.rsplit("-", 3)
        config = folder / "models" / f"{model}.json"
        label = folder / "labels" / path.parent.name / f"{name}.json"
        if not config.exists() or not label.exists():
            continue
        step = SimpleNamespace(config=config, batch_size=int(batch), seq_len=int(seq))
        graph = _inference_graph(step)
        sdpa_graph = inductor_fused_graph(graph, from_hf_config(config), int(batch), int(seq))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lat_e, _s, _n = operator_latency_sources(graph, gpu)
            lat_f, _s, _n = operator_latency_sources(sdpa_graph, gpu)
        eager.append(float(np.sum(lat_e * graph["count"].to_numpy())))
        fused.append(float(np.sum(lat_f * sdpa_graph["count"].to_numpy())))
        measured.append(float(json.loads(path.read_text())["e2e_latency"]) * 1e-3)
        unfused.append(float(json.loads(label.read_text())["e2e_latency"]) * 1e-3)
    if not measured:
        return []
    common = {"gpu": gpu, "precision": "fp32", "n": len(measured), "coverage90_logo": np.nan}
    ratio = np.array(fused) / np.array(eager)
    measured_ratio = np.array(measured) / np.array(unfused)
    return [
        {"row": "unfused fp32 forward", **common, "mape_own": _mape(eager, unfused)}
        | {"mape_logo": np.nan},
        {"row": "fused fp32 forward", **common, "mape_own": _mape(fused, measured)}
        | {"mape_logo": _mape(eager, measured)},
        {"row": "fusion speed-up", **common, "mape_own": _mape(ratio, measured_ratio)}
        | {"mape_logo": _mape(np.ones(len(ratio)), measured_ratio)},
    ]


def _forward_step_rows(data_home: Any) -> list[dict]:
    """NeuSight's FP32 forward steps per GPU: in-GPU and specs-only (GPU held out) MAPE.

    The coverage is that of the step-time interval a user gets for a specs-only
    estimate on a GPU without measured steps
    (:func:`powerfit.steps.intervals.half_width_for`, ``outside``: the GPU is treated
    as never measured).
    """
    from powerfit.datasets.neusight2025 import neusight_forward_steps
    from powerfit.steps.intervals import half_width_for
    from powerfit.steps.latency import operator_latency

    steps = neusight_forward_steps(data_home)
    model = _operator_model(data_home)
    if steps.empty or model is None:
        return []
    q = half_width_for("specs-only", outside=True, roofline=False)
    rows = []
    for gpu, group in steps.groupby("gpu"):
        blind = model.without_gpus([gpu])
        own, logo = [], []
        for step in group.itertuples(index=False):
            graph = _inference_graph(step)
            count = graph["count"].to_numpy()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                own.append(float(np.sum(operator_latency(graph, gpu, model) * count)))
                lat = operator_latency(graph, gpu, blind, specs_only=True)
            logo.append(float(np.sum(lat * count)))
        measured = group.measured_s.to_numpy(float)
        inside = np.abs(np.log(np.asarray(logo) / measured)) <= q
        rows.append(
            {
                "row": "fp32 forward steps",
                "gpu": gpu,
                "precision": "fp32",
                "n": len(group),
                "mape_own": _mape(own, measured),
                "mape_logo": _mape(logo, measured),
                "coverage90_logo": float(np.mean(inside) * 100),
            }
        )
    return rows


def evaluate_half_precision_and_fused(data_home: Any = None) -> pd.DataFrame:
    """The half-precision and fused rows of the steps suite (:data:`HALF_PRECISION_ROWS`).

    Parameters
    ----------
    data_home : path, optional
        Data home holding ``vidur2024/``, ``flashattn-published/`` and ``neusight2025/``;
        rows whose data are absent are left out.

    Returns
    -------
    pandas.DataFrame
        ``row, gpu, precision, n``, ``mape_own`` and ``mape_logo`` [%] (what they compare
        is in :data:`HALF_PRECISION_ROWS`), ``coverage90_logo`` [%] (share inside the
        90 % interval of the other GPUs' leave-one-GPU-out residuals; for the ``fp32
        forward steps`` rows, the shipped specs-only interval of an unmeasured GPU) and
        ``what``.
    """
    rows: list[dict] = []
    parts = (_half_precision_rows, _fused_attention_rows, _fused_forward_rows, _forward_step_rows)
    for part in parts:
        try:
            rows += part(data_home)
        except FileNotFoundError:
            continue  # that data set is absent
    columns = ["row", "gpu", "precision", "n", "mape_own", "mape_logo", "coverage90_logo"]
    table = pd.DataFrame(rows, columns=columns)
    table["what"] = table.row.map(HALF_PRECISION_ROWS)
    return table
