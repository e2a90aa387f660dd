"""Splits x seeds in, the outcome figures of each run out, on the sweep's runner.

One task per (split, seed), as the sweep sends them (``simulation.sweep.worker.Task``):
to this process (one job), to worker processes on this machine (the sweep's pool,
forked or loky, with its thread caps) or to a Dask cluster. A worker simulates and
shrinks the run to the figures an objective may read and the media actually spent
(:data:`FIGURES`, from the project's one definition, ``analysis.economics.unit_economics``
for the whole market), so a few numbers travel back per run, never a dataset.

Every split is run on the same list of seeds (common random numbers): the customers'
streams are keyed by (seed, day, customer, decision), so two splits on one seed differ
only by what the budgets change, and two equal splits give equal figures.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simulation.scenario import Scenario
from simulation.sweep.pool import Workers

FIGURES = ("profit", "contribution", "customers", "media_spend")
"""What a worker sends back per run, in this order: the objectives, and the media spend
over the run (a budget is a ceiling: a cpc channel short of searchers spends less)."""


def figures(task) -> tuple[int, np.ndarray, dict]:
    """In a worker: simulate ``task`` (the sweep's own :func:`simulate`) and keep the
    market's :data:`FIGURES`."""
    from simulation.analysis.economics import unit_economics
    from simulation.sweep.worker import simulate

    index, ds, info = simulate(task)
    market = unit_economics(ds, market=True).squeeze("channel", drop=True)
    return index, np.array([float(market[name]) for name in FIGURES]), info


class Runs(Workers):
    """Runs splits on ``jobs`` processes here, or on the Dask cluster at ``scheduler``
    (:class:`~simulation.sweep.pool.Workers`); counts the runs simulated."""

    def __init__(self, base: Scenario, *, jobs: int = 1, scheduler=None,
                 threads: int | None = None):
        super().__init__(base, jobs=jobs, scheduler=scheduler, threads=threads)
        self.count = 0  # runs simulated

    def __call__(self, overrides: list[dict], seeds, progress: Callable[[], None] | None = None
                 ) -> np.ndarray:
        """The :data:`FIGURES` of each split (a dict of scenario overrides) on each seed:
        an array (splits, seeds, figures). ``progress()`` after each run."""
        from simulation.sweep.experiment import Outputs
        from simulation.sweep.runner import run_dask, run_local
        from simulation.sweep.worker import Task

        seeds = [int(s) for s in seeds]
        self.start()
        outputs = Outputs(variables="all")  # the figures are computed before it travels
        tasks = [Task(i * len(seeds) + r, "", r, seed, self.base, over, outputs, self.per_run,
                      {"split": i})
                 for i, over in enumerate(overrides) for r, seed in enumerate(seeds)]
        out = np.full((len(overrides), len(seeds), len(FIGURES)), np.nan)
        if self.client is not None:
            results = run_dask(tasks, self.client, work=figures)
        else:
            results = run_local(tasks, self.jobs, self.per_run, self.pool, work=figures)
        try:
            for index, values, _ in results:
                out[divmod(index, len(seeds))] = values
                self.count += 1
                if progress is not None:
                    progress()
        except BaseException:
            self.pool = None  # interrupted: run_local has ended the workers
            raise
        return out
