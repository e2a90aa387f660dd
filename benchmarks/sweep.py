"""Sweep runner: speed-up of ``--jobs 2`` over ``--jobs 1`` and the per-run overhead.

Usage: python benchmarks/sweep.py [--agents 200000] [--days 365] [--variants 4]
       [--replicates 4] [--jobs 2] [--repeat 2] [--keep DIR]

Runs the same experiment (``--variants`` paid-social budgets x ``--replicates``, on
scenarios/default.toml) through ``distsim sweep`` twice, as a user would: with
``--jobs 1`` and with ``--jobs N``, each run single-threaded (``--threads 1``) so the
figure measures the runner, not numba threads. Wall times include starting Python, the
worker processes and loading the cached kernels, writing every run file and the
combined result. The per-run overhead is the time beyond the simulation itself:
(wall time at one job - the simulations' own time) / runs, with the file writing and
the first run of each process (kernel load) shown apart. Both sweeps must give
identical combined datasets.

On a shared machine other processes take cores away, mostly from the parallel sweep:
``--repeat K`` alternates the two sweeps K times and keeps each one's fastest wall time,
and the simulations' own time per run at one job and at N jobs is printed (when the N
parallel runs are much slower than the lone run, the cores were not free).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import xarray as xr

ROOT = Path(__file__).resolve().parents[1]


def experiment_text(agents: int, days: int, variants: int, replicates: int) -> str:
    budgets = [250.0 * 2**k for k in range(variants)]
    parts = [
        'name = "sweep_benchmark"',
        f'base = "{ROOT / "scenarios" / "default.toml"}"',
        "seed = 1", f"replicates = {replicates}", f"agents = {agents}", f"days = {days}",
    ]
    for b in budgets:
        parts += ["[[variants]]", f'name = "social_{int(b)}"',
                  f'set = {{ "channels.paid_social.daily_budget" = {b} }}']
    return "\n".join(parts) + "\n"


def sweep(exp: Path, out: Path, jobs: int) -> float:
    cmd = [sys.executable, "-m", "simulation", "sweep", str(exp), "--out", str(out),
           "--jobs", str(jobs), "--threads", "1", "--quiet"]
    t0, e0 = time.perf_counter(), time.time()
    subprocess.run(cmd, cwd=ROOT, check=True)
    wall = time.perf_counter() - t0
    (out / "wall.json").write_text(json.dumps({"start": e0, "end": e0 + wall}))
    return wall


def phases(out: Path) -> tuple[float, float, float]:
    """(start-up: command start to the first run, idle: worker time spent waiting for the
    last run at the end, finish: last run to command exit) of a sweep, from the run
    timestamps in its manifest."""
    wall = json.loads((out / "wall.json").read_text())
    runs = runs_of(out)
    first = min(r["started"] for r in runs)
    last = max(r["ended"] for r in runs)
    ends: dict[str, float] = {}
    for r in runs:
        ends[r["worker"]] = max(ends.get(r["worker"], 0.0), r["ended"])
    return first - wall["start"], sum(last - e for e in ends.values()), wall["end"] - last


def runs_of(out: Path) -> list[dict]:
    return json.loads((out / "manifest.json").read_text())["runs"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=200_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--variants", type=int, default=4)
    ap.add_argument("--replicates", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2, help="alternate the sweeps K times, "
                    "keep the fastest of each")
    ap.add_argument("--keep", help="keep the sweep directories here")
    args = ap.parse_args()
    n = args.variants * args.replicates

    with tempfile.TemporaryDirectory() as tmp:
        where = Path(args.keep) if args.keep else Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        exp = where / "sweep_benchmark.toml"
        exp.write_text(experiment_text(args.agents, args.days, args.variants, args.replicates))
        # warm the on-disk kernel cache so that neither timing pays for compilation
        subprocess.run([sys.executable, "-c", "import simulation; simulation.run("
                        "simulation.load_scenario('scenarios/default.toml'), agents=1000, "
                        "days=2, threads=1)"], cwd=ROOT, check=True)
        load0 = os.getloadavg()[0]
        wall1 = wallj = float("inf")
        for k in range(args.repeat):
            w = sweep(exp, where / f"jobs1_{k}", 1)
            if w < wall1:
                wall1, one, phases1 = w, runs_of(where / f"jobs1_{k}"), phases(
                    where / f"jobs1_{k}")
            w = sweep(exp, where / f"jobs{args.jobs}_{k}", args.jobs)
            if w < wallj:
                wallj, many, phasesj = w, runs_of(where / f"jobs{args.jobs}_{k}"), phases(
                    where / f"jobs{args.jobs}_{k}")
        load1 = os.getloadavg()[0]
        with xr.open_dataset(where / "jobs1_0" / "combined.nc", engine="h5netcdf") as a, \
                xr.open_dataset(where / f"jobs{args.jobs}_0" / "combined.nc",
                                engine="h5netcdf") as b:
            identical = a.load().identical(b.load())

    sim1 = sum(r["sim_seconds"] for r in one)
    warm = [r["sim_seconds"] for r in one if r["warm"]]
    warm_many = [r["sim_seconds"] for r in many if r["warm"]]
    per_warm = sum(warm) / len(warm)
    write1 = sum(r["write_seconds"] for r in one) / n
    workers = len({r["worker"] for r in many})
    # kernel load: a process's first run against the warm runs of the same variant
    load = []
    for r in one + many:
        if not r["warm"]:
            same = [q["sim_seconds"] for q in one + many
                    if q["warm"] and q["labels"] == r["labels"]]
            if same:
                load.append(r["sim_seconds"] - sum(same) / len(same))
    print(f"experiment          {n} runs ({args.variants} variants x {args.replicates} "
          f"replicates) of {args.agents:,} customers x {args.days} days, 1 thread per run")
    print(f"machine             {os.cpu_count()} cores, load average {load0:.1f} before, "
          f"{load1:.1f} after; fastest of {args.repeat} alternating sweep(s) each")
    print(f"--jobs 1            {wall1:6.1f} s wall, {sim1:6.1f} s simulating "
          f"({per_warm:.2f} s per warm run)")
    print(f"--jobs {args.jobs}            {wallj:6.1f} s wall ({workers} worker processes, "
          f"{sum(warm_many) / len(warm_many):.2f} s per warm run)")
    print(f"speed-up            {wall1 / wallj:.2f}x  (--jobs {args.jobs} over --jobs 1; "
          f"ideal {min(args.jobs, os.cpu_count() or 1):.2f}x)")
    sim_many = sum(r["sim_seconds"] for r in many)
    slower = (sum(warm_many) / len(warm_many)) / per_warm
    if slower > 1.15:
        free = wall1 / (wallj - max(0.0, sim_many - sim1) / args.jobs)
        print(f"contention          the parallel runs simulated {slower:.2f}x slower than the "
              f"lone ones: other processes held cores; without that extra time the speed-up "
              f"would be about {free:.2f}x")
    for label, (start, idle, finish) in ((" 1", phases1), (f"{args.jobs:2d}", phasesj)):
        print(f"--jobs{label} phases     start-up {start:.2f} s (command start to first run), "
              f"finish {finish:.2f} s (last run to exit), workers idle at the end "
              f"{idle:.2f} s in all")
    print(f"per-run overhead    {(wall1 - sim1) / n:.2f} s  ((wall - simulation) / runs at "
          f"--jobs 1), of which writing the run file {write1:.2f} s")
    if load:
        print(f"kernel load         {sum(load) / len(load):.2f} s extra in the first run of each "
              f"process (cached kernels loaded, not compiled)")
    print(f"identical results   {'yes' if identical else 'NO'}")


if __name__ == "__main__":
    main()
