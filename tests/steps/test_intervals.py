"""Tests of powerfit.steps.intervals: the shipped step-time interval half-widths."""

from __future__ import annotations

import pytest


def test_roofline_interval_is_widened_outside_the_measured_steps():
    from powerfit.steps.intervals import half_width_for

    bundle = {
        "half_width": {
            "in-gpu": {"half_width": 0.2},
            "roofline": {"half_width": 0.5},
            "in-gpu+cal": {"half_width": 0.1},
            "specs-only": {"half_width": 0.3},
        },
        "widen_outside": 2.0,
    }
    q = half_width_for("in-gpu", outside=True, roofline=True, bundle=bundle)
    assert q == pytest.approx(1.0)
    assert half_width_for("in-gpu", outside=False, roofline=True, bundle=bundle) == 0.5
    assert half_width_for("in-gpu", outside=True, roofline=False, bundle=bundle) == 0.4
    assert half_width_for("in-gpu+cal", outside=False, roofline=False, bundle=bundle) == 0.1
