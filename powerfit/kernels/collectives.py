"""Time of the collectives of a parallel step: all-reduce, reduce-scatter, all-gather, send/recv.

One law per (topology, collective, locality), fitted on Vidur's NCCL measurements
(:func:`powerfit.datasets.vidur2024_network.load_vidur_network`, FP16 buffers, 2 KB to
512 MB):

    t = α + f(n) · bytes / B

with α the latency [s], B the effective bus bandwidth [B/s] and f(n) the algorithm's
factor for n GPUs (ring: all-reduce 2(n − 1)/n, reduce-scatter and all-gather (n − 1)/n
of the full buffer, send/recv 1). ``bytes`` is the whole buffer (the all-reduce's
input, the all-gather's output, the reduce-scatter's input). The fit minimises the
relative error (each row weighted by 1/t), with α ≥ 0 and B > 0
(non-negative least squares); the bundled laws are ``powerfit/data/network/collectives.json``
(``experiments/build_collective_laws.py``).

Reduce-scatter and all-gather were not measured: their law is the all-reduce's with
half its latency and the (n − 1)/n factor (a ring all-reduce *is* a reduce-scatter
followed by an all-gather).

Across nodes (``a100_dgx``'s rows over two nodes) the bandwidth is the network's: a
group with g GPUs in each node has ``B = min(B_intra, g · b)`` with b the effective
inter-node bandwidth per GPU, an input (:data:`INTERCONNECTS`; ``vidur``: fitted on
Vidur's two-node rows). Precision: the laws time bytes; an FP32 or BF16 buffer is
its own bytes.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "COLLECTIVES",
    "INTERCONNECTS",
    "CollectiveLaw",
    "Network",
    "algorithm_factor",
    "fit_collective_laws",
    "gpu_topology",
    "load_collective_laws",
]

#: The collectives timed here.
COLLECTIVES = ("all_reduce", "reduce_scatter", "all_gather", "send_recv")

#: Nominal inter-node bandwidth per GPU [B/s] of named interconnects (line rate) and the
#: share of it NCCL reaches (assumed 0.8, not fitted: no measured cluster of these),
#: except ``vidur``: the effective bandwidth fitted on Vidur's two-node A100 rows.
INTERCONNECTS: dict[str, float] = {
    "ib-hdr": 25e9,  # 200 Gb/s InfiniBand HDR, one NIC per GPU (DGX A100)
    "ib-ndr": 50e9,  # 400 Gb/s InfiniBand NDR, one NIC per GPU (DGX H100)
    "roce-200g": 25e9,  # 200 Gb/s RoCE, one NIC per GPU
    "eth-100g": 12.5e9 / 8,  # one 100 Gb/s Ethernet NIC shared by 8 GPUs
}
NCCL_EFFICIENCY = 0.8

#: GPU (catalogue name) -> Vidur topology of its node.
_TOPOLOGY = {
    "NVIDIA A100-SXM4-80GB": "a100_dgx",
    "NVIDIA A100-SXM4-40GB": "a100_dgx",
    "NVIDIA H100 80GB HBM3": "h100_dgx",
    "NVIDIA A100 80GB PCIe": "a100_pairwise_nvlink",
    "NVIDIA A100-PCIE-40GB": "a100_pairwise_nvlink",
    "NVIDIA H100 PCIe": "h100_pairwise_nvlink",
}


def gpu_topology(gpu: str) -> tuple[str, str | None]:
    """(Vidur topology used for a GPU's nodes, a note when it is not that GPU's own).

    SXM boards are timed by the NVSwitch DGX laws of their family, PCIe boards by the
    pairwise-NVLink ones; other GPUs by ``a100_pairwise_nvlink`` with a note.
    """
    from powerfit.hardware.gpus import get_gpu

    name = get_gpu(gpu).name
    if name == "NVIDIA H200":
        return "h100_dgx", "H200 nodes timed by H100 DGX collectives (same NVLink 4 and NVSwitch)"
    if name in _TOPOLOGY:
        return _TOPOLOGY[name], None
    return "a100_pairwise_nvlink", (
        f"no collective measurements of {name} nodes: timed as A100 PCIe pairs over NVLink"
    )


def algorithm_factor(collective: str, n: int) -> float:
    """Bytes each GPU sends per byte of the buffer [-] (ring algorithms)."""
    if n < 1:
        raise ValueError(f"a collective needs at least one GPU, got {n}")
    if n == 1:
        return 0.0
    if collective == "all_reduce":
        return 2.0 * (n - 1) / n
    if collective in ("reduce_scatter", "all_gather"):
        return (n - 1) / n
    if collective == "send_recv":
        return 1.0
    raise ValueError(f"collective must be one of {', '.join(COLLECTIVES)}, got {collective!r}")


@dataclass(frozen=True)
class CollectiveLaw:
    """``t = latency_s + f(n) · bytes / bandwidth`` of one topology, collective and locality.

    Attributes
    ----------
    topology : str
        Vidur topology (``a100_dgx``...).
    collective : str
        ``all_reduce`` or ``send_recv`` (the measured ones).
    locality : str
        :func:`link_class`: ``nvlink``, ``pcie`` or ``network`` (two nodes;
        ``bandwidth`` is then per GPU, multiplied by the group's GPUs in each node).
    latency_s : float
        α [s].
    bandwidth : float
        Effective bus bandwidth B [B/s].
    rows : int
        Measurements fitted [-].
    workers : tuple of int
        GPU counts measured [-].
    max_bytes : float
        Largest buffer measured [B].
    mape_pct : float
        In-sample mean absolute percentage error [%].
    mape_heldout_pct : float
        Leave-one-GPU-count-out error [%] (NaN with one GPU count).
    mape_large_pct : float
        Error on buffers ≥ 16 MB of a law fitted on smaller ones [%] (the
        extrapolation to gradient buckets).
    """

    topology: str
    collective: str
    locality: str
    latency_s: float
    bandwidth: float
    rows: int
    workers: tuple[int, ...]
    max_bytes: float
    mape_pct: float
    mape_heldout_pct: float
    mape_large_pct: float

    def time(self, nbytes: Any, n: int, per_node: int | None = None) -> Any:
        """Time [s] of ``nbytes`` [B] over ``n`` GPUs (``per_node`` of them in each node)."""
        f = algorithm_factor(self.collective, n)
        scale = (per_node or 1) if self.locality == "network" else 1
        return self.latency_s + f * np.asarray(nbytes, float) / (self.bandwidth * scale)


def link_class(topology: str, n: int, per_node: int) -> str:
    """The links a group of ``n`` GPUs (``per_node`` in each node) runs over.

    ``nvlink`` (an NVSwitch node, or one NVLink pair of a pairwise node), ``pcie`` (a
    pairwise node's GPUs outside one pair: Vidur's ``devices_per_node = 1`` rows of
    the pairwise topologies and their 4-GPU all-reduces, 10-100× slower than a pair)
    or ``network`` (an NVSwitch group over several nodes).
    """
    if topology.endswith("_dgx"):
        return "nvlink" if per_node >= n else "network"
    return "nvlink" if n == 2 and per_node == 2 else "pcie"


def _features(rows: pd.DataFrame, locality: str) -> np.ndarray:
    f = np.array(
        [
            algorithm_factor(c, int(n))
            for c, n in zip(rows.collective, rows.num_workers, strict=False)
        ]
    )
    scale = rows.devices_per_node.to_numpy(float) if locality == "network" else 1.0
    return f * rows["bytes"].to_numpy(float) / scale


def _fit(rows: pd.DataFrame, locality: str) -> tuple[float, float]:
    """(α [s], B [B/s]) minimising the relative error, both ≥ 0."""
    from scipy.optimize import nnls  # here: timing a collective needs no SciPy

    x, y = _features(rows, locality), rows.time_s.to_numpy(float)
    A = np.column_stack([np.ones_like(y), x]) / y[:, None]
    (alpha, inv_bw), _ = nnls(A, np.ones_like(y))
    inv_bw = max(inv_bw, 1e-15)
    return float(alpha), float(1.0 / inv_bw)


def _mape(rows: pd.DataFrame, locality: str, alpha: float, bw: float) -> float:
    pred = alpha + _features(rows, locality) / bw
    y = rows.time_s.to_numpy(float)
    return float(np.mean(np.abs(pred - y) / y) * 100)


def fit_collective_laws(frame: pd.DataFrame) -> list[CollectiveLaw]:
    """One :class:`CollectiveLaw` per (topology, collective, locality) of Vidur's table.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`powerfit.datasets.vidur2024_network.load_vidur_network`'s table.
    """
    laws = []
    frame = frame.assign(
        locality=[
            link_class(t, int(n), int(g))
            for t, n, g in zip(
                frame.topology, frame.num_workers, frame.devices_per_node, strict=False
            )
        ]
    )
    for (topo, coll, loc), rows in frame.groupby(["topology", "collective", "locality"]):
        alpha, bw = _fit(rows, loc)
        workers = tuple(sorted(int(n) for n in rows.num_workers.unique()))
        held = []
        if len(workers) > 1:
            for n in workers:
                a, b = _fit(rows[rows.num_workers != n], loc)
                held.append(_mape(rows[rows.num_workers == n], loc, a, b))
        small = rows["bytes"] < 16e6
        large = float("nan")
        if small.sum() > 2 and (~small).sum():
            a, b = _fit(rows[small], loc)
            large = _mape(rows[~small], loc, a, b)
        laws.append(
            CollectiveLaw(
                topology=str(topo),
                collective=str(coll),
                locality=str(loc),
                latency_s=alpha,
                bandwidth=bw,
                rows=len(rows),
                workers=workers,
                max_bytes=float(rows["bytes"].max()),
                mape_pct=_mape(rows, loc, alpha, bw),
                mape_heldout_pct=float(np.mean(held)) if held else float("nan"),
                mape_large_pct=large,
            )
        )
    return laws


_BUNDLE = ("data", "network", "collectives.json")


def laws_to_json(laws: list[CollectiveLaw]) -> dict[str, Any]:
    """The laws as JSON (NaN as null)."""

    def clean(d: dict) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}

    return {
        "law": "t = latency_s + f(n) * bytes / bandwidth",
        "source": "vidur2024/network (NCCL, FP16 buffers, size column in bytes)",
        "laws": [clean(asdict(law)) for law in laws],
    }


def load_collective_laws(data_home: Any = None) -> list[CollectiveLaw]:
    """The bundled laws, or (without a bundle) the laws fitted on Vidur's data now."""
    try:
        text = resources.files("powerfit").joinpath(*_BUNDLE).read_text()
    except FileNotFoundError:
        from powerfit.datasets.vidur2024_network import load_vidur_network

        return fit_collective_laws(load_vidur_network(data_home))
    out = []
    for d in json.loads(text)["laws"]:
        d = {k: (float("nan") if v is None else v) for k, v in d.items()}
        d["workers"] = tuple(d["workers"])
        out.append(CollectiveLaw(**d))
    return out


_LAWS: list[CollectiveLaw] | None = None


def _laws() -> list[CollectiveLaw]:
    global _LAWS
    if _LAWS is None:
        _LAWS = load_collective_laws()
    return _LAWS


def parse_interconnect(value: str | float | None) -> tuple[str, float]:
    """(name, effective inter-node bandwidth per GPU [B/s]) of an ``--interconnect`` value.

    ``None`` or ``vidur``: the bandwidth fitted on Vidur's two-node A100 all-reduces; a
    name of :data:`INTERCONNECTS`: its line rate × :data:`NCCL_EFFICIENCY`; a number:
    GB/s per GPU, effective.
    """
    if value is None or value == "vidur":
        law = next(
            (w for w in _laws() if w.locality == "network" and w.collective == "all_reduce"),
            None,
        )
        if law is None:
            raise ValueError("no inter-node measurements bundled: give --interconnect")
        return "vidur", law.bandwidth
    if isinstance(value, str) and value in INTERCONNECTS:
        return value, INTERCONNECTS[value] * NCCL_EFFICIENCY
    try:
        gbps = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"interconnect {value!r} is not one of vidur, {', '.join(INTERCONNECTS)} "
            "or a bandwidth in GB/s per GPU"
        ) from None
    if not 0 < gbps < 1e4:
        raise ValueError(f"interconnect bandwidth must be in (0, 1e4) GB/s per GPU, got {gbps}")
    return f"{gbps:g} GB/s per GPU", gbps * 1e9


class Network:
    """The collectives of one cluster: a GPU's node topology and the network between nodes.

    Parameters
    ----------
    gpu : str
        GPU name or alias (picks the node's Vidur topology, :func:`gpu_topology`).
    gpus_per_node : int, default 8
        GPUs in each node [-].
    interconnect : str or float, optional
        Between nodes (:func:`parse_interconnect`); default ``vidur``.
    laws : list of CollectiveLaw, optional
        Default the bundled ones.
    """

    def __init__(
        self,
        gpu: str,
        gpus_per_node: int = 8,
        interconnect: str | float | None = None,
        laws: list[CollectiveLaw] | None = None,
    ) -> None:
        if gpus_per_node < 1:
            raise ValueError(f"gpus_per_node must be ≥ 1, got {gpus_per_node}")
        self.gpus_per_node = int(gpus_per_node)
        self.topology, note = gpu_topology(gpu)
        self.notes = [note] if note else []
        self.laws = _laws() if laws is None else laws
        self.interconnect, self.inter_bandwidth = parse_interconnect(interconnect)
        self._inter_note = None
        if self.interconnect == "vidur":
            self._inter_note = (
                "inter-node bandwidth: Vidur's measured two-node A100 cluster "
                f"({self.inter_bandwidth / 1e9:.1f} GB/s per GPU effective); "
                "give --interconnect for another network"
            )

    def _law(self, collective: str, locality: str) -> CollectiveLaw:
        measured = "send_recv" if collective == "send_recv" else "all_reduce"
        for law in self.laws:
            if (law.topology, law.collective, law.locality) == (
                self.topology,
                measured,
                locality,
            ):
                return law
        for law in self.laws:  # e.g. a40 (send/recv only), network (a100_dgx only)
            if law.collective == measured and law.locality == locality:
                return law
        raise ValueError(f"no {measured} law over {locality}")

    def time(self, collective: str, nbytes: float, n: int, per_node: int | None = None) -> float:
        """Time [s] of one collective of ``nbytes`` [B] over ``n`` GPUs.

        ``per_node``: the group's GPUs in each node (default: as many as fit,
        ``min(n, gpus_per_node)``); the group spans nodes when ``per_node < n``.
        """
        if n <= 1 or nbytes <= 0:
            return 0.0
        g = min(n, self.gpus_per_node) if per_node is None else max(1, min(per_node, n))
        inside = link_class(self.topology, min(n, g), min(n, g)) if g > 1 else "pcie"
        if self.topology.endswith("_dgx"):
            inside = "nvlink"
        law = self._law(collective, inside)
        alpha, bw = law.latency_s, law.bandwidth
        if g < n:  # across nodes: the network per GPU, g GPUs of the group in each node
            if self._inter_note and self._inter_note not in self.notes:
                self.notes.append(self._inter_note)
            alpha = max(alpha, self._law(collective, "network").latency_s)
            bw = min(bw, g * self.inter_bandwidth)
        if collective in ("reduce_scatter", "all_gather"):
            alpha = alpha / 2
        return float(alpha + algorithm_factor(collective, n) * nbytes / bw)
