"""Public data sets, as published, one module per data set (scikit-learn's ``fetch_*`` style).

:mod:`~powerfit.datasets.mayaki2025` (Mayaki & Charpenay, ECAI 2025: timed operations
and training steps), :mod:`~powerfit.datasets.neusight2025` (NeuSight, ASPLOS 2025:
timed GPU operators, measured training steps and their traces),
:mod:`~powerfit.datasets.vidur2024` (Vidur, MLSys 2024: FP16 operator profiles),
:mod:`~powerfit.datasets.flashattn` (published fused-attention throughput) and
:mod:`~powerfit.datasets.home` (where data sets live, their checksums). Readers return
tidy frames of what was published and import nothing of powerfit: counting FLOPs or
building graphs from them is the stages' job. The names of the former
``powerfit.datasets`` module are importable from this package.
"""

from __future__ import annotations

from powerfit._lazy import lazy_exports

__all__ = [
    "MAYAKI2025_FILES",
    "NEUSIGHT2025_COMMIT",
    "VIDUR2024_COMMIT",
    "Mayaki2025",
    "NeuSight2025",
    "fetch_flashattn",
    "fetch_mayaki2025",
    "fetch_neusight2025",
    "fetch_vidur2024",
    "get_data_home",
]

_LAZY = {
    "get_data_home": "powerfit.datasets.home",
    "sha256_file": "powerfit.datasets.home",
    "MAYAKI2025_URL": "powerfit.datasets.mayaki2025",
    "MAYAKI2025_FILES": "powerfit.datasets.mayaki2025",
    "Mayaki2025": "powerfit.datasets.mayaki2025",
    "fetch_mayaki2025": "powerfit.datasets.mayaki2025",
    "NEUSIGHT2025_COMMIT": "powerfit.datasets.neusight2025",
    "NEUSIGHT2025_COLUMNS": "powerfit.datasets.neusight2025",
    "NeuSight2025": "powerfit.datasets.neusight2025",
    "fetch_neusight2025": "powerfit.datasets.neusight2025",
    "VIDUR2024_COMMIT": "powerfit.datasets.vidur2024",
    "Vidur2024": "powerfit.datasets.vidur2024",
    "fetch_vidur2024": "powerfit.datasets.vidur2024",
    "FlashAttnPublished": "powerfit.datasets.flashattn",
    "fetch_flashattn": "powerfit.datasets.flashattn",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
