"""The same scenario and size on both backends: agent-steps per second and their ratio.

Usage: python benchmarks/mesa_vs_numba.py [--scenario scenarios/default.toml]
       [--agents 20000] [--days 60] [--seed 1] [--threads N]

An agent-step is one customer's day. Both backends run the same market; the numba
figure is taken on one thread (the fair comparison with single-threaded Mesa) and on
``--threads`` (default: all of NUMBA_NUM_THREADS). Two rates per backend:

- core: the customers' day alone: the kernels ``step_day`` and ``serve_leads`` for
  numba; ``Customer.step`` over the ``AgentSet``, lead serving and the end-of-day census
  for Mesa (the kernels count stages and health while stepping);
- day loop: everything a day costs, including the shared Python shell (channel plans,
  components, recording), which both backends pay alike and which dominates numba's
  time at small sizes.

Set-up (allocating the population, creating the Mesa agents) and kernel compilation are
reported apart.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numba

import simulation
from simulation.kernels import day as K
from simulation.model import MarketModel, set_threads
from simulation.reference import ReferenceMarketModel

CORE = {  # (owner, attribute) of the functions that make up each backend's customer core
    MarketModel: [(K, "step_day"), (K, "serve_leads")],
    ReferenceMarketModel: [(ReferenceMarketModel, "_step_customers"),
                           (ReferenceMarketModel, "_serve_leads"),
                           (ReferenceMarketModel, "_census")],
}


@contextlib.contextmanager
def stopwatch(targets):
    """Wrap each (owner, name) function to add its wall time to the yielded list's [0]."""
    total = [0.0]
    saved = [(owner, name, getattr(owner, name)) for owner, name in targets]

    def wrap(fn):
        def timed_call(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                total[0] += time.perf_counter() - t
        return timed_call

    for owner, name, fn in saved:
        setattr(owner, name, wrap(fn))
    try:
        yield total
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


def timed(model_cls, scenario, agents: int, days: int, seed: int):
    """(set-up s, core s, day-loop s, dataset)."""
    t0 = time.perf_counter()
    model = model_cls(scenario, agents=agents, days=days, seed=seed)
    t1 = time.perf_counter()
    with stopwatch(CORE[model_cls]) as core:
        model.run_model()
    t2 = time.perf_counter()
    return t1 - t0, core[0], t2 - t1, model.results()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="scenarios/default.toml")
    ap.add_argument("--agents", type=int, default=None,
                    help="customers (default: the scenario's own size, whose budgets it is "
                         "written for; a smaller market is a denser one per customer)")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    args = ap.parse_args()
    scenario = simulation.load_scenario(args.scenario)
    if args.agents is None:
        args.agents = scenario.simulation.agents
    steps = args.agents * args.days

    t0 = time.perf_counter()
    timed(MarketModel, scenario, 1000, 2, args.seed)  # compile, or load the cached kernels
    compile_s = time.perf_counter() - t0

    rows = []
    previous = set_threads(1)
    try:
        rows.append(("numba, 1 thread",
                     *timed(MarketModel, scenario, args.agents, args.days, args.seed)))
        set_threads(args.threads)
        rows.append((f"numba, {numba.get_num_threads()} threads",
                     *timed(MarketModel, scenario, args.agents, args.days, args.seed)))
    finally:
        set_threads(previous)
    rows.append(("mesa", *timed(ReferenceMarketModel, scenario, args.agents, args.days,
                                args.seed)))

    print(f"scenario        {args.scenario}")
    print(f"agents x days   {args.agents:,} x {args.days} = {steps:,} agent-steps (seed {args.seed})")
    print(f"numba compile   {compile_s:.2f} s (first call; cached kernels load from __pycache__)")
    print()
    print(f"{'backend':<18}{'set-up s':>9}{'core s':>9}{'core steps/s':>15}"
          f"{'loop s':>9}{'loop steps/s':>15}{'customers':>11}")
    for name, setup, core, loop, ds in rows:
        print(f"{name:<18}{setup:>9.2f}{core:>9.3f}{steps / core:>15,.0f}{loop:>9.3f}"
              f"{steps / loop:>15,.0f}{int(ds.customers.sum()):>11,}")
    _, _, mesa_core, mesa_loop, _ = rows[-1]
    print()
    for name, _, core, loop, _ in rows[:-1]:
        print(f"{name} vs mesa: core {mesa_core / core:,.0f}x, day loop {mesa_loop / loop:,.0f}x")


if __name__ == "__main__":
    main()
