"""Collective laws: algorithm factors, the bundled laws' physics, the network's rules."""

from __future__ import annotations

import pytest

from powerfit.kernels.collectives import (
    Network,
    algorithm_factor,
    load_collective_laws,
    parse_interconnect,
)


def test_ring_factors():
    assert algorithm_factor("all_reduce", 4) == pytest.approx(1.5)
    assert algorithm_factor("reduce_scatter", 8) == pytest.approx(7 / 8)
    assert algorithm_factor("send_recv", 2) == 1.0
    assert algorithm_factor("all_reduce", 1) == 0.0
    with pytest.raises(ValueError, match="collective must be one of"):
        algorithm_factor("broadcast", 2)


def test_bundled_laws_are_physical():
    laws = load_collective_laws()
    assert {w.topology for w in laws} >= {"a100_dgx", "h100_dgx"}
    for w in laws:
        assert 0 <= w.latency_s < 1e-3
        assert 1e9 < w.bandwidth < 1e12  # 1 GB/s to 1 TB/s
    nvlink = {
        w.topology: w for w in laws if w.collective == "all_reduce" and w.locality == "nvlink"
    }
    assert nvlink["h100_dgx"].bandwidth > nvlink["a100_dgx"].bandwidth  # NVLink 4 > 3


def test_network_time_grows_with_bytes_and_crossing_nodes_is_slower():
    net = Network("a100-sxm4-80gb", gpus_per_node=8, interconnect="ib-hdr")
    small = net.time("all_reduce", 1e6, 8)
    big = net.time("all_reduce", 1e9, 8)
    assert 0 < small < big
    across = net.time("all_reduce", 1e9, 16, per_node=8)
    assert across > big
    assert net.time("all_reduce", 1e9, 1) == 0.0
    rs = net.time("reduce_scatter", 1e9, 8)
    assert rs == pytest.approx(big / 2, rel=0.05)


def test_interconnect_parsing():
    assert parse_interconnect("ib-ndr")[1] == pytest.approx(50e9 * 0.8)
    assert parse_interconnect("12.5")[1] == pytest.approx(12.5e9)
    assert parse_interconnect(None)[0] == "vidur"
    with pytest.raises(ValueError, match="interconnect 'fast'"):
        parse_interconnect("fast")


def test_fit_recovers_a_known_law():
    import numpy as np
    import pandas as pd

    from powerfit.kernels.collectives import fit_collective_laws

    rows = []
    for n in (2, 4, 8):
        for nbytes in np.geomspace(2e3, 6e7, 20):
            t = 20e-6 + algorithm_factor("all_reduce", n) * nbytes / 200e9
            rows.append(("x_dgx", "all_reduce", n, n, 1, int(nbytes), t))
    frame = pd.DataFrame(
        rows,
        columns=[
            "topology",
            "collective",
            "num_workers",
            "devices_per_node",
            "n_nodes",
            "bytes",
            "time_s",
        ],
    )
    (law,) = fit_collective_laws(frame)
    assert law.locality == "nvlink" and law.workers == (2, 4, 8)
    assert law.latency_s == pytest.approx(20e-6, rel=1e-6)
    assert law.bandwidth == pytest.approx(200e9, rel=1e-6)
    assert law.mape_pct < 1e-3 and law.mape_heldout_pct < 1e-3  # [%]
