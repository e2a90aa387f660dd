"""A sharded market on a local Dask cluster versus the same market on one machine: the
overhead per simulated day of holding the customers in shards.

Usage: python benchmarks/shards.py [--scenario scenarios/default.toml] [--agents 1000000]
       [--days 365] [--seed 1] [--workers 2] [--shards N] [--repeat 1]

The one-machine run uses ``--workers`` numba threads in this process; the sharded run,
a ``LocalCluster`` of ``--workers`` processes of one thread each, a shard per worker
(or ``--shards``), so both have the same cores and the difference is what sharding
costs: the day's arrays sent to every shard, the counter rows sent back, the lead quotas
(a second exchange on days a channel has a capacity), the gathering at the end. Both
runs' kernels are loaded from numba's cache (a warm-up run loads them first in every
process). Printed: the set-up (population; for the sharded run, the actors on the
workers), the day loop and the results of each, the totals, and
(sharded - one machine) / days in milliseconds, for the day loop and in total. The two
datasets must be identical. ``--repeat K`` alternates the two K times and keeps each
phase's fastest (a shared machine's other work slows either at random).
"""

from __future__ import annotations

import argparse
import time

import xarray as xr

import simulation
from simulation.model import MarketModel, set_threads
from simulation.sharded import ShardedMarketModel


def timed(make) -> tuple[dict, xr.Dataset]:
    """Phases of one run (seconds) and its dataset; ``make()`` builds the model."""
    t0 = time.perf_counter()
    model = make()
    t1 = time.perf_counter()
    model.run_model()
    t2 = time.perf_counter()
    ds = model.results()
    t3 = time.perf_counter()
    model.close()
    return {"set-up": t1 - t0, "day loop": t2 - t1, "results": t3 - t2, "total": t3 - t0}, ds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="scenarios/default.toml")
    ap.add_argument("--agents", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shards", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()

    from distributed import LocalCluster

    scenario = simulation.load_scenario(args.scenario)
    size = {"agents": args.agents, "days": args.days, "seed": args.seed}
    t = time.perf_counter()
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    started = time.perf_counter() - t
    set_threads(args.workers)
    try:
        # load the kernels here and on every worker before timing anything
        simulation.run(scenario, agents=20_000, days=2)
        simulation.run(scenario, agents=20_000 * args.workers, days=2,
                       scheduler=cluster.scheduler_address)
        best: dict[str, dict] = {}
        results = {}
        for _ in range(args.repeat):
            for name, make in (
                ("one machine", lambda: MarketModel(scenario, **size)),
                ("sharded", lambda: ShardedMarketModel(
                    scenario, cluster.scheduler_address, shards=args.shards, **size)),
            ):
                phases, results[name] = timed(make)
                best[name] = {k: min(v, best.get(name, {}).get(k, v)) for k, v in phases.items()}
    finally:
        cluster.close()
    xr.testing.assert_identical(results["sharded"], results["one machine"])

    shards = args.shards or args.workers
    print(f"{args.scenario}: {args.agents:,} customers x {args.days} days, {args.workers} "
          f"cores; sharded: {shards} shard(s) on a LocalCluster of {args.workers} one-thread "
          f"worker processes (started in {started:.1f} s, not counted)")
    print(f"{'':<14}" + "".join(f"{k:>11}" for k in best["one machine"]))
    for name, phases in best.items():
        print(f"{name:<14}" + "".join(f"{v:>10.2f}s" for v in phases.values()))
    one, sh = best["one machine"], best["sharded"]
    print(f"overhead per day: day loop {1000 * (sh['day loop'] - one['day loop']) / args.days:.2f} "
          f"ms, in total {1000 * (sh['total'] - one['total']) / args.days:.2f} ms")
    print("datasets identical: yes")


if __name__ == "__main__":
    main()
