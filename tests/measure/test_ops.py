"""Tests of powerfit.measure.ops: operation sweep, PyTorch operations, benchmarks."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from powerfit.formats import CONFIG_COLUMNS, OPERATION_COLUMNS  # noqa: E402
from powerfit.measure import make_meter  # noqa: E402
from powerfit.measure.ops import (  # noqa: E402
    benchmark_operations,
    build_operation,
    operation_efficiency,
    operation_sweep,
    time_operation,
)
from powerfit.paper import flops  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny shapes on a shared machine: one thread is faster and steadier."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.mark.parametrize("arch", flops.ARCHITECTURES)
def test_full_sweep_spans_several_decades_of_flops(arch):
    configs = operation_sweep(arch)
    assert list(configs.columns) == list(CONFIG_COLUMNS)
    assert len(configs) == (80 if arch == "transformer" else 60)
    assert not configs.duplicated().any()
    ops = flops.configuration_flops(configs, arch)
    for op in flops.OPERATIONS[arch]:
        decades = np.log10(ops[op].max() / ops[op].min())
        assert decades >= 2.5, (op, decades)
    if arch == "transformer":
        assert (configs["d_model"] % configs["n_heads"] == 0).all()
        assert configs["batch_size"].between(16, 256).all()


def test_sweep_is_reproducible_and_validates():
    pd.testing.assert_frame_equal(operation_sweep("lstm", 5), operation_sweep("lstm", 5))
    assert len(operation_sweep("gru", quick=True)) == 3
    with pytest.raises(ValueError, match="arch"):
        operation_sweep("cnn")
    with pytest.raises(ValueError, match="n must be"):
        operation_sweep("gru", 0)


TRANSFORMER = {"batch_size": 2, "seq_len": 8, "d_model": 12, "n_heads": 3, "d_ff": 20}
RECURRENT = {"batch_size": 3, "input_size": 5, "hidden_size": 7, "seq_len": 4}
MATMULS = {
    "transformer": (
        "qkv_projections",
        "attention_scores",
        "attention_output",
        "final_projection",
        "ffn",
    ),
    "lstm": ("input_gates", "hidden_gates"),
    "gru": ("input_gates", "hidden_gates"),
}


@pytest.mark.parametrize(("arch", "op"), [(a, op) for a, ops in MATMULS.items() for op in ops])
def test_operation_flops_agree_with_pytorchs_counter(arch, op):
    from torch.utils.flop_counter import FlopCounterMode

    config = TRANSFORMER if arch == "transformer" else RECURRENT
    fn = build_operation(arch, op, config)
    with FlopCounterMode(display=False) as counter:
        fn()
    assert counter.get_total_flops() == flops.layer_flops(arch, **config)[op]


@pytest.mark.parametrize(
    ("arch", "op"), [(a, op) for a in flops.ARCHITECTURES for op in flops.OPERATIONS[a]]
)
def test_every_operation_runs_and_returns_the_right_shape(arch, op):
    config = TRANSFORMER if arch == "transformer" else RECURRENT
    out = build_operation(arch, op, config)()
    first = out[0] if isinstance(out, tuple) else out
    assert torch.isfinite(first).all()
    if op == "attention_softmax":
        assert torch.allclose(out.sum(-1), torch.ones(()))


def test_build_operation_names_bad_arguments():
    with pytest.raises(ValueError, match="operation must be one of"):
        build_operation("lstm", "candidate", RECURRENT)
    with pytest.raises(ValueError, match="needs hidden_size"):
        build_operation("gru", "input_gates", {"batch_size": 2, "input_size": 3})


def test_time_operation_averages_calls():
    meter = make_meter("none")
    result = time_operation(lambda: time.sleep(0.001), meter, warmup=1, min_block_s=0.005)
    assert result["repeats"] >= 3
    assert result["duration_s"] == pytest.approx(0.001, rel=2.0)
    assert math.isnan(result["energy_j"])
    with pytest.raises(ValueError, match="repeats"):
        time_operation(lambda: None, meter, repeats=0)


def test_benchmark_writes_the_canonical_operation_format():
    configs = pd.concat(
        [operation_sweep(a, 1, quick=True) for a in flops.ARCHITECTURES], ignore_index=True
    )
    frame = benchmark_operations(configs, meter=make_meter("none"), min_block_s=0.001, seed=0)
    assert tuple(frame.columns) == OPERATION_COLUMNS
    assert len(frame) == 16  # 6 + 5 + 5 operations
    assert frame.attrs == {"skipped": 0, "unfinished": 0}
    assert (frame["duration_s"] > 0).all() and (frame["flops"] > 0).all()
    assert frame["energy_j"].isna().all()  # time only: missing, not zero
    assert (frame["repeats"] >= 3).all()
    assert frame["gpu"].nunique() == 1 and frame["precision"].eq("fp32").all()
    assert frame["tool"].str.startswith("powerfit-measure").all()
    for _, row in frame.iterrows():
        config = {k: row[k] for k in CONFIG_COLUMNS[1:] if not pd.isna(row[k])}
        arch = row["arch"]
        names = (
            "batch_size",
            "seq_len",
            "d_model",
            "n_heads",
            "d_ff",
            "input_size",
            "hidden_size",
        )
        expected = flops.layer_flops(arch, **{k: config.get(k) for k in names})
        assert row["flops"] == expected[row["operation"]]
    # Transformer rows leave the recurrent columns empty and vice versa.
    transformer = frame[frame["arch"] == "transformer"]
    assert transformer["hidden_size"].isna().all()
    assert frame.loc[frame["arch"] != "transformer", "d_model"].isna().all()


def test_benchmark_stops_at_the_deadline_and_filters_operations():
    configs = operation_sweep("transformer", quick=True)
    meter = make_meter("none")
    frame = benchmark_operations(configs, meter=meter, deadline=time.monotonic() - 1)
    assert len(frame) == 0 and frame.attrs["unfinished"] == 18
    assert tuple(frame.columns) == OPERATION_COLUMNS
    frame = benchmark_operations(
        configs, meter=meter, operations=["ffn"], precision="bf16", min_block_s=0.001
    )
    assert frame["operation"].eq("ffn").all() and len(frame) == 3
    assert frame["precision"].eq("bf16").all()


def test_benchmark_rejects_unknown_arch():
    bad = pd.DataFrame({"arch": ["cnn"], "batch_size": [1]})
    with pytest.raises(ValueError, match="unknown arch"):
        benchmark_operations(bad, meter=make_meter("none"))


def test_efficiency_uses_the_catalogue_peak():
    frame = pd.DataFrame(
        {
            "gpu": ["NVIDIA A100 80GB PCIe", "AMD EPYC"],
            "precision": ["tf32", "fp32"],
            "flops": [156e12, 1e9],
            "duration_s": [2.0, 1.0],
        }
    )
    eta = operation_efficiency(frame)
    assert eta.iloc[0] == pytest.approx(0.5)
    assert math.isnan(eta.iloc[1])
