"""From configurations to per-operation durations, and the energy pipeline.

:class:`OperationDurations` is a scikit-learn transformer: a DataFrame of model
configurations in (canonical columns of :mod:`powerfit.formats`), one duration
column per elementary operation out [s]. The duration of an operation is the FLOPs
of one layer's forward pass of one batch, turned into time by the operation's
efficiency law on the configuration's GPU, times the number of layers:

    t_i = n_layers · c_i / (peak_flops · η_i(c_i))                [s]

(× 3 with ``flops='training'``: forward + backward). :func:`make_energy_pipeline`
chains it with :class:`powerfit.EnergyRegressor` into a pipeline from
configurations to energy [J].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from powerfit.exceptions import DataError
from powerfit.hardware.gpus import get_gpu
from powerfit.hardware.gpus import peak_flops as _catalogue_peak
from powerfit.paper import flops as _flops
from powerfit.paper.energy import EnergyRegressor
from powerfit.paper.laws import PowerLawEfficiency, efficiency, plain

__all__ = [
    "LawsCloneMixin",
    "OperationDurations",
    "check_configs",
    "law_coefficients",
    "make_energy_pipeline",
]

#: Shape columns each architecture needs.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "transformer": ("batch_size", "seq_len", "d_model", "n_heads"),
    "lstm": ("batch_size", "input_size", "hidden_size"),
    "gru": ("batch_size", "input_size", "hidden_size"),
}


def check_configs(
    configs: pd.DataFrame, arch: str, *, n_layers: bool = True, source: str | None = None
) -> None:
    """Check configurations, naming the first bad row and column.

    Parameters
    ----------
    configs : pandas.DataFrame
        One configuration per row.
    arch : {'transformer', 'lstm', 'gru'}
        Architecture: decides the required columns.
    n_layers : bool, default True
        Whether ``n_layers`` is required too.
    source : str, optional
        File the configurations came from, for the message.

    Raises
    ------
    powerfit.exceptions.DataError
        A required column is missing, or a value is not a finite number > 0, or a
        Transformer has more heads than d_model. Rows are numbered from 1 in the
        order of ``configs`` (the data row of a CSV file).
    """
    _checked_columns(configs, arch, n_layers=n_layers, source=source)


def _checked_columns(
    configs: pd.DataFrame, arch: str, *, n_layers: bool = True, source: str | None = None
) -> dict[str, np.ndarray]:
    """:func:`check_configs`, returning the required columns it read, as floats.

    Every value returned is a finite number > 0: a caller that reads these columns
    next (:class:`powerfit.paper.step_features.StepFeatures`) converts and checks them once.
    """
    required = list(REQUIRED_COLUMNS[arch]) + (["n_layers"] if n_layers else [])
    optional = [c for c in ("d_ff", "seq_len") if c in configs.columns and c not in required]
    missing = [c for c in required if c not in configs.columns]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(map(repr, missing))}; a {arch} configuration "
            f"needs {', '.join(required)}",
            source=source,
        )
    checked = {}
    for column in required + optional:
        values = pd.to_numeric(configs[column], errors="coerce").to_numpy(dtype=float)
        bad = ~(np.isfinite(values) & (values > 0))
        if column in optional:
            bad &= configs[column].notna().to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"{column} must be a finite number > 0, got {plain(configs[column].iloc[row])!r}",
                source=source,
                row=row + 1,
                column=column,
            )
        if column in required:
            checked[column] = values
    if arch == "transformer":
        heads, width = checked["n_heads"], checked["d_model"]
        bad = heads > width
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"n_heads ({heads[row]:g}) must not exceed d_model ({width[row]:g})",
                source=source,
                row=row + 1,
                column="n_heads",
            )
    return checked


def law_coefficients(law: Any) -> tuple[float, float, float]:
    """(eta_max, k, alpha) of a fitted :class:`PowerLawEfficiency`, a mapping or a triple.

    Raises
    ------
    ValueError
        For an unfitted :class:`PowerLawEfficiency`.
    """
    if isinstance(law, PowerLawEfficiency):
        if not hasattr(law, "eta_max_"):
            raise ValueError(
                "an efficiency law is an unfitted PowerLawEfficiency: fit it first, or pass "
                "its coefficients (law.coefficients_ or an (eta_max, k, alpha) triple)"
            )
        return law.eta_max_, law.k_, law.alpha_
    if isinstance(law, Mapping):
        return float(law["eta_max"]), float(law["k"]), float(law["alpha"])
    eta_max, k, alpha = law
    return float(eta_max), float(k), float(alpha)


class LawsCloneMixin:
    """Clone an estimator whose ``laws`` parameter holds fitted efficiency laws.

    scikit-learn's :func:`~sklearn.base.clone` clones every estimator it finds in a
    parameter, dictionaries included: the fitted :class:`PowerLawEfficiency` objects
    of ``laws`` would come back unfitted, and the clone (inside ``cross_val_score``,
    ``GridSearchCV``...) could not use them. The laws are data to this estimator,
    not sub-models it fits: its clone keeps them as they are (deep copies, fitted
    attributes included); every other parameter is cloned as usual.
    """

    def __sklearn_clone__(self) -> Any:
        import copy

        from sklearn.base import clone

        params = self.get_params(deep=False)
        params = {
            key: copy.deepcopy(value) if key == "laws" else clone(value, safe=False)
            for key, value in params.items()
        }
        new = type(self)(**params)
        if hasattr(self, "_sklearn_output_config"):
            new._sklearn_output_config = copy.deepcopy(self._sklearn_output_config)
        return new


def _find_column(columns: list[str], name: str) -> str | None:
    """``name``, or the one column ``<prefix>__name`` (a ColumnTransformer's output)."""
    if name in columns:
        return name
    hits = [c for c in columns if isinstance(c, str) and c.rsplit("__", 1)[-1] == name]
    return hits[0] if len(hits) == 1 else None


class OperationDurations(LawsCloneMixin, TransformerMixin, BaseEstimator):
    """Per-operation durations [s] of model configurations, from efficiency laws.

    Parameters
    ----------
    laws : dict of str to dict of str to law
        GPU name → operation name → law. A law is a fitted
        :class:`PowerLawEfficiency`, a mapping with ``eta_max``, ``k``, ``alpha`` or
        an ``(eta_max, k, alpha)`` triple (η as a fraction, c in TFLOP). Every GPU
        must have a law for each operation in ``operations``.
    operations : sequence of str, optional
        Operations to output, in order; default: those with a law on every GPU, in
        the order of :data:`powerfit.paper.flops.OPERATIONS`.
    arch : {'transformer', 'lstm', 'gru'}, default 'transformer'
        Architecture of the configurations.
    peak_flops : dict of str to float, optional
        GPU name → peak throughput [FLOP/s]; default: the catalogue's value at the
        GPU's default precision (:func:`powerfit.hardware.gpus.peak_flops`).
    flops : {'forward', 'training'}, default 'forward'
        Time of the forward pass (the paper's features) or of a training step
        (forward + backward, 3× the forward time).
    per_layer : bool, default False
        Durations of one layer instead of the whole stack (no ``n_layers`` needed).

    Notes
    -----
    Input columns: ``batch_size``, ``seq_len``, ``d_model``, ``n_heads`` (``d_ff``
    optional) for a Transformer; ``batch_size``, ``input_size``, ``hidden_size``
    (``seq_len`` optional, default 1) for an LSTM or GRU; ``n_layers`` unless
    ``per_layer``; ``gpu`` when ``laws`` has more than one GPU (otherwise the only
    GPU is used). Other columns are ignored. Columns named ``<prefix>__<name>``
    (the output of a :class:`~sklearn.compose.ColumnTransformer` with
    ``set_output(transform="pandas")``) are read as ``<name>`` when exactly one
    column ends so and none is named ``<name>`` itself.

    A plain array has no column names, so its order cannot be checked by name; it is
    read by position, as ``batch_size, seq_len, d_model, n_heads, n_layers``
    (Transformer) or ``batch_size, input_size, hidden_size, n_layers`` (LSTM/GRU;
    without ``n_layers`` when ``per_layer``), **only** when the order is
    unambiguous: exactly that many columns, every value a whole number > 0, and for
    a Transformer ``d_model`` a multiple of ``n_heads`` (as PyTorch's attention
    requires). Any other array is refused with a message; so is an array given to
    a transformer fitted on a DataFrame (the names it was fitted with cannot be
    matched). Give a DataFrame (``set_output(transform="pandas")`` on the
    transformers in front) to be safe.

    The fitted laws in ``laws`` are kept, fitted, by :func:`~sklearn.base.clone`
    (:class:`LawsCloneMixin`), so the transformer and the pipelines that hold it
    work in ``cross_val_score`` and ``GridSearchCV``.

    Examples
    --------
    >>> import pandas as pd
    >>> from powerfit import OperationDurations
    >>> laws = {"NVIDIA A100 80GB PCIe": {"qkv_projections": (0.6938, 10.37, 0.78)}}
    >>> configs = pd.DataFrame({"batch_size": [64], "seq_len": [320], "d_model": [512],
    ...                         "n_heads": [8], "n_layers": [6]})
    >>> t = OperationDurations(laws).fit_transform(configs)
    >>> round(float(t["qkv_projections"].iloc[0]) * 1e4, 2)  # the paper's "µs"
    35.08
    """

    def __init__(
        self,
        laws: Mapping[str, Mapping[str, Any]] | None = None,
        operations: Any = None,
        arch: str = "transformer",
        peak_flops: Mapping[str, float] | None = None,
        flops: str = "forward",
        per_layer: bool = False,
    ) -> None:
        self.laws = laws
        self.operations = operations
        self.arch = arch
        self.peak_flops = peak_flops
        self.flops = flops
        self.per_layer = per_layer

    # --------------------------------------------------------------- validation
    def _positional_columns(self) -> tuple[str, ...]:
        layers = () if self.per_layer else ("n_layers",)
        if self.arch == "transformer":
            return ("batch_size", "seq_len", "d_model", "n_heads", *layers)
        return ("batch_size", "input_size", "hidden_size", *layers)

    def _resolved(self) -> tuple[dict[str, dict[str, tuple]], list[str], dict[str, float]]:
        if self.arch not in _flops.OPERATIONS:
            raise ValueError(
                f"arch must be one of {', '.join(_flops.ARCHITECTURES)}, got {self.arch!r}"
            )
        if self.flops not in ("forward", "training"):
            raise ValueError(f"flops must be 'forward' or 'training', got {self.flops!r}")
        if not self.laws:
            raise ValueError("laws is required: GPU name -> operation name -> law")
        known_ops = _flops.OPERATIONS[self.arch]
        laws: dict[str, dict[str, tuple]] = {}
        for gpu, per_op in self.laws.items():
            if not isinstance(per_op, Mapping):
                raise ValueError(
                    f"laws[{gpu!r}] must map operation names to laws (GPU -> op -> law)"
                )
            for op in per_op:
                if op not in known_ops:
                    raise ValueError(
                        f"laws[{gpu!r}] has unknown {self.arch} operation {op!r}; "
                        f"known: {', '.join(known_ops)}"
                    )
            laws[gpu] = {op: law_coefficients(law) for op, law in per_op.items()}
        if self.operations is None:
            ops = [op for op in known_ops if all(op in per_op for per_op in laws.values())]
        else:
            ops = list(self.operations)
            for gpu, per_op in laws.items():
                missing = [op for op in ops if op not in per_op]
                if missing:
                    raise ValueError(f"no law for {', '.join(missing)} on GPU {gpu!r}")
        if not ops:
            raise ValueError("no operation has a law on every GPU")
        peaks = {}
        for gpu in laws:
            if self.peak_flops is not None and gpu in self.peak_flops:
                peak = float(self.peak_flops[gpu])
            else:
                peak = _catalogue_peak(gpu)
            if not np.isfinite(peak) or peak <= 0:
                raise ValueError(f"peak_flops[{gpu!r}] must be > 0 [FLOP/s], got {plain(peak)!r}")
            peaks[gpu] = peak
        return laws, ops, peaks

    def _frame(self, X: Any) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            return self._renamed(X)
        if getattr(self, "feature_names_in_", None) is not None:
            raise ValueError(
                "X is an array without column names, but this transformer was fitted on a "
                f"DataFrame with columns {list(self.feature_names_in_)}: its columns cannot "
                "be matched by name; pass a DataFrame (set_output(transform='pandas') on the "
                "transformers in front)"
            )
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise ValueError(
                f"X must be a DataFrame of configurations or a 2-D array, got {arr.ndim}-D"
            )
        cols = self._positional_columns()
        hint = (
            "; pass a DataFrame with named columns (e.g. set_output(transform='pandas') on "
            "a ColumnTransformer in front) or an array of exactly these columns in this order"
        )
        if arr.shape[1] != len(cols):
            raise ValueError(
                f"X is an array without column names of {arr.shape[1]} columns: its order is "
                f"ambiguous; an array must have exactly {len(cols)} columns "
                f"({', '.join(cols)}){hint}"
            )
        frame = pd.DataFrame(arr, columns=list(cols))
        try:
            values = frame.to_numpy(dtype=float)
        except (TypeError, ValueError):
            values = np.full(frame.shape, np.nan)
        whole = np.isfinite(values) & (values > 0) & (values == np.round(values))
        if not whole.all():
            row, col = np.argwhere(~whole)[0]
            raise ValueError(
                f"X is an array without column names, read as ({', '.join(cols)}); row "
                f"{row + 1}, column {cols[col]!r} holds {plain(arr[row, col])!r}, not a whole "
                f"number > 0: the array's order does not match{hint}"
            )
        if self.arch == "transformer":
            d_model, n_heads = values[:, 2], values[:, 3]
            bad = np.mod(d_model, n_heads) != 0
            if bad.any():
                row = int(np.argmax(bad))
                raise ValueError(
                    f"X is an array without column names, read as ({', '.join(cols)}); row "
                    f"{row + 1}: d_model {plain(d_model[row]):g} is not a multiple of n_heads "
                    f"{plain(n_heads[row]):g}: the array's order does not match{hint}"
                )
        return frame

    def _renamed(self, X: pd.DataFrame) -> pd.DataFrame:
        """X with ``<prefix>__<name>`` columns renamed to the names this transformer reads."""
        wanted = (
            *self._positional_columns(),
            "n_layers",
            "d_ff",
            "seq_len",
            "gpu",
        )
        columns = list(X.columns)
        rename = {}
        for name in dict.fromkeys(wanted):
            found = _find_column(columns, name)
            if found is not None and found != name:
                rename[found] = name
        return X.rename(columns=rename) if rename else X

    # -------------------------------------------------------------- sklearn API
    def fit(self, X: Any, y: Any = None) -> OperationDurations:
        """Check the laws and the columns of X; nothing is learned.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_columns)
            Configurations (see Notes).
        y : ignored

        Returns
        -------
        self
        """
        laws, ops, peaks = self._resolved()
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        frame = self._frame(X)
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        self.laws_, self.operations_, self.peak_flops_ = laws, ops, peaks
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        """Per-operation durations [s] of each configuration.

        Parameters
        ----------
        X : DataFrame or array-like
            Configurations (see Notes).

        Returns
        -------
        pandas.DataFrame
            One column per operation [s], the index of X.

        Raises
        ------
        ValueError
            A missing column, an invalid value (named), a GPU without laws.
        """
        check_is_fitted(self, "operations_")
        frame = self._frame(X)
        check_configs(frame, self.arch, n_layers=not self.per_layer)
        flops = _flops.configuration_flops(frame, self.arch, operations=self.operations_)
        groups = self._gpu_groups(frame)
        factor = 3.0 if self.flops == "training" else 1.0
        layers = None if self.per_layer else frame["n_layers"].to_numpy(dtype=float)
        columns = {}
        for op in self.operations_:
            c = flops[op].to_numpy(dtype=float)
            t = np.empty_like(c)
            for gpu, rows in groups:
                eta = efficiency(c[rows], *self.laws_[gpu][op])
                eta *= self.peak_flops_[gpu] / factor
                t[rows] = np.divide(c[rows], eta, out=eta)
            if layers is not None:
                t *= layers
            columns[op] = t
        return pd.DataFrame(columns, index=frame.index, copy=False)

    def operation_flops(self, X: Any) -> pd.DataFrame:
        """FLOPs of one layer's forward pass of one batch, per operation [FLOP]."""
        check_is_fitted(self, "operations_")
        frame = self._frame(X)
        check_configs(frame, self.arch, n_layers=False)
        return _flops.configuration_flops(frame, self.arch, operations=self.operations_)

    def _gpu_groups(self, frame: pd.DataFrame) -> list[tuple[str, Any]]:
        """(GPU key of ``laws_``, row selector) pairs covering every row."""
        known = list(self.laws_)
        if "gpu" not in frame.columns or len(frame) == 0:
            if len(known) > 1 and len(frame):
                raise ValueError(
                    f"column 'gpu' is required: the laws cover {len(known)} GPUs ({known})"
                )
            return [(known[0], slice(None))]
        codes, values = pd.factorize(frame["gpu"].astype(str))
        groups = []
        for code, value in enumerate(values):
            key = self._law_key(value, known)
            rows = slice(None) if len(values) == 1 else codes == code
            groups.append((key, rows))
        return groups

    def _law_key(self, value: str, known: list[str]) -> str:
        if value in self.laws_:
            return value
        try:
            canonical = get_gpu(value).name
        except ValueError:
            canonical = None
        for name in known:
            try:
                if canonical is not None and get_gpu(name).name == canonical:
                    return name
            except ValueError:
                continue
        raise ValueError(
            f"column 'gpu': no efficiency laws for GPU {plain(value)!r}; the model knows {known}"
        )

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns: the operations."""
        check_is_fitted(self, "operations_")
        return np.asarray(self.operations_, dtype=object)


def make_energy_pipeline(
    laws: Mapping[str, Mapping[str, Any]],
    *,
    arch: str = "transformer",
    operations: Any = None,
    peak_flops: Mapping[str, float] | None = None,
    flops: str = "forward",
    regressor: EnergyRegressor | None = None,
) -> Pipeline:
    """A pipeline from configurations to energy [J]: durations, then a linear energy model.

    Parameters
    ----------
    laws, arch, operations, peak_flops, flops
        See :class:`OperationDurations`.
    regressor : EnergyRegressor, optional
        The energy model; default ``EnergyRegressor()`` (non-negative least squares).

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``durations`` and ``energy``; fit it on configurations and energies [J].
    """
    durations = OperationDurations(
        laws=laws, operations=operations, arch=arch, peak_flops=peak_flops, flops=flops
    )
    return Pipeline(
        [
            ("durations", durations),
            ("energy", regressor if regressor is not None else EnergyRegressor()),
        ]
    )
