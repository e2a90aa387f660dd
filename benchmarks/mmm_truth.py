"""A marketing-mix model against the truth: PyMC-Marketing's MMM fitted on a distsim
export, its channel contributions printed beside the true incremental revenue.

    .venv/bin/python benchmarks/mmm_truth.py [--out DIR] [--agents N] [--days D]
        [--replicates R] [--jobs J] [--fit-python PYTHON] [--draws N] [--tune N]
        [--chains C]

1. ``distsim lift benchmarks/mmm_truth.toml`` (three paid channels with budgets that move
   every few weeks, an organic site, a calendar) holds each paid channel out, and all of
   them together, on ``--replicates`` paired seeds;
2. ``distsim run`` on the seed of the lift's replicate 0, so that the truth of the very
   series the model sees is known exactly (the ``_this_run`` columns);
3. ``distsim export-mmm`` writes ``DIR/export/series.csv``, ``truth.csv``, ``README.md``;
4. the MMM (geometric adstock, logistic saturation, the calendar as controls, a linear
   trend) is fitted to daily revenue on the paid channels' spend with NUTS, and each
   channel's contribution over the series (posterior mean and 94% interval) is printed
   against the truth (``--target``: revenue, new_customers or orders), and written to
   ``DIR/comparison_<target>.csv``.

PyMC-Marketing is optional and never a dependency of distsim: its 1.x needs Python
3.12, which distsim's pinned 3.11 environment is not. Give ``--fit-python`` a Python with
``pymc-marketing`` installed (``python3.12 -m venv /tmp/mmmvenv && /tmp/mmmvenv/bin/pip
install pymc-marketing==1.3.0``); the fit then runs there (``--fit-only DIR/export``),
reading only the CSV files. Without one, steps 1-3 run and the fit is skipped with the
reason. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "mmm_truth.toml"
CONTROLS = ("season_demand", "season_media_price", "weekend", "trend")


def distsim(*args) -> None:
    """``python -m simulation ARGS`` with this Python, from the repository root."""
    cmd = [sys.executable, "-m", "simulation", *map(str, args)]
    print("$ distsim " + " ".join(map(str, args)), flush=True)
    subprocess.run(cmd, check=True, cwd=HERE.parent)


def simulate(out: Path, agents: int, days: int, replicates: int, jobs: int) -> Path:
    """Lift, run and export: the export's folder."""
    sys.path.insert(0, str(HERE.parent))
    from simulation.io import read_netcdf

    out.mkdir(parents=True, exist_ok=True)
    size = ["--agents", agents, "--days", days]
    channels = "paid_social,search,video"
    t0 = time.perf_counter()
    distsim("lift", SCENARIO, *size, "--channels", channels, "--replicates", replicates,
            "--jobs", jobs, "--quiet", "--out", out / "lift.nc")
    t1 = time.perf_counter()
    seed = int(read_netcdf(out / "lift.nc").replicate_seed.values[0])
    distsim("run", SCENARIO, *size, "--seed", seed, "--quiet", "--out", out / "run.nc")
    t2 = time.perf_counter()
    distsim("export-mmm", out / "run.nc", "--lift", out / "lift.nc", "--out", out / "export")
    print(f"lift {t1 - t0:.0f} s ({(len(channels.split(',')) + 2) * replicates} runs), "
          f"run {t2 - t1:.0f} s, export {time.perf_counter() - t2:.0f} s", flush=True)
    return out / "export"


TRUTH = {"revenue": "revenue", "new_customers": "customers", "orders": "orders"}
"""The truth of each target the model may fit: ``incremental_<figure>``."""


def fit(export: Path, draws: int, tune: int, chains: int, target: str = "revenue",
        trend: bool = True, seed: int = 1) -> None:
    """Fit PyMC-Marketing's MMM to ``export/series.csv`` and print it against
    ``export/truth.csv``. Needs pandas, numpy and pymc_marketing only."""
    import numpy as np
    import pandas as pd
    import pymc_marketing
    from pymc_marketing.mmm import MMM, GeometricAdstock, LogisticSaturation

    series = pd.read_csv(export / "series.csv", parse_dates=["date"])
    truth = pd.read_csv(export / "truth.csv").set_index("target")
    paid = [t for t in truth.index if truth.loc[t, "kind"] == "channel"]
    media = [f"spend_{c}" for c in paid]
    X = series[["date", *media]].copy()
    X["season_demand"] = series.season_demand
    X["season_media_price"] = series.season_media_price
    X["weekend"] = (series.day_of_week >= 5).astype(float)
    X["trend"] = series.day / series.day.max()
    controls = [c for c in CONTROLS if trend or c != "trend"]
    X = X[["date", *media, *controls]]
    y = series[target]
    fig = TRUTH[target]
    mmm = MMM(date_column="date", channel_columns=media, target_column=target,
              control_columns=controls, adstock=GeometricAdstock(l_max=28),
              saturation=LogisticSaturation(), yearly_seasonality=2)
    mmm.build_model(X, y)
    mmm.add_original_scale_contribution_variable(var=["channel_contribution"])
    print(f"PyMC-Marketing {pymc_marketing.__version__}: MMM of daily {target} on "
          f"{', '.join(media)}; controls {', '.join(controls)}, 2 yearly Fourier modes; "
          f"NUTS {chains} chains x ({tune} tune + {draws} draws)", flush=True)
    t0 = time.perf_counter()
    idata = mmm.fit(X, y, chains=chains, cores=chains, draws=draws, tune=tune,
                    target_accept=0.9, random_seed=seed, progressbar=False)
    elapsed = time.perf_counter() - t0
    post = idata.posterior["channel_contribution_original_scale"].sum("date")
    divergences = int(idata.sample_stats["diverging"].sum())
    rows = []
    for c, col in zip(paid, media, strict=True):
        draws_c = post.sel(channel=col).values.ravel()
        est, low, high = (float(np.mean(draws_c)), float(np.quantile(draws_c, 0.03)),
                          float(np.quantile(draws_c, 0.97)))
        t = truth.loc[c]
        true = t[f"incremental_{fig}_this_run"]
        if not np.isfinite(true):
            true = t[f"incremental_{fig}_mean"]
        rows.append({"channel": c, "target": target, "spend": t.spend, "true": true,
                     "true_mean": t[f"incremental_{fig}_mean"],
                     "true_low": t[f"incremental_{fig}_low"],
                     "true_high": t[f"incremental_{fig}_high"],
                     "mmm_contribution": est, "mmm_low": low, "mmm_high": high,
                     "error": est / true - 1.0 if true else np.nan,
                     "true_per_spend": true / t.spend, "mmm_per_spend": est / t.spend})
    total = post.sum("channel").values.ravel()
    allc = truth.loc["all_channels"] if "all_channels" in truth.index else None
    table = pd.DataFrame(rows)
    saved = export.parent / f"comparison_{target}{'' if trend else '_no_trend'}.csv"
    table.to_csv(saved, index=False)
    print(f"\nfit {elapsed:.0f} s, {divergences} divergent transitions\n")
    head = (f"{'channel':<12} {'spend':>10} {'true (this run)':>19} {'(lift mean ± CI)':>22} "
            f"{'MMM contribution [3%, 97%]':>34} {'error':>7} {'per spend':>9} {'MMM':>6}")
    print(head)
    print("-" * len(head))
    for r in rows:
        ci = (f"{r['true_mean']:,.0f} ± {(r['true_high'] - r['true_low']) / 2:,.0f}"
              if np.isfinite(r["true_low"]) else f"{r['true_mean']:,.0f}")
        print(f"{r['channel']:<12} {r['spend']:>10,.0f} {r['true']:>19,.0f} "
              f"{ci:>22} {r['mmm_contribution']:>12,.0f} [{r['mmm_low']:>8,.0f}, "
              f"{r['mmm_high']:>8,.0f}] {r['error']:>+7.0%} {r['true_per_spend']:>9.3g} "
              f"{r['mmm_per_spend']:>6.3g}")
    if allc is not None:
        true_all = allc[f"incremental_{fig}_this_run"]
        if not np.isfinite(true_all):
            true_all = allc[f"incremental_{fig}_mean"]
        print(f"{'all paid':<12} {allc.spend:>10,.0f} {true_all:>19,.0f} "
              f"{'(all held out at once)':>22} {total.mean():>12,.0f} "
              f"[{np.quantile(total, 0.03):>8,.0f}, {np.quantile(total, 0.97):>8,.0f}] "
              f"{total.mean() / true_all - 1:>+7.0%}")
    print(f"\n{target} over the series {series[target].sum():,.0f}; true: incremental_{fig} "
          "of the run's own seed (lift replicate 0); error = MMM / true - 1; per spend: "
          f"per unit of spend (ROAS for revenue); written to {saved}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("results/mmm_truth"))
    ap.add_argument("--agents", type=int, default=50_000)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--replicates", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--fit-python", help="a Python with pymc-marketing installed")
    ap.add_argument("--fit-only", type=Path, metavar="EXPORT_DIR",
                    help="only fit the MMM to an export (run by --fit-python)")
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--tune", type=int, default=300)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--target", choices=tuple(TRUTH), default="revenue",
                    help="the series the MMM fits (default revenue)")
    ap.add_argument("--no-trend", action="store_true",
                    help="leave the linear trend out of the controls")
    args = ap.parse_args()
    if args.fit_only is not None:
        fit(args.fit_only, args.draws, args.tune, args.chains, args.target,
            not args.no_trend)
        return
    export = simulate(args.out, args.agents, args.days, args.replicates, args.jobs)
    options = ["--draws", str(args.draws), "--tune", str(args.tune),
               "--chains", str(args.chains), "--target", args.target,
               *(["--no-trend"] if args.no_trend else [])]
    if args.fit_python:
        subprocess.run([args.fit_python, __file__, "--fit-only", str(export), *options],
                       check=True)
    elif importlib.util.find_spec("pymc_marketing") is not None:
        fit(export, args.draws, args.tune, args.chains, args.target, not args.no_trend)
    else:
        print("\nMMM fit skipped: pymc_marketing is not importable in this Python "
              f"({sys.version.split()[0]}); PyMC-Marketing 1.x needs Python 3.12 or later. "
              "Pass --fit-python with a Python that has it (see this file's docstring).")


if __name__ == "__main__":
    main()
