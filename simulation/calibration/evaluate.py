"""Evaluations: parameter values and seeds in, the observed figures' simulated values out.

A fit asks for many evaluations at once (a round of proposals). They are cut into
batches, each a small picklable :class:`Batch` that a worker simulates and shrinks to
the figures the targets name, so a worker sends back a few numbers per run, never a
dataset. Batches go to this process (one job), to worker processes on this machine (the
sweep's pool: :mod:`simulation.sweep.pool`) or to a Dask cluster; their results are put
back in the order of the request, so which worker finished first never changes a fit.

Each row of a batch carries its own seeds, drawn by the fit from its own seed: an
evaluation's runs are fresh random numbers, shared with no other particle (common
random numbers across particles would make every particle's miss partly the same noise,
and the posterior narrower than the data allow).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulation.calibration.targets import Targets, simulated
from simulation.scenario import Scenario, ScenarioError, with_overrides


@dataclass(frozen=True)
class Batch:
    """What a worker receives: the scenario at the fit's size, the free paths, and a row of
    values and a row of seeds per evaluation."""

    index: int
    base: Scenario
    paths: tuple[str, ...]
    values: np.ndarray  # (rows, parameters), scenario values
    seeds: np.ndarray  # (rows, replicates)
    targets: Targets
    threads: int | None = None


def scenario_at(base: Scenario, paths, values, seed: int) -> Scenario:
    """``base`` with the free parameters set to ``values`` and the run's seed."""
    over = {p: float(v) for p, v in zip(paths, values, strict=True)}
    over["simulation.seed"] = int(seed)
    return with_overrides(base, over, source="calibration")


def evaluate(batch: Batch) -> tuple[int, np.ndarray]:
    """Simulate a batch: (its index, the figures averaged over each row's replicates).

    A combination of values that makes no valid scenario gives NaN figures (an infinite
    distance: the proposal is rejected), not a failed fit.
    """
    import simulation

    k = len(batch.targets.vector()[0])
    out = np.full((len(batch.values), k), np.nan)
    for i, (values, seeds) in enumerate(zip(batch.values, batch.seeds, strict=True)):
        total = np.zeros(k)
        try:
            for seed in seeds:
                ds = simulation.run(scenario_at(batch.base, batch.paths, values, seed),
                                    threads=batch.threads)
                total += simulated(ds, batch.targets)
        except ScenarioError:
            continue
        out[i] = total / len(seeds)
    return batch.index, out


class Evaluator:
    """Runs evaluations on ``jobs`` processes here, or on the Dask cluster at
    ``scheduler``; a context manager that ends its workers on exit."""

    def __init__(self, base: Scenario, paths: tuple[str, ...], targets: Targets, *,
                 jobs: int = 1, scheduler=None, threads: int | None = None):
        self.base = base
        self.paths = paths
        self.targets = targets
        self.jobs = jobs
        self.scheduler = scheduler
        self.threads = threads
        self.pool = None
        self.client = None
        self.runs = 0

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Connect to the cluster, or start this machine's workers: before a progress bar
        starts its thread, as workers may be forked from this process."""
        if self.scheduler is not None:
            if self.client is None:
                from simulation.cluster import connect

                self.client = connect(self.scheduler)
        elif self.jobs > 1 and self.pool is None:
            from simulation import memory
            from simulation.sweep.pool import worker_pool

            sim = self.base.simulation
            memory.check(self.jobs * memory.run_bytes(self.base),
                         f"{self.jobs} run(s) at once of {sim.agents:,} customers x "
                         f"{sim.days:,} days", "--jobs")
            self.pool = worker_pool(self.jobs, self.threads or 1)

    @property
    def workers(self) -> int:
        if self.client is not None:
            return max(1, len(self.client.scheduler_info().get("workers", {})))
        return self.jobs

    def __call__(self, values: np.ndarray, seeds: np.ndarray, progress=None) -> np.ndarray:
        """The figures of each row of ``values`` (rows, parameters) run on the row's
        ``seeds`` (rows, replicates), in row order. ``progress(rows_done)`` after each
        batch."""
        n = len(values)
        self.start()
        size = max(1, -(-n // (4 * self.workers)))  # a few batches per worker: balance
        # one numba thread per run unless told otherwise: a fit is many small runs, and
        # runs side by side use the cores far better than one run's threads, which wait
        # for each other every day (5-9 times slower on a busy machine)
        batches = [Batch(i, self.base, self.paths, values[lo:lo + size], seeds[lo:lo + size],
                         self.targets, self.threads or 1)
                   for i, lo in enumerate(range(0, n, size))]
        results: dict[int, np.ndarray] = {}
        done = 0
        for index, figures in self._run(batches):
            results[index] = figures
            done += len(figures)
            if progress is not None:
                progress(done)
        self.runs += int(seeds.size)
        k = len(self.targets.vector()[0])
        return (np.concatenate([results[i] for i in range(len(batches))]) if batches
                else np.zeros((0, k)))

    def _run(self, batches):
        if self.client is not None:
            yield from self._run_dask(batches)
        elif self.jobs == 1:
            for batch in batches:
                yield evaluate(batch)
        else:
            yield from self._run_local(batches)

    def _run_local(self, batches):
        from concurrent.futures import FIRST_COMPLETED, wait

        self.start()
        running = {self.pool.submit(evaluate, b): b for b in batches}
        try:
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    running.pop(future)
                    yield future.result()
        finally:
            if running:  # interrupted: end the runs under way; the round is redone
                self.pool.shutdown(wait=False, kill_workers=True)
                self.pool = None

    def _run_dask(self, batches):
        from distributed import as_completed

        futures = self.client.map(evaluate, batches, pure=False)
        try:
            for fut in as_completed(futures, loop=self.client.loop):
                result = fut.result()
                fut.release()
                yield result
        finally:
            self.client.cancel(futures)

    def close(self) -> None:
        from simulation.sweep.pool import ForkedPool

        if isinstance(self.pool, ForkedPool):
            self.pool.shutdown(wait=False, kill_workers=True)
        self.pool = None
        if self.client is not None and self.client is not self.scheduler:
            self.client.close()
        self.client = None
