"""Tests of powerfit.steps.measured: NeuSight's measured steps as graphs, timed by laws."""

from __future__ import annotations

import numpy as np
import pytest

from powerfit.steps.latency import step_time


@pytest.mark.slow
def test_step_time_from_operator_laws_near_measured_steps(neusight_labels):
    """Operator laws fitted on two GPUs' operators, summed over the graph (≈ 10 s)."""
    from powerfit.datasets.neusight2025 import neusight_training_steps
    from powerfit.evaluation.operators import neusight_operator_frame
    from powerfit.kernels.model import OPERATOR_COLUMNS, OperatorTimeModel
    from powerfit.steps.measured import neusight_step_graph

    ops = neusight_operator_frame()
    ops = ops[ops.gpu.isin(["NVIDIA A100 80GB PCIe", "Tesla V100-PCIE-32GB"])]
    model = OperatorTimeModel(max_rows=150).fit(ops[list(OPERATOR_COLUMNS)], ops.latency_s)
    steps = neusight_training_steps()
    errors = []
    for step in steps.itertuples(index=False):
        graph = neusight_step_graph(step)
        t = step_time(graph, step.gpu, model)
        errors.append(abs(t / step.measured_s - 1))
        assert t == pytest.approx(step.measured_s, rel=0.25), step
    assert np.mean(errors) < 0.15
    step = steps.iloc[0]
    graph = neusight_step_graph(step)
    assert step_time(graph, step.gpu, model, specs_only=True) != step_time(graph, step.gpu, model)
