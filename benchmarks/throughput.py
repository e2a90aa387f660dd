"""Throughput of the numba core: agent-steps per second and bytes per customer.

Usage: python benchmarks/throughput.py [--scenario scenarios/default.toml]
       [--agents 1000000] [--days 365] [--threads N] [--scaling]

Compile time (first call, or loading the on-disk cache) is measured by a tiny
warm-up run and reported separately from the timed run. ``--scaling`` also times
100k, 1M and 10M customers (the same market per customer: budgets, visitors and
capacity scaled with the size) to show run time growing linearly with agents, and
1 versus all threads.
"""

from __future__ import annotations

import argparse
import time

import numba

import simulation
from simulation.model import MarketModel, set_threads
from simulation.state import BYTES_PER_CUSTOMER


def scaled(scenario, agents: int):
    """The same market per customer at another size: budgets, visitors and capacity scale
    with the number of customers, so each customer sees the same reach and the time per
    agent-step shows the engine's scaling, not a thinner market."""
    import tomllib

    from simulation.scenario import scenario_from_dict

    f = agents / scenario.simulation.agents
    data = tomllib.loads(scenario.to_toml())  # plain data, unset options left out
    data["simulation"]["agents"] = agents
    data["market"]["size"] = round(data["market"]["size"] * f)
    for ch in data.get("channels", []):
        ch["daily_budget"] *= f
        sch = ch["schedule"]
        sch["end_budget"] *= f
        if "cap" in sch:
            sch["cap"] *= f
        sch["steps"] = [[d, b * f] for d, b in sch["steps"]]
        ch["reach"]["daily_visitors"] *= f
        if "capacity" in ch:
            ch["capacity"] = max(1, round(ch["capacity"] * f))
    return scenario_from_dict(data)


def timed_run(scenario, agents: int, days: int, threads: int | None = None) -> tuple[float, float]:
    previous = set_threads(threads)
    try:
        t0 = time.perf_counter()
        model = MarketModel(scenario, agents=agents, days=days)
        t1 = time.perf_counter()
        model.run_model()
        t2 = time.perf_counter()
        model.results()
        return t2 - t1, t1 - t0
    finally:
        set_threads(previous)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="scenarios/default.toml")
    ap.add_argument("--agents", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--scaling", action="store_true")
    args = ap.parse_args()
    scenario = simulation.load_scenario(args.scenario)

    t0 = time.perf_counter()
    timed_run(scenario, 1000, 2)
    compile_s = time.perf_counter() - t0
    print(f"scenario            {args.scenario}")
    print(f"threads             {args.threads or numba.get_num_threads()} "
          f"(of NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS})")
    print(f"compile/load time   {compile_s:.2f} s (first call; cached kernels load from __pycache__)")
    print(f"bytes per customer  {BYTES_PER_CUSTOMER}")

    run_s, setup_s = timed_run(scenario, args.agents, args.days, args.threads)
    steps = args.agents * args.days
    print(f"agents x days       {args.agents:,} x {args.days}")
    print(f"set-up time         {setup_s:.2f} s (allocation, segment draw)")
    print(f"day loop            {run_s:.2f} s")
    print(f"agent-steps/s       {steps / run_s / 1e6:.1f} million")

    if args.scaling:
        print("\nscaling with agents (days as above), the same market per customer "
              "(budgets, visitors, capacity scaled with agents):")
        for n in (100_000, 1_000_000, 10_000_000):
            s, _ = timed_run(scaled(scenario, n), n, args.days, args.threads)
            print(f"  {n:>11,} agents  {s:7.2f} s  {n * args.days / s / 1e6:7.1f} M steps/s"
                  f"  {s / (n * args.days) * 1e9:6.1f} ns per agent-step")
        print("scaling with threads:")
        for t in range(1, numba.config.NUMBA_NUM_THREADS + 1):
            s, _ = timed_run(scenario, args.agents, args.days, t)
            print(f"  {t} thread(s)  {s:7.2f} s  {steps / s / 1e6:7.1f} M steps/s")


if __name__ == "__main__":
    main()
