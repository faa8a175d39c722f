"""Tests of powerfit.hardware: the GPU catalogue and NVML name lookup."""

import pytest

from powerfit.hardware.gpus import GPUS, PAPER_PEAK_FLOPS, get_gpu, peak_flops


@pytest.mark.parametrize(
    ("nvml_name", "canonical"),
    [
        ("NVIDIA A100 80GB PCIe", "NVIDIA A100 80GB PCIe"),
        ("NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB"),
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"),
        ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe"),
        ("NVIDIA H200", "NVIDIA H200"),
        ("Tesla V100-SXM2-16GB", "Tesla V100-SXM2-32GB"),
        ("Tesla T4", "Tesla T4"),
        ("NVIDIA L4", "NVIDIA L4"),
        ("NVIDIA A10", "NVIDIA A10"),
        ("NVIDIA GeForce RTX 2080 Ti", "NVIDIA GeForce RTX 2080 Ti"),
        ("  nvidia geforce rtx 2080 ti ", "NVIDIA GeForce RTX 2080 Ti"),
        ("a100", "NVIDIA A100 80GB PCIe"),
        ("v100", "Tesla V100-PCIE-32GB"),  # NeuSight's V100, not the SXM2
        ("v100-sxm2", "Tesla V100-SXM2-32GB"),
        ("h100", "NVIDIA H100 80GB HBM3"),
    ],
)
def test_lookup_by_nvml_name_or_alias(nvml_name, canonical):
    assert get_gpu(nvml_name).name == canonical


def test_paper_values_reachable():
    assert peak_flops("NVIDIA A100 80GB PCIe") == PAPER_PEAK_FLOPS["a100"] == 156e12
    assert peak_flops("NVIDIA GeForce RTX 2080 Ti", "fp32") == 13.45e12
    assert PAPER_PEAK_FLOPS["rtx2080ti-operations"] == 13.45e12
    assert PAPER_PEAK_FLOPS["rtx2080ti-energy"] == 11.34e12


def test_catalogue_is_consistent():
    names = [g.name for g in GPUS]
    assert len(names) == len(set(names))
    for gpu in GPUS:
        assert gpu.default_precision in gpu.peak_flops
        assert all(v > 1e12 for v in gpu.peak_flops.values())
        if "tf32" in gpu.peak_flops:  # tensor cores beat CUDA cores
            assert gpu.peak_flops["tf32"] >= gpu.peak_flops["fp32"]  # equal on the RTX 4090
    assert peak_flops("h100", "bf16") > peak_flops("h100", "tf32") > peak_flops("a100", "tf32")


def test_unknown_gpu_and_precision():
    with pytest.raises(ValueError, match=r"unknown GPU 'NVIDIA Z9000'.*known GPUs"):
        get_gpu("NVIDIA Z9000")
    with pytest.raises(ValueError, match="non-empty"):
        get_gpu("")
    with pytest.raises(ValueError, match="precision 'tf32' is not available"):
        peak_flops("Tesla T4", "tf32")


NEUSIGHT_GPUS = (
    "NVIDIA A100-PCIE-40GB",
    "NVIDIA A100-SXM4-40GB",
    "NVIDIA A100 80GB PCIe",
    "NVIDIA H100 80GB HBM3",
    "NVIDIA L4",
    "Tesla P100-PCIE-16GB",
    "Tesla P4",
    "Tesla T4",
    "Tesla V100-PCIE-32GB",
)


@pytest.mark.parametrize("nvml_name", [*NEUSIGHT_GPUS, "NVIDIA GeForce RTX 2080 Ti"])
def test_neusight_gpus_have_full_specs(nvml_name):
    gpu = get_gpu(nvml_name)
    assert gpu.name == nvml_name
    assert gpu.memory_bandwidth > 1e11  # [B/s]
    assert 20 <= gpu.sm_count <= 200
    assert 1e9 < gpu.boost_clock_hz < 3e9
    assert gpu.power_limit_w > 0
    assert gpu.peak_flops["fp32"] > 1e12


def test_specs_agree_with_neusight_device_files(data_home):
    import json

    folder = data_home / "neusight2025" / "devices"
    if not folder.is_dir():
        pytest.skip(
            pytest.skip(
                "needs the neusight2025 data set (github.com/sitar-lab/NeuSight, see "
                "powerfit/datasets/neusight2025.py): set POWERFIT_DATA_HOME to a folder "
                "holding neusight2025/"
            )
        )
    for path in folder.glob("*.json"):
        spec = json.loads(path.read_text())
        gpu = get_gpu(spec["Device"])
        # NeuSight computes the FP32 peak from its own clock; data sheets differ by < 5 %.
        assert gpu.peak_flops["fp32"] == pytest.approx(spec["SingleFLOPs"] * 1e9, rel=0.05)
        # Bandwidth: data sheets; NeuSight's H100 value (3.43 TB/s) is 2.4 % above.
        assert gpu.memory_bandwidth == pytest.approx(spec["Mem_Bw"] * 1e9, rel=0.03)


#: GPUs whose SM count and clock come from third-party reports that do not square with the
#: published FP32 peak (see the catalogue's comments).
UNCONFIRMED_SMS = {"NVIDIA H20"}


def test_every_catalogue_gpu_has_bandwidth_and_sms():
    for gpu in GPUS:
        assert gpu.memory_bandwidth and gpu.sm_count and gpu.boost_clock_hz, gpu.name
        # FP32 peak = 2 FLOP · FP32 lanes · clock: lanes per SM are 64 or 128.
        lanes = gpu.peak_flops["fp32"] / (2 * gpu.sm_count * gpu.boost_clock_hz)
        if gpu.name in UNCONFIRMED_SMS:
            continue
        assert lanes == pytest.approx(64, rel=0.06) or lanes == pytest.approx(128, rel=0.06)


def test_a_family_name_means_the_variant_with_bundled_laws():
    """A bare family name shared by several catalogue GPUs (a100, h100, v100) resolves
    to the variant whose measurements the bundled laws were fitted on (the module
    notes): `--gpu v100` gets laws, not a V100 nobody measured."""
    import re

    from powerfit.store.gpus import _law_gpus

    fitted = {
        gpu
        for gpu, labels in _law_gpus().items()
        if any(not label.endswith("(transferred)") for label in labels)
    }
    tokens = {gpu.name: set(re.split(r"[\s\-]+", gpu.name.lower())) for gpu in GPUS}
    families = [
        alias
        for gpu in GPUS
        for alias in gpu.aliases
        if sum(alias.lower() in words for words in tokens.values()) > 1
    ]
    assert {"a100", "h100", "v100"} <= set(families)
    for alias in families:
        assert get_gpu(alias).name in fitted, alias


def test_every_catalogue_gpu_has_its_memory_type():
    from powerfit.hardware.gpus import MEMORY_TYPE, memory_type

    assert {g.name for g in GPUS} == set(MEMORY_TYPE)
    assert set(MEMORY_TYPE.values()) == {"HBM", "GDDR"}
    assert memory_type("h20") == "HBM"  # 96 GB HBM3, though its name says nothing
    assert memory_type("a40") == "GDDR"
    # a GPU outside the catalogue: by its name
    assert memory_type("Acme X1 SXM") == "HBM" and memory_type("Acme X2") == "GDDR"
