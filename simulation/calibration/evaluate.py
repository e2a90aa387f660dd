"""Evaluations: parameter values and seeds in, the observed figures' simulated values out.

An evaluation (:class:`Simulator`) runs the scenario at the fit's size with the free
parameters set, once per seed, and shrinks each run to the figures the targets name, so
a worker sends back a few numbers per run, never a dataset. Work goes out through
:meth:`Evaluator.map`: to this process (one job), to worker processes on this machine
(the sweep's pool: :mod:`simulation.sweep.pool`) or to a Dask cluster; results are put
back in the order of the request, so which worker finished first never changes a fit.
The fit maps its own tasks (proposals, :mod:`.fit`); the pilot and the check runs map
:class:`Batch` es of rows.

Each evaluation carries its own seeds, drawn by the fit from its own seed: an
evaluation's runs are fresh random numbers, shared with no other particle (common
random numbers across particles would make every particle's miss partly the same noise,
and the posterior narrower than the data allow).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulation.calibration.targets import Targets, simulated
from simulation.scenario import Scenario, ScenarioError, with_overrides
from simulation.sweep.pool import Workers


def scenario_at(base: Scenario, paths, values, seed: int) -> Scenario:
    """``base`` with the free parameters set to ``values`` and the run's seed."""
    over = {p: float(v) for p, v in zip(paths, values, strict=True)}
    over["simulation.seed"] = int(seed)
    return with_overrides(base, over, source="calibration")


@dataclass(frozen=True)
class Simulator:
    """One evaluation, picklable for the workers: the scenario at the fit's size, the free
    paths and the targets whose figures to read."""

    base: Scenario
    paths: tuple[str, ...]
    targets: Targets
    threads: int | None = 1

    def __call__(self, values: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """The figures at ``values`` (one per free path), averaged over a run per seed.

        A combination of values that makes no valid scenario gives NaN figures (an
        infinite distance: the proposal is rejected), not a failed fit.
        """
        import simulation

        k = len(self.targets.vector()[0])
        total = np.zeros(k)
        try:
            for seed in seeds:
                ds = simulation.run(scenario_at(self.base, self.paths, values, seed),
                                    threads=self.threads)
                total += simulated(ds, self.targets)
        except ScenarioError:
            return np.full(k, np.nan)
        return total / len(seeds)


@dataclass(frozen=True)
class Batch:
    """Rows of evaluations for one worker: a row of values and a row of seeds each."""

    simulator: Simulator
    values: np.ndarray  # (rows, parameters), scenario values
    seeds: np.ndarray  # (rows, replicates)


def evaluate(batch: Batch) -> np.ndarray:
    """The figures of each row of a batch (rows, observed values)."""
    return np.array([batch.simulator(v, s)
                     for v, s in zip(batch.values, batch.seeds, strict=True)])


class Evaluator(Workers):
    """Runs evaluations on ``jobs`` processes here, or on the Dask cluster at
    ``scheduler`` (:class:`~simulation.sweep.pool.Workers`)."""

    def __init__(self, base: Scenario, paths: tuple[str, ...], targets: Targets, *,
                 jobs: int = 1, scheduler=None, threads: int | None = None):
        super().__init__(base, jobs=jobs, scheduler=scheduler, threads=threads)
        self.paths = paths
        self.targets = targets

    @property
    def simulator(self) -> Simulator:
        return Simulator(self.base, self.paths, self.targets, self.per_run)

    def __call__(self, values: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """The figures of each row of ``values`` (rows, parameters) run on the row's
        ``seeds`` (rows, replicates), in row order."""
        n = len(values)
        size = max(1, -(-n // (4 * self.workers)))  # a few batches per worker: balance
        batches = [Batch(self.simulator, values[lo:lo + size], seeds[lo:lo + size])
                   for lo in range(0, n, size)]
        k = len(self.targets.vector()[0])
        return np.concatenate(self.map(evaluate, batches)) if batches else np.zeros((0, k))

    def map(self, fn, items: list, done=None) -> list:
        """``[fn(item) for item in items]``, run here, on the worker processes or on the
        cluster, in the order of ``items`` whichever finishes first; ``done(result)`` as
        each one finishes."""
        self.start()
        results: list = [None] * len(items)
        for i, result in self._run(fn, items):
            results[i] = result
            if done is not None:
                done(result)
        return results

    def _run(self, fn, items):
        if self.client is not None:
            yield from self._run_dask(fn, items)
        elif self.jobs == 1:
            for i, item in enumerate(items):
                yield i, fn(item)
        else:
            yield from self._run_local(fn, items)

    def _run_local(self, fn, items):
        from concurrent.futures import FIRST_COMPLETED, wait

        running = {self.pool.submit(fn, item): i for i, item in enumerate(items)}
        try:
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield running.pop(future), future.result()
        finally:
            if running:  # interrupted: end the work under way; it is redone at a resume
                self.pool.shutdown(wait=False, kill_workers=True)
                self.pool = None

    def _run_dask(self, fn, items):
        from distributed import as_completed

        futures = self.client.map(fn, items, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for fut in as_completed(futures, loop=self.client.loop):
                result = fut.result()
                fut.release()
                yield index[fut.key], result
        finally:
            self.client.cancel(futures)
