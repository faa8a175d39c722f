"""Catalogue of GPUs and their peak throughput per precision.

Conventions
-----------
* Peak throughput is in FLOP/s, **dense** (without the 2:4 structured-sparsity
  doubling that NVIDIA's data sheets print beside it), at boost clock.
* Precision names: ``fp64``, ``fp64-tensor``, ``fp32`` (CUDA cores), ``tf32``,
  ``fp16``, ``bf16`` (tensor cores, FP32 accumulation), ``fp8``, ``int8`` [OP/s].
* Each GPU has a ``default_precision``: the one that an FP32 PyTorch model's matrix
  products use in the paper's setting — ``tf32`` on Ampere and later, ``fp32`` before.
* Memory bandwidth is the data sheet's peak DRAM bandwidth [B/s] (1 GB/s = 1e9 B/s);
  SM count and boost clock [Hz] are those of the data sheet or the architecture
  whitepaper. NeuSight (Lee et al., ASPLOS 2025) describes some GPUs slightly
  differently in its ``devices/*.json`` (e.g. L4: 60 SMs, H100 SXM: 3.43 TB/s); the
  catalogue keeps the public data sheets and notes the differences.
* GPUs are looked up by the name NVML reports (``nvidia-smi --query-gpu=name``),
  case- and space-insensitively, or by a short alias (``a100``, ``h100-sxm``...).
* A bare family name shared by several variants (``a100``, ``h100``, ``v100``)
  means the variant whose measurements powerfit's bundled laws were fitted on:
  ``a100`` the A100 80GB PCIe (the paper's), ``h100`` the H100 80GB HBM3 and
  ``v100`` the V100 PCIe 32GB (NeuSight's); the other variants have their own
  aliases (``a100-sxm4-40gb``, ``h100-pcie``, ``v100-sxm2``). ``powerfit gpus``
  lists every name with the laws it has.

The paper's own peak values are kept apart in :data:`PAPER_PEAK_FLOPS` because the
published data use two different values for the same RTX 2080 Ti.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "GPU",
    "GPUS",
    "MEMORY_TYPE",
    "PAPER_PEAK_FLOPS",
    "extra_gpus",
    "get_gpu",
    "memory_type",
    "peak_flops",
]

T = 1e12


@dataclass(frozen=True)
class GPU:
    """One GPU model.

    Attributes
    ----------
    name : str
        Canonical name, as NVML reports it.
    peak_flops : dict of str to float
        Dense peak throughput per precision [FLOP/s].
    default_precision : str
        Precision of an FP32 PyTorch model's matrix products (see module notes).
    memory_bytes : float
        Memory [B].
    power_limit_w : float
        Default board power limit (TDP) [W].
    aliases : tuple of str
        Other names NVML or people use for the same GPU.
    memory_bandwidth : float or None
        Peak DRAM bandwidth [B/s].
    sm_count : int or None
        Streaming multiprocessors.
    boost_clock_hz : float or None
        Boost clock [Hz].
    """

    name: str
    peak_flops: dict[str, float]
    default_precision: str
    memory_bytes: float
    power_limit_w: float
    aliases: tuple[str, ...] = field(default=())
    memory_bandwidth: float | None = None
    sm_count: int | None = None
    boost_clock_hz: float | None = None


_GB = 1e9
_GIB = 1024**3

GPUS: tuple[GPU, ...] = (
    # NVIDIA A100 Tensor Core GPU data sheet (2021, 1.1): FP64 9.7, FP64 TC 19.5, FP32 19.5,
    # TF32 156, BF16/FP16 312, INT8 624 TOPS (dense). PCIe 80GB: 300 W; SXM4: 400 W.
    GPU(
        "NVIDIA A100 80GB PCIe",
        {
            "fp64": 9.7 * T,
            "fp64-tensor": 19.5 * T,
            "fp32": 19.5 * T,
            "tf32": 156 * T,
            "fp16": 312 * T,
            "bf16": 312 * T,
            "int8": 624 * T,
        },
        "tf32",
        80 * _GIB,
        300.0,
        ("a100", "a100-pcie", "a100-80gb-pcie"),
        memory_bandwidth=1935 * _GB,
        sm_count=108,
        boost_clock_hz=1410e6,
    ),
    GPU(
        "NVIDIA A100-PCIE-40GB",
        {
            "fp64": 9.7 * T,
            "fp64-tensor": 19.5 * T,
            "fp32": 19.5 * T,
            "tf32": 156 * T,
            "fp16": 312 * T,
            "bf16": 312 * T,
            "int8": 624 * T,
        },
        "tf32",
        40 * _GIB,
        250.0,
        ("a100-40gb-pcie",),
        memory_bandwidth=1555 * _GB,
        sm_count=108,
        boost_clock_hz=1410e6,
    ),
    GPU(
        "NVIDIA A100-SXM4-80GB",
        {
            "fp64": 9.7 * T,
            "fp64-tensor": 19.5 * T,
            "fp32": 19.5 * T,
            "tf32": 156 * T,
            "fp16": 312 * T,
            "bf16": 312 * T,
            "int8": 624 * T,
        },
        "tf32",
        80 * _GIB,
        400.0,
        ("a100-sxm", "a100-sxm4-80gb"),
        memory_bandwidth=2039 * _GB,
        sm_count=108,
        boost_clock_hz=1410e6,
    ),
    GPU(
        "NVIDIA A100-SXM4-40GB",
        {
            "fp64": 9.7 * T,
            "fp64-tensor": 19.5 * T,
            "fp32": 19.5 * T,
            "tf32": 156 * T,
            "fp16": 312 * T,
            "bf16": 312 * T,
            "int8": 624 * T,
        },
        "tf32",
        40 * _GIB,
        400.0,
        ("a100-sxm4-40gb",),
        memory_bandwidth=1555 * _GB,
        sm_count=108,
        boost_clock_hz=1410e6,
    ),
    # NVIDIA H100 Tensor Core GPU data sheet (2023): SXM FP64 34, FP64 TC 67, FP32 67,
    # TF32 989/2, BF16/FP16 1979/2, FP8 3958/2, INT8 3958/2 (printed with sparsity); 700 W;
    # 3.35 TB/s (NeuSight: 3.43); 132 SMs at 1980 MHz.
    GPU(
        "NVIDIA H100 80GB HBM3",
        {
            "fp64": 34 * T,
            "fp64-tensor": 67 * T,
            "fp32": 67 * T,
            "tf32": 494.5 * T,
            "fp16": 989.5 * T,
            "bf16": 989.5 * T,
            "fp8": 1979 * T,
            "int8": 1979 * T,
        },
        "tf32",
        80 * _GIB,
        700.0,
        ("h100", "h100-sxm", "NVIDIA H100 SXM5 80GB"),
        memory_bandwidth=3350 * _GB,
        sm_count=132,
        boost_clock_hz=1980e6,
    ),
    # Same data sheet, H100 PCIe: FP64 26, FP64 TC 51, FP32 51, TF32 756/2, BF16 1513/2,
    # FP8 3026/2; 350 W.
    GPU(
        "NVIDIA H100 PCIe",
        {
            "fp64": 26 * T,
            "fp64-tensor": 51 * T,
            "fp32": 51 * T,
            "tf32": 378 * T,
            "fp16": 756.5 * T,
            "bf16": 756.5 * T,
            "fp8": 1513 * T,
            "int8": 1513 * T,
        },
        "tf32",
        80 * _GIB,
        350.0,
        ("h100-pcie",),
        memory_bandwidth=2000 * _GB,
        sm_count=114,
        boost_clock_hz=1755e6,
    ),
    # NVIDIA H200 Tensor Core GPU product brief (2024), SXM: same compute as H100 SXM,
    # 141 GB HBM3e, up to 700 W.
    GPU(
        "NVIDIA H200",
        {
            "fp64": 34 * T,
            "fp64-tensor": 67 * T,
            "fp32": 67 * T,
            "tf32": 494.5 * T,
            "fp16": 989.5 * T,
            "bf16": 989.5 * T,
            "fp8": 1979 * T,
            "int8": 1979 * T,
        },
        "tf32",
        141 * _GB,
        700.0,
        ("h200", "h200-sxm"),
        memory_bandwidth=4800 * _GB,
        sm_count=132,
        boost_clock_hz=1980e6,
    ),
    # NVIDIA HGX B200 data sheet (2024), per GPU of the 8-GPU board: FP16/BF16 4.5 PFLOPS,
    # TF32 2.2, FP8 9 (printed with sparsity; dense half), FP32 75 TFLOPS (600 per board),
    # FP64/FP64 TC 37; 180 GB HBM3e (1.44 TB per board) at 7.7 TB/s (62 TB/s per board);
    # 1000 W; 148 SMs at about 1965 MHz (Blackwell whitepaper, B200 as configured in HGX).
    GPU(
        "NVIDIA B200",
        {
            "fp64": 37 * T,
            "fp64-tensor": 37 * T,
            "fp32": 75 * T,
            "tf32": 1125 * T,
            "fp16": 2250 * T,
            "bf16": 2250 * T,
            "fp8": 4500 * T,
            "int8": 4500 * T,
        },
        "tf32",
        180 * _GB,
        1000.0,
        ("b200", "b200-sxm"),
        memory_bandwidth=7700 * _GB,
        sm_count=148,
        boost_clock_hz=1965e6,
    ),
    # NVIDIA H20 (China-market Hopper; NVIDIA partner product brief, 2024): FP16/BF16 148
    # TFLOPS dense, FP8/INT8 296, TF32 74, FP32 44, FP64 1 (left out); 96 GB HBM3 at 4.0 TB/s;
    # 400 W. SM count (78) and boost clock (1980 MHz, the GH100's) from third-party reports:
    # not on NVIDIA's own brief, and not consistent with the FP32 figure (which implies 142
    # lanes per SM). flash-attention issue threads quote the same 148 TFLOPS / 4 TB/s.
    GPU(
        "NVIDIA H20",
        {
            "fp32": 44 * T,
            "tf32": 74 * T,
            "fp16": 148 * T,
            "bf16": 148 * T,
            "fp8": 296 * T,
            "int8": 296 * T,
        },
        "tf32",
        96 * _GB,
        400.0,
        ("h20",),
        memory_bandwidth=4000 * _GB,
        sm_count=78,
        boost_clock_hz=1980e6,
    ),
    # NVIDIA A40 data sheet (2021): FP32 37.4, TF32 74.8, BF16/FP16 149.7 (FP32 accumulate),
    # INT8 299.3 (dense; sparse doubled); 48 GB GDDR6 at 696 GB/s; 300 W; 10,752 CUDA cores
    # = 84 SMs, 1740 MHz boost. The A40 of Vidur's profiles (Agrawal et al., MLSys 2024).
    GPU(
        "NVIDIA A40",
        {
            "fp32": 37.4 * T,
            "tf32": 74.8 * T,
            "fp16": 149.7 * T,
            "bf16": 149.7 * T,
            "int8": 299.3 * T,
        },
        "tf32",
        48 * _GB,
        300.0,
        ("a40",),
        memory_bandwidth=696 * _GB,
        sm_count=84,
        boost_clock_hz=1740e6,
    ),
    # NVIDIA RTX A5000 data sheet (2021): FP32 27.8 TFLOPS, tensor 222.2 (sparse: dense FP16/
    # BF16 with FP32 accumulate 111.1, TF32 55.6); 24 GB GDDR6 at 768 GB/s; 230 W; 8,192 CUDA
    # cores = 64 SMs, 1695 MHz boost.
    GPU(
        "NVIDIA RTX A5000",
        {
            "fp32": 27.8 * T,
            "tf32": 55.6 * T,
            "fp16": 111.1 * T,
            "bf16": 111.1 * T,
            "int8": 222.2 * T,
        },
        "tf32",
        24 * _GIB,
        230.0,
        ("rtx-a5000", "a5000"),
        memory_bandwidth=768 * _GB,
        sm_count=64,
        boost_clock_hz=1695e6,
    ),
    # NVIDIA Ada Lovelace architecture whitepaper (2022), GeForce RTX 4090: FP32 82.6, TF32
    # 82.6, FP16/BF16 tensor with FP32 accumulate 165.2 (330.3 with FP16 accumulate; PyTorch
    # accumulates in FP32), FP8 with FP32 accumulate 330.3, INT8 660.6 (dense); 24 GB GDDR6X
    # at 1008 GB/s; 450 W; 128 SMs at 2520 MHz.
    GPU(
        "NVIDIA GeForce RTX 4090",
        {
            "fp32": 82.6 * T,
            "tf32": 82.6 * T,
            "fp16": 165.2 * T,
            "bf16": 165.2 * T,
            "fp8": 330.3 * T,
            "int8": 660.6 * T,
        },
        "tf32",
        24 * _GIB,
        450.0,
        ("rtx4090", "rtx-4090", "GeForce RTX 4090"),
        memory_bandwidth=1008 * _GB,
        sm_count=128,
        boost_clock_hz=2520e6,
    ),
    # NVIDIA Tesla V100 data sheet (2020): SXM2 FP64 7.8, FP32 15.7, tensor 125; 300 W.
    GPU(
        "Tesla V100-SXM2-32GB",
        {"fp64": 7.8 * T, "fp32": 15.7 * T, "fp16": 125 * T},
        "fp32",
        32 * _GIB,
        300.0,
        ("v100-sxm2", "Tesla V100-SXM2-16GB"),
        memory_bandwidth=900 * _GB,
        sm_count=80,
        boost_clock_hz=1530e6,
    ),
    # Same data sheet, PCIe: FP64 7, FP32 14, tensor 112; 250 W.
    GPU(
        "Tesla V100-PCIE-32GB",
        {"fp64": 7 * T, "fp32": 14 * T, "fp16": 112 * T},
        "fp32",
        32 * _GIB,
        250.0,
        ("v100", "v100-pcie", "Tesla V100-PCIE-16GB"),
        memory_bandwidth=900 * _GB,
        sm_count=80,
        boost_clock_hz=1380e6,
    ),
    # NVIDIA T4 data sheet: FP32 8.1, FP16 mixed 65, INT8 130; 70 W.
    GPU(
        "Tesla T4",
        {"fp32": 8.1 * T, "fp16": 65 * T, "int8": 130 * T},
        "fp32",
        16 * _GIB,
        70.0,
        ("t4", "NVIDIA T4"),
        memory_bandwidth=320 * _GB,
        sm_count=40,
        boost_clock_hz=1590e6,
    ),
    # NVIDIA Tesla P100 PCIe data sheet (2016): FP64 4.7, FP32 9.3, FP16 18.7 (packed half2,
    # no tensor cores); 732 GB/s; 250 W; 56 SMs, 1303 MHz boost (GP100 whitepaper).
    # NeuSight's devices/Tesla_P100-PCIE-16GB.json: 9.519 TFLOP/s at 1380 MHz.
    GPU(
        "Tesla P100-PCIE-16GB",
        {"fp64": 4.7 * T, "fp32": 9.3 * T, "fp16": 18.7 * T},
        "fp32",
        16 * _GIB,
        250.0,
        ("p100", "p100-pcie", "Tesla P100-PCIE-12GB"),
        memory_bandwidth=732 * _GB,
        sm_count=56,
        boost_clock_hz=1303e6,
    ),
    # NVIDIA Tesla P4 data sheet (2016): FP32 5.5, INT8 22 TOPS; 192 GB/s; 75 W (50-75 W
    # configurable); 2560 CUDA cores = 40 SMs, 1063 MHz boost. NeuSight: 5.699 at 1113 MHz.
    GPU(
        "Tesla P4",
        {"fp32": 5.5 * T, "int8": 22 * T},
        "fp32",
        8 * _GIB,
        75.0,
        ("p4",),
        memory_bandwidth=192 * _GB,
        sm_count=40,
        boost_clock_hz=1063e6,
    ),
    # NVIDIA L4 data sheet (2023): FP32 30.3, TF32 120/2, BF16/FP16 242/2, FP8 485/2,
    # INT8 485/2 (printed with sparsity); 72 W; 300 GB/s; 7,424 CUDA cores = 58 SMs at
    # 2040 MHz (NeuSight's devices/NVIDIA_L4.json says 60 SMs).
    GPU(
        "NVIDIA L4",
        {
            "fp32": 30.3 * T,
            "tf32": 60 * T,
            "fp16": 121 * T,
            "bf16": 121 * T,
            "fp8": 242.5 * T,
            "int8": 242.5 * T,
        },
        "tf32",
        24 * _GIB,
        72.0,
        ("l4",),
        memory_bandwidth=300 * _GB,
        sm_count=58,
        boost_clock_hz=2040e6,
    ),
    # NVIDIA A10 data sheet (2021): FP32 31.2, TF32 62.5, BF16/FP16 125, INT8 250; 150 W.
    GPU(
        "NVIDIA A10",
        {"fp32": 31.2 * T, "tf32": 62.5 * T, "fp16": 125 * T, "bf16": 125 * T, "int8": 250 * T},
        "tf32",
        24 * _GIB,
        150.0,
        ("a10",),
        memory_bandwidth=600 * _GB,
        sm_count=72,
        boost_clock_hz=1695e6,
    ),
    # NVIDIA Turing architecture whitepaper (2018), GeForce RTX 2080 Ti Founders Edition:
    # FP32 14.2 at 1635 MHz; reference boost 1545 MHz gives 4352·2·1.545e9 = 13.45e12
    # (the paper's value); FP16 tensor with FP32 accumulate 53.8 (107.6 with FP16 accumulate).
    GPU(
        "NVIDIA GeForce RTX 2080 Ti",
        {"fp32": 13.45 * T, "fp16": 53.8 * T},
        "fp32",
        11 * _GIB,
        250.0,
        ("rtx2080ti", "rtx-2080-ti", "GeForce RTX 2080 Ti", "grid"),
        memory_bandwidth=616 * _GB,
        sm_count=68,
        boost_clock_hz=1545e6,
    ),
    # NVIDIA Quadro RTX 6000 data sheet (2018): FP32 16.3, tensor FP16 130.5; 24 GB GDDR6,
    # 672 GB/s; 72 SMs at 1770 MHz boost. Board power 295 W (active); the Zeus traces'
    # largest limit is 260 W, the limit used here.
    GPU(
        "Quadro RTX 6000",
        {"fp32": 16.3 * T, "fp16": 130.5 * T},
        "fp32",
        24 * _GIB,
        260.0,
        ("rtx6000", "quadro-rtx-6000"),
        memory_bandwidth=672 * _GB,
        sm_count=72,
        boost_clock_hz=1770e6,
    ),
)

#: DRAM technology of each catalogue GPU (``HBM`` or ``GDDR``, from its data sheet). Boards
#: of one technology sustain similar fractions of their data-sheet bandwidth (HBM
#: 0.82–0.87 on NeuSight's element-wise sweeps of the A100s and the V100, GDDR
#: 0.71–0.78 on the T4, P4 and L4) and idle at similar fractions of TDP: the transfer
#: of operator and power laws to an unmeasured GPU follows GPUs of its type.
MEMORY_TYPE: dict[str, str] = {
    "NVIDIA A100 80GB PCIe": "HBM",
    "NVIDIA A100-PCIE-40GB": "HBM",
    "NVIDIA A100-SXM4-80GB": "HBM",
    "NVIDIA A100-SXM4-40GB": "HBM",
    "NVIDIA H100 80GB HBM3": "HBM",
    "NVIDIA H100 PCIe": "HBM",
    "NVIDIA H200": "HBM",
    "NVIDIA B200": "HBM",
    "NVIDIA H20": "HBM",
    "NVIDIA A40": "GDDR",
    "NVIDIA RTX A5000": "GDDR",
    "NVIDIA GeForce RTX 4090": "GDDR",
    "Tesla V100-SXM2-32GB": "HBM",
    "Tesla V100-PCIE-32GB": "HBM",
    "Tesla T4": "GDDR",
    "Tesla P100-PCIE-16GB": "HBM",
    "Tesla P4": "GDDR",
    "NVIDIA L4": "GDDR",
    "NVIDIA A10": "GDDR",
    "NVIDIA GeForce RTX 2080 Ti": "GDDR",
    "Quadro RTX 6000": "GDDR",
}


def memory_type(gpu: str) -> str:
    """``HBM`` or ``GDDR``: :data:`MEMORY_TYPE` for a catalogue GPU (by name or alias);
    for another, ``HBM`` when its name says ``HBM`` or ``SXM``, else ``GDDR``.

    Examples
    --------
    >>> memory_type("h20"), memory_type("Tesla T4"), memory_type("My HBM3 board")
    ('HBM', 'GDDR', 'HBM')
    """
    entry = _INDEX.get(_key(gpu)) if isinstance(gpu, str) else None
    if entry is not None and entry.name in MEMORY_TYPE:
        return MEMORY_TYPE[entry.name]
    name = str(gpu).upper()
    return "HBM" if ("HBM" in name or "SXM" in name) else "GDDR"


#: Peak values used in the published data of Mayaki & Charpenay (2025) [FLOP/s]:
#: the A100's TF32 peak; the RTX 2080 Ti's FP32 peak as used in the per-operation
#: files (13.45e12) and, inconsistently, in the energy files (11.34e12).
PAPER_PEAK_FLOPS: dict[str, float] = {
    "a100": 156e12,
    "rtx2080ti-operations": 13.45e12,
    "rtx2080ti-energy": 11.34e12,
}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


_INDEX: dict[str, GPU] = {}

for _gpu in GPUS:
    for _name in (_gpu.name, *_gpu.aliases):
        _INDEX[_key(_name)] = _gpu


def get_gpu(name: str) -> GPU:
    """Look a GPU up by its NVML name or an alias.

    Parameters
    ----------
    name : str
        E.g. ``"NVIDIA A100 80GB PCIe"``, ``"NVIDIA H100 80GB HBM3"`` or ``"a100"``.

    Returns
    -------
    GPU

    Raises
    ------
    ValueError
        For a GPU not in the catalogue; the message lists the known names.

    Examples
    --------
    >>> get_gpu("nvidia a100 80gb pcie").name
    'NVIDIA A100 80GB PCIe'
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"gpu must be a non-empty GPU name, got {name!r}")
    try:
        return _INDEX[_key(name)]
    except KeyError:
        known = ", ".join(repr(g.name) for g in GPUS)
        raise ValueError(
            f"unknown GPU {name!r}; known GPUs: {known}. Describe another GPU with "
            "`powerfit gpus add NAME --peak-flops fp32=... --memory-bandwidth ... --tdp ...` "
            "(in Python: powerfit.store.gpus.add_gpu, then extra_gpus)"
        ) from None


@contextlib.contextmanager
def extra_gpus(gpus: Iterable[GPU]) -> Iterator[None]:
    """Make GPUs beyond the catalogue known to :func:`get_gpu` within a block.

    Everything that looks a GPU up by name (peaks, bandwidth, TDP, the transfer of
    operator and power laws to an unmeasured GPU) then treats them like catalogue
    GPUs: a GPU described with ``powerfit gpus add`` works wherever a catalogue GPU
    does. Catalogue names are never replaced.

    Parameters
    ----------
    gpus : iterable of GPU
        E.g. the specs of :func:`powerfit.store.gpus.store_gpus`.

    Examples
    --------
    >>> rtx4090 = GPU("NVIDIA GeForce RTX 4090", {"fp32": 82.6 * T}, "fp32", 24 * 2**30, 450.0)
    >>> with extra_gpus([rtx4090]):
    ...     get_gpu("nvidia geforce rtx 4090").power_limit_w
    450.0
    """
    added = []
    for gpu in gpus:
        for name in (gpu.name, *gpu.aliases):
            key = _key(name)
            if key not in _INDEX:
                _INDEX[key] = gpu
                added.append(key)
    try:
        yield
    finally:
        for key in added:
            _INDEX.pop(key, None)


def peak_flops(gpu: str, precision: str | None = None) -> float:
    """Dense peak throughput of a GPU at a precision.

    Parameters
    ----------
    gpu : str
        GPU name (see :func:`get_gpu`).
    precision : str, optional
        One of the precision names of the module notes; the GPU's
        ``default_precision`` when omitted.

    Returns
    -------
    float
        Peak throughput [FLOP/s].

    Raises
    ------
    ValueError
        For an unknown GPU, or a precision that GPU does not support.

    Examples
    --------
    >>> peak_flops("NVIDIA A100 80GB PCIe")  # TF32, the paper's v_max
    156000000000000.0
    """
    spec = get_gpu(gpu)
    precision = spec.default_precision if precision is None else precision
    try:
        return spec.peak_flops[precision]
    except KeyError:
        raise ValueError(
            f"precision {precision!r} is not available on {spec.name}; "
            f"choose one of {', '.join(spec.peak_flops)}"
        ) from None
