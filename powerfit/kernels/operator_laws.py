"""The per-(GPU, operator) latency laws, fitted: prediction and (de)serialisation.

:class:`OperatorLaws` holds fitted laws and predicts from them (or, for a GPU never
measured, from laws transferred from its specs, :mod:`powerfit.kernels.transfer`);
:class:`powerfit.kernels.model.OperatorTimeModel` is the same as a scikit-learn
estimator that also fits them. This module needs neither scikit-learn nor SciPy, so that
timing a step with the bundled laws (:func:`load_operator_laws`) imports only NumPy and
pandas; the conventions (columns, matmul layout, other precisions) are those of
:mod:`powerfit.kernels.model`.
"""

from __future__ import annotations

import json
import weakref
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from powerfit.hardware.gpus import memory_type
from powerfit.kernels.counts import OPERATOR_KINDS, operator_bytes, operator_kind
from powerfit.kernels.laws import (
    _BYTES,
    _MATMUL_NAMES,
    _MEMORY_NAMES,
    _matmul_features,
    _matmul_latency,
    _memory_latency,
)
from powerfit.kernels.transfer import (
    _eta_for_efficiency,
    _power_density,
    _transfer_coefficients,
    gpu_specs,
)

__all__ = [
    "BUNDLED_LAWS_OF",
    "CALL_TIMINGS",
    "OPERATOR_COLUMNS",
    "STAND_INS",
    "OperatorLaws",
    "bundled_laws",
    "load_operator_laws",
]

#: model -> (its laws, GPU -> transfer coefficients without that GPU's laws).
_TRANSFER_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

#: model -> (the state it was computed from, (GPU, op) -> fixed cost of a call [s]).
_OVERHEAD_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

#: Operator -> the operator whose law times it when a model has none of its own: a batched
#: product runs the same tensor-core GEMM kernels as a linear layer (cuBLAS), and the law's
#: wave term counts the batch (Vidur's half-precision profiles time linear layers only).
STAND_INS = {"bmm": "linear"}

#: How the latencies behind a set of laws were timed: ``isolated`` (each call timed on
#: its own from the host, synchronised: NeuSight's benchmarks, whose laws carry a fixed
#: cost of up to 71 µs a call) or ``queued`` (calls back to back, a mean over a block, as
#: ``powerfit measure ops`` times them; or kernel durations, as Vidur's profiles).
CALL_TIMINGS = ("isolated", "queued")

#: Bytes of the call of "vanishing size" at which :meth:`OperatorLaws.call_overhead`
#: reads a memory-bound law's fixed cost [B].
VANISHING_BYTES = 16.0

#: Columns of an operator table (see the module notes for the matmul layout).
OPERATOR_COLUMNS = ("gpu", "op", "precision", "B", "M", "N", "K", "H")


def _check_call_timing(value: Any) -> None:
    """ValueError unless ``value`` is one of :data:`CALL_TIMINGS`."""
    if value not in CALL_TIMINGS:
        raise ValueError(f"call_timing must be one of {CALL_TIMINGS}, got {value!r}")


def _catalogue_name(gpu: str) -> str:
    """The catalogue's name of ``gpu`` (an NVML name or alias), else ``gpu`` itself."""
    from powerfit.hardware.gpus import get_gpu

    try:
        return get_gpu(gpu).name
    except (KeyError, ValueError):
        return gpu


def _groups(X: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """(GPU, canonical op) -> row positions."""
    out: dict[tuple[str, str], list[np.ndarray]] = {}
    for (gpu, op), idx in X.groupby(["gpu", "op"], sort=False).indices.items():
        out.setdefault((str(gpu), operator_kind(str(op))), []).append(np.asarray(idx))
    return {k: np.sort(np.concatenate(v)) for k, v in out.items()}


def _frame(X: Any, columns: tuple[str, ...] = OPERATOR_COLUMNS) -> pd.DataFrame:
    """``X`` itself, once checked to be a DataFrame holding ``columns``."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"X must be a pandas DataFrame with columns {columns}")
    missing = [c for c in columns if c not in X.columns]
    if missing:
        raise ValueError(f"X lacks column(s) {missing}; expected {columns}")
    return X


class OperatorLaws:
    """Fitted latency laws per (GPU, operator): predict, transfer, (de)serialise.

    The parameters and fitted attributes are those of
    :class:`powerfit.kernels.model.OperatorTimeModel` (which adds ``fit`` and the
    scikit-learn estimator API); an instance comes from :meth:`from_dict` or
    :func:`load_operator_laws`.
    """

    def __init__(
        self,
        precision: str = "fp32",
        specs_only: bool = False,
        matmul_layout: str = "neusight",
        max_rows: int = 1500,
        gpu_specs: dict | None = None,
        random_state: int = 0,
        call_timing: str = "queued",
    ) -> None:
        self.precision = precision
        self.specs_only = specs_only
        self.matmul_layout = matmul_layout
        self.max_rows = max_rows
        self.gpu_specs = gpu_specs
        self.random_state = random_state
        self.call_timing = call_timing

    # ----------------------------------------------------------------- helpers
    def _check(self, X: Any) -> pd.DataFrame:
        X = _frame(X)
        if self.matmul_layout not in ("neusight", "mkn"):
            raise ValueError(
                f"matmul_layout must be 'neusight' or 'mkn', got {self.matmul_layout!r}"
            )
        _check_call_timing(self.call_timing)
        precisions = set(X["precision"].astype(str).unique())
        if precisions - {self.precision}:
            raise ValueError(
                f"rows of precision {sorted(precisions - {self.precision})} given to a "
                f"{self.precision} model; fit one model per precision"
            )
        return X

    def _spec(self, gpu: str) -> dict:
        specs = getattr(self, "specs_", {})
        if self.gpu_specs and gpu in self.gpu_specs:
            return gpu_specs(gpu, self.precision, self.gpu_specs)
        if gpu in specs:
            return specs[gpu]
        return gpu_specs(gpu, self.precision)

    def _shape(self, d: pd.DataFrame, kind: str):
        bpe = _BYTES.get(self.precision, 4.0)
        if OPERATOR_KINDS[kind] == "matmul":
            B, M, N, K = (d[c].to_numpy(float) for c in ("B", "M", "N", "K"))
            if self.matmul_layout == "mkn":  # (M×K)·(K×N): reduction over K
                N, K = K, N
            for name, v in zip("BMNK", (B, M, N, K), strict=True):
                if not np.all(np.isfinite(v) & (v > 0)):
                    raise ValueError(f"op {kind!r}: column {name!r} must be finite and > 0")
            return B, M, N, K, bpe
        B, H = d["B"].to_numpy(float), d["H"].to_numpy(float)
        for name, v in (("B", B), ("H", H)):
            if not np.all(np.isfinite(v) & (v > 0)):
                raise ValueError(f"op {kind!r}: column {name!r} must be finite and > 0")
        return B, H, bpe

    def _latency(self, kind: str, p: dict, d: pd.DataFrame, spec: dict) -> np.ndarray:
        if OPERATOR_KINDS[kind] == "matmul":
            B, M, N, K, bpe = self._shape(d, kind)
            return _matmul_latency(p, _matmul_features(B, M, N, K, spec, bpe))
        B, H, bpe = self._shape(d, kind)
        moved = operator_bytes(kind, B, H=H, bytes_per_element=bpe)
        return _memory_latency(p, moved, H, float(spec["memory_bandwidth"]))

    def _check_fitted(self) -> None:
        """Raise unless the laws are fitted (``laws_`` set)."""
        if not hasattr(self, "laws_"):
            raise ValueError(
                f"this {type(self).__name__} is not fitted yet; call 'fit' or 'from_dict' first"
            )

    # ----------------------------------------------------------------- predict
    def transferred_law(self, gpu: str, op: str) -> dict:
        """Coefficients predicted for a GPU from its specs and the other GPUs' laws.

        The laws of ``gpu`` itself, if it was fitted, are left out of the transfer
        (the GPU is predicted as if it had never been measured).

        Parameters
        ----------
        gpu : str
            GPU name (catalogue, or ``gpu_specs``).
        op : str
            Operator.

        Returns
        -------
        dict
            Coefficients of the law of ``op`` on ``gpu``.
        """
        self._check_fitted()
        kind = operator_kind(op)
        transfer = self._transfer_for(gpu)
        if kind not in transfer:
            raise ValueError(f"no other GPU was measured on op {kind!r}; cannot transfer it")
        shared = transfer[kind]
        spec = self._spec(gpu)
        if OPERATOR_KINDS[kind] != "matmul":
            law = {n: shared[n] for n in _MEMORY_NAMES}
            by_type = shared.get("eta_max_by_memory", {})
            law["eta_max"] = by_type.get(memory_type(spec.get("name", gpu)), law["eta_max"])
            return law
        law = {n: shared[n] for n in _MATMUL_NAMES}
        x = np.log(_power_density(spec))
        target = np.exp(shared["power_intercept"] + shared["power_slope"] * x)
        target = float(min(shared["efficiency_cap"], target))
        law["eta_max"] = _eta_for_efficiency(law, spec, target, _BYTES.get(self.precision, 4.0))
        return law

    def _transfer_for(self, gpu: str) -> dict:
        """Transfer coefficients from the fitted GPUs other than ``gpu``.

        A GPU predicted from its specs must not see its own laws: when ``gpu`` was
        fitted, the medians and the η_max relation are recomputed without it (cached),
        whichever of its names (NVML name or alias) ``gpu`` is.
        """
        if not any(g == gpu for g, _k in self.laws_):
            gpu = _catalogue_name(gpu)
        if not any(g == gpu for g, _k in self.laws_):
            return self.transfer_
        # cached per model outside its attributes (which are its serialised state),
        # and dropped when the laws are replaced (a new fit)
        laws, cache = _TRANSFER_CACHE.get(self, (None, {}))
        if laws is not self.laws_:
            cache = {}
            _TRANSFER_CACHE[self] = (self.laws_, cache)
        if gpu not in cache:
            others = {key: c for key, c in self.laws_.items() if key[0] != gpu}
            specs = {g: s for g, s in self.specs_.items() if g != gpu}
            cache[gpu] = _transfer_coefficients(others, specs, _BYTES.get(self.precision, 4.0))
        return cache[gpu]

    def without_gpus(self, gpus: Any) -> OperatorLaws:
        """A copy that never measured ``gpus``: their laws dropped, the transfer redone.

        Parameters
        ----------
        gpus : iterable of str
            GPU names (as fitted).

        Returns
        -------
        OperatorLaws
            The same class; predicts ``gpus`` by transfer from the other GPUs' laws only.
        """
        import copy

        self._check_fitted()
        drop = set(gpus)
        twin = copy.copy(self)
        twin.laws_ = {k: c for k, c in self.laws_.items() if k[0] not in drop}
        twin.n_rows_ = {k: n for k, n in self.n_rows_.items() if k[0] not in drop}
        twin.transfer_ = _transfer_coefficients(
            twin.laws_, twin.specs_, _BYTES.get(self.precision, 4.0)
        )
        return twin

    def measured(self, gpu: str) -> bool:
        """Whether some law of the model was fitted on ``gpu`` (an NVML name or alias):
        False for a GPU every law of which is transferred from the others' specs."""
        self._check_fitted()
        names = {gpu, _catalogue_name(gpu)}
        return any(g in names for g, _k in self.laws_)

    def covers(self, op: str) -> bool:
        """Whether the model has a law for ``op`` (its own, or a stand-in's) on some GPU."""
        self._check_fitted()
        kind = operator_kind(op)
        return kind in self.transfer_ or STAND_INS.get(kind) in self.transfer_

    def law(self, gpu: str, op: str) -> tuple[dict, str]:
        """The law used for ``op`` on ``gpu``, and its origin (``'fit'``/``'transfer'``).

        An operator the model has no law of on any GPU uses its stand-in's
        (:data:`STAND_INS`) where the model has that.
        """
        self._check_fitted()
        kind = operator_kind(op)
        stand_in = STAND_INS.get(kind)
        if kind not in self.transfer_ and stand_in in self.transfer_:
            kind = stand_in
        if (gpu, kind) not in self.laws_:
            gpu = _catalogue_name(gpu)  # an alias ('h100') of a GPU with fitted laws
        if not self.specs_only and (gpu, kind) in self.laws_:
            return self.laws_[(gpu, kind)], "fit"
        return self.transferred_law(gpu, kind), "transfer"

    def predict(self, X: Any) -> np.ndarray:
        """Predicted latency [s] of each row of X.

        Parameters
        ----------
        X : DataFrame with :data:`OPERATOR_COLUMNS`

        Returns
        -------
        numpy.ndarray
            Latency [s].
        """
        self._check_fitted()
        X = self._check(X)
        out = np.full(len(X), np.nan)
        for (gpu, kind), idx in _groups(X).items():
            law, _origin = self.law(gpu, kind)
            out[idx] = self._latency(kind, law, X.iloc[idx], self._spec(gpu))
        return out

    def call_overhead(self, X: Any) -> np.ndarray:
        """The fixed cost of one call in each row's law [s]: its latency at vanishing size.

        A matrix product's law has it explicitly (``t0``); a memory-bound operator's is
        the law at a call moving :data:`VANISHING_BYTES` bytes, rows long enough for the
        row-length term to vanish (``τ/(η_max·k)`` when ``α`` = 1, next to nothing when
        the law saturates with ``α`` < 1). Where the laws were fitted on calls timed one
        at a time (``call_timing='isolated'``) this is what each call paid in
        synchronisation and launch from idle, which calls queued back to back in a step
        do not pay (:func:`powerfit.steps.latency.operator_latency`). Rows of any
        precision (the law of the row's GPU and operator, as :meth:`predict` uses).

        Parameters
        ----------
        X : DataFrame with :data:`OPERATOR_COLUMNS`

        Returns
        -------
        numpy.ndarray
            Fixed cost per call [s], ≥ 0.
        """
        self._check_fitted()
        X = _frame(X)
        # per (GPU, op), kept while the model's laws and mode are the same objects
        stamp = (self.laws_, self.transfer_, bool(self.specs_only), self.gpu_specs)
        kept, cache = _OVERHEAD_CACHE.get(self, (None, {}))
        if kept is None or any(a is not b for a, b in zip(kept, stamp, strict=True)):
            cache = {}
            _OVERHEAD_CACHE[self] = (stamp, cache)
        out = np.empty(len(X))
        for i, key in enumerate(zip(X["gpu"].to_numpy(), X["op"].to_numpy(), strict=True)):
            value = cache.get(key)
            if value is None:
                value = cache[key] = self._fixed_cost(str(key[0]), str(key[1]))
            out[i] = value
        return out

    def _fixed_cost(self, gpu: str, op: str) -> float:
        """:meth:`call_overhead` of one (GPU, operator) [s]."""
        law, _origin = self.law(gpu, op)
        if "t0" in law:
            return float(law["t0"])
        bandwidth = float(self._spec(gpu)["memory_bandwidth"])
        moved = np.array([VANISHING_BYTES])
        return float(_memory_latency(law, moved, np.array([1e30]), bandwidth)[0])

    def predict_memory_bound(self, X: Any) -> np.ndarray:
        """Latency [s] of memory-bound rows of any precision, on their own bytes.

        Each row is timed by this model's law of its (GPU, operator) (fitted or
        transferred, as :meth:`predict`) on the bytes it moves at the element width of
        *its* precision (``precision`` column: 4 B for FP32/TF32, 2 B for FP16/BF16)
        and its row length ``H`` [elements]: the law's inputs are bytes and ``H``, not
        the model's precision (see "Other precisions" in the module notes for the
        assumption this makes). Rows of the model's own precision get exactly
        :meth:`predict`'s latencies.

        Parameters
        ----------
        X : DataFrame with :data:`OPERATOR_COLUMNS`
            Memory-bound rows only (no ``bmm``/``linear``).

        Returns
        -------
        numpy.ndarray
            Latency [s].

        Raises
        ------
        ValueError
            A matrix product, a precision of unknown element width, or a bad shape.
        """
        self._check_fitted()
        X = _frame(X)
        out = np.full(len(X), np.nan)
        precision = X["precision"].astype(str).to_numpy()
        unknown = sorted(set(precision) - set(_BYTES))
        if unknown:
            raise ValueError(
                f"column 'precision': unknown element width of {unknown}; "
                f"expected one of {sorted(_BYTES)}"
            )
        width = np.array([_BYTES[p] for p in precision])
        for (gpu, kind), idx in _groups(X).items():
            if OPERATOR_KINDS[kind] == "matmul":
                raise ValueError(
                    f"row {int(idx[0])}: op {kind!r} is a matrix product, not memory-bound"
                )
            law, _origin = self.law(gpu, kind)
            B, H, _bpe = self._shape(X.iloc[idx], kind)
            moved = operator_bytes(kind, B, H=H, bytes_per_element=width[idx])
            bandwidth = float(self._spec(gpu)["memory_bandwidth"])
            out[idx] = _memory_latency(law, moved, H, bandwidth)
        return out

    # --------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict:
        """The fitted model as plain JSON-able data (see :meth:`from_dict`)."""
        self._check_fitted()
        return {
            "format": "powerfit-operator-model/1",
            "precision": self.precision,
            "matmul_layout": "neusight",
            "call_timing": self.call_timing,
            "specs": self.specs_,
            "laws": [
                {"gpu": g, "op": o, "coefficients": c, "n_rows": self.n_rows_.get((g, o))}
                for (g, o), c in sorted(self.laws_.items())
            ],
            "transfer": self.transfer_,
        }

    @classmethod
    def from_dict(cls, data: dict, **params: Any) -> OperatorLaws:
        """Rebuild a fitted model from :meth:`to_dict`'s output (JSON only, no pickle)."""
        if data.get("format") != "powerfit-operator-model/1":
            raise ValueError(f"not a powerfit operator model: format {data.get('format')!r}")
        params.setdefault("call_timing", data.get("call_timing", "queued"))
        _check_call_timing(params["call_timing"])
        model = cls(precision=data["precision"], **params)
        model.specs_ = {g: dict(s) for g, s in data["specs"].items()}
        model.laws_ = {(e["gpu"], e["op"]): dict(e["coefficients"]) for e in data["laws"]}
        model.n_rows_ = {(e["gpu"], e["op"]): e.get("n_rows") for e in data["laws"]}
        # the transfer is recomputed from the laws (the stored copy is for reading)
        model.transfer_ = _transfer_coefficients(
            model.laws_, model.specs_, _BYTES.get(model.precision, 4.0)
        )
        model.n_features_in_ = len(OPERATOR_COLUMNS)
        return model


def bundled_laws(precision: str = "fp32") -> dict:
    """The bundled laws of a precision as :meth:`OperatorLaws.to_dict` data.

    BF16 is timed by the FP16 laws (:data:`BUNDLED_LAWS_OF`): the returned data says
    ``precision``. Raises ``ValueError`` when no laws of that precision are bundled.
    """
    name = f"{BUNDLED_LAWS_OF.get(precision, precision)}.json"
    try:
        text = resources.files("powerfit").joinpath("data", "operators", name).read_text()
    except FileNotFoundError:
        raise ValueError(
            f"no bundled operator model for precision {precision!r}; "
            "build one with experiments/build_operator_profiles.py"
        ) from None
    data = json.loads(text)
    data["precision"] = precision  # BF16 rows timed by the FP16 laws (same kernels, peak)
    return data


def load_operator_laws(precision: str = "fp32", **params: Any) -> OperatorLaws:
    """The bundled laws as :class:`OperatorLaws` (no scikit-learn import).

    The same laws and predictions as :func:`powerfit.kernels.model.load_operator_model`
    (``**params`` as there), without the estimator API (``fit``, ``get_params``).
    """
    return OperatorLaws.from_dict(bundled_laws(precision), **params)


#: Precision -> the bundle whose laws time it: BF16 products and element-wise kernels run
#: on the same tensor cores at the same peak as FP16 on Ampere and Hopper (the catalogue
#: gives each GPU's own BF16 peak; a GPU without one gets no transfer), so the FP16 laws
#: fitted on Vidur's profiles (:mod:`powerfit.kernels.half`) time both.
BUNDLED_LAWS_OF = {"bf16": "fp16"}
