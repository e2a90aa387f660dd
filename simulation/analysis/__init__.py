"""Analysis of results: Markov attribution, the run summary, unit economics, cohorts,
attribution tables, diagnostics, plots and the HTML report. Everything reads the result
dataset (or a sweep's combined dataset), so it works the same on a fresh run and on a
file saved months ago.

Each name has one home, its module (``simulation.analysis.economics`` and so on): this
package imports nothing, so that the model can use :mod:`simulation.analysis.markov` and
the command line :mod:`simulation.analysis.kinds` without loading the rest.
"""
