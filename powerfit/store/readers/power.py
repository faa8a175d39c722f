"""Readers of measured board power: Zeus 2023 power traces and ML.ENERGY 2026 model files.

``zeus2023-power`` (``summary_power_{gpu}.csv.gz``)
    One GPU training one epoch at a batch size and an NVML power limit a row:
    ``power_limit`` [W], ``time_per_epoch`` [s], ``average_power`` [W]. The GPU is
    the file name's suffix (``v100``, ``a40``, ``rtx6000``, ``p100``:
    :data:`powerfit.datasets.zeus2023.ZEUS_GPUS`); a lab's own file with these
    columns, under any name, gives it with ``--set gpu=NAME`` (a catalogue name or
    alias, or one added with ``powerfit gpus add``). Stored with ``workload``
    ``dataset/network``, ``precision`` 'fp32' (assumed: not published), ``duration_s``
    the step (``batch_size / throughput``), ``throughput`` [samples/s] from the
    training set's size, and the optimizer in ``config``.
``mlenergy2026-power`` (``models/<org>__<model>__<task>.json.gz``)
    One configuration a row (1-based index in ``configurations``), JSON parsed as
    data only. ``avg_power_watts`` is **summed over** ``num_gpus``: stored per GPU
    (``power_w``) with ``gpu_count``. LLM tasks: ``throughput`` in tokens/s,
    ``batch_size`` the average running batch, ``duration_s`` one decoding iteration
    (``avg_batch_size / output_throughput_tokens_per_sec``); diffusion:
    ``batch_latency_s``, images/s or videos/s. Precision: the weights'.

Refused, naming the file, the data row and the column, with nothing written: a
power above 2 × TDP (× ``num_gpus`` where summed), a duration ≤ 0, a throughput ≤ 0,
a GPU neither in the catalogue nor in the store (``powerfit gpus add``), a missing
field or column, and ``--set`` values other than a Zeus file's ``gpu`` (these files
say everything else they mean).
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from powerfit.hardware.gpus import GPU, get_gpu
from powerfit.store.readers.rows import Measurements
from powerfit.store.validation import ValidationError

__all__ = ["POWER_FORMATS", "detect_power_format", "has_zeus_header", "read_power"]

POWER_FORMATS = ("zeus2023-power", "mlenergy2026-power")

_ZEUS_COLUMNS = (
    "dataset", "network", "batch_size", "optimizer", "power_limit", "time_per_epoch",
    "average_power",
)  # fmt: skip

_PRECISIONS = {"bfloat16": "bf16", "fp8": "fp8", "mxfp4": "mxfp4", "float16": "fp16"}


def has_zeus_header(content: bytes) -> bool:
    """True when the first line of a CSV names every column of Zeus's power files."""
    first = content[:4096].lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0]
    try:
        columns = {c.strip().strip('"') for c in first.decode("utf-8").split(",")}
    except UnicodeDecodeError:
        return False
    return set(_ZEUS_COLUMNS) <= columns


def detect_power_format(source: str, content: bytes) -> str | None:
    """The power format of a file (from its name, its header or its first bytes), else None.

    A CSV is Zeus's when it is named ``summary_power_*.csv*`` or its header holds
    every Zeus column (a lab's own file, its GPU given with ``--set gpu=NAME``).
    """
    name = os.path.basename(source)
    if (name.startswith("summary_power_") and ".csv" in name) or has_zeus_header(content):
        return "zeus2023-power"
    head = content[:4096].lstrip()
    if head.startswith(b"{") and b'"configurations"' in content[:1_000_000]:
        return "mlenergy2026-power"
    return None


def _gpu(
    name: str, gpus: Mapping[str, tuple[GPU, str]] | None, where: dict[str, Any]
) -> tuple[GPU, str]:
    for key, value in (gpus or {}).items():
        if key.lower() == name.lower():
            return value
    try:
        return get_gpu(name), "catalogue"
    except ValueError:
        raise ValidationError(
            f"unknown GPU {name!r}: add it with `powerfit gpus add`", **where
        ) from None


def _number(value: Any, where: dict[str, Any]) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"not a number: {value!r}", **where) from None
    if not math.isfinite(x):
        raise ValidationError(f"not a finite number: {value!r}", **where)
    return x


def _check(
    power_w: float,
    tdp_w: float,
    n_gpus: int,
    duration_s: float | None,
    throughput: float,
    cols: tuple[str, str, str],
    where: dict[str, Any],
) -> None:
    """Refuse impossible values (power > 2 × TDP per GPU, duration ≤ 0, throughput ≤ 0)."""
    power_col, duration_col, throughput_col = cols
    if not 0 < power_w <= 2 * tdp_w * n_gpus:
        raise ValidationError(
            f"average power {power_w:g} W impossible for {n_gpus} GPU(s) of TDP {tdp_w:g} W "
            f"(must be in (0, {2 * tdp_w * n_gpus:g}])",
            column=power_col,
            **where,
        )
    if duration_s is not None and not duration_s > 0:
        raise ValidationError(
            f"duration {duration_s:g} s must be > 0", column=duration_col, **where
        )
    if not throughput > 0:
        raise ValidationError(
            f"throughput {throughput:g} must be > 0", column=throughput_col, **where
        )


def _zeus(
    source: str, content: bytes, gpus: Any, gpu: str | None = None
) -> tuple[pd.DataFrame, dict]:
    from powerfit.datasets.zeus2023 import ZEUS_GPUS, ZEUS_SAMPLES_PER_EPOCH

    name = os.path.basename(source)
    if gpu is None:
        if not name.startswith("summary_power_"):
            raise ValidationError(
                "a Zeus power file names its GPU in its name (summary_power_<gpu>.csv) "
                "or with --set gpu=NAME (e.g. --set gpu=v100)",
                source=source,
                header=True,
            )
        gpu = name.removeprefix("summary_power_").split(".")[0]
    gpu_name = ZEUS_GPUS.get(gpu, gpu)
    spec, origin = _gpu(gpu_name, gpus, {"source": source, "header": True})
    try:
        raw = pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(f"not a CSV file: {exc}", source=source) from None
    missing = [c for c in _ZEUS_COLUMNS if c not in raw.columns]
    if missing:
        raise ValidationError(f"missing columns {missing}", source=source, header=True)
    if raw.empty:
        raise ValidationError("no data rows (only a header)", source=source)
    rows = []
    for i, r in enumerate(raw.itertuples(index=False), start=1):
        where = {"source": source, "row": i, "line": i + 1}
        workload = f"{r.dataset}/{r.network}"
        batch = _number(r.batch_size, {**where, "column": "batch_size"})
        limit = _number(r.power_limit, {**where, "column": "power_limit"})
        epoch = _number(r.time_per_epoch, {**where, "column": "time_per_epoch"})
        power = _number(r.average_power, {**where, "column": "average_power"})
        samples = ZEUS_SAMPLES_PER_EPOCH.get((str(r.dataset), str(r.network)))
        if batch <= 0 or batch != int(batch):
            raise ValidationError(
                f"batch size {batch:g} must be a positive integer", column="batch_size", **where
            )
        if not 0 < limit <= 2 * spec.power_limit_w:
            raise ValidationError(
                f"power limit {limit:g} W impossible for TDP {spec.power_limit_w:g} W",
                column="power_limit",
                **where,
            )
        throughput = samples / epoch if (samples and epoch > 0) else np.nan
        _check(
            power, spec.power_limit_w, 1, epoch, throughput if samples else 1.0,
            ("average_power", "time_per_epoch", "time_per_epoch"), where,
        )  # fmt: skip
        rows.append(
            {
                "gpu": spec.name,
                "source_row": i,
                "gpu_count": 1,
                "workload": workload[:255],
                "precision": "fp32",
                "batch_size": batch,
                "power_limit_w": limit,
                "duration_s": batch / throughput if samples else np.nan,
                "power_w": power,
                "throughput": throughput,
                "throughput_unit": "samples/s",
                "config": json.dumps(
                    {"optimizer": str(r.optimizer), "epoch_s": epoch}, sort_keys=True
                ),
                "tool": "zeus (NVML)",
            }
        )
    return pd.DataFrame(rows), {spec.name: (spec, origin)}


def _mlenergy(source: str, content: bytes, gpus: Any) -> tuple[pd.DataFrame, dict]:
    from powerfit.datasets.mlenergy2026 import MLENERGY_GPUS, output_length_moments

    try:
        doc = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(f"not a JSON file: {exc}", source=source) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("configurations"), list):
        raise ValidationError("no 'configurations' list", source=source, column="configurations")
    if not doc["configurations"]:
        raise ValidationError("no configurations", source=source, column="configurations")
    task = str(doc.get("task", ""))
    model = str(doc.get("model_id", ""))
    precision = _PRECISIONS.get(str(doc.get("weight_precision")), "bf16")
    llm = task not in ("text-to-image", "text-to-video")
    rows, specs = [], {}
    for i, c in enumerate(doc["configurations"], start=1):
        where = {"source": source, "row": i}
        if not isinstance(c, dict):
            raise ValidationError("configuration is not an object", **where)

        def field(key: str, c=c, where=where) -> float:
            if key not in c:
                raise ValidationError(f"missing field {key!r}", column=key, **where)
            return _number(c[key], {**where, "column": key})

        if "gpu_model" not in c:
            raise ValidationError("missing field 'gpu_model'", column="gpu_model", **where)
        name = MLENERGY_GPUS.get(str(c["gpu_model"]), str(c["gpu_model"]))
        spec, origin = _gpu(name, gpus, {**where, "column": "gpu_model"})
        specs[spec.name] = (spec, origin)
        n = field("num_gpus")
        if n < 1 or n != int(n):
            raise ValidationError(f"num_gpus {n:g} must be a positive integer",
                                  column="num_gpus", **where)  # fmt: skip
        total = field("avg_power_watts")
        if llm:
            tput_key, unit = "output_throughput_tokens_per_sec", "tokens/s"
            batch, dur_key = field("avg_batch_size"), "avg_batch_size"
            throughput = field(tput_key)
            duration = batch / throughput if throughput > 0 else None
        else:
            video = task == "text-to-video"
            tput_key = "throughput_videos_per_sec" if video else "throughput_images_per_sec"
            unit, dur_key = ("videos/s" if video else "images/s"), "batch_latency_s"
            batch, throughput, duration = field("batch_size"), field(tput_key), field(dur_key)
        _check(total, spec.power_limit_w, int(n), duration, throughput,
               ("avg_power_watts", dur_key, tput_key), where)  # fmt: skip
        extra = {k: v for k, v in c.items() if isinstance(v, (int, float, str))}
        if llm:
            # what the decode traffic needs (powerfit.power.work.serving_fractions)
            par = c.get("parallelization") if isinstance(c.get("parallelization"), dict) else {}
            extra["data_parallel"] = par.get("data_parallel", 1)
            mean, sq = output_length_moments(c)
            if math.isfinite(mean) and math.isfinite(sq):
                extra["output_len_mean"], extra["output_len_sq_mean"] = mean, sq
        rows.append(
            {
                "gpu": spec.name,
                "source_row": i,
                "gpu_count": int(n),
                "workload": f"{model}/{task}"[:255],
                "precision": precision,
                "batch_size": batch,
                "power_limit_w": spec.power_limit_w,
                "duration_s": duration,
                "power_w": total / n,
                "throughput": throughput,
                "throughput_unit": unit,
                "config": json.dumps(
                    {
                        **extra,
                        "total_params_billions": doc.get("total_params_billions"),
                        "activated_params_billions": doc.get("activated_params_billions"),
                    },
                    sort_keys=True,
                    default=str,
                ),
                "tool": "ml.energy benchmark v3 (NVML)",
            }
        )
    return pd.DataFrame(rows), specs


def read_power(
    source: str,
    content: bytes,
    sha256: str,
    format: str,
    overrides: Mapping[str, object] | None = None,
    gpus: Mapping[str, tuple[GPU, str]] | None = None,
) -> Measurements:
    """Read and validate a power file (``content``: its decompressed bytes).

    Returns
    -------
    Measurements
        ``kind`` 'power', the rows of :class:`powerfit.store.models.PowerMeasurement`
        plus ``gpu``; ``identity`` is left to
        :func:`~powerfit.store.readers.read.read_measurements`.

    Raises
    ------
    ValidationError
        An impossible value, a missing field or an unknown GPU (file, row, column).
    """
    extra = dict(overrides or {})
    gpu = extra.pop("gpu", None) if format == "zeus2023-power" else None
    if extra:
        allowed = " (only --set gpu=NAME, for a Zeus file)" if format == "zeus2023-power" else ""
        raise ValidationError(
            f"--set {', '.join(sorted(extra))} is not accepted for {format} files "
            f"(they give every value){allowed}",
            source=source,
        )
    if format == "zeus2023-power":
        rows, specs = _zeus(source, content, gpus, None if gpu is None else str(gpu))
    else:
        rows, specs = _mlenergy(source, content, gpus)
    return Measurements(
        source=source,
        sha256=sha256,
        format=format,
        kind="power",
        rows=rows,
        overrides={} if gpu is None else {"gpu": str(gpu)},
        gpus=specs,
    )
