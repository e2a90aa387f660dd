"""The combined result of a sweep and the table that says which strategy wins.

:func:`combine` stacks the run datasets into one: a dimension per axis of the run grid
(``variant``, each grid parameter, each zip or sample block) and ``replicate``, then the
run's own dimensions. Swept values are coordinates (a zip or sample block's parameters
run along its axis, whose index numbers the points); ``replicate_seed`` and ``run``
(the file in ``runs/``) too.

:func:`summarise` reduces it to key outcomes per point of the grid (a "variant" in the
table: a named variant, a parameter combination, or both; a sampled point labelled by
its values), with the mean over replicates and a 95% t interval, and picks the best by
the objective. How sure that pick is, is the headline: P(best), the probability that
the point with the best mean is the best of all points, from a paired bootstrap over
replicates (:func:`p_best`); below 0.9 there is no clear winner, and with one replicate
there is no measure of it. Replicates share their customers across variants (common
random numbers), so the comparison with the runner-up uses the replicate-paired
differences: their mean and t interval, the t posterior probability that the mean
paired difference is positive (flat prior) and the share of replicates it won. A best
point at the lowest or highest value of a swept parameter is warned about
(:func:`edge_warnings`): the optimum may lie beyond the range swept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from simulation.analysis.economics import ltv_cac_rank
from simulation.scenario import ScenarioError
from simulation.sweep.experiment import (
    DRAW,
    OUTCOMES,
    REPLICATE,
    VARIANT,
    Experiment,
    Objective,
    Plan,
)
from simulation.version import __version__

# outcome -> (column header, description)
OUTCOME_INFO = {
    "profit": ("profit", "gross margin - spend - programme costs, over the run"),
    "revenue": ("revenue", "net revenue over the run"),
    "customers": ("customers", "customers acquired over the run"),
    "cac": ("CAC", "market acquisition cost: (media spend + fixed cost) / customers acquired"),
    "ltv": ("LTV", "margin realised in the run per acquired customer, first-order "
                   "acquisition costs added back (they are in the loaded CAC)"),
    "ltv_cac": ("LTV/CAC", "projected LTV / loaded CAC"),
    "churn": ("churn", "share of acquired customers churned by the end"),
    "brand_equity": ("brand equity", "brand equity on the last day"),
}
TABLE_OUTCOMES = ("profit", "customers", "cac", "ltv_cac", "churn", "brand_equity")


# -- combining ---------------------------------------------------------------------


def combine(experiment: Experiment, plan: Plan, datasets: Iterable[xr.Dataset]) -> xr.Dataset:
    """One dataset from the runs' datasets, given in run order (``plan.runs``)."""
    runs = list(datasets)
    versions = {ds.attrs.get("simulation_version", "unknown") for ds in runs}
    if len(versions) > 1 or (versions and versions != {__version__}):
        raise ScenarioError(experiment.source, "", "its runs were made by distsim "
                            f"{', '.join(sorted(versions))}; this is {__version__}, and runs "
                            "of different versions cannot be combined")
    meta = {k: runs[0].attrs[k] for k in ("backend", "simulation_version", "bytes_per_customer")
            if runs and k in runs[0].attrs}
    runs = [_no_attrs(ds) for ds in runs]
    if len(runs) != len(plan.runs):
        raise ValueError(f"expected {len(plan.runs)} run datasets, got {len(runs)}")
    runs = _align(runs)
    n_rep = len(plan.replicate_seeds)
    axes_shape = tuple(len(a) for a in plan.axes)
    names: list[str] = []
    for ds in runs:
        names += [v for v in ds.data_vars if v not in names]
    data = {}
    for name in names:
        template = next(ds[name] for ds in runs if name in ds)
        arrays = [ds[name].values if name in ds else np.full(template.shape, np.nan)
                  for ds in runs]
        stacked = np.stack(arrays)  # (replicate * points, *run dims)
        stacked = stacked.reshape((n_rep, *axes_shape, *template.shape))
        stacked = np.moveaxis(stacked, 0, len(axes_shape))
        data[name] = xr.Variable((*plan.dims, *template.dims), stacked, template.attrs)
    coords: dict = {}
    first = runs[0]
    for c in first.coords:
        coords[c] = first[c].variable
    for axis in plan.axes:
        coords[axis.dim] = (axis.dim, _array(axis.labels))
        for path, values in axis.params.items():
            if path != axis.dim:
                coords[path] = (axis.dim, _array(values))
    coords[REPLICATE] = (REPLICATE, np.arange(n_rep, dtype=np.int64))
    if plan.draw_seeds is not None:  # each draw its own replicates' seeds
        coords["replicate_seed"] = ((DRAW, REPLICATE), np.array(plan.draw_seeds, dtype=np.int64))
    else:
        coords["replicate_seed"] = (REPLICATE, np.array(plan.replicate_seeds, dtype=np.int64))
    run_index = np.arange(len(plan.runs), dtype=np.int64).reshape((n_rep, *axes_shape))
    coords["run"] = (plan.dims, np.moveaxis(run_index, 0, len(axes_shape)))
    out = xr.Dataset(data, coords=coords)
    out[REPLICATE].attrs["description"] = (
        "replicate: every variant of a replicate runs with its seed (common random numbers)")
    out["replicate_seed"].attrs["description"] = (
        "run seed of the replicate (of each draw, with assumption draws)")
    out["run"].attrs["description"] = "index of the run file in runs/"
    if VARIANT in out.coords:
        out[VARIANT].attrs["description"] = "named variant of the experiment"
    if DRAW in out.dims:
        out[DRAW].attrs.update(kind="point number", description=(
            "assumption draw: every decision runs on every draw (same values, same seeds); "
            "the assumptions' values are the coordinates along it"))
        for a in experiment.assumptions:
            if a.path in out.coords:
                out[a.path].attrs.update(assumption=a.describe())
    for axis in plan.axes:
        if axis.dim not in (VARIANT, DRAW) and axis.dim not in axis.params:
            out[axis.dim].attrs.update(kind="point number", description=(
                "point of the block; its parameters' values are the coordinates along it"))
    spec = experiment.spec
    out.attrs = {
        "experiment": experiment.text or json.dumps(spec.model_dump(mode="json")),
        "experiment_name": spec.name,
        "experiment_seed": spec.seed,
        "replicates": n_rep,
        "runs": len(plan.runs),
        "objective": spec.objective.metric,
        "objective_goal": "max" if spec.objective.maximise else "min",
        "scenario": experiment.base.to_toml(),
        "scenario_name": experiment.base.name,
        "agents": experiment.base.simulation.agents,
        "days": experiment.base.simulation.days,
        "draws": len(plan.draw_seeds) if plan.draw_seeds is not None else 0,
    }
    out.attrs.update(meta)
    return out


def _no_attrs(ds: xr.Dataset) -> xr.Dataset:
    """The run without its attributes, text coordinates as ``str`` arrays: a run fresh from
    a worker (object arrays) and one read from its file (``<U``) combine the same way."""
    out = ds.copy()
    out.attrs = {}
    text = {c: out[c].astype(str) for c in out.coords if out[c].dtype == object}
    return out.assign_coords(text) if text else out


def _align(runs: list[xr.Dataset]) -> list[xr.Dataset]:
    """Give every run the same run coordinates (an outer join, NaN where a run has none).

    Runs usually agree (same channels, days and segments); a sweep of ``simulation.days``
    or of the channel list makes them differ.
    """
    dims: dict[str, list] = {}
    differ = False
    for ds in runs:
        for name, index in ds.indexes.items():
            values = list(index)
            if name not in dims:
                dims[name] = values
            elif values != dims[name]:
                differ = True
                dims[name] += [v for v in values if v not in set(dims[name])]
    if not differ:
        return runs
    return [ds.reindex({d: v for d, v in dims.items() if d in ds.dims}) for ds in runs]


def _array(values) -> np.ndarray:
    """Coordinate values: numbers stay numbers; anything else becomes text."""
    from simulation.sweep.experiment import _label

    values = [_label(v) for v in values]
    if all(isinstance(v, bool) for v in values):
        return np.array(values, dtype=bool)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.array(values)
    return np.array([str(v) for v in values], dtype=str)


# -- outcomes and the summary ---------------------------------------------------------


def outcomes(ds: xr.Dataset) -> xr.Dataset:
    """Key outcomes of every run (a run's dataset or a combined one: sweep dims stay):
    the market's figures of :func:`simulation.analysis.sweep.kpis`, churn and equity."""
    from simulation.analysis.sweep import kpis

    k = kpis(ds)
    out = {name: k[name] for name in ("profit", "revenue", "customers", "cac", "ltv", "ltv_cac",
                                      "ltv_projected", "cac_loaded")}  # the last two rank ltv_cac
    churned = ds.churned.sum(("day", "channel"))
    with np.errstate(divide="ignore", invalid="ignore"):
        out["churn"] = xr.where(k.customers > 0, churned / k.customers, np.nan)
    if "brand_equity" in ds and "day" in ds["brand_equity"].dims:
        out["brand_equity"] = ds["brand_equity"].isel(day=-1, drop=True)
    result = xr.Dataset({name: v.astype(float) for name, v in out.items()})
    for name, (header, text) in OUTCOME_INFO.items():
        if name in result:
            result[name].attrs.update(long_name=header, description=text)
    return result


def point_labels(ds: xr.Dataset, dims: list[str]) -> list[str]:
    """One readable label per point of the grid (C order over ``dims``): a variant by its
    name, a grid or zip value as ``path=value``, a sampled point by its values
    (``price=87.3, daily_budget=412``, :func:`~simulation.analysis.common.point_axis_labels`)."""
    from simulation.analysis.common import point_axis_labels

    if not dims:
        return ["base"]
    per_axis = []
    for d in dims:
        labels = point_axis_labels(ds, d)
        if labels is None:
            labels = []
            for v in ds[d].values:
                v = f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)
                labels.append(v if d == VARIANT else f"{d}={v}")
        per_axis.append(labels)
    return [", ".join(per_axis[a][i] for a, i in enumerate(pos))
            for pos in np.ndindex(*(len(labels) for labels in per_axis))]


@dataclass
class Best:
    """The best point by the objective: how sure we are it is the best of all (P(best)),
    and by how much and how surely it beats the runner-up."""

    variant: str
    mean: float
    runner_up: str | None = None
    runner_up_mean: float = math.nan
    difference: float = math.nan  # mean paired difference, in the objective's direction
    difference_low: float = math.nan
    difference_high: float = math.nan
    p_beats_runner_up: float = math.nan
    wins: int = 0  # units (replicates, or draws) in which the best beat the runner-up
    replicates: int = 0  # units compared
    units: str = "replicates"  # or "draws": the unit of comparison
    # the headline: P(best) of :func:`p_best`; NaN with one replicate (no measure of it)
    p_best: float = math.nan
    # every point with a share of the bootstrap wins (P(best) of each), largest first
    p_best_shares: dict[str, float] = field(default_factory=dict)

    @property
    def clear(self) -> bool:
        """Whether the summary may call the best a winner: P(best) at least CLEAR."""
        return math.isfinite(self.p_best) and self.p_best >= CLEAR


@dataclass
class Summary:
    objective: str
    maximise: bool
    outcomes: list[str]
    rows: list[dict] = field(default_factory=list)  # variant, n, <o>_mean/_low/_high
    best: Best | None = None
    level: float = 0.95
    channel_rows: list[dict] = field(default_factory=list)  # variant, channel, CHANNEL_OUTCOMES
    warnings: list[str] = field(default_factory=list)  # e.g. the best at the edge of a range
    draws: int = 0  # assumption draws (0: none)
    flips: dict | None = None  # where the ranking flips across the draws (:func:`flips`)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows).set_index("variant")

    def channel_frame(self):
        """Each point's per-channel outcomes (means over replicates), as the run's."""
        import pandas as pd

        return pd.DataFrame(self.channel_rows).set_index(["variant", "channel"])

    def to_json(self) -> str:
        body = {"objective": self.objective, "goal": "max" if self.maximise else "min",
                "level": self.level, "outcomes": self.outcomes, "rows": self.rows,
                "best": self.best.__dict__ if self.best else None,
                "draws": self.draws, "flips": self.flips,
                "warnings": self.warnings, "channels": self.channel_rows}
        return json.dumps(_nan_to_none(body), indent=1)


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float, int]:
    """Mean and t interval of the finite values (NaN bounds with fewer than two)."""
    from scipy.special import stdtrit  # the t quantile, without scipy.stats' import cost

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = v.size
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = float(stdtrit(n - 1, 0.5 + level / 2) * v.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def p_positive(diff: np.ndarray) -> float:
    """Posterior probability (t, flat prior) that the mean of paired differences is > 0."""
    from scipy.special import stdtr  # the t CDF

    d = np.asarray(diff, dtype=float)
    d = d[np.isfinite(d)]
    n = d.size
    if n == 0:
        return math.nan
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    if n > 1 and sd == 0:
        return 1.0 if mean > 0 else (0.0 if mean < 0 else 0.5)
    if n < 2:
        return math.nan
    return float(stdtr(n - 1, mean / (sd / math.sqrt(n))))


CLEAR = 0.9
"""P(best) from which the summary names a winner; below it, "no clear winner"."""
MATERIAL = 0.05
"""P(best) share from which a point is named among the leaders when there is no winner."""
RESAMPLES = 2000
BOOTSTRAP_SEED = 20240613


def p_best(values: np.ndarray, resamples: int = RESAMPLES,
           seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """Each point's probability of being the best (highest mean), from replicate-paired
    outcomes ``values`` (points x replicates, higher is better): a paired bootstrap.

    Why this: replicate r of every point uses the same seed (common random numbers), so
    the points' outcomes are correlated replicate by replicate, and what decides "best"
    is the paired differences, not each point's own spread. Resampling replicate
    indices with replacement, the same indices for every point, keeps that pairing for
    all points at once (a comparison with the runner-up alone ignores the others: with
    nine points close together the best can beat each one 80% of the time and be the
    best far less often). Each resample's leader gets the win; tied leaders share it,
    so two identical points get 0.5 each.

    The plain bootstrap's spread of a mean is sqrt((n - 1) / n) times the standard
    error, too narrow for a few replicates; each point's deviations from its mean are
    scaled by sqrt(n / (n - 1)) (Davison & Hinkley 1997, section 3.3) so that it is
    not. Still, a bootstrap knows only the replicates it has: a point ahead in every
    replicate gets 1 whatever their number. Non-finite outcomes are left out of a
    point's mean, as in the table; a resample where a point has none cannot make it
    best. One replicate: NaN for every point (no measure of certainty). The seed is
    fixed, so the figure is the same every time; with 2,000 resamples its Monte Carlo
    error is at most 0.011 (one standard error).
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2:
        raise ValueError("values must be points x replicates")
    k, n = v.shape
    if k == 0:
        return np.zeros(0)
    if n < 2:
        return np.full(k, np.nan)
    finite = np.isfinite(v)
    counts = finite.sum(axis=1)
    x = np.where(finite, v, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = x.sum(axis=1) / counts
        scale = np.where(counts > 1, np.sqrt(counts / np.maximum(counts - 1, 1)), 1.0)
    rng = np.random.default_rng(seed)
    wins = np.zeros(k)
    chunk = max(1, min(resamples, 2_000_000 // max(k * n, 1)))
    done = 0
    while done < resamples:
        b = min(chunk, resamples - done)
        # how often each replicate is drawn in each resample (the same for every point)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(float)
        total = x @ weights.T  # points x resamples
        used = finite.astype(float) @ weights.T
        with np.errstate(invalid="ignore", divide="ignore"):
            m = total / used
            m = mean[:, None] + scale[:, None] * (m - mean[:, None])
        m = np.where(used > 0, m, -np.inf)
        top = m.max(axis=0)
        lead = (m == top) & np.isfinite(top)
        n_lead = lead.sum(axis=0)
        wins += (lead / np.maximum(n_lead, 1)).sum(axis=1)
        done += b
    return wins / resamples


def edge_warnings(ds: xr.Dataset, dims: list[str], position: tuple[int, ...]) -> list[str]:
    """Where the best point sits at the lowest or highest value of a numeric swept
    parameter (grid, zip or sampled) with at least 3 distinct values: the optimum may lie
    beyond the range swept. With 2 values every point is at an edge: nothing to say.
    """
    from simulation.analysis.common import axis_parameters, sig3

    out = []
    for d, i in zip(dims, position, strict=True):
        for path in axis_parameters(ds, d):
            values = ds[path].values
            if values.dtype == bool or not np.issubdtype(values.dtype, np.number):
                continue
            finite = values[np.isfinite(values)]
            if np.unique(finite).size < 3 or not np.isfinite(values[i]):
                continue
            low, high = finite.min(), finite.max()
            if values[i] not in (low, high):
                continue
            edge = "highest" if values[i] == high else "lowest"
            out.append(f"the best point is at the {edge} {path} swept ({sig3(values[i])}; "
                       f"range {sig3(low)} to {sig3(high)}): the optimum may lie beyond the "
                       "range swept")
    return out


def summarise(ds: xr.Dataset, objective: Objective | str | None = None,
              level: float = 0.95) -> Summary:
    """Per decision (a point of the grid): each outcome's mean and interval, P(best) and
    expected regret; the best by ``objective``.

    Without assumption draws the unit of comparison is the replicate (paired across
    decisions by their shared seed). With draws (a ``draw`` axis) it is the draw: a
    draw's mean over its replicates, paired across decisions by the shared assumption
    values and seeds; the interval is then that of the expected outcome over the
    assumptions, and the table adds the simulation noise (the spread of replicates
    within a draw) and the assumption spread (of the draws' means) apart, and how often
    each decision is best across the draws (:func:`flips`).
    """
    if objective is None:
        objective = Objective(metric=ds.attrs.get("objective", "profit"),
                              goal=ds.attrs.get("objective_goal"))
    elif isinstance(objective, str):
        objective = Objective(metric=objective)
    out = outcomes(ds)
    names = [o for o in OUTCOMES if o in out]
    dims = [d for d in out.dims if d not in (REPLICATE, DRAW) and d in ds.dims
            and d not in ("day", "channel")]
    dims = [d for d in ds.dims if d in dims]  # dataset order: variant, then the sweep axes
    drawn = DRAW in out.dims
    labels = point_labels(ds, dims)
    runs = {}  # every outcome (the table's and the two that rank ltv_cac): points x draws x reps
    for name in out.data_vars:
        da = out[name]
        for d in (DRAW, REPLICATE):
            if d not in da.dims:
                da = da.expand_dims(d)
        da = da.transpose(*dims, DRAW, REPLICATE)
        runs[name] = da.values.reshape(len(labels), da.sizes[DRAW], da.sizes[REPLICATE])
    n_draws = runs[names[0]].shape[1] if names else 1
    by_draw = drawn and n_draws >= 2
    units = {name: _units(v, by_draw) for name, v in runs.items()}
    summary = Summary(objective.metric, objective.maximise, names, level=level,
                      draws=n_draws if drawn else 0)
    for i, label in enumerate(labels):
        row: dict = {"variant": label}
        for name in names:
            mean, low, high, n = t_interval(units[name][i], level)
            if by_draw:
                row["draws"] = max(row.get("draws", 0), n)
                row["replicates"] = max(row.get("replicates", 0),
                                        int(np.isfinite(runs[name][i]).sum(axis=1).max()))
            else:
                row["replicates"] = max(row.get("replicates", 0), n)
            row[f"{name}_mean"], row[f"{name}_low"], row[f"{name}_high"] = mean, low, high
            if drawn:
                row.update({f"{name}_{k}": v for k, v in spread(runs[name][i]).items()})
        summary.rows.append(row)
    summary.channel_rows = _channel_rows(ds, dims, labels)
    if objective.metric not in names:
        return summary
    values = runs[objective.metric]
    sign = 1.0 if objective.maximise else -1.0
    ranks = sign * values  # what decides the best, per point, draw and replicate
    if objective.metric == "ltv_cac" and "ltv_projected" in runs and "cac_loaded" in runs:
        # a negative LTV/CAC must not rank a cheaper point below a dearer one
        ranks = sign * ltv_cac_rank(values, runs["ltv_projected"], runs["cac_loaded"])
    ranks = _units(ranks, by_draw)  # points x units
    values = units[objective.metric]
    finite = np.isfinite(ranks)
    with np.errstate(invalid="ignore"):  # the mean of the finite units, as the table's
        means = np.where(finite, ranks, 0.0).sum(axis=1) / finite.sum(axis=1)
    order = [i for i in np.argsort(-np.where(np.isfinite(means), means, -np.inf), kind="stable")
             if np.isfinite(means[i])]
    regret = expected_regret(sign * values)
    shares = p_best(ranks) if len(labels) > 1 else np.ones(len(labels))
    for i, row in enumerate(summary.rows):
        row["p_best"] = float(shares[i])
        row["regret"] = float(regret[i])
    if not order:
        return summary
    b = order[0]
    best = Best(labels[b], float(summary.rows[b][f"{objective.metric}_mean"]),
                units="draws" if by_draw else "replicates")
    best.p_best = float(shares[b])
    if len(labels) > 1 and np.isfinite(shares).all():
        ranked = np.argsort(-shares, kind="stable")
        best.p_best_shares = {labels[i]: float(shares[i]) for i in ranked if shares[i] > 0}
    shape = tuple(ds.sizes[d] for d in dims)
    summary.warnings = edge_warnings(ds, dims, tuple(int(i) for i in np.unravel_index(b, shape))
                                     if dims else ())
    if len(order) > 1:
        r = order[1]
        diff = sign * (values[b] - values[r])
        ok = np.isfinite(diff)
        mean, low, high, n = t_interval(diff, level)
        best.runner_up = labels[r]
        best.runner_up_mean = float(summary.rows[r][f"{objective.metric}_mean"])
        best.difference, best.difference_low, best.difference_high = mean, low, high
        best.p_beats_runner_up = p_positive(diff)
        best.wins = int((diff[ok] > 0).sum())
        best.replicates = int(ok.sum())
    summary.best = best
    if by_draw and len(labels) > 1:
        summary.flips = flips(ds, labels, sign * runs[objective.metric], b)
    return summary


def _units(values: np.ndarray, by_draw: bool) -> np.ndarray:
    """Points x draws x replicates -> points x units of comparison: each draw's mean over
    its finite replicates (by draw), else the replicates (of the one draw, or none)."""
    if not by_draw:
        return values.reshape(values.shape[0], -1)
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(finite, values, 0.0).sum(axis=2) / finite.sum(axis=2)


SPREAD = (0.05, 0.95)
"""The assumption range of the summary: these quantiles of the draws' means."""


def spread(values: np.ndarray) -> dict[str, float]:
    """One decision's outcome over draws x replicates, split into its two sources.

    ``noise_sd``: simulation noise, the sd of one run about its draw's mean (pooled over
    the draws; NaN with one replicate). ``spread_sd``: the assumptions' share, the sd of
    the draws' means less what their noise explains (var(draw means) - noise^2 / R, at
    least 0). ``range_low``, ``range_high``: the 5% and 95% quantiles of the draws'
    means, the outcome's range over the assumptions as a reader sees it.
    """
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    n = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(finite, v, 0.0).sum(axis=1) / n
        dev = np.where(finite, v - means[:, None], 0.0)
        within = (dev ** 2).sum(axis=1)
    dof = int(np.maximum(n - 1, 0).sum())
    noise_var = float(within[n > 1].sum() / dof) if dof > 0 else math.nan
    m = means[np.isfinite(means)]
    out = {"noise_sd": math.sqrt(noise_var) if math.isfinite(noise_var) else math.nan,
           "spread_sd": math.nan, "range_low": math.nan, "range_high": math.nan}
    if m.size:
        out["range_low"], out["range_high"] = (float(q) for q in np.quantile(m, SPREAD))
    if m.size >= 2:
        reps = float(np.mean(n[n > 0]))
        between = float(m.var(ddof=1)) - (noise_var / reps if math.isfinite(noise_var) else 0.0)
        out["spread_sd"] = math.sqrt(max(between, 0.0))
    return out


def expected_regret(values: np.ndarray) -> np.ndarray:
    """Each point's mean shortfall from the best point of the same unit (a draw, or a
    replicate without draws), ``values`` points x units with higher better: what
    choosing it costs on average against knowing which assumption holds. Units where a
    point's value is not finite are left out of every point's mean."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return np.zeros(v.shape[0])
    ok = np.isfinite(v).all(axis=0)
    if not ok.any():
        return np.full(v.shape[0], np.nan)
    v = v[:, ok]
    return (v.max(axis=0, keepdims=True) - v).mean(axis=1)


def flips(ds: xr.Dataset, labels: list[str], values: np.ndarray, best: int) -> dict:
    """Where the ranking flips across the assumptions.

    ``values``: points x draws x replicates, higher better. Each draw's means name the
    best point of that draw (``best_in``: draws won per point). The challenger is the
    point that most often wins the draws the overall best loses (or, when it loses
    none, the one closest to it on average); the best's lead over it per draw is put
    against each assumption's value (Spearman rank correlation) and the assumption that
    moves it most is the driver; a straight line through the leads gives the value
    where the lead crosses 0 (``threshold``, when inside the values drawn). Whether the
    leads vary with the assumptions beyond simulation noise: an F test of the
    draws' mean leads against the replicates' spread within draws (``p_noise``: the
    probability of spread this large from noise alone; NaN with one replicate).
    """
    from scipy.special import fdtrc

    unit = _units(values, True)  # points x draws
    ok = np.isfinite(unit).all(axis=0)
    winners = np.argmax(np.where(np.isfinite(unit), unit, -np.inf), axis=0)
    best_in = {labels[i]: int(((winners == i) & ok).sum()) for i in range(len(labels))}
    out: dict = {"draws": int(ok.sum()), "best_in": {lab: c for lab, c in best_in.items() if c},
                 "flips": best_in[labels[best]] < int(ok.sum())}
    lost = ok & (winners != best)
    if lost.any():
        counts = np.bincount(winners[lost], minlength=len(labels))
        challenger = int(np.argmax(counts))
    else:
        with np.errstate(invalid="ignore"):
            gap = np.nanmean(unit[best][None, :] - unit, axis=1)
        gap[best] = np.inf
        challenger = int(np.nanargmin(gap))
    lead = values[best] - values[challenger]  # draws x replicates
    lead_mean = _units(lead[None], True)[0]
    out["challenger"] = labels[challenger]
    out["lead_mean"] = float(np.nanmean(lead_mean)) if np.isfinite(lead_mean).any() else math.nan
    sp = spread(lead)
    out["lead_noise_sd"], out["lead_spread_sd"] = sp["noise_sd"], sp["spread_sd"]
    reps = lead.shape[1]
    m = lead_mean[np.isfinite(lead_mean)]
    if math.isfinite(sp["noise_sd"]) and m.size >= 2:
        if sp["noise_sd"] > 0:
            f = float(m.var(ddof=1)) * reps / sp["noise_sd"] ** 2
            out["p_noise"] = float(fdtrc(m.size - 1, m.size * (reps - 1), f))
        else:  # no noise in the lead at all (common random numbers cancel it)
            out["p_noise"] = 0.0 if np.ptp(m) > 0 else 1.0
    else:
        out["p_noise"] = math.nan
    driver = None
    for path in _draw_parameters(ds):
        x = np.asarray(ds[path].values, dtype=float)
        sel = np.isfinite(x) & np.isfinite(lead_mean)
        if sel.sum() < 3 or np.ptp(x[sel]) == 0 or np.ptp(lead_mean[sel]) == 0:
            continue
        rho = _spearman(x[sel], lead_mean[sel])
        if driver is None or abs(rho) > abs(driver[1]):
            driver = (path, rho, x[sel], lead_mean[sel])
    if driver is not None:
        path, rho, x, y = driver
        out["driver"], out["correlation"] = path, float(rho)
        slope, intercept = np.polyfit(x, y, 1)
        threshold = -intercept / slope if slope != 0 else math.nan
        if math.isfinite(threshold) and x.min() <= threshold <= x.max():
            out["threshold"] = float(threshold)
            # the best leads where the line is above 0
            out["best_when"] = "above" if slope > 0 else "below"
    return out


def _draw_parameters(ds: xr.Dataset) -> list[str]:
    """The assumptions' paths: the coordinates along ``draw``."""
    return [str(c) for c in ds.coords if c != DRAW and ds[c].dims == (DRAW,)
            and np.issubdtype(ds[c].dtype, np.number)]


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Rank correlation (average ranks for ties)."""
    import pandas as pd

    rx = pd.Series(x).rank().to_numpy()
    ry = pd.Series(y).rank().to_numpy()
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


CHANNEL_OUTCOMES = ("cac", "cac_loaded", "ltv", "ltv_projected", "ltv_cac", "profit")
"""Per-channel figures of the sweep summary: the runs' own (the result's variables, as
the run command prints them), averaged over replicates (inf stays inf: spent, no one won)."""


def _channel_rows(ds: xr.Dataset, dims: list[str], labels: list[str]) -> list[dict]:
    if any(name not in ds for name in CHANNEL_OUTCOMES):
        return []
    rows = []
    values = {}
    for name in CHANNEL_OUTCOMES:
        da = ds[name].sum("day") if "day" in ds[name].dims else ds[name]
        if REPLICATE not in da.dims:
            da = da.expand_dims(REPLICATE)
        da = da.transpose(*dims, "channel", ...)  # then draw and replicate, averaged
        with np.errstate(invalid="ignore"):
            values[name] = da.values.reshape(len(labels), ds.sizes["channel"], -1).mean(axis=2)
    for i, label in enumerate(labels):
        for c, channel in enumerate(ds.channel.values):
            rows.append({"variant": label, "channel": str(channel),
                         **{name: float(values[name][i, c]) for name in CHANNEL_OUTCOMES}})
    return rows


def _nan_to_none(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj
