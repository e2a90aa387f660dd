"""distsim: an agent-based simulator of distribution strategies.

The whole public API::

    scenario = simulation.load_scenario("scenarios/default.toml")
    ds = simulation.run(scenario, agents=100_000, days=365, seed=1)
"""

from __future__ import annotations

from simulation.scenario import Scenario, ScenarioError, load_scenario
from simulation.version import __version__

BACKENDS = ("numba", "mesa")


def run(scenario: Scenario, *, agents: int | None = None, days: int | None = None,
        seed: int | None = None, backend: str = "numba", threads: int | None = None,
        progress=None, events_sample: int = 0, events_path=None, scheduler=None,
        shards: int | None = None):
    """Simulate ``scenario`` and return the result dataset (see docs/contracts.md).

    ``agents``, ``days`` and ``seed`` override the scenario's ``[simulation]`` table;
    ``threads`` caps the numba threads for this run (the result does not depend on it);
    ``progress(day, days)`` is called after each day. With ``events_path`` the events of
    ``events_sample`` customers drawn uniformly are written there as Parquet.

    ``backend="mesa"`` steps one Mesa agent per customer (``simulation.reference``): the
    same rules written independently, for docking and reading; meant for up to ~100k
    customers, single-threaded (``threads`` is ignored), reproducible for a seed.

    ``scheduler`` (a Dask scheduler address, a ``distributed.Client`` or a cluster)
    splits the market into ``shards`` runs of whole chunks (default: one per worker)
    that the cluster's workers hold for the whole run, exchanging only per-chunk counts
    each day (:mod:`simulation.sharded`); ``threads`` is then each shard's numba threads
    (default: its worker's). The dataset is the one-machine run's, bit for bit.
    """
    from simulation import memory
    from simulation.model import MarketModel, set_threads
    from simulation.scenario import resolve_size

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (available: {', '.join(BACKENDS)})")
    if scheduler is not None and backend != "numba":
        raise ScenarioError("--backend", "", f"{backend} steps every customer in this process; "
                            "--scheduler shards the numba backend only")
    if shards is not None and scheduler is None:
        raise ScenarioError("--shards", "", "needs --scheduler (the cluster that holds the shards)")
    resolved = resolve_size(scenario, agents, days, seed)
    sim = resolved.simulation
    if scheduler is None:  # a sharded market's customers live in the workers' memory
        memory.check(memory.run_bytes(resolved, backend, events_sample if events_path else 0),
                     f"a run of {sim.agents:,} customers x {sim.days:,} days ({backend})")
    if backend == "mesa":
        from simulation.reference import ReferenceMarketModel as Model

        threads = None  # one Python thread; nothing to set
    elif scheduler is not None:
        from functools import partial

        from simulation.sharded import ShardedMarketModel

        Model = partial(ShardedMarketModel, scheduler=scheduler, shards=shards, threads=threads)
        threads = None  # the shards' own, on the workers
    else:
        Model = MarketModel
    previous = set_threads(threads)
    try:
        model = Model(scenario, agents=agents, days=days, seed=seed)
        try:
            if events_path is not None:
                model.sample_events(events_sample)
            model.run_model(progress)
            ds = model.results(backend)
            if events_path is not None:
                from simulation.io import write_events

                write_events(model.event_columns(), model.channel_names, events_path)
        finally:
            model.close()
        return ds
    finally:
        set_threads(previous)


__all__ = ["Scenario", "ScenarioError", "load_scenario", "run", "__version__"]
