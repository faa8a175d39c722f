"""A training-step energy model that extrapolates: time from physics, energy = power × time.

The paper's model regresses energy on per-operation *forward* durations with free
(and partly negative) coefficients. This module keeps its ingredients — analytic
FLOPs, per-(GPU, operation) efficiency laws, a linear energy model — but arranges
them so that the fitted numbers mean something physical and carry over to
configurations and GPUs nobody measured:

1. :class:`StepFeatures` turns configurations into the reference times of one
   **training step** (forward + backward, 3× the forward FLOPs) of every dense
   operation, each from the efficiency law of its GPU,
   ``t_ref = 3 · n · c / (peak · η(c))`` [s] (n = layers, 1 for the output head),
   together with the FLOPs ``c`` of one call, and the times the memory-bound work
   would take at the GPU's memory bandwidth [s]: the attention probabilities
   (softmax, dropout, masking: batch·heads·seq_len² elements per layer), the
   activations (batch·seq_len·(d_model + d_ff) per layer) and the parameters
   (gradients and the optimiser's update, ∝ parameter count).
2. :class:`StepEnergyRegressor` fits the step time

       t = Σ_g a_g · Σ_{i∈g} t_ref,i · (c_i / (v_max · 10 ms))^β_g
           + Σ_k m_k · t_mem,k + t_0 + t_L · n_layers                [s]

   with a_g, m_k, t_0, t_L ≥ 0 (non-negative by construction, fitted in log space)
   and |β_g| ≤ 1 (c_i / v_max read as at least 1 µs: see ``_SMALLEST_SIZE``), by
   least squares on log time — relative errors, as measured steps span two
   orders of magnitude. Groups g are the dense matrix products (projections,
   feed-forward network, output head) and the attention products;
   a_g and β_g correct the isolated-operation laws for what a whole training step
   does differently (backward kernels, fusion, caches). The size that β_g acts on
   is c_i / v_max, the time the call would take at the GPU's peak v_max [FLOP/s],
   not the FLOPs: a correction in seconds carries over to another GPU, one in
   FLOPs does not (held-out RTX 2080 Ti: MAPE 7.5 % against 9.4 %). Then
   energy = P · t with
   P the mean power of the GPU [W], measured as energy ÷ measured step time.
3. For a GPU absent from the training data, the times come from *that GPU's* laws,
   peak throughput and memory bandwidth, and its power is the fitted fraction of
   board power (P / TDP) of the training GPUs times its own TDP
   (:attr:`powerfit.hardware.GPU.power_limit_w`).
4. What the physical model misses on a measured GPU — kernel choices, tiles left
   partly empty by widths that are not multiples of 128 or 256, a head dimension
   off a multiple of 32 — is learned as a multiplicative correction: gradient
   boosting of log(measured / physical energy) over the configuration and
   alignment descriptors (``correction='boosting'``), constrained never to
   decrease with the descriptors that grow with the work of a step (layers,
   sequence length, batch), so that the corrected energy, like the
   physical one, never decreases with more layers, tokens or batch (issue 16).
   It applies to the GPUs of the training data only, so an unseen GPU gets the
   physical model alone. The trees are kept as plain arrays.

Prediction intervals come from a bootstrap of the whole fit combined with the
training residuals: out-of-fold residuals of the corrected model for
configurations whose values were measured on that GPU, residuals of the physical
model for any other (:meth:`StepEnergyRegressor.predict_interval`).

Conventions: SI units inside (FLOP, s, J, W, B/s, FLOP/s; η as a fraction);
every learned attribute is a plain NumPy array, float or list of str, so that a
fitted pipeline serialises with skops (trusted types: the classes of this module).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from powerfit.hardware import GPUS, get_gpu
from powerfit.hardware import peak_flops as _catalogue_peak
from powerfit.laws import efficiency
from powerfit.pipeline import LawsCloneMixin, _checked_columns, law_coefficients

__all__ = [
    "CORRECTION_DEFAULTS",
    "MEMORY_BANDWIDTH",
    "StepEnergyRegressor",
    "StepFeatures",
    "make_step_energy_pipeline",
    "predict_interval",
]

TFLOP = 1e12
_REFERENCE_TIME = 1e-2  # [s] unit of c / v_max in the step-time corrections
#: Smallest c / (v_max · 10 ms) [-] the corrections (c / v_max)^β read: smaller calls
#: (under 1 µs at peak; the published runs' smallest is 3.4 µs) keep the correction
#: of that size. With β < 0, t_ref · (c / v_max)^β ∝ c^(1+β) / η(c) would grow
#: without bound as c → 0 (η ∝ c^α there), so that one token or one sample would
#: cost more than many; kept constant below this size, t_ref (∝ c / η(c), α ≤ 1)
#: never decreases there.
_SMALLEST_SIZE = 1e-4

#: Memory bandwidth of the catalogue's GPUs [B/s] (:mod:`powerfit.hardware`).
MEMORY_BANDWIDTH: dict[str, float] = {gpu.name: gpu.memory_bandwidth for gpu in GPUS}

#: Dense operations of a training step: name -> (correction group, law used, per layer,
#: calls of that size per layer).
_DENSE: dict[str, dict[str, tuple[str, str, bool, int]]] = {
    "transformer": {
        "qkv_projections": ("qkv_projections", "qkv_projections", True, 1),
        "final_projection": ("final_projection", "final_projection", True, 1),
        "ffn": ("ffn", "ffn", True, 2),
        "lm_head": ("lm_head", "lm_head", False, 1),
        "attention_scores": ("attention", "attention_scores", True, 1),
        "attention_output": ("attention", "attention_output", True, 1),
    },
    "lstm": {
        "input_gates": ("input_gates", "input_gates", True, 1),
        "hidden_gates": ("hidden_gates", "hidden_gates", True, 1),
    },
}
#: Law to use when a GPU has none for an operation (the closest measured shape).
_LAW_FALLBACK = {"ffn": "final_projection", "lm_head": "final_projection"}
_TRAINING_FACTOR = 3.0  # forward + backward FLOPs of a matrix product


def _column(frame: pd.DataFrame, name: str, default: Any = None) -> np.ndarray | None:
    """A numeric column as floats, NaN filled with ``default`` (None: column absent)."""
    if name not in frame.columns:
        return None if default is None else np.full(len(frame), float(default))
    values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if default is not None:
        values = np.where(np.isfinite(values), values, float(default))
    return values


def _required(frame: pd.DataFrame, name: str) -> np.ndarray:
    values = _column(frame, name)
    if values is None:
        raise ValueError(f"configurations need a column {name!r}")
    if not np.all(np.isfinite(values) & (values > 0)):
        row = int(np.argmax(~(np.isfinite(values) & (values > 0))))
        raise ValueError(f"column {name!r} must hold finite numbers > 0 (row {row + 1})")
    return values


class _Columns:
    """The numeric columns of a frame of configurations, each converted once."""

    def __init__(self, frame: pd.DataFrame, checked: Mapping[str, np.ndarray] = ()) -> None:
        self.frame = frame
        # Columns check_configs has converted and found finite and > 0.
        self._cache: dict[tuple[str, Any], np.ndarray | None] = {
            (name, "required"): values for name, values in dict(checked).items()
        }

    def required(self, name: str) -> np.ndarray:
        """:func:`_required` of the column."""
        if (name, "required") not in self._cache:
            self._cache[name, "required"] = _required(self.frame, name)
        return self._cache[name, "required"]

    def derived(self, name: str, compute: Any) -> np.ndarray:
        """``compute()``, a quantity derived from the columns, computed once."""
        if (name, "derived") not in self._cache:
            self._cache[name, "derived"] = compute()
        return self._cache[name, "derived"]

    def column(self, name: str, default: Any = None) -> np.ndarray | None:
        """:func:`_column` of the column."""
        if (name, default) not in self._cache:
            self._cache[name, default] = _column(self.frame, name, default)
        return self._cache[name, default]


def _gpu_key(value: str, known: list[str]) -> str | None:
    """Canonical name of ``value`` among ``known`` (None when absent)."""
    if value in known:
        return value
    try:
        canonical = get_gpu(value).name
    except ValueError:
        return None
    for name in known:
        try:
            if get_gpu(name).name == canonical:
                return name
        except ValueError:
            continue
    return None


def _product(factor: float, *arrays: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``factor · a₁ · a₂ · …`` multiplied left to right into ``out``."""
    np.multiply(arrays[0], factor, out=out)
    for values in arrays[1:]:
        out *= values
    return out


def _head_dim(cols: _Columns) -> np.ndarray:
    """Width of an attention head, ⌊d_model / n_heads⌋ [-], computed once per frame."""
    return cols.derived(
        "head_dim", lambda: np.floor(cols.required("d_model") / cols.required("n_heads"))
    )


def _remainder(x: np.ndarray, divisor: int) -> np.ndarray:
    """``x % divisor`` for a power-of-two divisor and x ≥ 0, ten times faster.

    x / 2^k, its floor and their product by 2^k are exact, and so is the
    difference, which is the remainder (representable, as fmod's always is):
    the result is bit for bit that of ``np.remainder``.
    """
    if divisor <= 0 or divisor & (divisor - 1):
        raise ValueError(f"divisor must be a power of two, got {divisor}")
    whole = np.multiply(x, 1.0 / divisor)
    np.floor(whole, out=whole)
    whole *= divisor
    return np.subtract(x, whole, out=whole)


class StepFeatures(LawsCloneMixin, TransformerMixin, BaseEstimator):
    """Reference times of a training step's operations, per configuration.

    Parameters
    ----------
    laws : dict of str to dict of str to law
        GPU name → operation name → efficiency law (a fitted
        :class:`~powerfit.laws.PowerLawEfficiency`, a mapping with ``eta_max``,
        ``k``, ``alpha`` or a triple; η as a fraction, c in TFLOP). Transformer:
        ``qkv_projections``, ``final_projection``, ``attention_scores``,
        ``attention_output`` (``ffn`` and ``lm_head`` fall back to the final
        projection's law). LSTM: ``input_gates``, ``hidden_gates``.
    arch : {'transformer', 'lstm'}, default 'transformer'
        Architecture of the configurations.
    peak_flops : dict of str to float, optional
        GPU → peak throughput [FLOP/s]; default the catalogue's
        (:func:`powerfit.hardware.peak_flops`), which for the RTX 2080 Ti is the
        13.45e12 FLOP/s the published per-operation laws were derived with.
    memory_bandwidth : dict of str to float, optional
        GPU → memory bandwidth [B/s]; default :data:`MEMORY_BANDWIDTH`.
    power_limit : dict of str to float, optional
        GPU → board power limit [W]; default the catalogue's TDP.
    d_ff : float, optional
        Feed-forward width [-] where the ``d_ff`` column is absent or empty;
        default 4·d_model.
    vocab_size : float, default 0
        Embedding rows and output-head width [-] where the ``vocab_size`` column is
        absent or empty; 0 leaves the head out.
    bytes_per_element : float, default 4.0
        Bytes per activation or parameter [B] (FP32).

    Notes
    -----
    Input columns (canonical names): ``n_layers``, ``batch_size``, ``seq_len`` and,
    for a Transformer, ``d_model``, ``n_heads`` (``d_ff``, ``vocab_size``,
    ``n_params`` optional), for an LSTM ``input_size``, ``hidden_size``; ``gpu``
    when the laws cover several GPUs. ``duration_s`` [s], when present, is passed
    through for :class:`StepEnergyRegressor` to fit the step time on.

    Output columns: ``flops:<group>:<op>`` [FLOP] and ``time:<group>:<op>`` [s] for
    every dense operation, ``memory:<name>`` [s], ``shape:<name>`` (configuration
    and alignment descriptors of the learned correction), ``n_layers``,
    ``gpu_index`` (position of the GPU in ``gpus_``), ``peak_flops`` [FLOP/s],
    ``tdp_w`` [W] and ``duration_s`` [s, NaN when not measured].

    Examples
    --------
    >>> import pandas as pd
    >>> laws = {"NVIDIA A100 80GB PCIe": {
    ...     op: (0.68, 8.0, 0.78) for op in ("qkv_projections", "final_projection",
    ...                                      "attention_scores", "attention_output")}}
    >>> configs = pd.DataFrame({"n_layers": [6], "batch_size": [64], "seq_len": [320],
    ...                         "d_model": [512], "n_heads": [8]})
    >>> features = StepFeatures(laws).fit_transform(configs)
    >>> float(features["flops:qkv_projections:qkv_projections"].iloc[0]) / 1e12  # forward
    0.03221225472
    """

    def __init__(
        self,
        laws: Mapping[str, Mapping[str, Any]] | None = None,
        arch: str = "transformer",
        peak_flops: Mapping[str, float] | None = None,
        memory_bandwidth: Mapping[str, float] | None = None,
        power_limit: Mapping[str, float] | None = None,
        d_ff: float | None = None,
        vocab_size: float = 0.0,
        bytes_per_element: float = 4.0,
    ) -> None:
        self.laws = laws
        self.arch = arch
        self.peak_flops = peak_flops
        self.memory_bandwidth = memory_bandwidth
        self.power_limit = power_limit
        self.d_ff = d_ff
        self.vocab_size = vocab_size
        self.bytes_per_element = bytes_per_element

    def fit(self, X: Any, y: Any = None) -> StepFeatures:
        """Resolve the laws, peaks, bandwidths and power limits of every GPU.

        Parameters
        ----------
        X : pandas.DataFrame
            Configurations (checked by :meth:`transform`).
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ValueError
            No laws, an unknown architecture, a GPU without a needed law, peak,
            bandwidth or power limit.
        """
        if self.arch not in _DENSE:
            raise ValueError(f"arch must be one of {', '.join(_DENSE)}, got {self.arch!r}")
        if not self.laws:
            raise ValueError("laws must map at least one GPU to its efficiency laws")
        gpus = sorted(self.laws)
        laws: dict[str, dict[str, list[float]]] = {}
        peaks, bandwidths, tdps = [], [], []
        for gpu in gpus:
            table = {op: list(law_coefficients(law)) for op, law in self.laws[gpu].items()}
            for op, (_, law_name, _, _) in _DENSE[self.arch].items():
                name = law_name if law_name in table else _LAW_FALLBACK.get(law_name)
                if name not in table:
                    raise ValueError(f"GPU {gpu!r} has no efficiency law for {law_name!r}")
                table.setdefault(op, table[name])
            laws[gpu] = table
            peaks.append(self._lookup(self.peak_flops, gpu, "peak_flops", _catalogue_peak))
            bandwidths.append(
                self._lookup(
                    self.memory_bandwidth, gpu, "memory_bandwidth", MEMORY_BANDWIDTH.__getitem__
                )
            )
            tdps.append(
                self._lookup(
                    self.power_limit, gpu, "power_limit", lambda g: get_gpu(g).power_limit_w
                )
            )
        self.gpus_ = gpus
        self.laws_ = laws
        self.peak_flops_ = np.asarray(peaks, dtype=float)
        self.memory_bandwidth_ = np.asarray(bandwidths, dtype=float)
        self.power_limit_ = np.asarray(tdps, dtype=float)
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
            self.n_features_in_ = X.shape[1]
        return self

    @staticmethod
    def _lookup(table: Mapping[str, float] | None, gpu: str, what: str, default: Any) -> float:
        if table is not None:
            key = _gpu_key(gpu, list(table))
            if key is not None:
                return float(table[key])
        try:
            canonical = get_gpu(gpu).name
            return float(default(canonical))
        except (ValueError, KeyError):
            raise ValueError(f"no {what} for GPU {gpu!r}: pass {what}={{...}}") from None

    def _gpu_index(self, frame: pd.DataFrame) -> np.ndarray:
        if "gpu" not in frame.columns:
            if len(self.gpus_) > 1:
                raise ValueError(
                    f"column 'gpu' is required: the laws cover {len(self.gpus_)} GPUs "
                    f"({self.gpus_})"
                )
            return np.zeros(len(frame), dtype=int)
        codes, values = pd.factorize(frame["gpu"].astype(str))
        index = np.empty(len(values), dtype=int)
        for code, value in enumerate(values):
            key = _gpu_key(value, self.gpus_)
            if key is None:
                raise ValueError(
                    f"column 'gpu': no efficiency laws for GPU {value!r}; known: {self.gpus_}"
                )
            index[code] = self.gpus_.index(key)
        return index[codes]

    def transform(self, X: Any) -> pd.DataFrame:
        """Features of each configuration (see Notes of the class).

        Parameters
        ----------
        X : pandas.DataFrame
            Configurations with canonical column names.

        Returns
        -------
        pandas.DataFrame
            Same index as X.

        Raises
        ------
        powerfit.exceptions.DataError
            A missing column or a value that is not a finite number > 0 (row and
            column named).
        ValueError
            A GPU without laws.
        """
        check_is_fitted(self, "laws_")
        if not isinstance(X, pd.DataFrame):
            raise ValueError("StepFeatures needs a DataFrame of configurations (named columns)")
        # DataError naming the row and column; the columns it read are read once.
        cols = _Columns(X, _checked_columns(X, self.arch))
        gpu = self._gpu_index(X)
        n_layers = cols.required("n_layers")
        # One float block, a row per output column: the DataFrame wraps it uncopied.
        names = list(self.get_feature_names_out())
        block = np.empty((len(names), len(X)))
        out = dict(zip(names, block, strict=True))
        dense = _DENSE[self.arch]
        flops = self._flops(cols, {op: out[f"flops:{g}:{op}"] for op, (g, *_) in dense.items()})
        single = len(self.gpus_) == 1
        # One GPU: its peak, bandwidth and power limit as numbers, not columns.
        peak = self.peak_flops_[0] if single else self.peak_flops_[gpu]
        factors: dict[tuple[int, bool], Any] = {}  # training FLOPs factor by calls
        for op, (group, _, per_layer, calls) in dense.items():
            c = flops[op]
            t = out[f"time:{group}:{op}"]
            positive = c > 0
            if single and positive.all():  # no masks needed (the usual case)
                eta = efficiency(c, *self.laws_[self.gpus_[0]][op])
                np.divide(c, np.multiply(eta, peak, out=eta), out=t)
            else:
                t[:] = 0.0
                for index, name in enumerate(self.gpus_):
                    rows = positive if single else (gpu == index) & positive
                    if rows.any():
                        eta = efficiency(c[rows], *self.laws_[name][op])
                        t[rows] = c[rows] / ((peak if single else peak[rows]) * eta)
            if (calls, per_layer) not in factors:
                factors[calls, per_layer] = (
                    _TRAINING_FACTOR * calls * (n_layers if per_layer else 1.0)
                )
            t *= factors[calls, per_layer]
        if single:
            bandwidth = self.memory_bandwidth_[0] / float(self.bytes_per_element)
        else:
            bandwidth = self.memory_bandwidth_[gpu] / float(self.bytes_per_element)
        memory = self._memory(cols, n_layers)
        for name, elements in memory.items():
            np.divide(elements, bandwidth, out=out[f"memory:{name}"])
        for name, values in self._shape(cols, X, n_layers, memory["parameters"]).items():
            out[f"shape:{name}"][:] = values
        out["n_layers"][:] = n_layers
        out["gpu_index"][:] = gpu
        out["peak_flops"][:] = peak
        out["tdp_w"][:] = self.power_limit_[0] if single else self.power_limit_[gpu]
        duration = _column(X, "duration_s")
        out["duration_s"][:] = np.nan if duration is None else duration
        return pd.DataFrame(block.T, index=X.index, columns=names, copy=False)

    def _flops(self, cols: _Columns, out: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Forward FLOPs of one call of each dense operation (one layer, one batch).

        Written into ``out`` (operation → array of one value per row), returned.
        """
        b, s = cols.required("batch_size"), cols.required("seq_len")
        if self.arch == "lstm":
            i, h = cols.required("input_size"), cols.required("hidden_size")
            return {
                "input_gates": _product(8.0, b, s, i, h, out=out["input_gates"]),
                "hidden_gates": _product(8.0, b, s, h, h, out=out["hidden_gates"]),
            }
        d, heads = cols.required("d_model"), cols.required("n_heads")
        if np.any(heads > d):
            raise ValueError("n_heads must not exceed d_model")
        d_ff = self._d_ff(cols, d)
        vocab = cols.column("vocab_size", self.vocab_size)
        tokens = b * s
        head_dim = _head_dim(cols)
        attention = _product(2.0, b, heads, s, s, head_dim, out=out["attention_scores"])
        out["attention_output"][:] = attention
        return {
            "qkv_projections": _product(6.0, tokens, d, d, out=out["qkv_projections"]),
            "final_projection": _product(2.0, tokens, d, d, out=out["final_projection"]),
            # one of the two matrix products of 2·W·d·d_ff (2 calls per layer):
            "ffn": _product(2.0, tokens, d, d_ff, out=out["ffn"]),
            "lm_head": _product(2.0, tokens, d, vocab, out=out["lm_head"]),
            "attention_scores": attention,
            "attention_output": out["attention_output"],
        }

    def _d_ff(self, cols: _Columns, d: np.ndarray) -> np.ndarray:
        """Feed-forward width [-]: the column, else the parameter, else 4·d_model."""
        d_ff = cols.column("d_ff", 0.0 if self.d_ff is None else self.d_ff)
        return np.where(d_ff > 0, d_ff, 4.0 * d)

    def _memory(self, cols: _Columns, n_layers: np.ndarray) -> dict[str, np.ndarray]:
        """Elements moved by the memory-bound work of a training step [-]."""
        b, s = cols.required("batch_size"), cols.required("seq_len")
        if self.arch == "lstm":
            i, h = cols.required("input_size"), cols.required("hidden_size")
            params = n_layers * 4.0 * (i * h + h * h + 2.0 * h)
            return {"states": n_layers * b * s * h, "parameters": params}
        d, heads = cols.required("d_model"), cols.required("n_heads")
        d_ff = self._d_ff(cols, d)
        vocab = cols.column("vocab_size", self.vocab_size)
        params = cols.column("n_params", 0.0)
        computed = n_layers * (4.0 * d * d + 2.0 * d * d_ff + 9.0 * d + d_ff) + (vocab + s) * d
        params = np.where(params > 0, params, computed)
        return {
            "attention_probs": n_layers * b * heads * s * s,
            "activations": n_layers * b * s * (d + d_ff),
            "parameters": params,
        }

    def _shape(
        self, cols: _Columns, X: pd.DataFrame, n_layers: np.ndarray, n_params: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Configuration and alignment descriptors for the learned correction [-].

        Matrix kernels run in tiles, so a width that is not a multiple of the tile
        (e.g. d_model = 192 or 640) wastes part of every tile and a head dimension
        that is not a multiple of 32 does the same to the attention products; the
        remainders modulo 128 and 256 and the head dimension describe that.
        """
        b, s = cols.required("batch_size"), cols.required("seq_len")
        if self.arch == "lstm":
            return {
                "n_layers": n_layers,
                "batch_size": b,
                "seq_len": s,
                "input_size": cols.required("input_size"),
                "hidden_size": cols.required("hidden_size"),
            }
        d, heads = cols.required("d_model"), cols.required("n_heads")
        family = (
            X["model"].astype(str).str.lower().str.startswith("gpt").to_numpy(dtype=float)
            if "model" in X.columns
            else np.nan
        )
        head_dim = _head_dim(cols)
        return {
            "n_layers": n_layers,
            "batch_size": b,
            "seq_len": s,
            "d_model": d,
            "n_heads": heads,
            "n_params": n_params,
            "causal": family,
            "d_model_mod_128": _remainder(d, 128),
            "d_model_mod_256": _remainder(d, 256),
            "head_dim": head_dim,
            "head_dim_mod_32": _remainder(head_dim, 32),
        }

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns."""
        check_is_fitted(self, "laws_")
        names = []
        for op, (group, _, _, _) in _DENSE[self.arch].items():
            names += [f"flops:{group}:{op}", f"time:{group}:{op}"]
        memory = ("states", "parameters") if self.arch == "lstm" else (
            "attention_probs", "activations", "parameters")  # fmt: skip
        names += [f"memory:{m}" for m in memory]
        shape = ("n_layers", "batch_size", "seq_len") + (
            ("input_size", "hidden_size") if self.arch == "lstm" else (
                "d_model", "n_heads", "n_params", "causal", "d_model_mod_128",
                "d_model_mod_256", "head_dim", "head_dim_mod_32"))  # fmt: skip
        names += [f"shape:{m}" for m in shape]
        names += ["n_layers", "gpu_index", "peak_flops", "tdp_w", "duration_s"]
        return np.asarray(names, dtype=object)


class _Layout:
    """Where each parameter of the step-time model sits, from the feature names."""

    def __init__(self, columns: list[str]) -> None:
        self.groups = sorted({c.split(":")[1] for c in columns if c.startswith("time:")})
        self.ops = {
            g: [c.split(":", 2)[2] for c in columns if c.startswith(f"time:{g}:")]
            for g in self.groups
        }
        self.memory = [c for c in columns if c.startswith("memory:")]
        self.names = [f"log_scale:{g}" for g in self.groups]
        self.names += [f"exponent:{g}" for g in self.groups]
        self.names += [f"log_coef:{m}" for m in self.memory]
        self.names += ["log_overhead_s", "log_overhead_per_layer_s"]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        k, m = len(self.groups), len(self.memory)
        lower = np.r_[np.full(k, -10.0), np.full(k, -1.0), np.full(m, -25.0), -25.0, -25.0]
        upper = np.r_[np.full(k, 10.0), np.full(k, 1.0), np.full(m, 10.0), 5.0, 5.0]
        return lower, upper

    def start(self, shift: float) -> np.ndarray:
        k, m = len(self.groups), len(self.memory)
        return np.r_[np.zeros(k), np.zeros(k), np.full(m, shift), -7.0 + shift, -9.0 + shift]


def _arrays(F: pd.DataFrame, layout: _Layout) -> dict[str, Any]:
    """What :func:`_step_time` reads: per group, (times [s], log size [-]) of each op.

    An operation whose FLOPs and times are all zero (no output head) adds nothing
    and is left out; one with the FLOPs of the one before it (the two attention
    products) shares its log size.
    """
    reference = F["peak_flops"].to_numpy(dtype=float) * _REFERENCE_TIME
    data: dict[str, Any] = {
        "n_layers": F["n_layers"].to_numpy(dtype=float),
        "memory": F[layout.memory].to_numpy(dtype=float),
    }
    for g in layout.groups:
        terms, previous = [], None
        for op in layout.ops[g]:
            times = F[f"time:{g}:{op}"].to_numpy(dtype=float)
            c = F[f"flops:{g}:{op}"].to_numpy(dtype=float)
            if not (times.any() or c.any()):
                continue
            if previous is None or not np.array_equal(c, previous[0]):
                size = c / reference
                previous = c, np.log(np.maximum(size, _SMALLEST_SIZE, out=size), out=size)
            terms.append((times, previous[1]))
        data[f"terms:{g}"] = terms
    return data


def _step_time(theta: np.ndarray, data: dict[str, Any], layout: _Layout) -> np.ndarray:
    k, m = len(layout.groups), len(layout.memory)
    t = np.exp(theta[2 * k + m]) + np.exp(theta[2 * k + m + 1]) * data["n_layers"]
    for j, g in enumerate(layout.groups):
        total, previous, factor = None, None, None
        with np.errstate(over="ignore"):
            for times, logc in data[f"terms:{g}"]:
                if logc is not previous:
                    factor = np.exp(theta[k + j] * logc)
                    previous = logc
                # Summed in the order of the operations, as a row sum would.
                scaled = times * factor
                total = scaled if total is None else np.add(total, scaled, out=total)
        if total is not None:
            t += np.multiply(total, np.exp(theta[j]), out=total)
    if m:
        t += data["memory"] @ np.exp(theta[2 * k : 2 * k + m])
    return t


#: Settings of the boosted correction (:class:`~sklearn.ensemble.HistGradientBoostingRegressor`)
#: by architecture, chosen on splits of the rows and of the configurations that the
#: evaluation does not use, by the mean MAPE of the two (``experiments/tune_models.py``):
#: the best of the grid, except that the Transformer gets 300 iterations instead of
#: 1000, which gain only on the row split (where most test rows have an exact twin
#: in the training rows), lose 0.05 point on the configuration split and cost 3× the
#: fit time and the size of the fitted model.
CORRECTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "transformer": {
        "learning_rate": 0.1,
        "max_iter": 300,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 5,
    },
    "lstm": {
        "learning_rate": 0.05,
        "max_iter": 100,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 5,
    },
}


#: Correction features along which the boosted trees never decrease: those that grow
#: with the work of a step (more layers, tokens or batch never cost less).
_MONOTONE_FEATURES = ("n_layers", "batch_size", "seq_len")

#: Descriptors the correction does not read. The parameter count grows with the
#: layers and the sequence length (position embeddings) but also with d_model: left
#: free it would let the correction fall with more layers or tokens, constrained
#: it would bind d_model too (``powerfit evaluate``: MAPE 6.7 % against 5.2 % on
#: dmodel-1024, 4.9 % against 4.2 % on layers-12); the trees read n_layers,
#: d_model and seq_len instead.
_UNCORRECTED_FEATURES = ("n_params",)

#: Configuration columns whose measured values define the correction's domain.
_GRID_FEATURES = ("n_layers", "batch_size", "seq_len", "d_model", "n_heads", "input_size",
                  "hidden_size")  # fmt: skip


def _flatten_trees(model: Any) -> dict[str, np.ndarray]:
    """The trees of a fitted HistGradientBoostingRegressor as plain arrays.

    Node indices are made global (one array for all trees), so that the fitted
    model holds NumPy arrays only (JSON-describable, no pickle). Prediction
    (:func:`_predict_trees`) derives what it needs from them once per model: the
    thresholds of each feature and scikit-learn's compiled predictors.
    ``tests/test_models.py`` checks it against ``model.predict`` and against the
    NumPy walk :func:`_walk_trees`.
    """
    nodes = [predictor.nodes for stage in model._predictors for predictor in stage]
    sizes = np.array([len(n) for n in nodes])
    offsets = np.r_[0, np.cumsum(sizes)[:-1]]
    every = np.concatenate(nodes)
    shift = np.repeat(offsets, sizes)
    return {
        "feature": every["feature_idx"].astype(np.int64),
        "threshold": every["num_threshold"].astype(float),
        "missing_left": every["missing_go_to_left"].astype(bool),
        "left": every["left"].astype(np.int64) + shift,
        "right": every["right"].astype(np.int64) + shift,
        "leaf": every["is_leaf"].astype(bool),
        "value": every["value"].astype(float),
        "roots": offsets.astype(np.int64),
        "depth": np.array([int(every["depth"].max()) if len(every) else 0]),
        "baseline": np.asarray(model._baseline_prediction, dtype=float).ravel()[:1],
    }


def _walk_trees(trees: Mapping[str, np.ndarray], X: np.ndarray, chunk: int = 20_000) -> np.ndarray:
    """Sum of the flattened trees' leaf values (no baseline): a vectorised NumPy walk.

    All trees advance one level at a time over a (n_trees, n_rows) block of node
    indices. Slow (every tree, every row, every level) but dependent on NumPy
    alone: the reference of :func:`_predict_trees`, and its fallback.
    """
    out = np.empty(len(X))
    roots = trees["roots"]
    for start in range(0, len(X), chunk):
        block = X[start : start + chunk]
        rows = np.arange(len(block))[None, :]
        node = np.repeat(roots[:, None], len(block), axis=1)
        for _ in range(int(trees["depth"][0])):
            x = block[rows, trees["feature"][node]]
            below = x <= trees["threshold"][node]
            go_left = np.where(np.isnan(x), trees["missing_left"][node], below)
            step = np.where(go_left, trees["left"][node], trees["right"][node])
            node = np.where(trees["leaf"][node], node, step)
        out[start : start + chunk] = trees["value"][node].sum(axis=0)
    return out


class _CompiledTrees:
    """What predicting with flattened trees needs, derived once from their arrays.

    * ``thresholds``: per feature, the sorted distinct thresholds the trees compare
      it with. A row's path through every tree depends only on where each of its
      features falls among them (its *cell*: ``x <= t`` for a sorted threshold
      ``t_k`` exactly when fewer than k + 1 thresholds are below x), so rows of the
      same cell have the same prediction and are predicted once.
    * ``sum_trees``: the sum of scikit-learn's compiled predictors of the trees,
      rebuilt from the arrays (:func:`_sklearn_predictors`; None where that private
      API is unavailable: the NumPy walk :func:`_walk_trees` is used then).
    """

    def __init__(self, trees: Mapping[str, np.ndarray], n_features: int) -> None:
        split = ~np.asarray(trees["leaf"], dtype=bool)
        feature = np.asarray(trees["feature"])
        threshold = np.asarray(trees["threshold"], dtype=float)
        self.thresholds = [np.unique(threshold[split & (feature == j)]) for j in range(n_features)]
        self.sum_trees = _sklearn_predictors(trees)


def _sklearn_predictors(trees: Mapping[str, np.ndarray]) -> Any:
    """A function summing scikit-learn's compiled predictions of every tree (or None).

    The trees are rebuilt as the node records of scikit-learn's
    ``HistGradientBoosting`` predictors (a private API: None where it is missing or
    laid out differently, and the NumPy walk is used).
    """
    try:
        from sklearn.ensemble._hist_gradient_boosting._predictor import (
            _predict_from_raw_data,
        )
        from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
    except ImportError:  # pragma: no cover - a scikit-learn without these modules
        return None
    needed = {"value", "feature_idx", "num_threshold", "missing_go_to_left", "left", "right"}
    if not needed | {"is_leaf"} <= set(PREDICTOR_RECORD_DTYPE.names or ()):
        return None  # pragma: no cover - another record layout
    roots = np.asarray(trees["roots"], dtype=np.int64)
    ends = np.r_[roots[1:], len(trees["feature"])]
    leaf = np.asarray(trees["leaf"], dtype=bool)
    records = []
    for start, end in zip(roots, ends, strict=True):
        part = slice(start, end)
        nodes = np.zeros(end - start, dtype=PREDICTOR_RECORD_DTYPE)
        nodes["value"] = trees["value"][part]
        nodes["feature_idx"] = trees["feature"][part]
        nodes["num_threshold"] = trees["threshold"][part]
        nodes["missing_go_to_left"] = trees["missing_left"][part]
        nodes["is_leaf"] = leaf[part]
        nodes["left"] = np.where(leaf[part], 0, trees["left"][part] - start)
        nodes["right"] = np.where(leaf[part], 0, trees["right"][part] - start)
        records.append(nodes)
    no_bitsets = np.zeros((0, 8), dtype=np.uint32)
    threads = _openmp_effective_n_threads()

    def sum_trees(X: np.ndarray) -> np.ndarray:
        f_idx_map = np.zeros(X.shape[1], dtype=np.uint32)
        # A thread team per tree costs more than it saves on a few thousand rows
        # (and far more on a busy machine).
        n_threads = threads if len(X) >= _THREADED_ROWS else 1
        total, tree = np.zeros(len(X)), np.empty(len(X))
        for nodes in records:
            _predict_from_raw_data(nodes, X, no_bitsets, no_bitsets, f_idx_map, n_threads, tree)
            total += tree
        return total

    return sum_trees


#: Most cells the integer key of :func:`_cells` may number (it must fit in int64).
_CELLS_LIMIT = 2**62

#: Distinct cells from which the compiled trees run on several threads.
_THREADED_ROWS = 50_000

#: Compiled trees by the identity of their ``value`` array (checked by a weak reference).
_COMPILED: dict[int, tuple[Any, _CompiledTrees]] = {}


def _compiled(trees: Mapping[str, np.ndarray], n_features: int) -> _CompiledTrees:
    """The :class:`_CompiledTrees` of ``trees``, cached while its arrays live."""
    key = id(trees["value"])
    hit = _COMPILED.get(key)
    if hit is not None and hit[0]() is trees["value"] and len(hit[1].thresholds) == n_features:
        return hit[1]
    compiled = _CompiledTrees(trees, n_features)
    try:
        ref = weakref.ref(trees["value"], lambda _, key=key: _COMPILED.pop(key, None))
    except TypeError:  # not weakly referenceable: do not cache
        return compiled
    _COMPILED[key] = (ref, compiled)
    return compiled


#: Most thresholds of a feature counted by comparisons rather than a binary search
#: (:func:`numpy.searchsorted`, slow on unsorted values): on a million rows, 128
#: vectorised comparisons counted in one byte per row take half its time, 8 a tenth.
#: The count, and the NaN code one past it, must fit in that byte.
_COMPARED_THRESHOLDS = 128


def _feature_columns(X: Any) -> list[np.ndarray]:
    """The columns of a 2-d array of features (or a sequence of columns) as float arrays."""
    if isinstance(X, np.ndarray) or not isinstance(X, (list, tuple)):
        X = np.asarray(X, dtype=float)
        if X.ndim != 2:
            raise ValueError(f"X must be a 2-d array of features, got shape {X.shape}")
        return list(X.T)
    return [np.asarray(x, dtype=float) for x in X]


def _cells(X: Any, thresholds: list[np.ndarray]) -> np.ndarray | None:
    """One integer per row naming its cell among the thresholds (None: too many cells).

    Feature j's code is the number of its thresholds below x (``x <= t_k`` exactly
    when that number is at most k), or one past the largest code for NaN; the codes
    are combined in mixed radix. ``X`` is a 2-d array or a sequence of its columns
    (contiguous columns are read fastest).
    """
    columns = _feature_columns(X)
    n = len(columns[0]) if columns else 0
    radix = [len(values) + 2 for values in thresholds if len(values)]
    cells = 1
    for size in radix:  # exact (Python integers)
        cells *= size
    if cells > _CELLS_LIMIT:
        return None
    dtype = np.int32 if cells <= np.iinfo(np.int32).max else np.int64
    key, term = np.zeros(n, dtype=dtype), np.empty(n, dtype=dtype)
    small = np.empty(n, dtype=np.uint8)
    stride = 1
    for x, values in zip(columns, thresholds, strict=True):
        if len(values) == 0:  # no tree reads this feature
            continue
        if len(values) <= _COMPARED_THRESHOLDS:  # comparisons beat a binary search
            code = small
            code[:] = 0
            for t in values:
                code += x > t
        else:
            code = np.searchsorted(values, x, side="left")
        missing = np.isnan(x)
        if missing.any():
            code[missing] = len(values) + 1
        np.multiply(code, stride, out=term, dtype=dtype, casting="unsafe")
        key += term
        stride *= len(values) + 2
    return key


def _predict_trees(trees: Mapping[str, np.ndarray], X: Any, chunk: int = 20_000):
    """Sum of the flattened trees' leaf values plus the baseline, per row of X.

    ``X`` is a 2-d array of features or a sequence of its columns. Rows are grouped
    by their cell among the trees' thresholds (see :class:`_CompiledTrees`), each
    distinct cell is predicted once, by scikit-learn's compiled tree predictors
    where available (the NumPy walk :func:`_walk_trees` otherwise, by blocks of
    ``chunk`` rows), trees summed in their order.
    """
    columns = _feature_columns(X)
    n = len(columns[0]) if columns else 0
    if n == 0:
        return np.zeros(0)
    compiled = _compiled(trees, len(columns))
    key = _cells(columns, compiled.thresholds)
    if key is None:
        inverse, first = None, slice(None)
    else:
        inverse, cells = pd.factorize(key)
        first = np.empty(len(cells), dtype=np.int64)
        first[inverse] = np.arange(n)  # any row of a cell stands for it
    unique = np.empty((n if key is None else len(first), len(columns)))
    for j, x in enumerate(columns):
        unique[:, j] = x[first]
    if compiled.sum_trees is None:
        values = _walk_trees(trees, unique, chunk)
    else:
        values = compiled.sum_trees(unique)
    values += float(trees["baseline"][0])
    return values if inverse is None else values[inverse]


class StepEnergyRegressor(RegressorMixin, BaseEstimator):
    """Energy [J] of a training step as power × a physically grounded step time.

    Works on the output of :class:`StepFeatures`; see the module notes for the
    time model. Measured step times (``duration_s``), when every training row has
    one, are what the time model is fitted to, and each GPU's power is then
    Σ energy / Σ measured time [W]; without them, energy is fitted directly with
    the power fixed to ``power_fraction`` × TDP.

    Parameters
    ----------
    power_fraction : float, optional
        Mean power as a fraction of the board power limit [-], for GPUs absent from
        the training data (and for every GPU when no durations are given). Default:
        learned from the training GPUs (1/3 when no durations are given).
    n_starts : int, default 3
        Starting points of the nonlinear fit (different overhead scales).
    n_bootstrap : int, default 0
        Bootstrap refits for prediction intervals (0: no intervals).
    confidence : float, default 0.9
        Nominal level of the prediction intervals.
    random_state : int, RandomState or None, default None
        Seed of the bootstrap.
    max_nfev : int, default 3000
        Function evaluations allowed per start.
    correction : {'boosting', None}, default 'boosting'
        Learn what the physical model misses on the GPUs of the training data:
        gradient boosting of log(measured / physical energy) over the
        configuration and alignment descriptors of :class:`StepFeatures`
        (``shape:*`` columns). It multiplies the physical prediction on those GPUs
        only; a GPU without training rows gets the physical model alone, since
        what the correction learns (kernel choices, tile effects) belongs to the
        hardware it was measured on. The trees never decrease with
        ``n_layers``, ``batch_size`` or ``seq_len`` (``monotonic_cst``; they do
        not read ``n_params``), so the corrected energy never decreases with more
        layers, tokens or batch. None: the physical model alone.
    correction_params : dict, optional
        Settings of :class:`~sklearn.ensemble.HistGradientBoostingRegressor` for
        the correction, over those of :data:`CORRECTION_DEFAULTS` for the
        architecture of the features (a ``monotonic_cst`` given here replaces
        the monotone one and gives up that guarantee; the losses
        ``absolute_error`` and ``quantile`` are refused, as they break it).

    Attributes
    ----------
    params_ : numpy.ndarray
        Fitted parameters, named by ``param_names_``: log scales and exponents
        β of each group, log coefficients of the memory terms, log overheads.
    param_names_ : list of str
    power_w_ : numpy.ndarray
        Mean power of each GPU of :class:`StepFeatures`'s ``gpus_`` order [W]; NaN for
        GPUs without training rows.
    power_fraction_ : float
        Power / TDP used for GPUs without training rows [-].
    fit_target_ : {'duration', 'energy'}
        What the time model was fitted to.
    residuals_ : numpy.ndarray
        log(measured / predicted energy) on the training rows; with a correction,
        out-of-fold (3 folds of configurations, so that repeated measurements of
        one configuration stay in one fold), so that intervals are not narrowed
        by the correction's fit to its own rows.
    physical_residuals_ : numpy.ndarray
        log(measured / physical energy) on the training rows (no correction): the
        spread of the intervals of configurations outside the correction's domain.
    correction_grid_ : dict of str to numpy.ndarray
        The measured values of each configuration column (``shape:n_layers``,
        ``shape:batch_size``, …). A configuration whose values are all among them,
        on a GPU with training rows, is inside the correction's domain; its
        interval uses ``residuals_``, any other configuration's
        ``physical_residuals_``.
    correction_ : dict of str to numpy.ndarray or None
        The correction's trees as arrays (node features, thresholds, children,
        leaf values) and its baseline [log ratio].
    correction_features_ : list of str
        The ``shape:*`` columns the correction reads.
    correction_gpus_ : numpy.ndarray
        Indices of the GPUs the correction applies to (those with training rows).
    bootstrap_params_ : numpy.ndarray of shape (n_bootstrap, n_params)
    bootstrap_power_w_ : numpy.ndarray of shape (n_bootstrap, n_gpus)
    bootstrap_power_fraction_ : numpy.ndarray of shape (n_bootstrap,)

    Examples
    --------
    See :func:`make_step_energy_pipeline`.
    """

    def __init__(
        self,
        power_fraction: float | None = None,
        n_starts: int = 3,
        n_bootstrap: int = 0,
        confidence: float = 0.9,
        random_state: Any = None,
        max_nfev: int = 3000,
        correction: str | None = "boosting",
        correction_params: Mapping[str, Any] | None = None,
    ) -> None:
        self.power_fraction = power_fraction
        self.n_starts = n_starts
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.random_state = random_state
        self.max_nfev = max_nfev
        self.correction = correction
        self.correction_params = correction_params

    # ----------------------------------------------------------------- fitting
    def _check(self, X: Any) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame) or "gpu_index" not in X.columns:
            raise ValueError(
                "StepEnergyRegressor needs the DataFrame of StepFeatures "
                "(use make_step_energy_pipeline)"
            )
        return X

    def _solve(self, data, target, layout, start=None) -> np.ndarray:
        lower, upper = layout.bounds()
        log_target = np.log(target)

        def residuals(theta: np.ndarray) -> np.ndarray:
            return np.log(_step_time(theta, data, layout)) - log_target

        starts = (
            [start]
            if start is not None
            else [
                layout.start(shift) for shift in np.linspace(-4.0, 4.0, max(1, int(self.n_starts)))
            ]
        )
        best = None
        for theta0 in starts:
            theta0 = np.clip(theta0, lower + 1e-6, upper - 1e-6)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                result = least_squares(
                    residuals,
                    theta0,
                    bounds=(lower, upper),
                    method="trf",
                    x_scale="jac",
                    # a warm start (bootstrap refit) needs far fewer evaluations
                    max_nfev=int(self.max_nfev) if start is None else min(int(self.max_nfev), 300),
                )
            if np.all(np.isfinite(result.fun)) and (best is None or result.cost < best.cost):
                best = result
        if best is None:
            raise ValueError("the step-time model could not be fitted (non-finite residuals)")
        return best.x

    def _fit_once(self, F: pd.DataFrame, energy: np.ndarray, layout: _Layout, start=None):
        data = _arrays(F, layout)
        gpu = F["gpu_index"].to_numpy(dtype=int)
        tdp = F["tdp_w"].to_numpy(dtype=float)
        duration = F["duration_s"].to_numpy(dtype=float)
        n_gpus = int(gpu.max()) + 1 if len(gpu) else 1
        n_gpus = max(n_gpus, getattr(self, "_n_gpus", n_gpus))
        power = np.full(n_gpus, np.nan)
        if self.fit_target_ == "duration":
            theta = self._solve(data, duration, layout, start)
            for index in np.unique(gpu):
                rows = gpu == index
                power[index] = energy[rows].sum() / duration[rows].sum()
            seen = np.isfinite(power)
            tdp_of = np.array([tdp[gpu == i][0] for i in np.flatnonzero(seen)])
            fraction = (
                float(np.mean(power[seen] / tdp_of))
                if self.power_fraction is None
                else float(self.power_fraction)
            )
        else:
            fraction = 1.0 / 3.0 if self.power_fraction is None else float(self.power_fraction)
            theta = self._solve(data, energy / (fraction * tdp), layout, start)
        return theta, power, fraction

    def fit(self, X: pd.DataFrame, y: Any) -> StepEnergyRegressor:
        """Fit the step-time model and the power of each GPU.

        Parameters
        ----------
        X : pandas.DataFrame
            Output of :class:`StepFeatures` (with ``duration_s`` [s] where measured).
        y : array-like of shape (n_samples,)
            Energy of one training step [J], > 0.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Bad parameters, energies that are not finite and > 0, fewer rows than
            parameters.
        """
        F = self._check(X)
        energy = np.asarray(y, dtype=float).ravel()
        if energy.shape != (len(F),) or not np.all(np.isfinite(energy) & (energy > 0)):
            raise ValueError("y must hold one finite energy > 0 [J] per row of X")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence!r}")
        if int(self.n_bootstrap) < 0:
            raise ValueError(f"n_bootstrap must be >= 0, got {self.n_bootstrap!r}")
        if self.power_fraction is not None and not 0 < self.power_fraction <= 2:
            raise ValueError(f"power_fraction must be in (0, 2], got {self.power_fraction!r}")
        if self.correction not in ("boosting", None):
            raise ValueError(f"correction must be 'boosting' or None, got {self.correction!r}")
        layout = _Layout(list(F.columns))
        if len(F) <= len(layout.names):
            raise ValueError(
                f"fitting needs more rows than the {len(layout.names)} parameters, got {len(F)}"
            )
        duration = F["duration_s"].to_numpy(dtype=float)
        measured = np.all(np.isfinite(duration) & (duration > 0))
        self.fit_target_ = "duration" if measured else "energy"
        self._n_gpus = int(F["gpu_index"].max()) + 1
        theta, power, fraction = self._fit_once(F, energy, layout)
        self.params_, self.power_w_, self.power_fraction_ = theta, power, fraction
        self.param_names_ = list(layout.names)
        self.feature_names_in_ = np.asarray(F.columns, dtype=object)
        self.n_features_in_ = F.shape[1]
        rng = check_random_state(self.random_state)
        log_ratio = np.log(energy / self._energy(F, theta, power, fraction))
        # Descriptors the training rows know (e.g. no 'causal' without a model column).
        self.correction_features_ = [
            c
            for c in F.columns
            if str(c).startswith("shape:")
            and str(c).split(":", 1)[1] not in _UNCORRECTED_FEATURES
            and np.isfinite(F[c].to_numpy(dtype=float)).any()
        ]
        self.correction_gpus_ = np.unique(F["gpu_index"].to_numpy(dtype=int))
        self.correction_ = None
        self.residuals_ = self.physical_residuals_ = log_ratio
        self.correction_grid_ = {
            c: np.unique(F[c].to_numpy(dtype=float))
            for c in self.correction_features_
            if c.split(":", 1)[1] in _GRID_FEATURES
        }
        if self.correction == "boosting" and self.correction_features_:
            shape = F[self.correction_features_].to_numpy(dtype=float)
            gpu = F["gpu_index"].to_numpy(dtype=float)
            self.correction_, out_of_fold = self._fit_correction(shape, gpu, log_ratio, rng)
            self.residuals_ = log_ratio - out_of_fold
        draws, powers, fractions = [], [], []
        for _ in range(int(self.n_bootstrap)):
            rows = rng.randint(0, len(F), len(F))
            t, p, f = self._fit_once(F.iloc[rows], energy[rows], layout, start=theta)
            draws.append(t)
            powers.append(np.resize(p, power.shape) if p.shape != power.shape else p)
            fractions.append(f)
        n = len(theta)
        self.bootstrap_params_ = np.asarray(draws, dtype=float).reshape(-1, n)
        self.bootstrap_power_w_ = np.asarray(powers, dtype=float).reshape(-1, len(power))
        self.bootstrap_power_fraction_ = np.asarray(fractions, dtype=float)
        del self._n_gpus
        return self

    def _fit_correction(self, shape: np.ndarray, gpu: np.ndarray, log_ratio: np.ndarray, rng: Any):
        """Boosted trees of the log ratio, and its out-of-fold predictions.

        The trees never decrease along :data:`_MONOTONE_FEATURES` (``monotonic_cst``),
        the only correction features that change with the layers, sequence length
        or batch: energy = P · t · exp(correction) is then a product of positive
        factors none of which decreases with more layers, tokens or batch.
        """
        from sklearn.ensemble import HistGradientBoostingRegressor
        from sklearn.model_selection import GroupKFold

        arch = "lstm" if "shape:hidden_size" in self.correction_features_ else "transformer"
        settings = {**CORRECTION_DEFAULTS[arch], **dict(self.correction_params or {})}
        if settings.get("loss") in ("absolute_error", "quantile"):
            # Their leaf values are re-fitted after each tree is grown, which
            # ignores monotonic_cst (the corrected energy could fall again).
            raise ValueError(
                f"correction_params loss={settings['loss']!r} would break the monotone "
                "correction; use 'squared_error'"
            )
        settings.setdefault(
            "monotonic_cst",
            [
                1 if str(c).split(":", 1)[1] in _MONOTONE_FEATURES else 0
                for c in self.correction_features_
            ],
        )
        seed = int(rng.randint(np.iinfo(np.int32).max))

        def booster() -> HistGradientBoostingRegressor:
            return HistGradientBoostingRegressor(
                early_stopping=False, random_state=seed, **settings
            )

        # Folds of configurations, not rows: a repeated measurement of a
        # configuration in another fold would make the residuals look like noise.
        key = np.nan_to_num(np.c_[gpu, shape], nan=-np.inf)  # NaN rows compare equal
        configurations, configuration = np.unique(key, axis=0, return_inverse=True)
        configuration = configuration.ravel()
        out_of_fold = np.zeros(len(log_ratio))
        folds = min(3, len(configurations))
        if folds >= 2:
            # Shuffle the configurations, then let GroupKFold balance the folds.
            order = rng.permutation(len(configurations))
            for train, test in GroupKFold(folds).split(shape, groups=order[configuration]):
                model = booster().fit(shape[train], log_ratio[train])
                out_of_fold[test] = model.predict(shape[test])
        return _flatten_trees(booster().fit(shape, log_ratio)), out_of_fold

    def _seen(self, F: pd.DataFrame) -> np.ndarray:
        """Rows on a GPU of the training data (where the correction applies)."""
        gpu = F["gpu_index"].to_numpy(dtype=int)
        seen = np.zeros(len(gpu), dtype=bool)
        for index in self.correction_gpus_:  # a few GPUs: faster than np.isin's table
            seen |= gpu == index
        return seen

    def _inside(self, F: pd.DataFrame) -> np.ndarray:
        """Rows inside the correction's domain (see ``correction_grid_``)."""
        inside = self._seen(F)
        for column, values in self.correction_grid_.items():
            x = F[column].to_numpy(dtype=float)
            position = np.clip(np.searchsorted(values, x), 0, len(values) - 1)
            inside &= np.isclose(values[position], x, rtol=1e-9, atol=0.0)
        return inside

    def _correction(self, F: pd.DataFrame) -> np.ndarray:
        """Log correction of each row: the trees on seen GPUs, 0 elsewhere."""
        if self.correction_ is None:
            return np.zeros(len(F))
        missing = [c for c in self.correction_features_ if c not in F.columns]
        if missing:
            raise ValueError(f"the features lack the correction's columns {missing}")
        shape = [F[c].to_numpy(dtype=float) for c in self.correction_features_]
        return np.where(self._seen(F), _predict_trees(self.correction_, shape), 0.0)

    # --------------------------------------------------------------- predicting
    def _power(self, F: pd.DataFrame, power: np.ndarray, fraction: float) -> np.ndarray:
        gpu = F["gpu_index"].to_numpy(dtype=int)
        tdp = F["tdp_w"].to_numpy(dtype=float)
        known = np.full(len(F), np.nan)
        inside = gpu < len(power)
        known[inside] = power[gpu[inside]]
        if self.fit_target_ == "energy":
            known[:] = np.nan
        return np.where(np.isfinite(known), known, fraction * tdp)

    def _energy(self, F, theta, power, fraction, correction=None) -> np.ndarray:
        layout = _Layout(list(F.columns))
        energy = self._power(F, power, fraction) * _step_time(theta, _arrays(F, layout), layout)
        return energy if correction is None else energy * np.exp(correction)

    def predict_time(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted duration of one training step [s] (pseudo-time [J/W] when the
        model was fitted without durations)."""
        check_is_fitted(self, "params_")
        F = self._check(X)
        layout = _Layout(list(F.columns))
        return _step_time(self.params_, _arrays(F, layout), layout)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted energy of one training step [J]."""
        check_is_fitted(self, "params_")
        F = self._check(X)
        return self._energy(
            F, self.params_, self.power_w_, self.power_fraction_, self._correction(F)
        )

    def predict_interval(
        self, X: pd.DataFrame, confidence: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Prediction interval of the energy [J]: bootstrap fits × training residuals.

        Each bootstrap fit's prediction is multiplied by every training residual
        (exp of the log residual); the interval is the central ``confidence``
        quantile range of those draws. Configurations inside the correction's
        domain (values measured on that GPU, see ``correction_grid_``) take the
        out-of-fold residuals of the corrected model, all others the residuals of
        the physical model: the correction is trusted where it was measured.

        Parameters
        ----------
        X : pandas.DataFrame
            Output of :class:`StepFeatures`.
        confidence : float, optional
            Nominal level; default the estimator's ``confidence``.

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            Lower and upper bounds [J].

        Raises
        ------
        ValueError
            The model was fitted with ``n_bootstrap=0``.
        """
        check_is_fitted(self, "params_")
        level = self.confidence if confidence is None else confidence
        if not 0 < level < 1:
            raise ValueError(f"confidence must be in (0, 1), got {level!r}")
        if len(self.bootstrap_params_) == 0:
            raise ValueError("prediction intervals need n_bootstrap > 0")
        F = self._check(X)
        correction = self._correction(F)
        preds = np.stack(
            [
                self._energy(F, theta, power, fraction, correction)
                for theta, power, fraction in zip(
                    self.bootstrap_params_,
                    self.bootstrap_power_w_,
                    self.bootstrap_power_fraction_,
                    strict=True,
                )
            ]
        )
        tail = (1 - level) / 2
        low, high = np.empty(len(F)), np.empty(len(F))
        inside = self._inside(F)  # without a correction both residual sets are the same
        for rows, residuals in ((inside, self.residuals_), (~inside, self.physical_residuals_)):
            if not rows.any():
                continue
            # Quantiles of the product of a bootstrap prediction and a residual factor.
            draws = preds[:, rows, None] * np.exp(residuals)[None, None, :]
            draws = draws.transpose(1, 0, 2).reshape(int(rows.sum()), -1)
            low[rows], high[rows] = np.quantile(draws, [tail, 1 - tail], axis=1)
        return low, high

    @property
    def coefficients_(self) -> pd.Series:
        """Fitted parameters by name, with the power of each GPU [W]."""
        check_is_fitted(self, "params_")
        values = dict(zip(self.param_names_, self.params_, strict=True))
        for index, power in enumerate(self.power_w_):
            values[f"power_w:{index}"] = power
        values["power_fraction"] = self.power_fraction_
        return pd.Series(values, dtype=float)


def make_step_energy_pipeline(
    laws: Mapping[str, Mapping[str, Any]],
    *,
    arch: str = "transformer",
    peak_flops: Mapping[str, float] | None = None,
    memory_bandwidth: Mapping[str, float] | None = None,
    power_limit: Mapping[str, float] | None = None,
    regressor: StepEnergyRegressor | None = None,
) -> Pipeline:
    """A pipeline from configurations to the energy of a training step [J].

    Parameters
    ----------
    laws, arch, peak_flops, memory_bandwidth, power_limit
        See :class:`StepFeatures`.
    regressor : StepEnergyRegressor, optional
        Default ``StepEnergyRegressor()``.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``features`` and ``energy``. Fit it on configurations (with
        ``duration_s`` where measured) and energies [J].

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> laws = {"NVIDIA A100 80GB PCIe": {
    ...     op: (0.68, 8.0, 0.78) for op in ("qkv_projections", "final_projection",
    ...                                      "attention_scores", "attention_output")}}
    >>> rng = np.random.default_rng(0)
    >>> configs = pd.DataFrame({"n_layers": rng.choice([4, 6, 12], 60),
    ...     "batch_size": rng.choice([64, 128], 60), "seq_len": rng.choice([256, 512], 60),
    ...     "d_model": rng.choice([256, 512, 768], 60), "n_heads": 8})
    >>> pipe = make_step_energy_pipeline(laws)
    >>> features = pipe[0].fit_transform(configs)
    >>> configs["duration_s"] = 1.2 * features.filter(like="time:").sum(axis=1) + 0.01
    >>> energy = 95.0 * configs["duration_s"]
    >>> pipe = pipe.fit(configs, energy)
    >>> round(float(pipe[-1].power_w_[0]), 1)
    95.0
    >>> bool(np.allclose(pipe.predict(configs), energy, rtol=0.02))
    True
    """
    features = StepFeatures(
        laws=laws,
        arch=arch,
        peak_flops=peak_flops,
        memory_bandwidth=memory_bandwidth,
        power_limit=power_limit,
    )
    return Pipeline([("features", features), ("energy", regressor or StepEnergyRegressor())])


def predict_interval(
    pipeline: Pipeline, X: pd.DataFrame, confidence: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Prediction interval [J] of a fitted :func:`make_step_energy_pipeline` pipeline.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        Fitted, with a :class:`StepEnergyRegressor` fitted with ``n_bootstrap > 0``.
    X : pandas.DataFrame
        Configurations.
    confidence : float, optional
        Nominal level; default the regressor's.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Lower and upper bounds [J].
    """
    return pipeline[-1].predict_interval(pipeline[:-1].transform(X), confidence)
