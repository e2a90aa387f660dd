"""``distsim sweep``: load the experiment, run it with a progress bar, print the winner.

Kept apart from ``simulation/cli.py`` so that the command line stays a thin list of
subcommands. Bad input raises :class:`ScenarioError` before anything is written; the
CLI turns it into one line and exit status 2.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from simulation.progress import ProgressBar
from simulation.scenario import ScenarioError
from simulation.sweep.experiment import OUTCOMES

if TYPE_CHECKING:
    from simulation.sweep.combine import Summary



def sweep_command(args, console: Console) -> int:
    from simulation.sweep import pool

    try:
        return _sweep(args, console)
    finally:
        pool.release_workers()  # the process exits next: no need to wait for them


def start_local_workers(jobs: int, threads: int | None, scheduler) -> None:
    """Before anything imports numba: cap this process's threads as the workers need
    them, and start the workers (those not forked later) while the parent goes on.
    Call once the input is known to be valid."""
    if jobs > 1 and scheduler is None:
        from simulation.sweep.pool import THREAD_VARIABLES, default_threads, start_workers

        per_run = threads or default_threads(jobs)
        # this process never simulates: its numba (not imported yet) is configured as
        # the workers it may fork need it
        for var in THREAD_VARIABLES:
            os.environ[var] = str(per_run)
        start_workers(jobs, per_run)


def load_sized(args):
    """The experiment of ``args.experiment`` at the command line's ``--agents``, ``--days``,
    ``--seed``, ``--replicates`` and ``--draws`` (a bad value: one line naming the flag)."""
    from simulation.sweep.experiment import load_experiment

    experiment = load_experiment(args.experiment)
    try:
        return experiment.with_size(args.agents, args.days, getattr(args, "replicates", None),
                                    getattr(args, "seed", None), getattr(args, "draws", None))
    except ScenarioError as exc:  # name the flag the user typed, not the schema field
        if exc.source != "command line":  # other draws, one of them invalid
            raise
        flag = "--" + exc.field.removeprefix("simulation.")
        raise ScenarioError(flag, "", exc.message) from None


def _sweep(args, console: Console) -> int:
    from simulation.sweep.experiment import Objective

    experiment = load_sized(args)
    objective = None
    if getattr(args, "objective", None):
        metric, _, goal = args.objective.partition(":")
        try:
            objective = Objective.model_validate({"metric": metric, "goal": goal or None})
        except Exception:
            raise ScenarioError("--objective", "", f"expected METRIC or METRIC:max|min with "
                                f"METRIC one of {', '.join(OUTCOMES)}; got "
                                f"{args.objective!r}") from None
    start_local_workers(args.jobs, args.threads, args.scheduler)
    from simulation.sweep.runner import run_sweep
    out = Path(args.out) if args.out else Path("results") / Path(args.experiment).stem
    # runs found on disk (a resumed sweep) count as done
    progress = ProgressBar(console, f"sweep {experiment.name}", "runs", enabled=not args.quiet)
    t0 = time.perf_counter()
    try:
        result = run_sweep(experiment, out, jobs=args.jobs, scheduler=args.scheduler,
                           resume=args.resume, threads=args.threads, progress=progress,
                           objective=objective, keep_workers=False)
    except KeyboardInterrupt:
        progress.close()
        done = _done_runs(out)
        console.print(f"interrupted: {done} run(s) saved in {out / 'runs'}; finish the sweep "
                      f"with --resume --out {out}", markup=False)
        return 130  # as Ctrl-C (simulation.cli.EXIT_INTERRUPTED)
    finally:
        progress.close()
    if not args.quiet:
        console.print(summary_table(result.summary, result.combined.attrs))
        where = "" if result.jobs else " on the Dask cluster"
        console.print(
            f"{result.computed} run(s) computed{where}, {result.reused} reused, in "
            f"{time.perf_counter() - t0:.1f} s; combined result {out / 'combined.nc'}, "
            f"summary {out / 'summary.csv'}", markup=False)
    return 0


def _done_runs(out: Path) -> int:
    import json

    try:
        return json.loads((out / "manifest.json").read_text())["runs_done"]
    except (OSError, ValueError, KeyError):
        return 0


def _fmt(name: str, value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if name == "churn":
        return f"{100 * value:.1f}%"
    if name in ("ltv_cac", "brand_equity"):
        return f"{value:.3f}" if name == "brand_equity" else f"{value:.2f}"
    if name in ("cac", "ltv"):
        return f"{value:,.2f}"
    return f"{value:,.0f}"


def _cell(row: dict, name: str) -> str:
    mean, low, high = row[f"{name}_mean"], row[f"{name}_low"], row[f"{name}_high"]
    if not math.isfinite(low) or not math.isfinite(high):
        return _fmt(name, mean)
    half = (high - low) / 2
    return f"{_fmt(name, mean)} ± {_fmt(name, half).lstrip('-')}"


def summary_table(summary: Summary, attrs: dict | None = None) -> Table:
    """Each variant's key outcomes (mean ± 95% CI half-width); under it, the best by the
    objective (:func:`best_line`) and a warning line for each of the summary's warnings."""
    from simulation.sweep.combine import OUTCOME_INFO, TABLE_OUTCOMES

    attrs = attrs or {}
    reps = attrs.get("replicates", "?")
    draws = f"{summary.draws} assumption draw(s) x " if summary.draws else ""
    title = (f"{escape(str(attrs.get('experiment_name', 'sweep')))}: "
             f"{int(attrs.get('agents', 0)):,} customers x {attrs.get('days', '?')} days, "
             f"{draws}{reps} replicate(s); mean ± {int(summary.level * 100)}% CI")
    table = Table(title=title, caption_justify="left")  # sentences under it, read left to right
    table.add_column("variant", justify="left")
    names = [n for n in TABLE_OUTCOMES if n in summary.outcomes]
    objective = summary.objective if summary.objective in names else None
    if objective:  # the objective first, then what the draws and the ranking add
        names.remove(objective)
        table.add_column(OUTCOME_INFO[objective][0], justify="right")
        if summary.draws:
            table.add_column("noise sd", justify="right")
            table.add_column("assumptions 5–95%", justify="right")
        if len(summary.rows) > 1:
            table.add_column("P(best)", justify="right")
            table.add_column("regret", justify="right")
        if summary.flips:
            table.add_column("best in", justify="right")
    for name in names:
        table.add_column(OUTCOME_INFO[name][0], justify="right")
    best = summary.best.variant if summary.best else None
    for row in summary.rows:
        style = "bold" if row["variant"] == best else None
        cells = []
        if objective:
            o = objective
            cells.append(_cell(row, o))
            if summary.draws:
                cells.append(_fmt(o, row.get(f"{o}_noise_sd", math.nan)))
                cells.append(f"{_fmt(o, row.get(f'{o}_range_low', math.nan))} to "
                             f"{_fmt(o, row.get(f'{o}_range_high', math.nan))}")
            if len(summary.rows) > 1:
                p = row.get("p_best", math.nan)
                cells.append("–" if not math.isfinite(p) else f"{p:.2f}")
                cells.append(_fmt(o, row.get("regret", math.nan)))
            if summary.flips:
                cells.append(f"{summary.flips['best_in'].get(row['variant'], 0)} of "
                             f"{summary.flips['draws']}")
        cells += [_cell(row, n) for n in names]
        table.add_row(escape(row["variant"]), *map(escape, cells), style=style)
    lines = [best_line(summary)]
    if summary.flips:
        lines.append(flips_line(summary))
    table.caption = escape("\n".join([*lines, *(f"warning: {w}" for w in summary.warnings)]))
    return table


def flips_line(summary: Summary) -> str:
    """One sentence: whether the ranking holds across the assumption draws, and if not,
    which assumption decides between the best and its challenger, and where."""
    from simulation.analysis.common import sig3

    f = summary.flips or {}
    if not f or not f.get("draws"):
        return ""
    won = ", ".join(f"{label} {n}" for label, n in sorted(f["best_in"].items(),
                                                           key=lambda kv: -kv[1]))
    best = summary.best.variant if summary.best else "?"
    p = f.get("p_noise", math.nan)
    if not f["flips"]:
        text = (f"the ranking holds across the assumptions: {best} is best in all "
                f"{f['draws']} draws")
        if not (math.isfinite(p) and p < 0.05):
            return text
    else:
        text = (f"the ranking flips across the assumptions: best in {won} of "
                f"{f['draws']} draws")
    driver = f.get("driver")
    if driver:
        rho = f.get("correlation", math.nan)
        text += (f"; {best}'s lead over {f['challenger']} moves most with {driver} "
                 f"(rank correlation {rho:+.2f})")
        if "threshold" in f:
            side = f["best_when"]
            other = "below" if side == "above" else "above"
            text += (f": {best} leads where it is {side} about {sig3(f['threshold'])}, "
                     f"{f['challenger']} where it is {other}")
    if math.isfinite(p):
        text += ("; the leads vary with the assumptions beyond simulation noise "
                 f"(p = {p:.3g})" if p < 0.05 else
                 "; the leads' spread over the draws is within simulation noise "
                 f"(p = {p:.2f}): more replicates would tell")
    return text


def _share(p: float) -> str:
    """P(best) as shown: '> 0.99' rather than '= 1.00', since no rival leading in any
    resample of the replicates at hand is not certainty."""
    return "> 0.99" if p > 0.99 else f"= {p:.2f}"


def best_line(summary: Summary) -> str:
    """One sentence: the best variant, how surely it is the best of all (P(best)), and by
    how much it beats the runner-up.

    P(best) comes first because the comparison with the runner-up alone overstates: the
    best can beat each rival most of the time and still not be the best of all often.
    Below CLEAR the sentence does not name a winner; with one replicate there is no
    measure of certainty at all, and it says so.
    """
    from simulation.sweep.combine import MATERIAL

    b = summary.best
    goal = "highest" if summary.maximise else "lowest"
    if b is not None and b.units == "draws":
        goal += ", expected over the assumptions"
    if b is None:
        return f"no variant has a finite {summary.objective}"
    value = _fmt(summary.objective, b.mean)
    if b.runner_up is None:
        return f"best by {summary.objective} ({goal}): {b.variant} ({value})"
    if not math.isfinite(b.p_best):
        text = (f"one replicate: no measure of certainty; {goal} {summary.objective}: "
                f"{b.variant} ({value}), runner-up {b.runner_up} "
                f"({_fmt(summary.objective, b.runner_up_mean)})")
        return text + "; run more replicates to tell them apart"
    if b.clear:
        text = (f"best by {summary.objective} ({goal}): {b.variant} ({value}), "
                f"P(best) {_share(b.p_best)}")
    else:
        leaders = [(label, p) for label, p in b.p_best_shares.items() if p >= MATERIAL][:5]
        rest = 1.0 - sum(p for _, p in leaders)
        shares = ", ".join(f"{label} {p:.2f}" for label, p in leaders)
        if rest >= 0.005:
            shares += f", others {rest:.2f}"
        text = (f"no clear winner by {summary.objective} ({goal}): P(best) {shares}; "
                f"{goal} mean {b.variant} ({value})")
    text += f"; runner-up {b.runner_up} ({_fmt(summary.objective, b.runner_up_mean)})"
    diff = _fmt(summary.objective, b.difference)
    if math.isfinite(b.difference_low):
        diff += (f", {int(summary.level * 100)}% CI {_fmt(summary.objective, b.difference_low)}"
                 f" to {_fmt(summary.objective, b.difference_high)}")
    text += (f"; better by {diff} (paired by " + ("draw: same assumptions and seeds)"
                                                   if b.units == "draws" else "replicate)"))
    if math.isfinite(b.p_beats_runner_up):
        text += f"; P(beats runner-up) = {b.p_beats_runner_up:.3f}"
    unit = "draw(s)" if b.units == "draws" else "replicate(s)"
    text += f", ahead in {b.wins} of {b.replicates} {unit}"
    return text
