"""A sensitivity design, its runs and its indices.

The design lives in the unit cube: SALib samples each factor on [0, 1] and each
assumption maps [0, 1] onto its own range through its quantile function
(``Assumption.value``: uniform and triangular over their support, normal and
lognormal over their central 99% unless ``low``/``high`` bound them, a posterior's
parameter over its draws' quantiles). Morris's elementary effects are therefore the
change of an outcome per whole range of a factor, comparable between factors of any
units.

Stochastic model, deterministic indices: every row of the design runs on the same R
replicate seeds and the analysis takes each row's mean over them (ANCHORS.md, SALib
#292: "average replicates on common seeds"). A factor that changes nothing then moves
no outcome by even a cent, and its Morris mu* is exactly 0; the noise left in the
indices is the design's, not the runs'.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from simulation.scenario import ScenarioError, with_overrides
from simulation.sweep.experiment import (
    OUTCOMES,
    Assumption,
    Axis,
    Experiment,
    Plan,
    RunSpec,
    _hash,
    replicate_seeds,
)

METHODS = ("morris", "sobol")
DEFAULT_SAMPLES = {"morris": 10, "sobol": 256}
"""Morris: trajectories (rows = N x (D + 1)); Sobol: the base sample, a power of two
(rows = N x (D + 2)). SALib's advice for Sobol is thousands per parameter (#599)."""
NUM_LEVELS = 4
"""Morris grid levels: even, as SALib advises (#248, #312)."""
SURVIVE = 0.05
"""A factor survives Morris screening when its mu* on the objective is at least this
share of the largest: the candidates for a Sobol run."""
RESAMPLES = 1000
"""Bootstrap resamples of SALib's confidence intervals."""
ROW = "row"
REDUCE = "outcomes"  # each run keeps its key outcomes only (simulation.sweep.worker)


@dataclass(frozen=True)
class Design:
    """A SALib design over the factors: ``unit`` rows x factors in [0, 1], and the values
    each row gives each factor's path."""

    method: str
    samples: int
    factors: tuple[Assumption, ...]
    unit: np.ndarray
    values: dict[str, list]
    seed: int

    @property
    def problem(self) -> dict:
        return {"num_vars": len(self.factors), "names": [a.path for a in self.factors],
                "bounds": [[0.0, 1.0]] * len(self.factors)}

    @property
    def rows(self) -> int:
        return int(self.unit.shape[0])

    def overrides(self, row: int) -> dict[str, Any]:
        return {path: values[row] for path, values in self.values.items()}


def factors_of(experiment: Experiment, names: list[str] | None = None,
               flag: str = "--parameters") -> tuple[Assumption, ...]:
    """The experiment's assumptions, or those named (by path)."""
    assumptions = experiment.assumptions
    if not assumptions:
        raise ScenarioError(experiment.source, "uncertain", "sensitivity needs at least one "
                            "[[uncertain]] parameter (the factors to vary)")
    if names is None:
        return assumptions
    by_path = {a.path: a for a in assumptions}
    unknown = [n for n in names if n not in by_path]
    if unknown:
        raise ScenarioError(flag, "", f"{', '.join(map(repr, unknown))} is not uncertain in "
                            f"{experiment.source} (its [[uncertain]] paths: "
                            f"{', '.join(by_path)})")
    return tuple(by_path[n] for n in dict.fromkeys(names))


def check_samples(method: str, samples: int | None) -> int:
    if method not in METHODS:
        raise ScenarioError("--method", "", f"expected one of {', '.join(METHODS)}")
    n = DEFAULT_SAMPLES[method] if samples is None else samples
    if method == "morris" and n < 2:
        raise ScenarioError("--samples", "", "Morris needs at least 2 trajectories")
    if method == "sobol" and (n < 2 or n & (n - 1)):
        raise ScenarioError("--samples", "", f"Sobol's base sample must be a power of two "
                            f"(128, 256, 512, ...), got {n}")
    return n


def design(experiment: Experiment, method: str, samples: int | None = None,
           factors: tuple[Assumption, ...] | None = None) -> Design:
    """SALib's design over ``factors`` (default: every assumption), from the experiment
    seed; every row checked to make a valid scenario (one line naming the row if not)."""
    n = check_samples(method, samples)
    factors = factors if factors is not None else factors_of(experiment)
    seed = int(experiment.spec.seed % (2**32))
    problem = {"num_vars": len(factors), "names": [a.path for a in factors],
               "bounds": [[0.0, 1.0]] * len(factors)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SALib's notes on its own defaults
        if method == "morris":
            from SALib.sample import morris

            unit = morris.sample(problem, n, num_levels=NUM_LEVELS, seed=seed)
        else:
            from SALib.sample import sobol

            unit = sobol.sample(problem, n, calc_second_order=False, seed=seed)
    unit = np.asarray(unit, dtype=float)
    values = {a.path: a.typed(a.value(unit[:, j])) for j, a in enumerate(factors)}
    out = Design(method, n, tuple(factors), unit, values, seed)
    for row in range(out.rows):
        try:
            with_overrides(experiment.base, out.overrides(row), experiment.source)
        except ScenarioError as exc:
            where = ", ".join(f"{p}={v:g}" for p, v in out.overrides(row).items())
            raise ScenarioError(experiment.source, exc.field, f"{exc.message} (in the "
                                f"sensitivity design's row {row}: {where})") from None
    return out


def design_plan(experiment: Experiment, d: Design) -> Plan:
    """The runs of a design: every row once per replicate, every row of a replicate on its
    seed (common random numbers), replicate by replicate."""
    spec = experiment.spec
    seeds = replicate_seeds(spec.seed, spec.replicates)
    base_text = experiment.base.to_toml()
    axis = Axis(ROW, tuple(range(d.rows)), {p: tuple(v) for p, v in d.values.items()},
                tuple(d.overrides(i) for i in range(d.rows)))
    runs = []
    for r, seed in enumerate(seeds):
        for i in range(d.rows):
            overrides = axis.overrides[i]
            key = _hash(base_text, sorted(overrides.items()), seed, "sensitivity:" + REDUCE)
            runs.append(RunSpec(len(runs), r, seed, (i,), {ROW: i}, overrides, key))
    return Plan((axis,), seeds, tuple(runs))


def run_design(experiment: Experiment, d: Design, out, **options):
    """Run every row of the design on the sweep runner (``options``: jobs, scheduler,
    resume, threads, progress, keep_workers): (the plan's runs, the outcomes as an
    array rows x replicates x OUTCOMES)."""
    from simulation.sweep.runner import run_plan

    plan = design_plan(experiment, d)
    ran = run_plan(experiment, plan, out, reduce=REDUCE, **options)
    reps = len(plan.replicate_seeds)
    y = np.full((d.rows, reps, len(OUTCOMES)), np.nan)
    for run, ds in zip(plan.runs, ran.datasets, strict=True):
        for o, name in enumerate(OUTCOMES):
            if name in ds:
                y[run.position[0], run.replicate, o] = float(ds[name].values)
    return ran, y


def analyse(d: Design, y: np.ndarray) -> dict[str, np.ndarray]:
    """SALib's indices of each outcome: name -> factors x outcomes.

    ``y``: rows x replicates x outcomes; each row's mean over its replicates is its
    response. An outcome with a non-finite response in any row (a CAC with no customer)
    or the same response in every row gets NaN indices (0 for Morris: nothing moves).
    """
    from SALib.analyze import morris, sobol

    with np.errstate(invalid="ignore"):
        response = y.mean(axis=1)
    k = len(d.factors)
    names = ("mu", "mu_star", "sigma", "mu_star_conf") if d.method == "morris" else (
        "S1", "S1_conf", "ST", "ST_conf")
    out = {n: np.full((k, response.shape[1]), np.nan) for n in names}
    for o in range(response.shape[1]):
        col = response[:, o]
        if not np.isfinite(col).all():
            continue
        if np.ptp(col) == 0:  # nothing moves it
            if d.method == "morris":
                for n in names:
                    out[n][:, o] = 0.0
            continue
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if d.method == "morris":
                res = morris.analyze(d.problem, d.unit, col, num_resamples=RESAMPLES,
                                     num_levels=NUM_LEVELS, seed=d.seed)
            else:
                res = sobol.analyze(d.problem, col, calc_second_order=False,
                                    num_resamples=RESAMPLES, seed=d.seed)
        for n in names:
            out[n][:, o] = np.asarray(res[n], dtype=float)
    return out


def ranks(values: np.ndarray) -> np.ndarray:
    """1 for the most influential factor of each outcome (NaN indices last)."""
    v = np.where(np.isfinite(values), values, -np.inf)
    order = np.argsort(-v, axis=0, kind="stable")
    r = np.empty_like(order)
    for o in range(v.shape[1]):
        r[order[:, o], o] = np.arange(1, v.shape[0] + 1)
    return r


def survivors(ds: xr.Dataset, outcome: str) -> list[str]:
    """Factors whose Morris mu* on ``outcome`` is at least SURVIVE of the largest."""
    mu = ds["mu_star"].sel(outcome=outcome).values
    if not np.isfinite(mu).any() or np.nanmax(mu) <= 0:
        return []
    keep = mu >= SURVIVE * np.nanmax(mu)
    return [str(p) for p, k in zip(ds.parameter.values, keep, strict=True) if k]


def dataset(experiment: Experiment, d: Design, y: np.ndarray, indices: dict,
            variant: str | None = None) -> xr.Dataset:
    """``sensitivity.nc``: the indices over (parameter, outcome), the design and the runs'
    outcomes, and what made them."""
    from simulation.sweep.combine import OUTCOME_INFO
    from simulation.version import __version__

    spec, base = experiment.spec, experiment.base
    params = [a.path for a in d.factors]
    coords = {
        "parameter": ("parameter", np.array(params, dtype=str)),
        "outcome": ("outcome", np.array(OUTCOMES, dtype=str)),
        ROW: (ROW, np.arange(d.rows, dtype=np.int64)),
        "replicate": ("replicate", np.arange(y.shape[1], dtype=np.int64)),
        "replicate_seed": ("replicate", np.array(replicate_seeds(spec.seed, y.shape[1]),
                                                 dtype=np.int64)),
        "distribution": ("parameter", np.array([a.describe() for a in d.factors], dtype=str)),
        "low": ("parameter", np.array([a.design_range[0] for a in d.factors])),
        "high": ("parameter", np.array([a.design_range[1] for a in d.factors])),
    }
    with np.errstate(invalid="ignore"):
        response = y.mean(axis=1)
    data: dict[str, Any] = {
        name: (("parameter", "outcome"), values) for name, values in indices.items()}
    key = "mu_star" if d.method == "morris" else "ST"
    data["rank"] = (("parameter", "outcome"), ranks(indices[key]).astype(np.int64))
    data["design"] = ((ROW, "parameter"), np.column_stack(
        [np.asarray(d.values[p], dtype=float) for p in params]))
    data["unit"] = ((ROW, "parameter"), d.unit)
    data["response"] = ((ROW, "outcome"), response)
    data["runs"] = ((ROW, "replicate", "outcome"), y)
    ds = xr.Dataset(data, coords=coords)
    text = {
        "mu": "mean elementary effect: the outcome's change per whole range of the "
              "parameter, signed (near 0 with a large mu_star: effects of both signs)",
        "mu_star": "mean absolute elementary effect (Morris mu*): the outcome's change per "
                   "whole range of the parameter, in the outcome's units",
        "sigma": "sd of the elementary effects: interactions or non-linearity",
        "mu_star_conf": "half-width of mu_star's 95% bootstrap interval",
        "S1": "first-order Sobol index: the share of the outcome's variance due to the "
              "parameter alone",
        "S1_conf": "half-width of S1's 95% bootstrap interval",
        "ST": "total-order Sobol index: the share due to the parameter with all its "
              "interactions",
        "ST_conf": "half-width of ST's 95% bootstrap interval",
        "rank": f"1 = the most influential parameter on the outcome (by {key})",
        "design": "each row's parameter values",
        "unit": "each row in SALib's unit cube (0: the low end of the parameter's range)",
        "response": "each row's outcome, the mean over its replicates (what SALib analyses)",
        "runs": "each run's outcome",
    }
    for name, description in text.items():
        if name in ds:
            ds[name].attrs["description"] = description
    ds["outcome"].attrs["description"] = "; ".join(
        f"{o}: {OUTCOME_INFO[o][1]}" for o in OUTCOMES)
    ds["low"].attrs["description"] = "the parameter's value at 0 of the design"
    ds["high"].attrs["description"] = "the parameter's value at 1 of the design"
    ds.attrs = {
        "kind": "sensitivity",
        "method": d.method,
        "samples": d.samples,
        "rows": d.rows,
        "replicates": int(y.shape[1]),
        "runs": int(d.rows * y.shape[1]),
        "design_seed": d.seed,
        "experiment": experiment.text,
        "experiment_name": spec.name,
        "experiment_seed": spec.seed,
        "objective": spec.objective.metric,
        "objective_goal": "max" if spec.objective.maximise else "min",
        "variant": variant or "",
        "scenario": base.to_toml(),
        "scenario_name": base.name,
        "agents": base.simulation.agents,
        "days": base.simulation.days,
        "market_size": base.market.size,
        "simulation_version": __version__,
    }
    if d.method == "morris":
        ds.attrs["num_levels"] = NUM_LEVELS
        ds.attrs["survivors"] = ",".join(survivors(ds, spec.objective.metric))
    return ds


def fmt(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    a = abs(value)
    if a >= 100:
        return f"{value:,.0f}"
    if a >= 1:
        return f"{value:,.2f}"
    return f"{value:.3g}"
