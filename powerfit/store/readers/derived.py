"""Physical bounds across a file's columns, checked after its values are typed.

:func:`check_derived` bounds what follows from several columns at once (see
:data:`~powerfit.store.validation.DERIVED_BOUNDS`): the efficiency against the
GPU's peak throughput at the row's precision, and a run's mean power against 1 W,
10 kW and twice the GPU's TDP. It works on the float columns in place (views, not
copies) and holds a few arrays of one value a row at a time, so that a file of a
million rows is not copied again to be checked.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from powerfit.store.readers.rows import _Ctx
from powerfit.store.validation import DERIVED_BOUNDS, distinct, peak_precision

__all__ = ["check_derived"]


def _floats(out: pd.DataFrame, column: str, missing: float = np.nan) -> np.ndarray:
    """A column as float64 values [its unit]: a view of a float64 column, else a copy."""
    values = out[column]
    if values.dtype == np.float64 and np.isnan(missing):
        return values.to_numpy()
    return values.to_numpy(dtype=float, na_value=missing)


def _by_gpu(out: pd.DataFrame, value: Callable[[str, str], float]) -> np.ndarray:
    """``value(gpu, precision)`` of each row, computed once per distinct pair (NaN if missing)."""
    gpu_codes, gpus = distinct(out["gpu"])
    precision_codes, precisions = distinct(out["precision"])
    width = len(precisions) + 1  # the last row and column for a missing name (code -1)
    table = np.full((len(gpus) + 1, width), np.nan)
    present = (gpu_codes >= 0) & (precision_codes >= 0)
    for pair in np.unique(gpu_codes[present] * width + precision_codes[present]).tolist():
        g, p = divmod(pair, width)
        table[g, p] = value(gpus[g], precisions[p])  # type: ignore[arg-type]
    return table[gpu_codes, precision_codes]


def check_derived(ctx: _Ctx, out: pd.DataFrame, origin: dict[str, str]) -> None:
    """Physical bounds across columns: efficiency <= 1.1, mean power <= 10 kW a GPU.

    Runs also: mean power >= 1 W a GPU, GPU energy <= the total, and the GPU's mean
    power <= twice its TDP (a unit slip: CodeCarbon's kWh read as MWh, s as ms).

    Raises
    ------
    DataError
        At the first row out of bounds, naming the file, row and column.
    """
    duration = _floats(out, "duration_s")
    where_duration = origin.get("duration_s", "duration_s")
    if "flops" in out.columns:
        resolved = ctx.resolved
        peak = _by_gpu(out, lambda g, p: resolved[g][0].peak_flops[peak_precision(p)])
        flops = _floats(out, "flops")
        with np.errstate(invalid="ignore", divide="ignore"):
            efficiency = flops / duration
            efficiency /= peak
        limit = DERIVED_BOUNDS["efficiency"]
        high = efficiency > limit
        if high.any():
            pos = int(np.argmax(high))
            raise ctx.fail(
                f"efficiency {efficiency[pos]:.3g} > {limit:g}: "
                f"{origin.get('flops', 'flops')} {flops[pos]:.6g} FLOP in {duration[pos]:.6g} s "
                f"is faster than the peak {peak[pos]:.4g} FLOP/s of {out['gpu'].iloc[pos]} "
                f"at {out['precision'].iloc[pos]}; check the FLOPs, the duration's unit "
                "and the precision",
                position=pos,
                column=where_duration,
            )
        del peak, efficiency, high
    if "energy_j" in out.columns:
        energy = _floats(out, "energy_j")
        count = (
            _floats(out, "gpu_count", missing=1.0)
            if "gpu_count" in out.columns
            else np.ones(len(out))
        )
        if "n_layers" in out.columns:
            _check_run_power(ctx, out, origin, energy, duration, count)
        with np.errstate(invalid="ignore", divide="ignore"):
            power = energy / duration
        limit = DERIVED_BOUNDS["power_w"]
        high = power > limit * count
        if high.any():
            pos = int(np.argmax(high))
            gpus = f" on {count[pos]:g} GPUs" if count[pos] != 1 else " per GPU"
            raise ctx.fail(
                f"mean power {power[pos]:.4g} W > {limit * count[pos]:g} W{gpus}: "
                f"{origin.get('energy_j', 'energy_j')} {energy[pos]:.6g} J in "
                f"{duration[pos]:.6g} s; check the units (J, s)",
                position=pos,
                column=origin.get("energy_j", "energy_j"),
            )


def _check_run_power(
    ctx: _Ctx,
    out: pd.DataFrame,
    origin: dict[str, str],
    energy: np.ndarray,
    duration: np.ndarray,
    count: np.ndarray,
) -> None:
    """A run's mean power per GPU >= 1 W; GPU energy <= total and <= 2 x TDP."""
    where_energy = origin.get("energy_j", "energy_j")
    with np.errstate(invalid="ignore", divide="ignore"):
        power = energy / duration
        power /= count
    low = power < DERIVED_BOUNDS["min_run_power_w"]
    if low.any():
        pos = int(np.argmax(low))
        raise ctx.fail(
            f"mean power {power[pos]:.3g} W < {DERIVED_BOUNDS['min_run_power_w']:g} W per GPU: "
            f"{where_energy} {energy[pos]:.6g} J in {duration[pos]:.6g} s; check the units "
            "(J and s; CodeCarbon writes kWh and s)",
            position=pos,
            column=where_energy,
        )
    del power, low
    if "gpu_energy_j" not in out.columns:
        return
    gpu_energy = _floats(out, "gpu_energy_j")
    where_gpu = origin.get("gpu_energy_j", "gpu_energy_j")
    above = gpu_energy > energy * (1 + 1e-6)
    if above.any():
        pos = int(np.argmax(above))
        raise ctx.fail(
            f"GPU energy {gpu_energy[pos]:.6g} J is more than the total {where_energy} "
            f"{energy[pos]:.6g} J",
            position=pos,
            column=where_gpu,
        )
    del above
    if np.isnan(gpu_energy).all():
        return  # no GPU energy given: nothing to compare with the TDP
    limits = {n: r[0].power_limit_w for n, r in ctx.resolved.items()}
    codes, gpus = distinct(out["gpu"])
    tdps = pd.to_numeric(pd.Series([limits.get(g) for g in gpus], dtype=object), errors="coerce")
    tdp = np.append(tdps.to_numpy(dtype=float, na_value=np.nan), np.nan)[codes]
    with np.errstate(invalid="ignore", divide="ignore"):
        gpu_power = gpu_energy / duration
        gpu_power /= count
    high = gpu_power > DERIVED_BOUNDS["tdp_ratio"] * tdp
    if high.any():
        pos = int(np.argmax(high))
        raise ctx.fail(
            f"GPU mean power {gpu_power[pos]:.4g} W is more than twice the TDP "
            f"{tdp[pos]:g} W of {out['gpu'].iloc[pos]}: {gpu_energy[pos]:.6g} J in "
            f"{duration[pos]:.6g} s on {count[pos]:g} GPUs; check the units (J, s)",
            position=pos,
            column=where_gpu,
        )
