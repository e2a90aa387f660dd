"""Plots of results: kept importable here; the plots live in :mod:`simulation.analysis.plots`."""

from simulation.analysis.plots import (  # noqa: F401
    DESCRIPTIONS,
    KINDS,
    RUN_KINDS,
    STAGE_COLOURS,
    SWEEP_KINDS,
    PlotError,
    figure,
    funnel,
    plot,
)

__all__ = ["DESCRIPTIONS", "KINDS", "RUN_KINDS", "STAGE_COLOURS", "SWEEP_KINDS", "PlotError",
           "figure", "funnel", "plot"]
