"""Sweeps: an experiment (a base scenario, named variants, swept parameters, replicates)
expanded into runs, run in parallel (worker processes or Dask), stored run by run, combined.

    experiment = load_experiment("experiments/scaling_strategies.toml")
    result = run_sweep(experiment, "results/scaling", jobs=2)
    result.combined            # xarray: variant / swept parameters x replicate x run dims
    result.summary.best        # the best variant and P(it beats the runner-up)

The names below are imported on first use, so that ``simulation.sweep.pool`` can
start the worker processes before xarray and the model are imported here. (The
function that stacks run datasets is ``simulation.sweep.combine.combine``: a package
attribute of that name would be the module once the module is imported.)
"""

from __future__ import annotations

import importlib

_WHERE = {
    "outcomes": "combine", "summarise": "combine",
    "Experiment": "experiment", "expand": "experiment", "expand_runs": "experiment",
    "experiment_from_dict": "experiment", "load_experiment": "experiment",
    "run_sweep": "runner", "run_plan": "runner",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"simulation.sweep.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'simulation.sweep' has no attribute {name!r}")
