"""The features of the training-step energy model: physical reference times of a step.

:class:`StepFeatures` turns configurations into the reference times of one training
step (forward + backward) of every dense operation, each from the efficiency law of
its GPU, with the FLOPs of one call, the times of the memory-bound work at the GPU's
bandwidth, and the descriptors the correction reads (step 1 of
:mod:`powerfit.paper.step_energy`, whose notes give the formulas). A GPU absent from
the training data is described by its own laws, peak, bandwidth and power limit
(:mod:`powerfit.hardware`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from powerfit.hardware.gpus import GPUS, get_gpu
from powerfit.hardware.gpus import peak_flops as _catalogue_peak
from powerfit.paper.durations import LawsCloneMixin, _checked_columns, law_coefficients
from powerfit.paper.laws import efficiency

__all__ = ["MEMORY_BANDWIDTH", "StepFeatures"]

TFLOP = 1e12

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
        :class:`~powerfit.paper.laws.PowerLawEfficiency`, a mapping with ``eta_max``,
        ``k``, ``alpha`` or a triple; η as a fraction, c in TFLOP). Transformer:
        ``qkv_projections``, ``final_projection``, ``attention_scores``,
        ``attention_output`` (``ffn`` and ``lm_head`` fall back to the final
        projection's law). LSTM: ``input_gates``, ``hidden_gates``.
    arch : {'transformer', 'lstm'}, default 'transformer'
        Architecture of the configurations.
    peak_flops : dict of str to float, optional
        GPU → peak throughput [FLOP/s]; default the catalogue's
        (:func:`powerfit.hardware.gpus.peak_flops`), which for the RTX 2080 Ti is the
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
    through for :class:`~powerfit.paper.step_energy.StepEnergyRegressor` to fit the step time on.

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
