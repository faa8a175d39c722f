"""The energy models a fit can build, by name, and the input columns each reads.

:data:`ENERGY_MODELS`: ``paper`` (:func:`default_energy_model`, the published method)
and ``step`` (:func:`step_energy_model`, powerfit's training-step model); a custom
factory has the signature :data:`EnergyModelFactory`. :func:`model_input_columns` says
which configuration columns a model reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from powerfit.exceptions import DataError
from powerfit.paper.durations import REQUIRED_COLUMNS

__all__ = [
    "ENERGY_MODELS",
    "EnergyModelFactory",
    "default_energy_model",
    "model_input_columns",
    "step_energy_model",
]

#: Signature of an energy-model factory: ``factory(laws, arch=..., peak_flops=...)``
#: returns an unfitted scikit-learn estimator from configurations to energy [J].
EnergyModelFactory = Callable[..., Any]

#: Optional input columns of the model, beside the required ones.
_OPTIONAL_COLUMNS = {"transformer": ("d_ff",), "lstm": ("seq_len",), "gru": ("seq_len",)}
#: ... and those the step model reads as well (output head, model family). Not the
#: parameter count: the model computes it from the shape, as it must for a user's
#: configuration that does not give it.
_STEP_COLUMNS = {"transformer": ("vocab_size", "model"), "lstm": (), "gru": ()}


def default_energy_model(
    laws: Mapping[str, Mapping[str, Any]],
    *,
    arch: str = "transformer",
    peak_flops: Mapping[str, float] | None = None,
) -> Any:
    """The default energy model: the paper's durations → linear energy pipeline.

    Parameters
    ----------
    laws : dict of str to dict of str to law
        GPU name → operation → law (see :class:`~powerfit.paper.durations.OperationDurations`).
    arch : {'transformer', 'lstm', 'gru'}, default 'transformer'
    peak_flops : dict of str to float, optional
        GPU name → peak throughput [FLOP/s] the efficiencies were measured against.

    Returns
    -------
    sklearn.pipeline.Pipeline
        ``make_energy_pipeline(laws, ...)`` with ``EnergyRegressor()``.
    """
    from powerfit.paper.durations import make_energy_pipeline
    from powerfit.paper.energy import EnergyRegressor

    return make_energy_pipeline(
        laws, arch=arch, peak_flops=peak_flops, regressor=EnergyRegressor()
    )


def step_energy_model(
    laws: Mapping[str, Mapping[str, Any]],
    *,
    arch: str = "transformer",
    peak_flops: Mapping[str, float] | None = None,
) -> Any:
    """powerfit's training-step model: physical step time × power, with a learned correction.

    Parameters
    ----------
    laws, arch, peak_flops
        As in :func:`default_energy_model`; ``arch`` 'transformer' or 'lstm'.

    Returns
    -------
    sklearn.pipeline.Pipeline
        :func:`powerfit.paper.step_energy.make_step_energy_pipeline` with a seeded
        :class:`~powerfit.paper.step_energy.StepEnergyRegressor` (20 bootstrap refits for
        prediction intervals). :func:`~powerfit.tracking.fitting.fit_coefficients` fits it on the
        measured step durations ``duration_s`` [s] as well as the energies.

    Raises
    ------
    DataError
        For 'gru' (the step model covers Transformers and LSTMs).
    """
    from powerfit.paper.step_energy import StepEnergyRegressor, make_step_energy_pipeline

    if arch not in ("transformer", "lstm"):
        raise DataError(f"the step energy model covers transformer and lstm, not {arch!r}")
    regressor = StepEnergyRegressor(n_bootstrap=20, random_state=0)
    return make_step_energy_pipeline(laws, arch=arch, peak_flops=peak_flops, regressor=regressor)


#: Energy models by name: ``paper`` (the published method, the default) and ``step``.
ENERGY_MODELS: dict[str, EnergyModelFactory] = {
    "paper": default_energy_model,
    "step": step_energy_model,
}


def model_input_columns(arch: str, model: str = "paper") -> tuple[list[str], list[str]]:
    """(required, optional) configuration columns of a model for ``arch``.

    Parameters
    ----------
    arch : {'transformer', 'lstm', 'gru'}
    model : {'paper', 'step'}, default 'paper'
        The energy model (:data:`ENERGY_MODELS`).

    Examples
    --------
    >>> model_input_columns("transformer")
    (['n_layers', 'batch_size', 'seq_len', 'd_model', 'n_heads'], ['d_ff', 'gpu'])
    >>> model_input_columns("transformer", "step")[1]
    ['d_ff', 'vocab_size', 'model', 'gpu']
    """
    optional = [*_OPTIONAL_COLUMNS[arch]]
    if model == "step":
        optional += _STEP_COLUMNS[arch]
    return ["n_layers", *REQUIRED_COLUMNS[arch]], [*optional, "gpu"]
