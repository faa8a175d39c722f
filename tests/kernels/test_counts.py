"""Tests of powerfit.kernels.counts: FLOPs and bytes of one operator call."""

from __future__ import annotations

import pytest

from powerfit.kernels.counts import operator_bytes, operator_flops, operator_kind


def test_generic_flops_and_bytes():
    assert operator_kind("LayerNorm") == "ln"
    assert operator_flops("linear", 1, 2, 3, 4) == 48.0
    assert operator_bytes("bmm", 2, 3, 4, 5) == 4 * 2 * (12 + 20 + 15)
    assert operator_bytes("mul", 2, H=10) == 3 * 4 * 20
    assert operator_bytes("mulu", 2, H=10, bytes_per_element=2) == 2 * 2 * 20
    with pytest.raises(ValueError, match="H must be > 0"):
        operator_bytes("relu", 2, H=0)
