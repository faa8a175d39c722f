"""``evaluate --suite parallel`` on NeuSight's 4-GPU steps (needs the data)."""

from __future__ import annotations

import numpy as np

from powerfit.evaluation.parallel import evaluate_parallel


def test_neusight_parallel_steps(neusight_labels):
    table = evaluate_parallel(neusight_labels.parent)
    assert set(table.option) == {"dp4", "tp4", "pp4_1"}
    assert (table.predicted_s > 0).all()
    tp4 = table[table.option == "tp4"].iloc[0]
    assert tp4.tp_comm_s > 0
    # no fitting on these steps: the error is what it is, but it is a sane one
    assert np.all(np.abs(table.error_pct) < 50)
