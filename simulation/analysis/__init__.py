"""Analysis of results: unit economics, cohorts, attribution tables, diagnostics,
plots and the HTML report. Everything reads the result dataset (or a sweep's combined
dataset), so it works the same on a fresh run and on a file saved months ago."""

from simulation.analysis.attribution import attributed_revenue, attribution_shares
from simulation.analysis.diagnostics import Finding, diagnose
from simulation.analysis.economics import (
    cohort_retention,
    marginal_cac,
    retention_curves,
    unit_economics,
)

__all__ = ["Finding", "attributed_revenue", "attribution_shares", "cohort_retention",
           "diagnose", "marginal_cac", "retention_curves", "unit_economics"]
