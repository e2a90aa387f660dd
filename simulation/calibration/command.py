"""``distsim calibrate``: validate, fit (resumably), check, write the outputs together.

Outputs in ``--out DIR`` (docs/calibration.md):

- ``calibrated.toml``: the scenario with each free parameter at its posterior median,
  a file ``distsim run`` accepts (at the file's own size: the fit is in market units);
- ``posterior.nc``: a variable per free parameter over ``sample`` (equally weighted
  draws, resampled from the last generation's weighted particles), the fit table over
  ``observation`` and the fit's history over ``generation``;
- ``fit.png`` and ``fit.csv``: observed versus simulated, for every observed value, from
  ``check_runs`` fresh runs of the calibrated scenario.

``DIR/history.db`` is pyabc's History database, the fit's checkpoint: pyabc adds each
generation to it as the generation ends (:mod:`.fit`). The final outputs appear together
at the end (:class:`simulation.outputs.OutputFiles`), so a killed command leaves the
database and none of them, and ``--resume`` finishes the fit. pyabc (a second or two of
imports) is imported only once the input is known to be good.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from simulation.calibration.evaluate import Evaluator
from simulation.calibration.targets import MAX_REPLICATES, Targets, load_targets, read_text
from simulation.scenario import Scenario, ScenarioError, with_overrides

if TYPE_CHECKING:
    from simulation.calibration.fit import FitState, Problem

CHECKPOINT = "history.db"
OUTPUTS = ("calibrated.toml", "posterior.nc", "fit.png", "fit.csv")
PILOT_RUNS = 4
# tags of the fit's random streams besides its proposals ([seed, generation, proposal])
PILOT, POSTERIOR, CHECK = 1_000_001, 1_000_002, 1_000_003


@dataclass
class Calibration:
    """A validated calibration, before anything runs."""

    scenario: Scenario  # as loaded (with --set): what calibrated.toml starts from
    resolved: Scenario  # at the fit's --agents, --days, --seed
    targets: Targets
    targets_text: str
    seed: int

    @property
    def problem(self) -> Problem:
        from simulation.calibration.fit import Problem

        observed, sds, owner = self.targets.vector()
        return Problem(tuple(self.targets.parameters), observed, sds, owner)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(p.path for p in self.targets.parameters)

    def fingerprint(self) -> str:
        """What the database must match to be resumed: the scenario as run and the
        targets (not the budget: a resume may grant more evaluations)."""
        h = hashlib.sha256()
        h.update(self.resolved.to_toml().encode())
        h.update(b"\0")
        h.update(self.targets_text.encode())
        return h.hexdigest()[:16]


def prepare(scenario: Scenario, resolved: Scenario, targets_path: str) -> Calibration:
    """Read TARGETS.toml against the scenario as it will run."""
    targets = load_targets(targets_path, resolved)
    seed = targets.fit.seed if targets.fit.seed is not None else resolved.simulation.seed
    return Calibration(scenario, resolved, targets, read_text(targets_path), seed)


def load_checkpoint(out: Path, cal: Calibration, resume: bool) -> FitState | None:
    """The fit to go on with, or None to start afresh; refuses, in one line, a folder
    that holds another fit or one the user did not ask to resume."""
    path = out / CHECKPOINT
    if not path.exists():
        return None
    if not resume:
        raise ScenarioError(str(out), "", f"holds a calibration ({CHECKPOINT}): --resume to "
                            "finish it, or another --out")
    from simulation.calibration.fit import read_state

    try:
        state = read_state(path)
    except ValueError as exc:
        raise ScenarioError(str(path), "", f"not a readable calibration database ({exc})"
                            ) from None
    if state.fingerprint != cal.fingerprint():
        raise ScenarioError(str(path), "", "a calibration of another scenario or other "
                            "targets (or another --agents, --days, --seed); use another --out")
    return state


def choose_replicates(cal: Calibration, evaluator: Evaluator) -> tuple[int, float]:
    """Runs per evaluation: enough that the mean's noise is at most half of each
    figure's sd, measured by ``PILOT_RUNS`` runs at the prior medians (at most
    ``MAX_REPLICATES``). Returns (replicates, the noisiest figure's noise / sd)."""
    setting = cal.targets.fit.replicates
    if setting != "auto":
        return int(setting), math.nan
    problem = cal.problem
    medians = np.array([[p.median() for p in problem.priors]] * PILOT_RUNS)
    rng = np.random.default_rng([cal.seed, PILOT])
    seeds = rng.integers(0, 2**63 - 1, size=(PILOT_RUNS, 1), dtype=np.int64)
    figures = evaluator(medians, seeds)
    noise = np.nanstd(figures, axis=0, ddof=1) / problem.sds
    n = int(problem.owner.max()) + 1
    ratio = np.sqrt(np.bincount(problem.owner, noise ** 2, minlength=n) /
                    np.bincount(problem.owner, minlength=n))
    worst = float(np.nanmax(ratio)) if np.isfinite(ratio).any() else 0.0
    return int(min(MAX_REPLICATES, max(1, math.ceil(4 * worst ** 2)))), worst


def estimates(cal: Calibration, draws: np.ndarray) -> dict[str, float]:
    """The best estimate of each parameter: its posterior median (robust to a skewed
    posterior and always inside the prior's range), to six significant digits.
    ``draws`` are internal coordinates (:mod:`.priors`)."""
    values = cal.problem.values(draws)
    return {path: float(f"{np.median(values[:, i]):.6g}") for i, path in enumerate(cal.paths)}


def calibrated_scenario(cal: Calibration, best: dict[str, float], source: str) -> Scenario:
    return with_overrides(cal.scenario, best, source=source)


def check_runs(cal: Calibration, best: dict[str, float], evaluator: Evaluator) -> np.ndarray:
    """The figures of ``check_runs`` fresh runs of the calibrated scenario at the fit's
    size (rows: runs)."""
    n = cal.targets.fit.check_runs
    rng = np.random.default_rng([cal.seed, CHECK])
    seeds = rng.integers(0, 2**63 - 1, size=(n, 1), dtype=np.int64)
    values = np.array([[best[p] for p in cal.paths]] * n)
    return evaluator(values, seeds)


def fit_table(cal: Calibration, runs: np.ndarray) -> xr.Dataset:
    """Observed versus simulated over ``observation`` (one row per observed value)."""
    observed, sds, owner = cal.targets.vector()
    labels, elements, kinds = [], [], []
    for o in cal.targets.observed:
        k = len(o.values)
        labels += [o.label()] * k
        if o.variable == "orders_per_customer":
            elements += [f"{i + 1}" if i < k - 1 else f"{k}+" for i in range(k)]
            kinds += ["orders placed"] * k
        elif o.weekly:
            elements += [f"week {i}" for i in range(k)]
            kinds += ["week of the window"] * k
        else:
            elements += ["total"]
            kinds += [""]
    mean = np.nanmean(runs, axis=0)
    spread = np.nanstd(runs, axis=0, ddof=1)
    z = (mean - observed) / sds
    return xr.Dataset({
        "figure": ("observation", np.array(labels, dtype=object)),
        "element": ("observation", np.array(elements, dtype=object)),
        "element_kind": ("observation", np.array(kinds, dtype=object)),
        "observed": ("observation", observed),
        "sd": ("observation", sds),
        "simulated": ("observation", mean),
        "simulated_sd": ("observation", spread),
        "z": ("observation", z),
    }, coords={"observation": np.arange(len(observed))})


def posterior_dataset(cal: Calibration, state: FitState, draws: np.ndarray,
                      table: xr.Dataset, calibrated: Scenario, best: dict[str, float]):
    from simulation.version import __version__

    problem = cal.problem
    values = problem.values(draws)
    ds = xr.Dataset(coords={"sample": np.arange(len(draws))})
    for i, p in enumerate(problem.priors):
        ds[p.path] = ("sample", values[:, i])
        lo, hi = np.quantile(values[:, i], [0.05, 0.95])
        ds[p.path].attrs.update(description=f"posterior draws of {p.path}",
                                prior=p.describe(), estimate=best[p.path],
                                interval_90=np.array([lo, hi]))
    gens = state.generations
    ds["epsilon"] = ("generation", np.array([g.epsilon for g in gens]))
    ds["evaluations"] = ("generation", np.array([g.evaluations for g in gens]))
    ds["acceptance"] = ("generation", np.array([g.accepted / g.evaluations for g in gens]))
    ds["ess"] = ("generation", np.array([g.ess for g in gens]))
    ds = ds.merge(table)
    ds.attrs.update(kind="calibration", scenario=calibrated.to_toml(), targets=cal.targets_text,
                    scenario_name=cal.scenario.name, seed=cal.seed,
                    agents=cal.resolved.simulation.agents, days=cal.resolved.simulation.days,
                    replicates=state.replicates, total_evaluations=state.evaluations,
                    runs=state.evaluations * state.replicates, stopped=state.stopped,
                    check_runs=cal.targets.fit.check_runs, simulation_version=__version__)
    return ds


def table_csv(table: xr.Dataset) -> str:
    frame = table.to_dataframe()[["figure", "element", "observed", "sd", "simulated",
                                  "simulated_sd", "z"]]
    frame["within_2_sd"] = (frame.z.abs() <= 2).astype(int)
    return frame.to_csv(index=False, float_format="%.6g")


def calibrate_command(args, console, scenario: Scenario, resolved: Scenario) -> int:
    """The command (``simulation.cli`` parses and loads the scenario)."""
    from simulation.outputs import OutputFiles, check_directory
    from simulation.sweep.command import start_local_workers

    cal = prepare(scenario, resolved, args.targets)
    out = Path(args.out) if args.out is not None else (
        Path("results") / f"{Path(args.scenario).stem}_calibration")
    check_directory("--out", out)
    state = load_checkpoint(out, cal, args.resume)
    quiet = args.quiet
    db = out / CHECKPOINT
    with OutputFiles(inputs=[args.scenario, args.targets]) as outputs:
        for name in OUTPUTS:  # checked and reserved before any run
            outputs.add(name, out / name, 1 << 20)
        from simulation.calibration import fit  # pyabc: before any worker is forked

        start_local_workers(args.jobs, args.threads or 1, args.scheduler)
        with Evaluator(resolved, cal.paths, cal.targets, jobs=args.jobs,
                       scheduler=args.scheduler, threads=args.threads) as evaluator:
            evaluator.start()  # before the progress bar's thread: workers may be forked
            if state is None:
                replicates, noise = choose_replicates(cal, evaluator)
                if not quiet and not math.isnan(noise):
                    capped = " (capped)" if replicates == MAX_REPLICATES else ""
                    console.print(f"pilot: the noisiest figure's run-to-run sd is "
                                  f"{noise:.2f} of its stated sd: {replicates} run(s) per "
                                  f"evaluation{capped}", markup=False)
                _create(db, cal, replicates)
            elif not quiet:
                console.print(f"resuming: {len(state.generations)} generation(s) and "
                              f"{state.evaluations} evaluation(s) done", markup=False)
            state = _fit(cal, evaluator, args.evaluations, db, console, quiet)
            if not state.generations:
                raise ScenarioError("--evaluations", "", f"{args.evaluations} evaluations do "
                                    f"not finish the first generation (population "
                                    f"{cal.targets.fit.population}); allow more")
            z, w = fit.last_population(db, cal.problem)
            draws = fit.resample(z, w, np.random.default_rng([cal.seed, POSTERIOR]),
                                 cal.targets.fit.population)
            best = estimates(cal, draws)
            calibrated = calibrated_scenario(cal, best, str(out / "calibrated.toml"))
            runs = check_runs(cal, best, evaluator)
        from simulation.calibration.plots import fit_png
        from simulation.io import netcdf_bytes

        table = fit_table(cal, runs)
        post = posterior_dataset(cal, state, draws, table, calibrated, best)
        header = (f"# calibrated by distsim calibrate: {Path(args.scenario).name} with "
                  f"{Path(args.targets).name}\n# free parameters at their posterior medians: "
                  + ", ".join(f"{k} = {v:g}" for k, v in best.items()) + "\n")
        outputs.write("calibrated.toml", header + calibrated.to_toml())
        outputs.write("posterior.nc", netcdf_bytes(post))
        outputs.write("fit.png", fit_png(post))
        outputs.write("fit.csv", table_csv(table))
        outputs.commit()
    if not quiet:
        console.print(posterior_table(post))
        console.print(fit_summary(table))
        console.print(f"calibration written to {out}/ ({', '.join(OUTPUTS)}); "
                      f"{state.evaluations} evaluations x {state.replicates} run(s), "
                      f"ended by {STOPS[state.stopped]}", markup=False)
    return 0


def _create(db: Path, cal: Calibration, replicates: int) -> None:
    from simulation.calibration.fit import create
    from simulation.outputs import OutputError

    try:
        create(db, cal.problem, cal.targets.fit, cal.fingerprint(), replicates)
    except OSError as exc:
        raise OutputError(f"{db}: cannot write ({exc.strerror})") from None


STOPS = {"epsilon": "reaching the tolerance [fit] epsilon",
         "generations": "the [fit] generations limit",
         "acceptance": "an acceptance rate below [fit] min_acceptance",
         "budget": "the --evaluations budget"}


def _fit(cal, evaluator, budget, db, console, quiet) -> FitState:
    from simulation.calibration.fit import run_fit
    from simulation.progress import ProgressBar

    bar = ProgressBar(console, f"calibrating {cal.scenario.name}", "evaluations",
                      enabled=not quiet)

    def generation(s: FitState) -> None:
        t, g = len(s.generations) - 1, s.generations[-1]
        bar.console.print(f"generation {t}: tolerance {g.epsilon:.3g} sd, accepted "
                          f"{g.accepted} of {g.evaluations} ({g.accepted / g.evaluations:.0%}), "
                          f"effective sample size {g.ess:.0f}", markup=False)

    try:
        return run_fit(cal.problem, cal.targets.fit, evaluator.simulator, db, seed=cal.seed,
                       budget=budget, mapper=evaluator,
                       progress=lambda done: bar(min(done, budget), budget),
                       generation=None if quiet else generation)
    finally:
        bar.close()


def posterior_table(post: xr.Dataset):
    from rich.table import Table

    table = Table(title="posterior (90% interval)", title_justify="left")
    for col in ("parameter", "prior", "estimate (median)", "5%", "95%"):
        table.add_column(col, justify="left" if col in ("parameter", "prior") else "right")
    for name, var in post.data_vars.items():
        if var.dims != ("sample",):
            continue
        lo, hi = var.attrs["interval_90"]
        table.add_row(name, var.attrs["prior"], f"{var.attrs['estimate']:.4g}", f"{lo:.4g}",
                      f"{hi:.4g}")
    return table


def fit_summary(table: xr.Dataset):
    from rich.table import Table

    out = Table(title="observed vs simulated (the calibrated scenario)", title_justify="left")
    for col in ("figure", "values", "observed", "simulated", "worst miss (sd)", "within 2 sd"):
        out.add_column(col, justify="left" if col == "figure" else "right")
    names = list(dict.fromkeys(table.figure.values.tolist()))
    for name in names:
        rows = table.where(table.figure == name, drop=True)
        z = np.abs(rows.z.values)
        single = rows.sizes["observation"] == 1
        out.add_row(name, str(rows.sizes["observation"]),
                    f"{float(rows.observed[0]):.4g}" if single else "series",
                    f"{float(rows.simulated[0]):.4g}" if single else "series",
                    f"{np.nanmax(z):.2f}", "yes" if np.all(z <= 2) else "NO")
    return out
