"""One market past one machine: its customers split into shards that the workers of a
Dask cluster hold for the whole run (``distsim run ... --scheduler ADDRESS --shards N``).

:class:`ShardedMarketModel` is :class:`simulation.model.MarketModel`'s day loop with
the shards elsewhere. Each :class:`simulation.model.Shard` (a run of whole chunks of
``CHUNK`` customers) is a Dask actor on one worker, created once: its customers never
travel. Each day this process (the driver) plans the day as on one machine and sends
every shard the day's small arrays (exposure odds, reachable, the channels' decision
keys, forgetting, the rule records); each returns its rows of the per-chunk counters
and of the leads waiting. The driver sets the lead quotas over the market's chunks and
sends each shard its rows; at the end the shards send their additive totals
(attribution and journey transitions per chunk, reach, cohort counts) and the sampled
events. What crosses the network is a few numbers per chunk, never one per customer.

Every draw is keyed by the customer's index in the market and the driver keeps each
per-chunk matrix in the market's chunk order, so a seed gives the same dataset, bit for
bit, as on one machine, whatever the number of shards or workers (``tests/test_shards.py``).
"""

from __future__ import annotations

import uuid

import numpy as np

from simulation.cluster import connect
from simulation.kernels.day import CHUNK
from simulation.memory import BASE_BYTES
from simulation.model import MarketModel, Shard
from simulation.scenario import Scenario, ScenarioError, resolve_size


def shard_chunks(n_chunks: int, shards: int) -> list[tuple[int, int]]:
    """(first, end) chunk of each of ``shards`` shards: consecutive runs of whole chunks,
    as even as they can be (the first ones one chunk longer)."""
    if shards < 1:
        raise ScenarioError("--shards", "", f"must be at least 1, got {shards}")
    if shards > n_chunks:
        raise ScenarioError("--shards", "", f"{shards} is more than the market's {n_chunks} "
                            f"chunk(s) of {CHUNK:,} customers (a shard holds whole chunks)")
    sizes = np.full(shards, n_chunks // shards)
    sizes[: n_chunks % shards] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def check_shards(scenario: Scenario, shards: int) -> None:
    """Refuse, in one line, ``shards`` that cannot split ``scenario``'s market (as
    resolved: its own agents): fewer than one, or more than its chunks."""
    shard_chunks(market_chunks(scenario), shards)


def market_chunks(scenario: Scenario) -> int:
    """Chunks of ``CHUNK`` customers in the market ``scenario`` simulates (as resolved)."""
    return (scenario.simulation.agents + CHUNK - 1) // CHUNK


def shard_bytes_per_customer(scenario: Scenario) -> float:
    """What a shard holds per customer: the population's arrays and the customer's share
    of the chunks' accumulators (:func:`simulation.memory.run_bytes` without the result,
    which the driver builds)."""
    from simulation.memory import run_bytes

    return (run_bytes(scenario) - BASE_BYTES) / scenario.simulation.agents


def check_workers(customers: dict[str, int], limits: dict[str, int],
                  per_customer: float) -> None:
    """Refuse, in one line, shards that would not fit their workers' memory limits (a limit
    of 0: none set). A worker that runs out mid-run would be restarted by its nanny and
    the run lost after minutes; this says so before any customer is drawn."""
    for worker, count in customers.items():
        need = BASE_BYTES + count * per_customer
        limit = limits.get(worker, 0)
        if count and limit and need > limit:
            raise ScenarioError(
                "--scheduler", "", f"worker {worker} would hold {count:,} customers, about "
                f"{need / 2**30:.1f} GB, over its memory limit of {limit / 2**30:.1f} GB: "
                "add workers or shards, or simulate fewer customers (--agents)")


class ShardedMarketModel(MarketModel):
    """A market whose customers live in ``shards`` Dask actors on the cluster at
    ``scheduler`` (an address, a ``distributed.Client`` or a cluster object); shard k on
    the k-th worker (round robin when there are more shards than workers). ``shards``
    defaults to the cluster's workers (at most one per chunk); ``threads`` caps each
    shard's numba threads (default: its worker's threads). Shards on one worker take turns
    (a Dask worker runs its actors' calls on one thread). Call :meth:`close` at the end
    (``simulation.run`` does): it releases the actors, and the client if this opened it.
    """

    def __init__(self, scenario: Scenario, scheduler, *, shards: int | None = None,
                 threads: int | None = None, agents: int | None = None,
                 days: int | None = None, seed: int | None = None):
        n_chunks = market_chunks(resolve_size(scenario, agents, days, seed))
        if shards is not None:
            shard_chunks(n_chunks, shards)  # refuse before connecting
        self.client = connect(scheduler, direct=True)
        self.own_client = self.client is not scheduler
        self.actors: list = []
        try:
            try:
                self.client.wait_for_workers(1, timeout=15)
            except TimeoutError:
                raise ScenarioError("--scheduler", "", "the cluster has no workers (waited "
                                    "15 s for one)") from None
            self.worker_threads = self.client.nthreads()
            self.workers = sorted(self.worker_threads)
            self.n_shards = shards if shards is not None else min(len(self.workers), n_chunks)
            self.threads = threads
            super().__init__(scenario, agents=agents, days=days, seed=seed)
        except BaseException:
            self.close()
            raise

    def shard_chunks(self) -> list[tuple[int, int]]:
        return shard_chunks(self.n_chunks, self.n_shards)

    def open_shards(self, customers: list[tuple[int, int]]) -> list:
        """One actor per shard, each created on its worker with its customers' day 0."""
        nch = len(self.marketers)
        width = self.counters.shape[1]
        held = dict.fromkeys(self.workers, 0)
        for k, (_, count) in enumerate(customers):
            held[self.workers[k % len(self.workers)]] += count
        limits = {w: info.get("memory_limit") or 0
                  for w, info in self.client.scheduler_info()["workers"].items()}
        check_workers(held, limits, shard_bytes_per_customer(self.scenario))
        run = uuid.uuid4().hex[:8]
        for k, (first, count) in enumerate(customers):
            worker = self.workers[k % len(self.workers)]
            threads = self.threads or self.worker_threads[worker]
            self.actors.append(self.client.submit(
                Shard, self.scenario, self.key, first, count, nch, width, self.par, self.segp,
                threads,
                actor=True, workers=[worker], allow_other_workers=False, pure=False,
                key=f"distsim-shard-{run}-{k}"))
        return [future.result() for future in self.actors]

    def _on_shards(self, method: str, args: list[tuple]) -> list:
        """Call ``method`` on every shard's actor at once (:meth:`Shard.call`: the
        arguments travel as one message), then wait for them all."""
        # the actors' proxies find their client as the current one (this client is
        # nobody's default: a run may share its process with other clients)
        with self.client.as_current():
            pending = [s.call(method, a) for s, a in zip(self.shards, args, strict=True)]
            return self.gather(pending)

    def gather(self, pending: list) -> list:
        """Wait for the calls made on the shards' actors; their results in shard order."""
        return [future.result() for future in pending]

    @property
    def population(self):
        raise AttributeError("a sharded market's customers stay on the cluster's workers; "
                             "its results() gathers what the dataset needs")

    def close(self) -> None:
        """Release the shards' actors (their workers drop the customers), and the client
        if this model opened it."""
        for future in self.actors:
            future.release()
        self.actors = []
        if self.own_client:
            self.client.close()
