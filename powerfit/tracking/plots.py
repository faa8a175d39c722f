"""Figures recorded with each fit (matplotlib's Agg canvas, no pyplot state).

* :func:`law_figure` — one efficiency law over its measured points, FLOPs [FLOP]
  on a log axis, efficiency [% of peak].
* :func:`prediction_figure` — predicted against measured energy [J] of the held-out
  runs, with the identity line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["law_figure", "prediction_figure", "save_png"]


def _figure() -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 4.0), dpi=100)
    figure.subplots_adjust(left=0.13, right=0.97, bottom=0.13, top=0.92)
    FigureCanvasAgg(figure)
    return figure


def law_figure(law: Any, flops: Any, efficiency: Any, *, title: str) -> Any:
    """Scatter of measured efficiency against FLOPs, with the fitted law.

    Parameters
    ----------
    law : PowerLawEfficiency
        The fitted law.
    flops : array-like
        FLOPs of one call [FLOP].
    efficiency : array-like
        Measured efficiency [fraction of peak].
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    from powerfit.paper.laws import efficiency as law_efficiency

    c = np.asarray(flops, dtype=float)
    eta = np.asarray(efficiency, dtype=float)
    figure = _figure()
    ax = figure.add_subplot()
    ax.scatter(c, 100 * eta, s=6, alpha=0.5, label="measured")
    grid = np.logspace(np.log10(c[c > 0].min()), np.log10(c.max()), 200)
    curve = law_efficiency(grid, law.eta_max_, law.k_, law.alpha_)
    label = (
        f"η_max={100 * law.eta_max_:.3g} %, k={law.k_:.4g}, α={law.alpha_:.3g} (R²={law.r2_:.3f})"
    )
    ax.plot(grid, 100 * curve, color="C3", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("FLOPs of one call [FLOP]")
    ax.set_ylabel("hardware efficiency [% of peak]")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return figure


def prediction_figure(measured: Any, predicted: Any, *, title: str) -> Any:
    """Predicted against measured energy [J], with the identity line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    y = np.asarray(measured, dtype=float)
    p = np.asarray(predicted, dtype=float)
    figure = _figure()
    ax = figure.add_subplot()
    ax.scatter(y, p, s=8, alpha=0.6)
    low, high = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    ax.plot([low, high], [low, high], color="k", lw=0.8, label="predicted = measured")
    ax.set_xlabel("measured energy of one training step [J]")
    ax.set_ylabel("predicted energy [J]")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return figure


def save_png(figure: Any, path: str | Path) -> Path:
    """Write a figure as PNG [100 dpi] and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
