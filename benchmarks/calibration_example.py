"""The shipped calibration example (``calibration/``): how it was made, fitted and checked.

Northside Roasters (``calibration/coffee_roaster.toml``) is a plausible business whose
true numbers we know, so that a fit can be judged: its "books" are one run of the market
at the true values below (the whole market simulated, so the noise is the market's own),
read as the KPIs a firm has, with the uncertainty a firm would state. Three steps:

    python benchmarks/calibration_example.py targets
        writes calibration/coffee_roaster_targets.toml (a year of KPIs)
    python benchmarks/calibration_example.py fit --jobs 2
        calibrates on the year; prints recovered against true values and the cost, and
        keeps the calibrated scenario as calibration/coffee_roaster_calibrated.toml
    python benchmarks/calibration_example.py holdout --jobs 2
        the out-of-sample check: calibrates on weeks 1-26 only, forecasts weeks 27-52
        from the posterior draws (fresh seeds) and prints the forecast errors against
        the held-back weeks, beside the firm's uncalibrated guesses' forecast
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FOLDER = ROOT / "calibration"
SCENARIO = FOLDER / "coffee_roaster.toml"
TARGETS = FOLDER / "coffee_roaster_targets.toml"
CALIBRATED = FOLDER / "coffee_roaster_calibrated.toml"
BOOKS_SEED = 2026
"""The seed of the run that stands for the firm's real year (not the scenario's)."""

TRUTH = {  # what the market really does; the scenario file holds the firm's guesses
    "channels.paid_social.effects.awareness": 0.03,
    "channels.search.effects.decision": 0.14,
    "segments.home_baristas.purchase_rate.mean_days": 24.0,
    "segments.home_baristas.purchase_rate.shape": 2.5,
    "segments.home_baristas.dropout.b": 8.0,
}
PRIORS = [  # what the firm is willing to believe before seeing its numbers
    {"path": "channels.paid_social.effects.awareness", "prior": "uniform",
     "low": 0.01, "high": 0.06},
    {"path": "channels.search.effects.decision", "prior": "uniform", "low": 0.06, "high": 0.25},
    {"path": "segments.home_baristas.purchase_rate.mean_days", "prior": "log_uniform",
     "low": 10.0, "high": 70.0},
    {"path": "segments.home_baristas.purchase_rate.shape", "prior": "log_uniform",
     "low": 0.8, "high": 10.0},
    {"path": "segments.home_baristas.dropout.b", "prior": "log_uniform", "low": 3.0, "high": 25.0},
]
FIT = {"population": 100, "generations": 10, "replicates": 1, "check_runs": 8, "seed": 1}


def figures(days: int) -> list[dict]:
    """The KPIs the firm reads off its books for days 0 .. days-1 (whole weeks)."""
    last = days - 1
    return [
        {"name": "new customers from social ads, weekly", "variable": "conversions",
         "channel": "paid_social", "days": [0, last], "weekly": True},
        {"name": "new customers from search, weekly", "variable": "conversions",
         "channel": "search", "days": [0, last], "weekly": True},
        {"name": "orders, weekly", "variable": "orders", "days": [0, last], "weekly": True},
        {"name": "orders of January's customers, weekly", "variable": "cohort_orders",
         "cohorts": [0, 3], "days": [0, last], "weekly": True},
        {"name": "first-quarter customers by orders placed", "variable": "orders_per_customer",
         "cohorts": [0, 12], "bins": 8},
    ]


def stated_sd(value: float) -> float:
    """The uncertainty the firm states: counting noise and 5% for reporting."""
    return float(f"{math.sqrt(max(value, 1.0) + (0.05 * value) ** 2):.3g}")


def books(days: int) -> list[dict]:
    """The firm's KPIs over ``days``: the market's one real year, at the true values."""
    import simulation
    from simulation.calibration.targets import Observed, figure
    from simulation.scenario import with_overrides

    scenario = with_overrides(simulation.load_scenario(SCENARIO), TRUTH, source="truth")
    ds = simulation.run(scenario, days=days, seed=BOOKS_SEED)
    out = []
    for f in figures(days):
        spec = {k: v for k, v in f.items() if k != "bins"}
        n = f.get("bins") or (days // 7 if f.get("weekly") else 1)
        probe = Observed(**spec, value=[0.0] * n if n > 1 or f.get("weekly") else 0.0, sd=1.0)
        values = figure(ds, probe)
        out.append({**spec, "value": [float(round(v, 3)) for v in values],
                    "sd": [stated_sd(v) for v in values]})
    return out


HEADER = """\
# Northside Roasters' year in numbers, and the five numbers its scenario should take from
# them (calibration/README.md). Every figure is in the market's people, as the firm's books
# count them; each sd is the firm's uncertainty about the figure (counting noise and 5% for
# reporting). These KPIs were made by benchmarks/calibration_example.py targets.
#
#   distsim calibrate calibration/coffee_roaster.toml \\
#       --targets calibration/coffee_roaster_targets.toml --out results/coffee_roaster_fit
#
# [fit]: 100 particles, at most 10 generations; one run per evaluation (the whole market is
# simulated, so one run's noise is the market's own; see docs/calibration.md).
# [[parameters]]: the firm's beliefs before the fit: social ads' awareness effect, search's
# decision effect, the days between a customer's order chances (mean), how unevenly those
# rates spread over customers (the Gamma shape: small = very uneven) and the drop-out (the
# Beta's b: a drop-out chance of a / (a + b) at each order chance, on average).
# [[observed]]: a year of weekly new customers by channel and of orders, the weekly orders
# of January's customers (weeks 0-3), and how many orders the first quarter's customers
# placed by the year's end (the last bin: 8 or more).

"""


def targets_text(days: int, fit: dict | None = None) -> str:
    """TARGETS.toml of the books over ``days``, its long series wrapped for reading."""
    import textwrap

    def value(v) -> str:
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "\n".join(textwrap.wrap("[" + ", ".join(f"{x:g}" if isinstance(x, float)
                                                          else str(x) for x in v) + "]",
                                            width=88, subsequent_indent="  "))
        return f"{v:g}" if isinstance(v, float) else str(v)

    def table(header: str, entries: dict) -> str:
        return "\n".join([header, *(f"{k} = {value(v)}" for k, v in entries.items())])

    tables = [table("[fit]", fit or FIT)]
    tables += [table("[[parameters]]", p) for p in PRIORS]
    tables += [table("[[observed]]", o) for o in books(days)]
    return "\n\n".join(tables) + "\n"


def calibrate(targets: Path, out: Path, jobs: int, days: int | None = None,
              resume: bool = False) -> float:
    from simulation.cli import main as distsim

    command = ["calibrate", str(SCENARIO), "--targets", str(targets), "--out", str(out),
               "--jobs", str(jobs), "--quiet"] + (["--resume"] if resume else [])
    if days is not None:
        command += ["--days", str(days)]
    t0 = time.perf_counter()
    rc = distsim(command)
    if rc != 0:
        raise SystemExit(rc)
    return time.perf_counter() - t0


def read_posterior(out: Path):
    import xarray as xr

    with xr.open_dataset(out / "posterior.nc", engine="h5netcdf") as ds:
        return ds.load()


def print_recovery(post, wall: float, jobs: int) -> None:
    import simulation
    from simulation.calibration.priors import Prior

    guesses = simulation.load_scenario(SCENARIO).model_dump(mode="json")
    print(f"{'parameter':48} {'guess':>7} {'true':>7} {'median':>7} {'5%':>7} {'95%':>7} "
          f"{'width/prior':>11} {'inside':>6}")
    for p in PRIORS:
        draws = post[p["path"]].values
        lo, hi = np.quantile(draws, [0.05, 0.95])
        ratio = (hi - lo) / Prior(**p).width()
        inside = lo <= TRUTH[p["path"]] <= hi
        print(f"{p['path']:48} {_get(guesses, p['path']):7.4g} {TRUTH[p['path']]:7.4g} "
              f"{np.median(draws):7.4g} {lo:7.4g} {hi:7.4g} {ratio:11.2f} "
              f"{'yes' if inside else 'NO':>6}")
    z = np.abs(post.z.values)
    print(f"calibrated scenario: worst miss {z.max():.2f} sd over {len(z)} observed values "
          f"({int((z <= 2).sum())} within 2 sd)")
    print(f"generations {post.sizes['generation']} (tolerances "
          f"{', '.join(f'{e:.2f}' for e in post.epsilon.values)}), evaluations "
          f"{post.attrs['total_evaluations']}, runs {post.attrs['runs']}, ended by "
          f"{post.attrs['stopped']}, wall {wall:.0f} s with --jobs {jobs}")


def _get(data: dict, path: str) -> float:
    node = data
    for part in path.split("."):
        node = (next(e for e in node if e.get("name") == part) if isinstance(node, list)
                else node[part])
    return float(node)


def forecast(post, days: int, weeks: slice, jobs: int, draws: int = 40,
             seed: int = 99) -> dict[str, np.ndarray]:
    """Weekly series over ``weeks`` from ``draws`` posterior draws (None: the scenario's
    own guesses), each run once on fresh seeds over ``days``: name -> (draws, weeks)."""
    import simulation
    from simulation.calibration.evaluate import Evaluator
    from simulation.calibration.targets import Observed, Targets

    scenario = simulation.scenario.resolve_size(simulation.load_scenario(SCENARIO), days=days)
    series = [f for f in figures(days) if f.get("weekly")]
    probe = Targets(parameters=PRIORS, observed=[
        Observed(**f, value=[0.0] * (days // 7), sd=1.0) for f in series])
    rng = np.random.default_rng(seed)
    if post is not None:
        paths = tuple(p["path"] for p in PRIORS)
        pick = rng.choice(post.sizes["sample"], size=draws, replace=False)
        values = np.stack([post[p].values[pick] for p in paths], axis=1)
    else:
        paths = (PRIORS[0]["path"],)
        guess = _get(scenario.model_dump(mode="json"), paths[0])
        values = np.full((draws, 1), guess)
    seeds = rng.integers(0, 2**63 - 1, size=(draws, 1), dtype=np.int64)
    with Evaluator(scenario, paths, probe, jobs=jobs) as evaluator:
        runs = evaluator(values, seeds)
    n = days // 7
    return {f["name"]: runs[:, i * n:(i + 1) * n][:, weeks] for i, f in enumerate(series)}


def print_forecast_errors(label: str, runs: dict[str, np.ndarray], actual: dict[str, list]):
    print(f"\n{label}")
    print(f"{'series (weeks 27-52)':42} {'actual':>8} {'forecast':>9} {'90% band':>19} "
          f"{'total err':>9} {'weekly MAPE':>11} {'weeks in band':>13}")
    for name, sim in runs.items():
        real = np.asarray(actual[name])
        mean = sim.mean(axis=0)
        lo, hi = np.quantile(sim, [0.05, 0.95], axis=0)
        tot = sim.sum(axis=1)
        t_lo, t_hi = np.quantile(tot, [0.05, 0.95])
        err = (mean.sum() - real.sum()) / real.sum()
        mape = np.mean(np.abs(mean - real) / np.maximum(real, 1.0))
        inside = np.mean((real >= lo) & (real <= hi))
        print(f"{name:42} {real.sum():8.0f} {mean.sum():9.0f} {t_lo:9.0f}-{t_hi:<9.0f} "
              f"{err:+9.1%} {mape:11.1%} {inside:13.0%}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=("targets", "fit", "holdout"))
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", help="keep the calibration(s) here (default: a temporary folder)")
    ap.add_argument("--resume", action="store_true", help="go on from the calibrations' "
                    "checkpoints in --out (wall times are then the resumed part's)")
    args = ap.parse_args(argv)

    if args.step == "targets":
        TARGETS.write_text(HEADER + targets_text(364))
        print(f"wrote {TARGETS.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.out) if args.out else Path(tmp)
        if args.step == "fit":
            out = base / "year"
            wall = calibrate(TARGETS, out, args.jobs, resume=args.resume)
            post = read_posterior(out)
            print_recovery(post, wall, args.jobs)
            text = (out / "calibrated.toml").read_text()
            CALIBRATED.write_text(text.replace(
                "the firm's own first guesses, before calibration",
                "calibrated to a year of the firm's KPIs (coffee_roaster_targets.toml)"))
            print(f"kept the calibrated scenario as {CALIBRATED.relative_to(ROOT)}")
            return 0
        # holdout: the first 26 weeks' KPIs (the same year, read at day 181)
        first = base / "first_half_targets.toml"
        base.mkdir(parents=True, exist_ok=True)
        first.write_text(targets_text(182))
        out = base / "first_half"
        wall = calibrate(first, out, args.jobs, days=182, resume=args.resume)
        post = read_posterior(out)
        print("calibrated on weeks 1-26 (days 0-181):")
        print_recovery(post, wall, args.jobs)
        import tomllib

        year = {o["name"]: o["value"][26:52] for o in tomllib.loads(TARGETS.read_text())["observed"]
                if o.get("weekly")}
        held = slice(26, 52)
        print_forecast_errors("forecast from the posterior (40 draws, one fresh run each)",
                              forecast(post, 364, held, args.jobs), year)
        print_forecast_errors("forecast from the firm's uncalibrated guesses (40 runs)",
                              forecast(None, 364, held, args.jobs), year)
    return 0


if __name__ == "__main__":
    sys.exit(main())
