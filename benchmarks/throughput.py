"""Throughput of the numba core: agent-steps per second and bytes per customer.

Usage: python benchmarks/throughput.py [--scenario scenarios/default.toml]
       [--agents 1000000] [--days 365] [--threads N] [--scaling]

Compile time (first call, or loading the on-disk cache) is measured by a tiny
warm-up run and reported separately from the timed run. ``--scaling`` also times
100k, 1M and 10M customers to show run time growing linearly with agents, and
1 versus all threads.
"""

from __future__ import annotations

import argparse
import time

import numba

import simulation
from simulation.model import MarketModel, set_threads
from simulation.state import BYTES_PER_CUSTOMER


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
        print("\nscaling with agents (days as above):")
        for n in (100_000, 1_000_000, 10_000_000):
            s, _ = timed_run(scenario, n, args.days, args.threads)
            print(f"  {n:>11,} agents  {s:7.2f} s  {n * args.days / s / 1e6:7.1f} M steps/s")
        print("scaling with threads:")
        for t in range(1, numba.config.NUMBA_NUM_THREADS + 1):
            s, _ = timed_run(scenario, args.agents, args.days, t)
            print(f"  {t} thread(s)  {s:7.2f} s  {steps / s / 1e6:7.1f} M steps/s")


if __name__ == "__main__":
    main()
