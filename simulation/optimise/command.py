"""``distsim optimise``: validate, search (resumably), check on fresh seeds, write together.

Outputs in ``--out DIR`` (docs/optimise.md):

- ``recommended.toml``: the scenario with the recommended daily budgets (a file
  ``distsim run`` accepts; the budgets add up to the total to the cent);
- ``optimise.nc``: the trials, the recommended and current splits, the fresh-seed
  comparison and the response curves;
- ``response.png``: each channel's response curve, its daily budget against the
  incremental customers and profit it brings, the others held at the recommendation.

With ``--plan plan.csv`` (weekly budgets per channel, :mod:`.budget_plan`) the plan is
forecast too: run on the check's fresh seeds, paired with both splits.

``DIR/optimise.journal`` records the search as it goes (:mod:`.search`); the outputs
appear together at the end (:class:`simulation.outputs.OutputFiles`), so a killed
command leaves the journal and none of them, and ``--resume`` finishes the search.

Module-level imports are light: the parser is built from :func:`add_arguments` at every
``distsim`` start.
"""

from __future__ import annotations

import argparse
from pathlib import Path

OUTPUTS = ("recommended.toml", "optimise.nc", "response.png")
SALT_FRESH = 7_000_002
"""Salt of the fresh seeds (the search's are the sweep's replicate seeds)."""
LEVEL = 0.95


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The sub-command's arguments (``simulation/cli.py`` makes the parser)."""
    from simulation import arguments
    from simulation.arguments import integer_at_least, non_negative, positive

    ap.add_argument("scenario", help="scenario TOML file")
    ap.add_argument("--budget", required=True, type=float, metavar="TOTAL",
                    help="the total daily budget held over the run, split across the channels")
    ap.add_argument("--channels", metavar="A,B",
                    help="channels whose daily budgets share the total (default: every enabled "
                         "channel with a daily_budget)")
    ap.add_argument("--bounds", action="append", metavar="CHANNEL=LOW:HIGH",
                    help="a channel's daily budget range (either end may be left out; repeat "
                         "the flag or separate with commas)")
    ap.add_argument("--objective", choices=("profit", "customers", "contribution"),
                    default="profit", help="what to maximise over the run, for the whole "
                                           "market (default profit)")
    ap.add_argument("--trials", type=positive, default=49,
                    help="candidate splits to try: the scenario's own, then whole CMA-ES "
                         "generations (rounded up; default 49)")
    ap.add_argument("--popsize", type=integer_at_least(4),
                    help="candidates per generation, run in parallel (at least 4; default: "
                         "CMA-ES's, 4 + 3 ln(channels))")
    ap.add_argument("--replicates", type=positive, default=8,
                    help="seeds per candidate, the same for every candidate (default 8)")
    ap.add_argument("--fresh-seeds", type=integer_at_least(2), default=20, metavar="N",
                    help="paired seeds the recommended and current splits are run on again "
                         "for the reported improvement (default 20)")
    ap.add_argument("--curve-points", type=non_negative, default=6, metavar="N",
                    help="budgets per response curve, 0 to the channel's upper bound (0: no "
                         "curves; default 6)")
    ap.add_argument("--plan", metavar="PLAN.csv",
                    help="also forecast a planned budget: a 'week' column (0, 1, ...) and a "
                         "column per optimised channel, its budget for the week; run on the "
                         "fresh seeds beside the recommended and current splits")
    ap.add_argument("--resume", action="store_true",
                    help="finish the search in --out from its journal")
    arguments.workers(ap)
    arguments.size(ap, agents="customers simulated per run (the sample; budgets and results "
                              "are in market units)",
                   seed="override simulation.seed (every seed of the search and the check "
                        "derives from it)")
    ap.add_argument("--out", required=True, metavar="DIR",
                    help="directory for recommended.toml, optimise.nc, response.png")
    arguments.quiet(ap, "tables")


def fresh_seeds(seed: int, n: int) -> list[int]:
    """Seeds of the check, a stream of their own (never the search's)."""
    import numpy as np

    return [int(np.random.SeedSequence(seed, spawn_key=(SALT_FRESH, r)).generate_state(
        1, np.uint64)[0] >> np.uint64(1)) for r in range(n)]


def fingerprint(problem, resolved, seeds, popsize: int) -> str:
    """What the journal must match to be resumed: the scenario as run, the problem, the
    seeds and the generation size (not the number of trials: a resume may grant more)."""
    import hashlib

    h = hashlib.sha256()
    for part in (resolved.to_toml(), problem.fingerprint(), repr(list(seeds)), str(popsize)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def optimise_command(args, console, scenario, resolved) -> int:
    """The command (``simulation.cli`` parses and loads the scenario)."""
    from simulation.optimise import problem as problems
    from simulation.optimise import search
    from simulation.outputs import OutputFiles, check_directory
    from simulation.progress import ProgressBar
    from simulation.sweep.command import start_local_workers
    from simulation.sweep.experiment import replicate_seeds

    channels = None
    if args.channels is not None:
        channels = [n.strip() for n in args.channels.split(",") if n.strip()]
    prob = problems.plan(resolved, args.budget, channels, problems.parse_bounds(args.bounds),
                         args.objective)
    budget_plan = None
    if args.plan is not None:
        from simulation.optimise.budget_plan import load_plan
        from simulation.scenario import with_overrides

        budget_plan = load_plan(args.plan, prob.channels)
        with_overrides(resolved, budget_plan.overrides(resolved), source=f"--plan {args.plan}")
    popsize = args.popsize or search.default_popsize(len(prob.channels))
    trials = search.trials_planned(args.trials, popsize)
    seed = resolved.simulation.seed
    seeds = replicate_seeds(seed, args.replicates)
    check = fresh_seeds(seed, args.fresh_seeds)
    key = fingerprint(prob, resolved, seeds, popsize)
    out = Path(args.out)
    check_directory("--out", out)
    resuming = search.check_journal(out, key, args.resume)
    done = search.trials_done(out) if resuming else 0
    quiet = args.quiet
    curve_seeds = check[:args.replicates]
    curve_runs = len(prob.channels) * args.curve_points * len(curve_seeds)
    splits = 2 if budget_plan is None else 3
    total_runs = (max(0, trials - done) * len(seeds) + splits * len(check) + curve_runs)
    with OutputFiles(inputs=[args.scenario, args.plan]) as outputs:
        for name in OUTPUTS:  # checked and reserved before any run
            outputs.add(name, out / name, 1 << 20)
        start_local_workers(args.jobs, args.threads or 1, args.scheduler)  # Runs.per_run
        from simulation.optimise.evaluate import Runs

        with Runs(resolved, jobs=args.jobs, scheduler=args.scheduler,
                  threads=args.threads) as runs:
            runs.start()  # before the progress bar's thread: workers may be forked
            if not quiet and resuming:
                console.print(f"resuming: {done} trial(s) done", markup=False)
            bar = ProgressBar(console, f"optimising {scenario.name}", "runs", enabled=not quiet)
            count = [0]

            def tick() -> None:
                count[0] += 1
                bar(count[0], total_runs)

            def show(generation: int, found) -> None:
                if quiet:
                    return
                b = found.best
                split = ", ".join(f"{c} {v / 100:,.2f}"
                                  for c, v in zip(prob.channels, found.budgets[b], strict=True))
                bar.console.print(f"generation {generation}: {len(found.means)} trial(s); best "
                                  f"mean {prob.objective} {found.means[b]:,.0f} ({split})",
                                  markup=False)

            try:
                bar(0, total_runs)
                found = search.search(prob, runs, seeds, out=out, fingerprint=key, seed=seed,
                                      trials=trials, popsize=popsize, progress=tick,
                                      generation_done=show)
                best = found.budgets[found.best]
                compared = [prob.overrides(best), prob.overrides(prob.baseline)]
                if budget_plan is not None:
                    compared.append(budget_plan.overrides(resolved))
                pair = runs(compared, check, tick)
                curves = response_curves(prob, runs, best, curve_seeds, args.curve_points, tick)
            finally:
                bar.close()
            simulations = runs.count
        from simulation.io import netcdf_bytes
        from simulation.optimise.plots import response_png
        from simulation.scenario import with_overrides

        recommended = with_overrides(scenario, prob.overrides(best),
                                     source=str(out / "recommended.toml"))
        ds = dataset(prob, resolved, recommended, found, seeds, check, pair, curves,
                     popsize=popsize, simulations=simulations, budget_plan=budget_plan)
        header = (f"# recommended by distsim optimise: {Path(args.scenario).name}, a total "
                  f"daily budget of {prob.total / 100:,.2f} split for the best mean "
                  f"{prob.objective}\n# " + ", ".join(
                      f"{c} = {v:.2f}" for c, v in prob.budgets(best).items())
                  + f"; improvement on {len(check)} fresh paired seeds: "
                  + _improvement_text(ds) + "\n")
        outputs.write("recommended.toml", header + recommended.to_toml())
        outputs.write("optimise.nc", netcdf_bytes(ds))
        outputs.write("response.png", response_png(ds))
        outputs.commit()
    if not quiet:
        console.print(split_table(ds))
        for line in summary_lines(ds):
            console.print(line, markup=False, soft_wrap=True)
        console.print(f"optimisation written to {out}/ ({', '.join(OUTPUTS)}); "
                      f"{int(ds.attrs['search_runs']):,} search runs "
                      f"({ds.sizes['trial']} trials x {ds.sizes['replicate']} seeds), "
                      f"{int(ds.attrs['check_runs']):,} check and "
                      f"{int(ds.attrs['curve_runs']):,} curve runs", markup=False)
    return 0


def response_curves(prob, runs, best, seeds, points: int, progress):
    """Each channel's budget from 0 to its upper bound (``points`` budgets), the others at
    ``best``: (budgets in cents (channel, point), figures (channel, point, seed, figure))."""
    import numpy as np

    from simulation.optimise.evaluate import FIGURES

    k = len(prob.channels)
    if points == 0:
        return np.zeros((k, 0), dtype=np.int64), np.zeros((k, 0, len(seeds), len(FIGURES)))
    grid = np.array([np.round(np.linspace(0, prob.high[i], points)).astype(np.int64)
                     for i in range(k)])
    splits = []
    for i in range(k):
        for b in grid[i]:
            s = best.copy()
            s[i] = b
            splits.append(prob.overrides(s))
    figures = runs(splits, seeds, progress)
    return grid, figures.reshape(k, points, len(seeds), -1)


def dataset(prob, resolved, recommended, found, seeds, check, pair, curves, *, popsize: int,
            simulations: int, budget_plan=None):
    """``optimise.nc`` (docs/optimise.md)."""
    import numpy as np
    import xarray as xr

    from simulation.optimise.evaluate import FIGURES
    from simulation.sweep.combine import t_interval
    from simulation.version import __version__

    money = lambda cents: np.asarray(cents, dtype=float) / 100  # noqa: E731
    best = found.best
    ds = xr.Dataset(coords={
        "channel": np.array(prob.channels, dtype=object),
        "trial": np.arange(len(found.means)),
        "replicate": np.arange(len(seeds)),
        "fresh": np.arange(len(check)),
        "split": np.array(["recommended", "current", "plan"][:len(pair)], dtype=object),
    })
    ds["replicate_seed"] = ("replicate", np.array(seeds, dtype=np.int64))
    ds["fresh_seed"] = ("fresh", np.array(check, dtype=np.int64))
    ds["trial_budget"] = (("trial", "channel"), money(found.budgets))
    ds["trial_generation"] = ("trial", found.generation)
    for i, name in enumerate(FIGURES):
        ds[f"trial_{name}"] = (("trial", "replicate"), found.figures[..., i])
    ds["trial_objective"] = ("trial", found.means)
    ds["recommended_budget"] = ("channel", money(found.budgets[best]))
    ds["current_budget"] = ("channel", money(prob.current))
    ds["baseline_budget"] = ("channel", money(prob.baseline))
    ds["lower_bound"] = ("channel", money(prob.low))
    ds["upper_bound"] = ("channel", money(prob.high))
    for i, name in enumerate(FIGURES):
        ds[f"fresh_{name}"] = (("split", "fresh"), pair[:, :, i])
    diff = pair[0, :, FIGURES.index(prob.objective)] - pair[1, :, FIGURES.index(prob.objective)]
    ds["improvement"] = ("fresh", diff)
    mean, low, high, _ = t_interval(diff, LEVEL)
    ds["improvement"].attrs.update(
        description=f"{prob.objective} of the recommended split minus the current one, per "
                    "fresh seed (paired)", mean=mean, ci_low=low, ci_high=high, level=LEVEL)
    if budget_plan is not None:
        ds = ds.assign_coords(plan_week=np.arange(len(budget_plan.weekly)))
        ds["plan_budget"] = (("plan_week", "channel"), budget_plan.daily)
        ds["plan_budget"].attrs.update(units="currency a day", description="the plan's daily "
                                       "budgets, week by week (the last week's hold after it)")
        ds["plan_average_budget"] = ("channel", budget_plan.average_daily(resolved.simulation.days))
        ds["plan_average_budget"].attrs.update(units="currency a day", description="the "
                                               "plan's daily budgets averaged over the run")
        k = FIGURES.index(prob.objective)
        ds["plan_gap"] = ("fresh", pair[0, :, k] - pair[2, :, k])
        mean, low, high, _ = t_interval(ds.plan_gap.values, LEVEL)
        ds["plan_gap"].attrs.update(
            description=f"{prob.objective} of the recommended split minus the plan's, per "
                        "fresh seed (paired)", mean=mean, ci_low=low, ci_high=high, level=LEVEL)
    grid, figures = curves
    if grid.shape[1]:
        ds = ds.assign_coords(curve_point=np.arange(grid.shape[1]),
                              curve_replicate=np.arange(figures.shape[2]))
        ds["curve_budget"] = (("channel", "curve_point"), money(grid))
        for name in ("customers", "profit"):
            v = figures[..., FIGURES.index(name)]
            inc = v - v[:, :1]  # against the channel at 0, on the same seed
            ds[f"incremental_{name}"] = (("channel", "curve_point", "curve_replicate"), inc)
            stats = np.array([[t_interval(inc[c, p], LEVEL)[:3] for p in range(inc.shape[1])]
                              for c in range(inc.shape[0])])
            for j, what in enumerate(("mean", "low", "high")):
                ds[f"incremental_{name}_{what}"] = (("channel", "curve_point"), stats[..., j])
    descriptions = {
        "trial_budget": ("currency a day", "each candidate's daily budgets"),
        "trial_generation": ("", "CMA-ES generation of the candidate (0: the scenario's own "
                                 "split, or the centre of the bounds)"),
        "trial_objective": ("", "the objective's mean over the search seeds (common to "
                                "every trial)"),
        "recommended_budget": ("currency a day", "the trial with the best trial_objective"),
        "current_budget": ("currency a day", "the scenario's own daily budgets"),
        "baseline_budget": ("currency a day", "the scenario's own split scaled to the total: "
                                              "what the recommendation is compared with"),
    }
    for name, (units, text) in descriptions.items():
        ds[name].attrs.update(units=units, description=text)
    sim = resolved.simulation
    ds.attrs.update(
        kind="optimise", scenario=recommended.to_toml(), scenario_name=resolved.name,
        objective=prob.objective, total_budget=prob.total / 100, sampler="CmaEsSampler",
        lr_adapt=1, popsize=popsize, agents=sim.agents, days=sim.days, seed=sim.seed,
        market_size=int(resolved.market.size), scale=float(resolved.market.size) / sim.agents,
        search_runs=int(found.figures.shape[0] * found.figures.shape[1]),
        check_runs=int(pair.shape[0] * pair.shape[1]),
        curve_runs=int(figures.size // len(FIGURES)), runs_this_call=int(simulations),
        simulation_version=__version__)
    return ds


def _improvement_text(ds) -> str:
    a = ds.improvement.attrs
    base = ds[f"fresh_{ds.attrs['objective']}"].sel(split="current").mean().item()
    rel = f" ({a['mean'] / base:+.1%} of the current)" if base > 0 else ""
    return (f"{a['mean']:+,.0f} {ds.attrs['objective']}{rel}, 95% CI {a['ci_low']:+,.0f} to "
            f"{a['ci_high']:+,.0f}")


def summary_lines(ds) -> list[str]:
    import numpy as np

    obj = ds.attrs["objective"]
    a = ds.improvement.attrs
    cur = ds[f"fresh_{obj}"].sel(split="current").mean().item()
    rec = ds[f"fresh_{obj}"].sel(split="recommended").mean().item()
    best = int(np.argmax(ds.trial_objective.values))
    lines = [f"{obj} on {ds.sizes['fresh']} fresh paired seeds: recommended {rec:,.0f}, "
             f"current {cur:,.0f}; improvement {_improvement_text(ds)}"]
    days = int(ds.attrs["days"])
    spent = ds.fresh_media_spend.mean("fresh") / days
    lines.append(f"media spent a day, all channels (a budget is a ceiling): recommended "
                 f"{float(spent.sel(split='recommended')):,.2f}, current "
                 f"{float(spent.sel(split='current')):,.2f}")
    if "plan_gap" in ds:
        g = ds.plan_gap.attrs
        plan = ds[f"fresh_{obj}"].sel(split="plan").mean().item()
        lines.append(f"the plan (on average {float(ds.plan_average_budget.sum()):,.2f} a day): "
                     f"{obj} {plan:,.0f}; the recommended split minus the plan "
                     f"{g['mean']:+,.0f}, 95% CI {g['ci_low']:+,.0f} to {g['ci_high']:+,.0f}; "
                     f"media spent a day {float(spent.sel(split='plan')):,.2f}")
    if a["ci_low"] <= 0:
        lines.append("the fresh seeds do not show the recommended split to be better than the "
                     "current one at 95%: more --replicates, --fresh-seeds or --agents")
    search_gain = float(ds.trial_objective[best] - ds.trial_objective[0])
    if int(ds.trial_generation[0]) == 0 and np.allclose(ds.trial_budget[0], ds.baseline_budget):
        lines.append(f"(on the search's own seeds the gain was {search_gain:+,.0f}: the seeds "
                     "that picked the winner flatter it)")
    return lines


def split_table(ds):
    import numpy as np
    from rich.table import Table

    scaled = not np.allclose(ds.baseline_budget, ds.current_budget)
    table = Table(title=f"daily budgets (total {ds.attrs['total_budget']:,.2f} a day)",
                  title_justify="left")
    planned = "plan_average_budget" in ds
    cols = ["channel", "current"] + (["current, scaled"] if scaled else []) + [
        "recommended"] + (["plan (average)"] if planned else []) + ["bounds"]
    for col in cols:
        table.add_column(col, justify="left" if col == "channel" else "right")
    for c in ds.channel.values:
        s = ds.sel(channel=c)
        row = [str(c), f"{float(s.current_budget):,.2f}"]
        if scaled:
            row.append(f"{float(s.baseline_budget):,.2f}")
        row.append(f"{float(s.recommended_budget):,.2f}")
        if planned:
            row.append(f"{float(s.plan_average_budget):,.2f}")
        row.append(f"{float(s.lower_bound):,.2f} to {float(s.upper_bound):,.2f}")
        table.add_row(*row)
    return table

