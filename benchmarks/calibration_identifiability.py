"""Identifiability of a calibration: targets the model made at known values, found again?

Simulates ``tests/data/calibration_market.toml`` at true values of 2 or 4 free
parameters (channel effects, and the repeat buyers' purchase rate and drop-out), writes
the figures as TARGETS.toml (``simulation/calibration/synthetic.py``), runs ``distsim
calibrate`` on them with priors spanning at least +-50% of each true value (the truth
off-centre) and prints, per parameter, the truth, the posterior median and 90%
interval, and the interval's width against the prior's; then the fit table's worst miss
and the cost (evaluations, runs, wall time). A script that prints figures, not a test:

    python benchmarks/calibration_identifiability.py --parameters 4 --population 100 \\
        --generations 10 --evaluations 8000 --jobs 2

``tests/test_calibration.py`` runs the 2-parameter check at a reduced size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MARKET = ROOT / "tests" / "data" / "calibration_market.toml"
PARAMETERS = [  # (path, truth, prior): every prior spans at least +-50% of the truth
    ("channels.social.effects.awareness", 0.04,
     {"prior": "uniform", "low": 0.02, "high": 0.07}),
    ("segments.everyone.purchase_rate.mean_days", 20.0,
     {"prior": "log_uniform", "low": 8.0, "high": 40.0}),
    ("channels.search.effects.decision", 0.15,
     {"prior": "uniform", "low": 0.07, "high": 0.25}),
    ("segments.everyone.dropout.b", 4.0,
     {"prior": "log_uniform", "low": 1.6, "high": 9.0}),
    # the heterogeneity: how purchase rates spread (Gamma shape) and drop-out chances
    # spread (the Beta's a, with b its mean)
    ("segments.everyone.purchase_rate.shape", 2.0,
     {"prior": "log_uniform", "low": 0.8, "high": 6.0}),
    ("segments.everyone.dropout.a", 1.0,
     {"prior": "log_uniform", "low": 0.4, "high": 3.0}),
]
OBSERVED = {
    2: [{"variable": "conversions", "channel": "social"},
        {"variable": "conversions", "channel": "search"},
        {"variable": "orders_per_customer", "bins": 4, "cohorts": [0, 5]},
        {"variable": "orders"}],
    4: [{"variable": "conversions", "channel": "social", "weekly": True},
        {"variable": "conversions", "channel": "search", "weekly": True},
        {"variable": "orders_per_customer", "bins": 5, "cohorts": [0, 5]},
        {"variable": "churned"},
        {"variable": "orders"}],
    5: [{"variable": "conversions", "channel": "social", "weekly": True},
        {"variable": "conversions", "channel": "search", "weekly": True},
        {"variable": "orders_per_customer", "bins": 8, "cohorts": [0, 3]},
        {"variable": "cohort_orders", "cohorts": [0, 1], "weekly": True},
        {"variable": "churned"},
        {"variable": "orders"}],
    6: [{"variable": "conversions", "channel": "social", "weekly": True},
        {"variable": "conversions", "channel": "search", "weekly": True},
        {"variable": "orders_per_customer", "bins": 8, "cohorts": [0, 3]},
        {"variable": "cohort_orders", "cohorts": [0, 1], "weekly": True},
        {"variable": "churned"},
        {"variable": "orders"}],
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parameters", type=int, choices=sorted(OBSERVED), default=4)
    ap.add_argument("--agents", type=int, default=5000)
    ap.add_argument("--days", type=int, default=84)
    ap.add_argument("--population", type=int, default=100)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--evaluations", type=int, default=3000)
    ap.add_argument("--replicates", default="1", help="runs per evaluation, or auto")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--relative-sd", type=float, default=0.03)
    ap.add_argument("--out", help="keep the calibration here (default: a temporary folder)")
    args = ap.parse_args(argv)

    import simulation
    from simulation.calibration.priors import Prior
    from simulation.calibration.synthetic import synthetic_targets
    from simulation.cli import main as distsim

    chosen = PARAMETERS[:args.parameters]
    truth = {path: value for path, value, _ in chosen}
    priors = [{"path": path, **prior} for path, _, prior in chosen]
    scenario = simulation.load_scenario(MARKET)
    scenario = simulation.scenario.resolve_size(scenario, agents=args.agents, days=args.days)
    fit = {"population": args.population, "generations": args.generations,
           "epsilon": args.epsilon,
           "replicates": args.replicates if args.replicates == "auto" else int(args.replicates)}
    text = synthetic_targets(scenario, truth, OBSERVED[args.parameters], priors, fit, runs=8,
                             relative_sd=args.relative_sd, jobs=args.jobs)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "calibration"
        targets = Path(tmp) / "targets.toml"
        targets.write_text(text)
        command = ["calibrate", str(MARKET), "--targets", str(targets), "--out", str(out),
                   "--agents", str(args.agents), "--days", str(args.days),
                   "--evaluations", str(args.evaluations),
                   "--jobs", str(args.jobs), "--quiet"]
        t0 = time.perf_counter()
        rc = distsim(command)
        wall = time.perf_counter() - t0
        if rc != 0:
            return rc
        with xr.open_dataset(out / "posterior.nc", engine="h5netcdf") as ds:
            post = ds.load()
    print(f"distsim {' '.join(command[:1])} ... {' '.join(command[5:])}  "
          f"({args.parameters} parameters, population {args.population})")
    print(f"{'parameter':44} {'truth':>8} {'prior':>22} {'median':>8} {'5%':>8} {'95%':>8} "
          f"{'width/prior':>11} {'inside':>6}")
    ok = True
    for p in priors:
        draws = post[p["path"]].values
        lo, hi = np.quantile(draws, [0.05, 0.95])
        prior = Prior(**p)
        ratio = (hi - lo) / prior.width()
        inside = lo <= truth[p["path"]] <= hi
        ok &= inside and ratio <= 0.5
        print(f"{p['path']:44} {truth[p['path']]:8.4g} {prior.describe():>22} "
              f"{np.median(draws):8.4g} {lo:8.4g} {hi:8.4g} {ratio:11.2f} "
              f"{'yes' if inside else 'NO':>6}")
    z = np.abs(post.z.values)
    ok &= bool(np.all(z <= 2))
    print(f"calibrated scenario: worst miss {z.max():.2f} sd over {len(z)} observed values "
          f"({int((z <= 2).sum())} within 2 sd)")
    gens = post.sizes["generation"]
    print(f"generations {gens} (tolerances {', '.join(f'{e:.2f}' for e in post.epsilon.values)}),"
          f" evaluations {post.attrs['total_evaluations']}, runs {post.attrs['runs']} + "
          f"{post.attrs['check_runs']} check runs, ended by {post.attrs['stopped']}, "
          f"wall {wall:.0f} s with --jobs {args.jobs}")
    print("identifiability check:", "passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
