"""The optimiser against brute force: does ``distsim optimise`` find the best split?

``benchmarks/optimise_two_channels.toml`` splits one total daily budget between two
channels. This script

1. runs every split of the total on a fine grid (paid social's share in steps of
   ``1 / --grid``) on ``--grid-seeds`` seeds (the same seeds for every split) and takes
   the split with the best mean profit: the grid best;
2. runs ``distsim optimise`` on the same scenario, size and seed (a subprocess, as a
   user would), with ``--trials`` candidates of ``--replicates`` seeds each;
3. runs the grid best on the optimiser's fresh seeds (``--fresh-seeds``, never used by
   the grid or the search), paired with the optimiser's own check of its
   recommendation and the scenario's split on the same seeds;

and prints the grid's profile, the shortfall of the optimiser's recommendation (grid
best minus recommendation, paired by seed) with its 95% interval as a share of the grid
best, and the simulations each used, replicates included. A script that prints
figures, not a test:

    python benchmarks/optimise_benchmark.py --jobs 2

The issue's bar: the shortfall's upper 95% end under 2% of the grid best, with at
most half the grid's simulations; the scenario's own split at least 10% below the grid
best.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCENARIO = ROOT / "benchmarks" / "optimise_two_channels.toml"
FIRST, SECOND = "paid_social", "display"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=180)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--total", type=float, default=600.0)
    ap.add_argument("--grid", type=int, default=50, help="grid steps of the share (default 50)")
    ap.add_argument("--grid-seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=25)
    ap.add_argument("--replicates", type=int, default=8)
    ap.add_argument("--fresh-seeds", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()

    from simulation.optimise.command import fresh_seeds
    from simulation.optimise.evaluate import FIGURES, Runs
    from simulation.scenario import load_scenario, resolve_size
    from simulation.sweep.combine import t_interval
    from simulation.sweep.experiment import replicate_seeds

    scenario = resolve_size(load_scenario(SCENARIO), args.agents, args.days, args.seed)
    own = {c.name: c.daily_budget for c in scenario.channels}
    total = round(args.total * 100)
    firsts = np.round(np.linspace(0, total, args.grid + 1)).astype(np.int64)
    splits = [{f"channels.{FIRST}.daily_budget": int(a) / 100,
               f"channels.{SECOND}.daily_budget": int(total - a) / 100} for a in firsts]
    current = {f"channels.{n}.daily_budget": v for n, v in own.items()}
    seeds = replicate_seeds(args.seed, args.grid_seeds)
    check = fresh_seeds(args.seed, args.fresh_seeds)
    profit = FIGURES.index("profit")
    print(f"scenario {SCENARIO.name} at {args.agents:,} agents x {args.days} days, seed "
          f"{args.seed}; total {args.total:,.2f} a day; jobs {args.jobs}", flush=True)

    t0 = time.perf_counter()
    with Runs(scenario, jobs=args.jobs) as runs:
        grid = runs(splits + [current], seeds)[..., profit]
        grid_seconds = time.perf_counter() - t0
        means = grid[:-1].mean(axis=1)
        b = int(np.argmax(means))
        print(f"\ngrid: {len(splits)} splits x {len(seeds)} seeds = {len(splits) * len(seeds)} "
              f"runs in {grid_seconds:.0f} s", flush=True)
        print(f"{FIRST:>12} {SECOND:>12} {'mean profit':>14}")
        for i in range(0, len(splits), max(1, len(splits) // 25)):
            mark = "  <- grid best" if i == b else ""
            print(f"{firsts[i] / 100:12,.2f} {(total - firsts[i]) / 100:12,.2f} "
                  f"{means[i]:14,.0f}{mark}")
        if b % max(1, len(splits) // 25):
            print(f"{firsts[b] / 100:12,.2f} {(total - firsts[b]) / 100:12,.2f} "
                  f"{means[b]:14,.0f}  <- grid best")
        own_mean = grid[-1].mean()
        print(f"scenario's own split ({', '.join(f'{n} {v:,.2f}' for n, v in own.items())}): "
              f"{own_mean:,.0f}, {1 - own_mean / means[b]:.1%} below the grid best")

        with tempfile.TemporaryDirectory(prefix="optimise-bench-") as tmp:
            t1 = time.perf_counter()
            cmd = [sys.executable, "-m", "simulation", "optimise", str(SCENARIO),
                   "--budget", str(args.total), "--agents", str(args.agents),
                   "--days", str(args.days), "--seed", str(args.seed),
                   "--trials", str(args.trials), "--replicates", str(args.replicates),
                   "--fresh-seeds", str(args.fresh_seeds), "--curve-points", "0",
                   "--jobs", str(args.jobs), "--out", tmp, "--quiet"]
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            subprocess.run(cmd, check=True, env=env)
            opt_seconds = time.perf_counter() - t1
            from simulation.io import read_netcdf

            ds = read_netcdf(Path(tmp) / "optimise.nc")
        rec = ds.fresh_profit.sel(split="recommended").values
        cur = ds.fresh_profit.sel(split="current").values
        best_fresh = runs([splits[b]], check)[0, :, profit]
    shortfall = best_fresh - rec
    mean, low, high, n = t_interval(shortfall, 0.95)
    search_runs = int(ds.attrs["search_runs"])
    check_runs = int(ds.attrs["check_runs"])
    grid_runs = len(splits) * len(seeds)
    print(f"\noptimiser: {ds.sizes['trial']} trials x {ds.sizes['replicate']} seeds = "
          f"{search_runs} search runs (+ {check_runs} check runs) in {opt_seconds:.0f} s")
    print("recommended: " + ", ".join(f"{c} {float(v):,.2f}" for c, v in
                                       zip(ds.channel.values, ds.recommended_budget.values,
                                           strict=True)))
    print(f"\non {n} fresh paired seeds: grid best {best_fresh.mean():,.0f}, recommended "
          f"{rec.mean():,.0f}, scenario's own {cur.mean():,.0f}")
    print(f"shortfall (grid best - recommended): {mean:+,.0f}, 95% CI {low:+,.0f} to "
          f"{high:+,.0f}: upper end {high / best_fresh.mean():+.2%} of the grid best "
          f"(bar: under 2%)")
    print(f"simulations: optimiser {search_runs} search runs = {search_runs / grid_runs:.0%} of "
          f"the grid's {grid_runs}; with its check runs {search_runs + check_runs} = "
          f"{(search_runs + check_runs) / grid_runs:.0%} (bar: at most 50%)")
    ok = high < 0.02 * best_fresh.mean() and search_runs + check_runs <= grid_runs / 2
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
