"""The time of a step graph: each operator's latency, their sum, and the step's utilisation.

:func:`step_time` sums each row's latency predicted by an operator model (the
per-(GPU, operator) laws of :mod:`powerfit.kernels.model`; by default the ones bundled
for the row's precision, :func:`bundled_operator_model`), or by a roofline
(:func:`roofline_latency`) where there is none. FP32 laws (NeuSight's operators) and
FP16 laws (Vidur's, which time BF16 too) are bundled; fused-attention rows are timed by
the fused-attention laws (:func:`powerfit.kernels.attention.fused_attention_latency`).
Rows no law of their precision covers fall back: memory-bound ones to the FP32 laws on
their own bytes, matrix products to the roofline at their precision's peak plus the
fixed cost of a call (:func:`operator_latency`;
:func:`operator_latency_sources` says which row was timed how). The FP32 laws were
fitted on calls timed one at a time (NeuSight's benchmarks: tens of µs of fixed cost
a call, synchronisation included); in a step, kernels are queued back to back, and each
call pays :data:`QUEUED_CALL_S` instead (:func:`_queued`). :func:`utilisation` is
the step's time-weighted compute utilisation, what board power is a function of
(:mod:`powerfit.power`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from powerfit.kernels.attention import FUSED_ATTENTION_OPS, fused_attention_latency
from powerfit.kernels.operator_laws import OPERATOR_COLUMNS, load_operator_laws
from powerfit.steps.calibration import Calibration
from powerfit.steps.graph import MATMUL_OPS

__all__ = [
    "QUEUED_CALL_S",
    "ROW_SOURCES",
    "bundled_operator_model",
    "operator_latency",
    "operator_latency_sources",
    "roofline_latency",
    "step_time",
    "utilisation",
]


#: Fixed cost of one operator call queued in an eager training step [s]: host dispatch,
#: launch and the shortest kernel. A step pays it in place of the fixed cost of a call
#: timed on its own (laws fitted with ``call_timing='isolated'``, NeuSight's: up to
#: 71 µs a call, :func:`_queued`). Fitted on NeuSight's ten measured A100 80GB PCIe training
#: steps alone, the V100's held out (:func:`powerfit.evaluation.steps.fit_queued_call`).
QUEUED_CALL_S = 13e-6


def _gpu(name: str):
    from powerfit.hardware.gpus import get_gpu

    return get_gpu(name)


def _row_peaks(graph: pd.DataFrame, spec: Any) -> np.ndarray:
    """Peak [FLOP/s] of each row: its precision's for products and fused attention, FP32's
    elsewhere."""
    fp32 = spec.peak_flops["fp32"]
    peak = graph.precision.map(lambda p: spec.peak_flops.get(p, fp32)).to_numpy(float)
    tensor = graph.op.isin([*MATMUL_OPS, *FUSED_ATTENTION_OPS]).to_numpy()
    return np.where(tensor, peak, fp32)


def roofline_latency(graph: pd.DataFrame, gpu: str) -> np.ndarray:
    """Roofline latency of each row of a graph [s]: max(FLOP / peak, bytes / bandwidth).

    Peak is the catalogue's dense peak at the row's precision
    (:func:`powerfit.hardware.gpus.peak_flops`; FP32 CUDA cores for memory-bound rows),
    bandwidth the catalogue's. A lower bound: no launch overhead, no
    efficiency loss.
    """
    spec = _gpu(gpu)
    bw = spec.memory_bandwidth
    if not bw:
        raise ValueError(f"no memory bandwidth known for {spec.name}")
    peak = _row_peaks(graph, spec)
    return np.maximum(graph.flop.to_numpy() / peak, graph["bytes"].to_numpy() / bw)


def _operator_frame(graph: pd.DataFrame, gpu: str) -> pd.DataFrame:
    X = graph.assign(gpu=gpu)
    return X[list(OPERATOR_COLUMNS)]


_BUNDLED: dict[str, Any] = {}


def bundled_operator_model(precision: str) -> Any:
    """The bundled operator model of a precision, or None (no bundle of that precision).

    Loaded once per process as :class:`powerfit.kernels.operator_laws.OperatorLaws`
    (:func:`~powerfit.kernels.operator_laws.load_operator_laws`): the laws and
    predictions of :func:`powerfit.kernels.model.load_operator_model`, without
    importing scikit-learn (an estimate of a cached trace imports NumPy and pandas only).
    """
    if precision not in _BUNDLED:
        try:
            _BUNDLED[precision] = load_operator_laws(precision=precision)
        except ValueError:
            _BUNDLED[precision] = None
    return _BUNDLED[precision]


def _as_used(model: Any, specs_only: bool) -> Any:
    """A copy of an operator model reading (M×K)·(K×N) products, specs-only if asked.

    The graph's products are (M×K)·(K×N) (``matmul_layout='mkn'`` of
    :class:`powerfit.kernels.model.OperatorTimeModel`); NeuSight's own files, which the
    laws were fitted on, write them (M×N)·(N×K). Both settings are read at predict
    time only, so a fitted model is copied, not refitted. The copy is kept per (model,
    mode) while the model's laws stay the same object, so that what it caches (the laws
    transferred to GPUs it never measured) serves the next step too.
    """
    import copy

    key = (id(model), bool(specs_only))
    kept = _USED.get(key)
    if kept is not None and kept[0] is model and _same_laws(kept[1], model):
        return kept[1]
    twin = copy.copy(model)
    if hasattr(twin, "matmul_layout"):
        twin.matmul_layout = "mkn"
    if specs_only:
        if not hasattr(twin, "specs_only"):
            raise ValueError("this operator model has no specs_only mode")
        twin.specs_only = True
    if len(_USED) >= 32:
        _USED.clear()
    _USED[key] = (model, twin)
    return twin


#: (id(model), specs_only) -> (model, its copy as used) (:func:`_as_used`).
_USED: dict[tuple[int, bool], tuple[Any, Any]] = {}


def _same_laws(twin: Any, model: Any) -> bool:
    """Whether a copy still holds the model's fitted state (not refitted since)."""
    return all(
        getattr(twin, name, None) is getattr(model, name, None)
        for name in ("laws_", "transfer_", "specs_")
    ) and getattr(twin, "specs_only", False) >= getattr(model, "specs_only", False)


def _model_for(precision: str, operator_model: Any) -> Any:
    """The operator model that times rows of ``precision`` (None: no laws of it)."""
    model = operator_model
    if model is None or getattr(model, "precision", precision) != precision:
        model = bundled_operator_model(precision)
    return model


#: Where a row's latency comes from (:func:`operator_latency_sources`).
ROW_SOURCES = (
    "laws",
    "fp32 bandwidth laws",
    "roofline",
    "fused attention laws",
    "fused attention assumed",
)


def operator_latency_sources(
    graph: pd.DataFrame, gpu: str, operator_model: Any = None, specs_only: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Latency of one run of each row [s], where each comes from, and why.

    See :func:`operator_latency` for the parameters and the rules.

    Returns
    -------
    latency : numpy.ndarray
        Latency [s] of each row.
    source : numpy.ndarray of str
        Per row, one of :data:`ROW_SOURCES`: ``laws`` (the laws of its precision),
        ``fp32 bandwidth laws`` (a memory-bound row of a precision without laws,
        timed by the FP32 laws on its own bytes) or ``roofline``.
    notes : list of str
        One line per precision without laws, saying which rows fell back to what.
    """
    graph = graph.reset_index(drop=True)
    out = np.full(len(graph), np.nan)
    source = np.full(len(graph), "laws", dtype=object)
    notes: list[str] = []
    fused = graph["op"].isin(list(FUSED_ATTENTION_OPS)).to_numpy()
    if fused.any():
        idx = np.flatnonzero(fused)
        out[idx], source[idx], fused_notes = fused_attention_latency(
            graph.iloc[idx], gpu, specs_only
        )
        notes += fused_notes
    X = _operator_frame(graph, gpu)
    precisions = X["precision"].astype(str).to_numpy()
    products = X["op"].isin(list(MATMUL_OPS)).to_numpy()
    for precision in sorted(set(precisions[~fused])):
        mask = (precisions == precision) & ~fused
        model = _model_for(precision, operator_model)
        if model is not None:
            covered = mask.copy()
            if precision != "fp32" and hasattr(model, "covers"):
                known = {op: model.covers(op) for op in set(X["op"][mask])}
                covered &= X["op"].map(known).fillna(False).to_numpy(bool)
            try:
                used = _as_used(model, specs_only)
                if covered.any():
                    rows = X.loc[covered]
                    out[covered] = _queued(used, rows, used.predict(rows))
                mask = mask & ~covered
            except ValueError as error:  # e.g. no such peak of this GPU: no transfer
                if precision == "fp32":
                    raise
                notes.append(f"{precision} operator laws do not apply on {gpu}: {error}")
            if not mask.any():
                continue
        fp32 = _model_for("fp32", operator_model)
        fp32 = None if fp32 is None else _as_used(fp32, specs_only)
        parts = []
        mm = np.flatnonzero(mask & products)
        if mm.size:
            rows = graph.iloc[mm]
            out[mm] = roofline_latency(rows, gpu)
            source[mm] = "roofline"
            spec = _gpu(gpu)
            peak = spec.peak_flops.get(precision)
            at = (
                f"the {precision} peak ({peak / 1e12:.4g} TFLOP/s)"
                if peak
                else f"the fp32 peak (no {precision} peak of {spec.name} in the catalogue)"
            )
            launch = _fixed_costs(fp32, X.iloc[mm], gpu)
            if launch is not None:
                out[mm] += launch
                at += " plus the fixed cost of a queued call"
            parts.append(f"{precision} matrix products ({mm.size} rows): roofline at {at}")
        mem = np.flatnonzero(mask & ~products)
        if mem.size:
            if fp32 is not None and hasattr(fp32, "predict_memory_bound"):
                out[mem] = _queued(fp32, X.loc[mem], fp32.predict_memory_bound(X.loc[mem]))
                source[mem] = "fp32 bandwidth laws"
                parts.append(
                    f"{precision} memory-bound operators ({mem.size} rows): fp32 bandwidth "
                    f"laws on their own {precision} bytes"
                )
            else:
                out[mem] = roofline_latency(graph.iloc[mem], gpu)
                source[mem] = "roofline"
                parts.append(
                    f"{precision} memory-bound operators ({mem.size} rows): roofline "
                    "(no fp32 laws either)"
                )
        what = "no" if model is None else "some rows without"
        notes.append(f"{what} {precision} operator laws: " + "; ".join(parts))
    return out, source, notes


def _fixed_costs(fp32: Any, rows: pd.DataFrame, gpu: str) -> np.ndarray | None:
    """The fixed cost [s] of one call of each product row in a step, or None.

    The FP32 matmul laws' fixed cost per call (``t0`` of ``t = t0 + max(compute,
    memory)``, :mod:`powerfit.kernels.laws`) as a call queued in a step pays it
    (:func:`_queued`): host dispatch and kernel launch, which a half-precision or TF32
    product pays as an FP32 one does. None when the model has no such laws (any other
    operator model).
    """
    if fp32 is None or not hasattr(fp32, "law"):
        return None
    t0 = {}
    for op in rows["op"].unique():
        law, _origin = fp32.law(gpu, str(op))
        if "t0" not in law:
            return None
        t0[op] = float(law["t0"])
    return _queued(fp32, rows, rows["op"].map(t0).to_numpy(float))


def _queued(model: Any, X: pd.DataFrame, latency: Any) -> np.ndarray:
    """Latencies [s] of calls queued back to back in a step, from a model's laws.

    Laws fitted on calls timed one at a time (``call_timing='isolated'``: NeuSight's
    benchmarks synchronise around each call) carry a fixed cost per call of up to 71 µs,
    the law at vanishing size
    (:meth:`~powerfit.kernels.operator_laws.OperatorLaws.call_overhead`); kernels
    queued in a step do not wait for one another's synchronisation: each pays
    :data:`QUEUED_CALL_S` instead. Other laws' latencies are returned as they are.
    """
    latency = np.asarray(latency, dtype=float)
    if getattr(model, "call_timing", "queued") != "isolated":
        return latency
    return latency - model.call_overhead(X) + QUEUED_CALL_S


def operator_latency(
    graph: pd.DataFrame, gpu: str, operator_model: Any = None, specs_only: bool = False
) -> np.ndarray:
    """Latency of one run of each row of a graph [s].

    Parameters
    ----------
    graph : pandas.DataFrame
        From :func:`~powerfit.steps.graph.training_step_graph`.
    gpu : str
        GPU name (NVML's, as the operator model knows it).
    operator_model : object, optional
        An operator model with ``predict(X) -> latency [s]`` over the columns
        :data:`OPERATOR_COLUMNS` (:class:`powerfit.kernels.model.OperatorTimeModel`). A
        model with a ``precision`` attribute predicts the rows of that precision only;
        the others (and all rows when no model is given) use the bundled model of
        their precision (:func:`powerfit.kernels.model.load_operator_model`).
    specs_only : bool, default False
        Predict as if this GPU had never been measured (the model's transfer from
        specs).

    Notes
    -----
    Fused-attention rows (ops ``attention``/``attention_bwd``) are timed by the
    fused-attention laws. Rows no law of their precision covers (TF32 rows; FP16/BF16
    memory-bound operators without an FP16 law, such as softmax; every FP16/BF16 row
    on a GPU without such a peak) are timed, with a ``RuntimeWarning`` that names them:

    * memory-bound operators by the FP32 laws on their own bytes
      (:meth:`powerfit.kernels.model.OperatorTimeModel.predict_memory_bound`): their
      latency is bytes over the bandwidth at an efficiency that depends on the bytes
      and the row length, not on the arithmetic (TF32 rows are the FP32 kernels and
      get exactly the FP32 latencies; FP16/BF16 rows move half the bytes);
    * matrix products by the roofline max(FLOP / peak, bytes / bandwidth) at their
      precision's (tensor-core) peak, plus the fixed cost of a call as the FP32
      laws give it in a step (:data:`QUEUED_CALL_S`; the launch cost is the host's,
      shared by every precision; the efficiency below the peak is not: tensor-core
      kernels were not measured). A lower bound of their time, hence the wide
      interval of such estimates (:func:`powerfit.steps.intervals.half_width_for`).

    Laws fitted on calls timed one at a time (``call_timing='isolated'``, the bundled
    FP32 laws) are used as a step runs its kernels, queued: each call's fixed cost as
    measured alone (its law at vanishing size,
    :meth:`~powerfit.kernels.operator_laws.OperatorLaws.call_overhead`) is replaced by
    :data:`QUEUED_CALL_S`.

    Without FP32 laws (an operator model of another kind, or none bundled), all such
    rows use the roofline.
    """
    out, _source, notes = operator_latency_sources(graph, gpu, operator_model, specs_only)
    for note in notes:
        warnings.warn(note, RuntimeWarning, stacklevel=2)
    return out


def step_time(
    graph: pd.DataFrame,
    gpu: str,
    operator_model: Any = None,
    specs_only: bool = False,
    *,
    calibration: Calibration | None = None,
    phases: Iterable[str] | None = None,
) -> float:
    """Time of one training step [s]: the sum of its operators' latencies.

    Parameters
    ----------
    graph : pandas.DataFrame
        From :func:`~powerfit.steps.graph.training_step_graph`.
    gpu : str
        GPU name.
    operator_model : object, optional
        See :func:`operator_latency`.
    specs_only : bool, default False
        See :func:`operator_latency`.
    calibration : Calibration, optional
        Per-GPU correction fitted on measured steps
        (:func:`~powerfit.steps.calibration.fit_calibration`).
    phases : iterable of str, optional
        Only these phases (e.g. ``("forward", "backward")`` for NeuSight's steps).
    """
    g = graph if phases is None else graph[graph.phase.isin(list(phases))]
    lat = operator_latency(g, gpu, operator_model, specs_only)
    total = float(np.sum(lat * g["count"].to_numpy()))
    if calibration is not None:
        total = calibration.apply(total, n_ops=float(g["count"].sum()))
    return total


def utilisation(graph: pd.DataFrame, latency_s: np.ndarray, gpu: str) -> float:
    """Time-weighted compute utilisation of a step [-]: Σ FLOP / (peak · Σ time)."""
    spec = _gpu(gpu)
    t = np.asarray(latency_s, float) * graph["count"].to_numpy()
    if t.sum() <= 0:
        return 0.0
    peak = _row_peaks(graph, spec)
    achieved = graph.flop.to_numpy() * graph["count"].to_numpy() / peak
    return float(np.clip(achieved.sum() / t.sum(), 0.0, 1.0))
