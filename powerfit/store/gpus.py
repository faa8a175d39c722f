"""GPUs of the store beside the catalogue: list them, add one the catalogue lacks.

:mod:`powerfit.hardware` is the catalogue of GPUs powerfit knows; the store's
``gpus`` table holds every GPU its measurements reference — catalogue GPUs (copied
when first referenced, ``origin`` 'catalogue'), GPUs a user described with
``powerfit gpus add`` ('user'), and devices ``powerfit measure`` described in its
output ('measured', e.g. a CPU with its measured peak). Once a GPU is in the store,
files measured on it ingest like those of a catalogue GPU.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from powerfit.files import printable
from powerfit.hardware.gpus import GPU, GPUS, get_gpu, memory_type
from powerfit.store.engine import transaction
from powerfit.store.models import Gpu, OperationMeasurement, RunMeasurement
from powerfit.store.validation import _CONTROL, PRECISIONS, peak_precision

__all__ = ["add_gpu", "gpu_row", "list_gpus", "parse_peak_flops", "store_gpus"]

#: Precision names a peak may be given for (``fp64`` and ``int8`` kept for reference).
PEAK_NAMES = ("fp64", "fp64-tensor", "fp32", "tf32", "fp16", "bf16", "fp8", "int8")


def _spec(row: Any) -> GPU:
    return GPU(
        name=row.name,
        peak_flops={str(k): float(v) for k, v in dict(row.peak_flops).items()},
        default_precision=row.default_precision,
        memory_bytes=row.memory_bytes,
        power_limit_w=row.power_limit_w,
        memory_bandwidth=row.memory_bandwidth,
        sm_count=row.sm_count,
        boost_clock_hz=row.boost_clock_hz,
    )


def store_gpus(engine: Engine) -> dict[str, tuple[GPU, str]]:
    """GPUs of the store that are not in the catalogue, by name: (spec, origin).

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine

    Returns
    -------
    dict of str to (powerfit.hardware.gpus.GPU, str)
        Origin 'user' or 'measured'. Pass it as ``gpus=`` to
        :func:`powerfit.store.readers.read.read_measurements`.
    """
    with transaction(engine) as conn:
        rows = conn.execute(sa.select(Gpu.__table__).where(Gpu.origin != "catalogue")).all()
        return {row.name: (_spec(row), row.origin) for row in rows}


def parse_peak_flops(text: str) -> dict[str, float]:
    """Parse ``fp32=8.2e13,tf32=8.2e13`` into peaks per precision [FLOP/s].

    Suffixes ``T``/``TFLOPS`` (1e12) and ``G`` (1e9) are accepted: ``fp32=82.6T``.

    Raises
    ------
    ValueError
        For a malformed pair, an unknown precision or a value that is not > 0.

    Examples
    --------
    >>> parse_peak_flops("fp32=82.6T, fp16=165.2e12")
    {'fp32': 82600000000000.0, 'fp16': 165200000000000.0}
    """
    peaks: dict[str, float] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = pair.partition("=")
        key = key.strip().lower()
        if not sep or key not in PEAK_NAMES:
            raise ValueError(
                f"--peak-flops expects PRECISION=FLOP/s pairs with a precision among "
                f"{', '.join(PEAK_NAMES)}, got {pair!r}"
            )
        value = value.strip()
        scale = 1.0
        for suffix, factor in (("tflops", 1e12), ("t", 1e12), ("gflops", 1e9), ("g", 1e9)):
            if value.lower().endswith(suffix):
                value, scale = value[: -len(suffix)], factor
                break
        try:
            number = float(value) * scale
        except ValueError:
            raise ValueError(f"--peak-flops: not a number in {pair!r}") from None
        if not 0 < number < 1e19:
            raise ValueError(f"--peak-flops: {key} must be > 0 FLOP/s, got {pair!r}")
        peaks[key] = number
    if not peaks:
        raise ValueError("--peak-flops: give at least one peak, e.g. fp32=82.6e12")
    return peaks


def add_gpu(
    engine: Engine,
    name: str,
    peak_flops: Mapping[str, float],
    *,
    memory_bandwidth: float | None = None,
    power_limit_w: float | None = None,
    sm_count: int | None = None,
    memory_bytes: int | None = None,
    boost_clock_hz: float | None = None,
    default_precision: str | None = None,
    replace: bool = False,
) -> GPU:
    """Store a GPU the catalogue does not know (``origin`` 'user').

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
    name : str
        Its name as NVML reports it (``nvidia-smi --query-gpu=name``), e.g.
        ``'NVIDIA GeForce RTX 4090'``.
    peak_flops : mapping of str to float
        Dense peak throughput per precision [FLOP/s] (see :mod:`powerfit.hardware`).
    memory_bandwidth : float, optional
        Peak DRAM bandwidth [B/s].
    power_limit_w : float, optional
        Board power limit (TDP) [W].
    sm_count : int, optional
        Streaming multiprocessors.
    memory_bytes : int, optional
        Memory [B].
    boost_clock_hz : float, optional
        Boost clock [Hz].
    default_precision : str, optional
        Precision of an FP32 PyTorch model's matrix products; default ``tf32`` when
        a TF32 peak is given, else ``fp32``.
    replace : bool, default False
        Replace the specs of a GPU added before (its measurements are kept).

    Returns
    -------
    powerfit.hardware.gpus.GPU

    Raises
    ------
    ValueError
        For a catalogue GPU, a GPU already stored (unless ``replace``), or bad specs.
    """

    if _CONTROL.search(str(name)):
        raise ValueError(
            f"GPU name {printable(name)!r} holds control characters (escape sequences, "
            "line breaks); give the name as NVML reports it"
        )
    name = " ".join(str(name).split())
    if not name or len(name) > 128:
        raise ValueError(f"GPU name must have 1 to 128 characters, got {name!r}")
    try:
        known = get_gpu(name)
    except ValueError:
        known = None
    if known is not None:
        raise ValueError(
            f"{name!r} is in powerfit's catalogue as {known.name!r}; nothing to add "
            "(powerfit gpus shows its specs)"
        )
    peaks = {str(k).lower(): float(v) for k, v in peak_flops.items()}
    if default_precision is None:
        default_precision = "tf32" if "tf32" in peaks else "fp32"
    if default_precision not in PRECISIONS or peak_precision(default_precision) not in peaks:
        raise ValueError(
            f"default precision {default_precision!r} needs a peak for it in --peak-flops "
            f"(given: {', '.join(peaks)})"
        )
    for label, value in (
        ("memory bandwidth", memory_bandwidth),
        ("TDP", power_limit_w),
        ("SM count", sm_count),
        ("memory", memory_bytes),
        ("boost clock", boost_clock_hz),
    ):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{label} must be a finite number > 0, got {value!r}")
    spec = GPU(
        name=name,
        peak_flops=peaks,
        default_precision=default_precision,
        memory_bytes=memory_bytes,  # type: ignore[arg-type]
        power_limit_w=power_limit_w,  # type: ignore[arg-type]
        memory_bandwidth=memory_bandwidth,
        sm_count=sm_count,
        boost_clock_hz=boost_clock_hz,
    )
    row = gpu_row(spec, "user")
    key = name.lower()
    with transaction(engine, write=True) as conn:
        existing = conn.execute(
            sa.select(Gpu.id, Gpu.name).where(sa.func.lower(Gpu.name) == key)
        ).first()
        if existing is not None and not replace:
            raise ValueError(
                f"GPU {existing.name!r} is already in the store; pass --replace to change "
                "its specs"
            )
        if existing is not None:
            conn.execute(sa.update(Gpu).where(Gpu.id == existing.id).values(**row))
        else:
            conn.execute(sa.insert(Gpu).values(**row))
    return spec


def _law_gpus() -> dict[str, list[str]]:
    """GPU name -> laws bundled for it: energy profiles (``powerfit/data/profiles``)
    by name, and operator laws (``powerfit/data/operators/<precision>.json``) as
    ``operators:<precision>`` (fitted on its measurements) or
    ``operators:<precision> (transferred)`` (predicted from its specs)."""
    import json
    from importlib import resources

    out: dict[str, list[str]] = {}

    def note(gpu: object, label: str) -> None:
        try:
            name = get_gpu(str(gpu)).name
        except ValueError:
            name = str(gpu)
        if label not in out.setdefault(name, []):
            out[name].append(label)

    try:
        from powerfit.paper.profiles import available_profiles, load_profile

        for profile in available_profiles():
            try:
                note(load_profile(profile).gpu, profile)
            except Exception:  # a broken profile must not break the listing
                continue
    except ImportError:  # pragma: no cover
        pass
    folder = resources.files("powerfit") / "data" / "operators"
    try:
        files = [f for f in folder.iterdir() if f.name.endswith(".json")]
    except (FileNotFoundError, NotADirectoryError):
        files = []
    for file in files:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        precision = str(data.get("precision", file.name[: -len(".json")]))
        for law in data.get("laws") or []:
            if isinstance(law, Mapping) and "gpu" in law:
                note(law["gpu"], f"operators:{precision}")
        transferred = data.get("transferred") or {}
        for gpu in transferred if isinstance(transferred, (Mapping, list)) else []:
            note(gpu, f"operators:{precision} (transferred)")
    return out


def list_gpus(engine: Engine | None = None) -> list[dict[str, Any]]:
    """Catalogue and store GPUs with their specs, measurements and laws.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine, optional
        The store; without it only the catalogue is listed.

    Returns
    -------
    list of dict
        One per GPU, catalogue order then store GPUs by name: ``name``, ``origin``
        ('catalogue', 'user', 'measured'), ``peak_flops`` (per precision [FLOP/s]),
        ``default_precision``, ``memory_bandwidth`` [B/s], ``memory_type`` (``HBM``
        or ``GDDR``, :func:`~powerfit.hardware.gpus.memory_type`: what the transfer of
        laws to an unmeasured GPU follows), ``power_limit_w`` [W],
        ``sm_count``, ``memory_bytes`` [B], ``in_store`` (referenced by the store),
        ``operation_rows``, ``run_rows`` (measurements in the store), ``profiles``
        (bundled profiles with laws for it).
    """
    laws = _law_gpus()
    stored: dict[str, Any] = {}
    op_rows: dict[str, int] = {}
    run_rows: dict[str, int] = {}
    if engine is not None:
        with transaction(engine) as conn:
            stored = {row.name: row for row in conn.execute(sa.select(Gpu.__table__)).all()}
            for model, counts in ((OperationMeasurement, op_rows), (RunMeasurement, run_rows)):
                result = conn.execute(
                    sa.select(Gpu.name, sa.func.count())
                    .select_from(model)
                    .join(Gpu, model.gpu_id == Gpu.id)
                    .group_by(Gpu.name)
                )
                counts.update({name: int(n) for name, n in result})

    def entry(spec: GPU, origin: str) -> dict[str, Any]:
        return {
            "name": spec.name,
            "origin": origin,
            "peak_flops": dict(spec.peak_flops),
            "default_precision": spec.default_precision,
            "memory_bandwidth": spec.memory_bandwidth,
            "memory_type": memory_type(spec.name),
            "power_limit_w": spec.power_limit_w,
            "sm_count": spec.sm_count,
            "memory_bytes": None if spec.memory_bytes is None else int(spec.memory_bytes),
            "in_store": spec.name in stored,
            "operation_rows": op_rows.get(spec.name, 0),
            "run_rows": run_rows.get(spec.name, 0),
            "profiles": sorted(laws.get(spec.name, [])),
        }

    out = [entry(spec, "catalogue") for spec in GPUS]
    known = {spec.name for spec in GPUS}
    for name in sorted(stored):
        row = stored[name]
        if name not in known and row.origin != "catalogue":
            out.append(entry(_spec(row), row.origin))
        elif name not in known:  # a catalogue GPU of another powerfit version
            out.append(entry(_spec(row), "store"))
    return out


def gpu_row(spec: GPU, origin: str) -> dict[str, object]:
    """A ``gpus`` table row for a GPU spec (:class:`powerfit.hardware.gpus.GPU`)."""
    return {
        "name": spec.name,
        "peak_flops": {k: float(v) for k, v in spec.peak_flops.items()},
        "default_precision": spec.default_precision,
        "memory_bytes": None if spec.memory_bytes is None else int(spec.memory_bytes),
        "power_limit_w": spec.power_limit_w,
        "memory_bandwidth": spec.memory_bandwidth,
        "sm_count": spec.sm_count,
        "boost_clock_hz": spec.boost_clock_hz,
        "origin": origin,
    }
