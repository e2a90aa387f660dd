"""Sweeps: an experiment (a base scenario, named variants, swept parameters, replicates)
expanded into runs, run in parallel (joblib or Dask), stored run by run, combined.

    experiment = load_experiment("experiments/scaling_strategies.toml")
    result = run_sweep(experiment, "results/scaling", jobs=2)
    result.combined            # xarray: variant / swept parameters x replicate x run dims
    result.summary.best        # the best variant and P(it beats the runner-up)
"""

from simulation.sweep.combine import combine, outcomes, summarise
from simulation.sweep.experiment import (
    Experiment,
    expand,
    expand_runs,
    experiment_from_dict,
    load_experiment,
)
from simulation.sweep.runner import run_sweep

__all__ = ["Experiment", "combine", "expand", "expand_runs", "experiment_from_dict",
           "load_experiment", "outcomes", "run_sweep", "summarise"]
