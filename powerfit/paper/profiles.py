"""Published coefficient sets ("profiles"), shipped as data inside the package.

A profile holds the efficiency laws of one GPU and, where published, a linear energy
model on per-operation durations. The JSON files in ``powerfit/data/profiles/``
keep the numbers **as printed** in the paper (η_max in percent, energy
coefficients per "paper µs"); :func:`load_profile` converts them to SI.

The paper's duration convention (method.md §4) is
``t_paper = 1e6 · L · c / (v_max · η_percent) = 1e4 · t`` where ``t`` is the true
duration [s] of L layers' forward passes; an energy coefficient per paper unit is
therefore 1e4 times smaller than the same coefficient per second [W]. Profiles
report ``duration_paper`` beside ``duration_s`` so that the published tables can be
checked digit by digit.

Available: ``mayaki2025-a100``, ``mayaki2025-rtx2080ti`` (Table 1 + Table 8) and
``mayaki2025-lstm-a100`` (Table 2; laws only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from powerfit.paper.durations import OperationDurations
    from powerfit.paper.laws import PowerLawEfficiency

__all__ = ["PAPER_DURATION_SCALE", "Profile", "available_profiles", "load_profile"]

#: Paper duration units per second: t_paper = PAPER_DURATION_SCALE · t [s].
PAPER_DURATION_SCALE = 1e4


@dataclass(frozen=True)
class Profile:
    """A published set of coefficients, in SI units.

    Attributes
    ----------
    name : str
    description : str
    reference : str
    arch : str
    gpu : str
        NVML name of the GPU.
    peak_flops : float
        Peak throughput the coefficients were derived with [FLOP/s].
    precision : str
        Precision of the measurements behind the coefficients (``tf32`` for the
        published A100 data, ``fp32`` for the RTX 2080 Ti: see
        :func:`powerfit.store.readers.mayaki2025.mayaki_precision` for the evidence).
    laws : dict of str to tuple of float
        Operation → (eta_max [fraction], k [TFLOP^-alpha], alpha [-]).
    intercept : float or None
        Energy model constant [J] (None without an energy model).
    coef : dict of str to float
        Operation → energy coefficient [W].
    paper_units : bool
        Whether the published durations are in the paper's convention.
    """

    name: str
    description: str
    reference: str
    arch: str
    gpu: str
    peak_flops: float
    precision: str
    laws: dict[str, tuple[float, float, float]]
    intercept: float | None = None
    coef: dict[str, float] = field(default_factory=dict)
    paper_units: bool = True

    @property
    def has_energy_model(self) -> bool:
        """Whether the profile has an energy model."""
        return self.intercept is not None

    def durations(self) -> OperationDurations:
        """A fitted :class:`OperationDurations` with this profile's laws and peak."""
        import numpy as np
        import pandas as pd

        from powerfit.paper.durations import OperationDurations

        ops = list(self.coef) if self.coef else None
        transformer = OperationDurations(
            laws={self.gpu: self.laws},
            operations=ops,
            arch=self.arch,
            peak_flops={self.gpu: self.peak_flops},
        )
        columns = ["batch_size", "seq_len", "d_model", "n_heads", "n_layers"]
        if self.arch != "transformer":
            columns = ["batch_size", "input_size", "hidden_size", "n_layers"]
        return transformer.fit(pd.DataFrame(np.ones((1, len(columns))), columns=columns))

    def law_estimators(self) -> dict[str, PowerLawEfficiency]:
        """The published laws as fitted :class:`~powerfit.paper.laws.PowerLawEfficiency` objects.

        For code that expects fitted laws (``powerfit fit --laws-from``): each has
        the published ``eta_max_`` [fraction], ``k_`` [TFLOP^-alpha] and
        ``alpha_`` [-]; what only a fit knows is marked unknown (``r2_``, ``rmse_``
        and the standard errors NaN, ``n_samples_fit_`` 0: no measurement of this
        store was used).

        Returns
        -------
        dict of str to PowerLawEfficiency
            Operation → law, in the profile's order.

        Examples
        --------
        >>> law = load_profile("mayaki2025-a100").law_estimators()["qkv_projections"]
        >>> law.eta_max_, law.k_, law.alpha_, law.n_samples_fit_
        (0.6938, 10.37, 0.78, 0)
        """
        import numpy as np

        from powerfit.paper.laws import PowerLawEfficiency

        out = {}
        for op, (eta_max, k, alpha) in self.laws.items():
            law = PowerLawEfficiency()
            law.eta_max_, law.k_, law.alpha_ = float(eta_max), float(k), float(alpha)
            law.stderr_ = {"eta_max": np.nan, "k": np.nan, "alpha": np.nan}
            law.correlation_ = np.full((3, 3), np.nan)
            law.r2_ = law.rmse_ = float("nan")
            law.n_samples_fit_ = 0
            law.inlier_mask_ = np.zeros(0, dtype=bool)
            law.converged_ = True
            law.n_features_in_ = 1
            law.feature_names_in_ = np.asarray(["flops"], dtype=object)
            out[op] = law
        return out

    def pipeline(self) -> Pipeline:
        """The profile as a ready-to-predict pipeline: configurations → energy [J].

        Raises
        ------
        ValueError
            If the profile has no energy model.
        """
        import numpy as np
        from sklearn.pipeline import Pipeline

        from powerfit.paper.energy import EnergyRegressor

        if not self.has_energy_model:
            raise ValueError(f"profile {self.name!r} has no energy model (laws only)")
        durations = self.durations()
        regressor = EnergyRegressor()
        regressor.n_features_in_ = len(durations.operations_)
        regressor.feature_names_in_ = np.asarray(durations.operations_, dtype=object)
        regressor.intercept_ = float(self.intercept)
        regressor.coef_ = np.array([self.coef[op] for op in durations.operations_])
        return Pipeline([("durations", durations), ("energy", regressor)])

    def estimate(self, configs: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series | None]:
        """Per-operation breakdown and energy of configurations.

        Parameters
        ----------
        configs : pandas.DataFrame
            Configurations (columns as for :class:`OperationDurations`).

        Returns
        -------
        operations : pandas.DataFrame
            Long table: ``config`` (row label of ``configs``), ``op``, ``flops`` [FLOP,
            one layer, one forward pass of one batch], ``efficiency`` [fraction],
            ``duration_s`` [s, all layers], and ``duration_paper`` (paper units).
        energy : pandas.Series or None
            Energy [J] per configuration (None without an energy model).
        """
        import numpy as np
        import pandas as pd

        from powerfit.paper.laws import efficiency

        durations = self.durations()
        flops = durations.operation_flops(configs)
        times = durations.transform(configs)
        parts = []
        for op in durations.operations_:
            part = pd.DataFrame(
                {
                    "config": configs.index,
                    "op": op,
                    "flops": flops[op].to_numpy(),
                    "efficiency": efficiency(flops[op].to_numpy(), *self.laws[op]),
                    "duration_s": times[op].to_numpy(),
                }
            )
            if self.paper_units:
                part["duration_paper"] = part["duration_s"] * PAPER_DURATION_SCALE
            parts.append(part)
        table = pd.concat(parts, ignore_index=True)
        energy = None
        if self.has_energy_model:
            energy = pd.Series(
                self.intercept
                + times[list(self.coef)].to_numpy() @ np.array(list(self.coef.values())),
                index=configs.index,
                name="energy_j",
            )
        return table, energy


def available_profiles() -> list[str]:
    """Names of the profiles shipped with powerfit."""
    folder = resources.files("powerfit") / "data" / "profiles"
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def load_profile(name: str) -> Profile:
    """Load a published profile by name, converted to SI units.

    Parameters
    ----------
    name : str
        E.g. ``'mayaki2025-a100'`` (see :func:`available_profiles`).

    Returns
    -------
    Profile

    Raises
    ------
    ValueError
        For an unknown profile; the message lists the available ones.

    Examples
    --------
    >>> profile = load_profile("mayaki2025-a100")
    >>> profile.laws["qkv_projections"]
    (0.6938, 10.37, 0.78)
    >>> round(profile.coef["final_projection"])  # [W]
    5641
    """
    names = available_profiles()
    if name not in names:
        raise ValueError(f"unknown profile {name!r}; available: {', '.join(names)}")
    path = resources.files("powerfit") / "data" / "profiles" / f"{name}.json"
    raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    paper = raw.get("units") == "paper"
    laws = {
        op: (
            (law["eta_max_percent"] / 100.0) if "eta_max_percent" in law else law["eta_max"],
            float(law["k"]),
            float(law["alpha"]),
        )
        for op, law in raw["laws"].items()
    }
    laws = {op: (round(e, 12), k, a) for op, (e, k, a) in laws.items()}
    intercept, coef = None, {}
    if "energy" in raw:
        scale = PAPER_DURATION_SCALE if paper else 1.0
        intercept = float(raw["energy"]["intercept"])
        coef = {op: float(v) * scale for op, v in raw["energy"]["coef"].items()}
    return Profile(
        name=raw["name"],
        description=raw["description"],
        reference=raw["reference"],
        arch=raw["arch"],
        gpu=raw["gpu"],
        peak_flops=float(raw["peak_flops"]),
        precision=raw["precision"],
        laws=laws,
        intercept=intercept,
        coef=coef,
        paper_units=paper,
    )
