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
        progress=None, events_sample: int = 0, events_path=None):
    """Simulate ``scenario`` and return the result dataset (see docs/contracts.md).

    ``agents``, ``days`` and ``seed`` override the scenario's ``[simulation]`` table;
    ``threads`` caps the numba threads for this run (the result does not depend on it);
    ``progress(day, days)`` is called after each day. With ``events_path`` the events of
    ``events_sample`` customers drawn uniformly are written there as Parquet.

    ``backend="mesa"`` steps one Mesa agent per customer (``simulation.reference``): the
    same rules written independently, for docking and reading; meant for up to ~100k
    customers, single-threaded (``threads`` is ignored), reproducible for a seed.
    """
    from simulation import memory
    from simulation.model import MarketModel, set_threads
    from simulation.scenario import resolve_size

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (available: {', '.join(BACKENDS)})")
    resolved = resolve_size(scenario, agents, days, seed)
    sim = resolved.simulation
    memory.check(memory.run_bytes(resolved, backend, events_sample if events_path else 0),
                 f"a run of {sim.agents:,} customers x {sim.days:,} days ({backend})")
    if backend == "mesa":
        from simulation.reference import ReferenceMarketModel as Model

        threads = None  # one Python thread; nothing to set
    else:
        Model = MarketModel
    previous = set_threads(threads)
    try:
        model = Model(scenario, agents=agents, days=days, seed=seed)
        if events_path is not None:
            model.sample_events(events_sample)
        model.run_model(progress)
        ds = model.results(backend)
        if events_path is not None:
            from simulation.io import write_events

            write_events(model.event_columns(), model.channel_names, events_path)
        return ds
    finally:
        set_threads(previous)


__all__ = ["Scenario", "ScenarioError", "load_scenario", "run", "__version__"]
