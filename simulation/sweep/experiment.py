"""Experiments: a base scenario, named variants and swept parameters, over replicates.

An experiment file (TOML, in ``experiments/``) names a base scenario and says what to
vary. :func:`load_experiment` validates it with the same kind of errors as a scenario
(one line naming the file and the dotted field); :func:`expand` turns it into the list
of runs, a pure function of the loaded experiment: no files, no clock, no global
random state.

The runs form a grid of *axes*. Named variants are one axis (``variant``); each
parameter of a ``grid`` block is an axis of its own; a ``zip`` block (lists that
vary together) and a ``random`` or ``lhs`` block (samples drawn from ranges) are one
axis each. Every point of the grid runs once per replicate.

Seeds: replicate ``r`` runs with a seed derived from the experiment seed alone, and
every point of the grid in that replicate uses it. The kernels' random streams are
keyed by (seed, day, customer), so within a replicate every variant sees the same
customers and the same draws where the strategy does not change them (common random
numbers): differences between variants are the strategy, not noise.

Decisions and assumptions. Variants and ``[[sweep]]`` blocks are decisions: what the
firm chooses. ``[[uncertain]]`` entries are assumptions: what the firm does not know
(a distribution per dotted path, or the joint draws of a calibration's
``posterior.nc``). They are drawn ``draws`` times (an axis ``draw``, after the decision
axes) and every decision runs on every draw, with the same draws and the same seeds:
comparisons are paired. Replicate ``r`` of draw ``k`` has its own seed (derived from
the experiment seed, ``k`` and ``r``), so the draws are independent units of the
summary (:mod:`simulation.sweep.combine`); every decision of that draw and replicate
shares it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulation.scenario import (
    Name,
    Scenario,
    ScenarioError,
    _format_loc,
    flatten_overrides,
    load_scenario,
    read_toml,
    resolve_size,
    with_overrides,
)

REPLICATE = "replicate"
VARIANT = "variant"
DRAW = "draw"
RESERVED_DIMS = frozenset({
    REPLICATE, VARIANT, DRAW, "row", "day", "channel", "stage", "segment", "attribution_model", "from_state",
    "to_state", "cohort", "cohort_week", "weeks_since", "week",
})
"""Names an axis may not take: the run dimensions of a result and the sweep's own."""

OUTCOMES = ("profit", "revenue", "customers", "cac", "ltv", "ltv_cac", "churn", "brand_equity")
MINIMISED = frozenset({"cac", "churn"})
"""Outcomes where less is better: the default goal of an objective naming them."""

MAX_RUNS = 100_000

DEFAULT_DRAWS = 8
"""Assumption draws of an experiment with ``[[uncertain]]`` and no ``draws``."""
TAIL = 0.005
"""An unbounded side of a distribution (normal, lognormal) is cut at this quantile (and
1 - TAIL): draws and sensitivity designs stay within its central 99%."""

# salts of the seed sequences derived from the experiment seed
_SALT_REPLICATE, _SALT_SAMPLES, _SALT_DRAWS, _SALT_DRAW_SEEDS = 0, 1, 2, 3


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Range(_Strict):
    """Where a sampled parameter lives: ``[low, high]`` or a table with a scale."""

    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)
    scale: Literal["linear", "log"] = "linear"
    integer: bool = Field(False, description="draw whole numbers in [low, high]")

    @model_validator(mode="before")
    @classmethod
    def _pair(cls, data):
        if isinstance(data, list):
            if len(data) != 2:
                raise ValueError("a range is [low, high] or { low = ..., high = ... }")
            return {"low": data[0], "high": data[1]}
        return data

    @model_validator(mode="after")
    def _ordered(self):
        if not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if self.scale == "log" and self.low <= 0:
            raise ValueError("a log-scale range needs low > 0")
        if self.integer and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("an integer range needs whole-number bounds")
        return self


class Sweep(_Strict):
    """One block of swept parameters.

    grid: every combination of ``values`` (an axis per parameter).
    zip: the lists of ``values`` vary together (one axis; equal lengths).
    random / lhs: ``samples`` points drawn uniformly (or Latin-hypercube stratified)
    from ``ranges`` (one axis).
    """

    kind: Literal["grid", "zip", "random", "lhs"]
    name: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9_.]*$", max_length=80,
                             description="axis name of a zip or sample block")
    values: dict[str, list[Any]] = Field(default_factory=dict)
    ranges: dict[str, Range] = Field(default_factory=dict)
    samples: int | None = Field(None, ge=1, le=100_000)

    @field_validator("values")
    @classmethod
    def _non_empty_lists(cls, values):
        for path, items in values.items():
            if not items:
                raise ValueError(f"'{path}' needs at least one value")
        return values

    @model_validator(mode="after")
    def _fields_of_kind(self):
        if self.kind in ("grid", "zip"):
            if not self.values:
                raise ValueError(f"a '{self.kind}' block needs 'values' (parameter = [list])")
            if self.ranges or self.samples is not None:
                raise ValueError(f"a '{self.kind}' block takes 'values', not 'ranges' or 'samples'")
            if self.kind == "grid" and self.name is not None:
                raise ValueError("a 'grid' block has one axis per parameter, named by its path; "
                                 "drop 'name'")
            if self.kind == "zip":
                lengths = {len(v) for v in self.values.values()}
                if len(lengths) > 1:
                    raise ValueError("the lists of a 'zip' block must have the same length "
                                     f"(have {sorted(lengths)})")
        else:
            if not self.ranges:
                raise ValueError(f"a '{self.kind}' block needs 'ranges' (parameter = [low, high])")
            if self.samples is None:
                raise ValueError(f"a '{self.kind}' block needs 'samples'")
            if self.values:
                raise ValueError(f"a '{self.kind}' block takes 'ranges', not 'values'")
        return self

    @property
    def paths(self) -> list[str]:
        return list(self.values or self.ranges)


class Uncertain(_Strict):
    """One assumption: a dotted path and its distribution, or a calibration's posterior.

    uniform: ``low``, ``high``; triangular: ``low``, ``mode``, ``high``; normal: ``mean``,
    ``sd`` (``low``/``high`` truncate); lognormal: ``median``, ``sigma`` (the sd of the
    log; ``low``/``high`` truncate). ``integer`` rounds the value to a whole number.
    ``posterior``: a ``posterior.nc`` of ``distsim calibrate`` (relative to the
    experiment file): each draw is one of its rows, every free parameter together (their
    correlation kept); ``parameters`` picks some of them (default: all).
    """

    path: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$", max_length=200)
    distribution: Literal["uniform", "triangular", "normal", "lognormal"] | None = None
    low: float | None = Field(None, allow_inf_nan=False)
    high: float | None = Field(None, allow_inf_nan=False)
    mode: float | None = Field(None, allow_inf_nan=False)
    mean: float | None = Field(None, allow_inf_nan=False)
    sd: float | None = Field(None, gt=0, allow_inf_nan=False)
    median: float | None = Field(None, gt=0, allow_inf_nan=False)
    sigma: float | None = Field(None, gt=0, allow_inf_nan=False)
    integer: bool = False
    posterior: str | None = Field(None, min_length=1)
    parameters: list[str] | None = None

    @model_validator(mode="after")
    def _fields_of_kind(self):
        given = {k for k in ("low", "high", "mode", "mean", "sd", "median", "sigma")
                 if getattr(self, k) is not None}
        if self.posterior is not None:
            if self.path is not None or self.distribution is not None or given or self.integer:
                raise ValueError("a 'posterior' entry takes 'parameters' only (each draw is a "
                                 "row of the posterior); drop path and distribution fields")
            if self.parameters is not None and not self.parameters:
                raise ValueError("'parameters' needs at least one name")
            return self
        if self.parameters is not None:
            raise ValueError("'parameters' goes with 'posterior'")
        if self.path is None:
            raise ValueError("an uncertain entry needs 'path' (with a 'distribution') or "
                             "'posterior'")
        if self.distribution is None:
            raise ValueError("needs 'distribution': uniform, triangular, normal or lognormal")
        need = {"uniform": {"low", "high"}, "triangular": {"low", "mode", "high"},
                "normal": {"mean", "sd"}, "lognormal": {"median", "sigma"}}[self.distribution]
        allowed = need | ({"low", "high"} if self.distribution in ("normal", "lognormal")
                          else set())
        missing = sorted(need - given)
        if missing:
            raise ValueError(f"a {self.distribution} distribution needs "
                             f"{', '.join(map(repr, missing))}")
        extra = sorted(given - allowed)
        if extra:
            raise ValueError(f"a {self.distribution} distribution takes "
                             f"{', '.join(sorted(allowed))}, not {', '.join(extra)}")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if self.distribution == "triangular" and not self.low <= self.mode <= self.high:
            raise ValueError(f"mode ({self.mode:g}) must lie between low and high")
        if self.distribution == "lognormal" and self.low is not None and self.low <= 0:
            raise ValueError("a lognormal's low must be above 0 (or left out)")
        if self.distribution == "normal":
            inside = [b for b in (self.low, self.high) if b is not None]
            if len(inside) == 2 and self.high < self.mean - 8 * self.sd or (
                    len(inside) == 2 and self.low > self.mean + 8 * self.sd):
                raise ValueError("low and high leave no probability of this normal")
        return self


class Variant(_Strict):
    name: Name
    description: str = ""
    set: dict[str, Any] = Field(default_factory=dict, description="overrides, dotted paths")


class Objective(_Strict):
    metric: Literal["profit", "revenue", "customers", "cac", "ltv", "ltv_cac", "churn",
                    "brand_equity"] = "profit"
    goal: Literal["max", "min"] | None = Field(None, description="default: min for cac and churn")

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, data):
        return {"metric": data} if isinstance(data, str) else data

    @property
    def maximise(self) -> bool:
        return (self.goal or ("min" if self.metric in MINIMISED else "max")) == "max"


class Outputs(_Strict):
    """Which run variables the combined result keeps (the summary's inputs always stay).

    default: every variable except per-day per-segment arrays; all: everything;
    or a list of names (``fnmatch`` patterns such as ``"leads_*"``).
    """

    variables: Literal["default", "all"] | list[str] = "default"


class ExperimentSpec(_Strict):
    """The schema of an experiment file."""

    name: str = "experiment"
    description: str = ""
    base: str = Field(description="base scenario file, relative to the experiment file")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="experiment seed: every replicate "
                                                           "seed derives from it")
    replicates: int = Field(1, ge=1, le=10_000)
    agents: int | None = Field(None, ge=1, le=200_000_000, description="override the base's size")
    days: int | None = Field(None, ge=1, le=65_000)
    set: dict[str, Any] = Field(default_factory=dict, description="overrides for every run")
    variants: list[Variant] = Field(default_factory=list)
    sweep: list[Sweep] = Field(default_factory=list)
    uncertain: list[Uncertain] = Field(default_factory=list, description="assumptions")
    draws: int | None = Field(None, ge=1, le=10_000, description="assumption draws (default "
                              f"{DEFAULT_DRAWS} with [[uncertain]])")
    objective: Objective = Objective()
    outputs: Outputs = Outputs()

    @model_validator(mode="after")
    def _names(self):
        seen = set()
        for v in self.variants:
            if v.name in seen:
                raise ValueError(f"variant names must be unique ('{v.name}' appears twice)")
            seen.add(v.name)
        if self.draws is not None and not self.uncertain:
            raise ValueError("'draws' goes with [[uncertain]] (assumptions to draw)")
        return self

    @property
    def n_draws(self) -> int:
        """Assumption draws: 0 without [[uncertain]]."""
        return (self.draws or DEFAULT_DRAWS) if self.uncertain else 0


@dataclass(frozen=True)
class Assumption:
    """One uncertain parameter as the runs see it: its path and how a point of [0, 1]
    maps onto its values (the quantile function over the distribution's design range).

    A parameter of a posterior (``group`` names the file) maps [0, 1] onto the empirical
    quantiles of its draws (for sensitivity designs, which vary one factor at a time);
    the sweep's draws take whole rows of the posterior instead (:func:`draw_values`).
    """

    path: str
    where: str  # the experiment field that declares it, for messages: uncertain[2]
    spec: Uncertain | None = None
    samples: tuple[float, ...] = ()
    group: str | None = None

    def value(self, u) -> np.ndarray:
        """Values at the points ``u`` of [0, 1] (0: the low end of the design range)."""
        u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
        if self.spec is None:
            return np.quantile(np.asarray(self.samples, dtype=float), u)
        s = self.spec
        if s.distribution == "uniform":
            v = s.low + u * (s.high - s.low)
        elif s.distribution == "triangular":
            v = _triangular(u, s.low, s.mode, s.high)
        else:
            from scipy.special import ndtr, ndtri

            if s.distribution == "normal":
                loc, scale = s.mean, s.sd
                lo, hi = s.low, s.high
            else:
                loc, scale = math.log(s.median), s.sigma
                lo = math.log(s.low) if s.low is not None else None
                hi = math.log(s.high) if s.high is not None else None
            p_lo = float(ndtr((lo - loc) / scale)) if lo is not None else TAIL
            p_hi = float(ndtr((hi - loc) / scale)) if hi is not None else 1.0 - TAIL
            z = loc + scale * ndtri(np.clip(p_lo + u * (p_hi - p_lo), 1e-15, 1 - 1e-15))
            if lo is not None or hi is not None:  # no rounding step beyond a bound
                z = np.clip(z, -np.inf if lo is None else lo, np.inf if hi is None else hi)
            v = z if s.distribution == "normal" else np.exp(z)
        return np.round(v) if s.integer else v

    def typed(self, values) -> list:
        """Plain Python numbers, as an override takes them (whole numbers as int)."""
        if self.spec is not None and self.spec.integer:
            return [int(x) for x in np.asarray(values)]
        return [float(x) for x in np.asarray(values)]

    @property
    def design_range(self) -> tuple[float, float]:
        lo, hi = self.value([0.0, 1.0])
        return float(lo), float(hi)

    def describe(self) -> str:
        s = self.spec
        if s is None:
            return f"posterior {self.group} ({len(self.samples)} draws)"
        g = "{:g}".format
        text = {"uniform": lambda: f"uniform({g(s.low)}, {g(s.high)})",
                "triangular": lambda: f"triangular({g(s.low)}, {g(s.mode)}, {g(s.high)})",
                "normal": lambda: f"normal(mean {g(s.mean)}, sd {g(s.sd)})",
                "lognormal": lambda: f"lognormal(median {g(s.median)}, sigma {g(s.sigma)})",
                }[s.distribution]()
        if s.distribution in ("normal", "lognormal") and (s.low is not None
                                                          or s.high is not None):
            text += f" within [{g(s.low) if s.low is not None else '-inf'}, " \
                    f"{g(s.high) if s.high is not None else 'inf'}]"
        return text + (", whole numbers" if s.integer else "")


def _triangular(u: np.ndarray, low: float, mode: float, high: float) -> np.ndarray:
    """The triangular distribution's quantile function."""
    if high == low:
        return np.full_like(u, low)
    c = (mode - low) / (high - low)
    left = low + np.sqrt(u * (high - low) * (mode - low))
    right = high - np.sqrt((1 - u) * (high - low) * (high - mode))
    return np.where(u < c, left, right)


def resolve_assumptions(spec: ExperimentSpec, source: str,
                        root: str | Path = ".") -> tuple[Assumption, ...]:
    """The experiment's assumptions, a posterior read into its parameters' draws."""
    out: list[Assumption] = []
    for i, entry in enumerate(spec.uncertain):
        where = f"uncertain[{i}]"
        if entry.posterior is None:
            out.append(Assumption(entry.path, where, entry))
            continue
        path = Path(root) / entry.posterior
        for name, values in read_posterior(path, source, f"{where}.posterior",
                                           entry.parameters).items():
            out.append(Assumption(name, f"{where}.posterior", None, tuple(values),
                                  group=str(entry.posterior)))
    return tuple(out)


def read_posterior(path: Path, source: str, where: str,
                   names: list[str] | None = None) -> dict[str, np.ndarray]:
    """The free parameters of a ``distsim calibrate`` posterior: path -> draws (one value
    per ``sample``, equally weighted)."""
    import warnings

    from simulation.io import read_netcdf

    if not path.is_file():
        raise ScenarioError(source, where, f"posterior file {path} not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            post = read_netcdf(path)
    except Exception as exc:  # h5py and xarray raise many kinds on a foreign file
        raise ScenarioError(source, where, f"{path}: not a readable posterior "
                            f"({type(exc).__name__})") from None
    if post.attrs.get("kind") != "calibration" or "sample" not in post.dims:
        raise ScenarioError(source, where, f"{path}: not a distsim calibration posterior "
                            "(posterior.nc of distsim calibrate)")
    free = {name: np.asarray(post[name].values, dtype=float) for name in post.data_vars
            if post[name].dims == ("sample",) and np.issubdtype(post[name].dtype, np.number)}
    if names is not None:
        unknown = [n for n in names if n not in free]
        if unknown:
            raise ScenarioError(source, where.removesuffix(".posterior") + ".parameters",
                                f"{', '.join(map(repr, unknown))} is not a free parameter of "
                                f"{path} (it has {', '.join(free) or 'none'})")
        free = {n: free[n] for n in names}
    if not free or post.sizes["sample"] < 1:
        raise ScenarioError(source, where, f"{path}: no posterior draws")
    for name, values in free.items():
        if not np.isfinite(values).all():
            raise ScenarioError(source, where, f"{path}: {name} has non-finite draws")
    return free


def draw_values(spec: ExperimentSpec, assumptions: tuple[Assumption, ...]) -> dict[str, list]:
    """The ``draws`` values of every assumption: path -> one value per draw.

    Distributions: a Latin hypercube over their quantiles (every parameter's range cut
    into ``draws`` strata of equal probability, one draw in each: a few draws cover the
    range). A posterior: ``draws`` of its rows, all its parameters together (without
    replacement while there are rows enough). From the experiment seed alone.
    """
    k = spec.n_draws
    out: dict[str, list] = {}
    plain = [a for a in assumptions if a.spec is not None]
    if plain:
        rng = np.random.Generator(np.random.PCG64(
            np.random.SeedSequence(spec.seed, spawn_key=(_SALT_DRAWS, 0))))
        u = sample_unit("lhs", k, len(plain), rng)
        for j, a in enumerate(plain):
            out[a.path] = a.typed(a.value(u[:, j]))
    groups = list(dict.fromkeys(a.group for a in assumptions if a.spec is None))
    for g, group in enumerate(groups):
        members = [a for a in assumptions if a.group == group]
        n = len(members[0].samples)
        rng = np.random.Generator(np.random.PCG64(
            np.random.SeedSequence(spec.seed, spawn_key=(_SALT_DRAWS, 1 + g))))
        rows = rng.choice(n, size=k, replace=k > n)
        for a in members:
            out[a.path] = [float(a.samples[i]) for i in rows]
    return {a.path: out[a.path] for a in assumptions}  # in file order


# -- the loaded experiment and its runs ------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One dimension of the run grid.

    ``labels`` are the index coordinate (variant names, a grid parameter's values, a zip
    block's first parameter, sample numbers); ``params`` the parameter values set at each
    position (path -> one value per position), which become coordinates along the axis.
    """

    dim: str
    labels: tuple
    params: dict[str, tuple] = field(default_factory=dict)
    overrides: tuple[dict, ...] = ()  # per position: path -> value (variants: their set)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class RunSpec:
    """One simulation of the sweep: where it sits in the grid and what it changes."""

    index: int
    replicate: int
    seed: int
    position: tuple[int, ...]  # index along each axis, in axis order
    labels: dict[str, Any]  # axis -> label at this position
    overrides: dict[str, Any]  # dotted path -> value, applied to the experiment's base
    key: str  # content hash: same key, same result

    def describe(self) -> str:
        parts = [f"{k}={_short(v)}" for k, v in self.labels.items()]
        return ", ".join([*parts, f"replicate={self.replicate}"])


@dataclass(frozen=True)
class Experiment:
    """A validated experiment: its spec, the resolved base scenario and where it came from."""

    spec: ExperimentSpec
    base: Scenario  # the base scenario with the experiment's set, agents and days applied
    source: str = "<experiment>"
    text: str = ""  # the experiment file as written (stored with the results)
    assumptions: tuple[Assumption, ...] = ()  # [[uncertain]], posteriors read

    @property
    def name(self) -> str:
        return self.spec.name

    def with_size(self, agents: int | None = None, days: int | None = None,
                  replicates: int | None = None, seed: int | None = None,
                  draws: int | None = None) -> Experiment:
        """The experiment at another size, for quick tries (``--agents``, ``--days``,
        ``--replicates``, ``--draws``), or with another experiment seed (``--seed``).
        Replicate r keeps its seed whatever the number of replicates."""
        spec, base = self.spec, self.base
        if agents is not None or days is not None:
            base = resolve_size(base, agents, days, source="command line")
        update: dict[str, Any] = {}
        if replicates is not None:
            if replicates < 1:
                raise ScenarioError("command line", "replicates", "must be at least 1")
            update["replicates"] = replicates
        if seed is not None:
            if not 0 <= seed <= 2**63 - 1:
                raise ScenarioError("command line", "seed", "must be in 0 ... 2**63 - 1")
            update["seed"] = seed
        if draws is not None:
            if not spec.uncertain:
                raise ScenarioError("command line", "draws", "the experiment has no "
                                    "[[uncertain]] assumptions to draw")
            if not 1 <= draws <= 10_000:
                raise ScenarioError("command line", "draws", "must be in 1 ... 10000")
            update["draws"] = draws
        if update:
            spec = spec.model_copy(update=update)
        out = Experiment(spec, base, self.source, self.text, self.assumptions)
        if "seed" in update or "draws" in update:  # other draws: check them as on loading
            validate_runs(out)
        return out


@dataclass(frozen=True)
class Plan:
    """What :func:`expand` returns: the axes, the replicate seeds and the runs."""

    axes: tuple[Axis, ...]
    replicate_seeds: tuple[int, ...]
    runs: tuple[RunSpec, ...]
    # with assumption draws: the seed of each (draw, replicate), shared by every decision
    draw_seeds: tuple[tuple[int, ...], ...] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return (*(len(a) for a in self.axes), len(self.replicate_seeds))

    @property
    def dims(self) -> tuple[str, ...]:
        return (*(a.dim for a in self.axes), REPLICATE)

    def fingerprint(self) -> str:
        """Identifies the sweep: two plans with the same fingerprint run the same runs."""
        h = hashlib.sha256()
        h.update(json.dumps([self.dims, self.shape], default=str).encode())
        for r in self.runs:
            h.update(r.key.encode())
        return h.hexdigest()[:16]


def replicate_seeds(seed: int, replicates: int) -> tuple[int, ...]:
    """Run seed of each replicate, derived from the experiment seed (63-bit, stable)."""
    return tuple(
        int(np.random.SeedSequence(seed, spawn_key=(_SALT_REPLICATE, r)).generate_state(
            1, np.uint64)[0] >> np.uint64(1))
        for r in range(replicates)
    )


def draw_seeds(seed: int, draws: int, replicates: int) -> tuple[tuple[int, ...], ...]:
    """Run seed of replicate r of assumption draw k (63-bit, stable): each draw its own
    replicates, so that draws are independent; every decision shares them."""
    return tuple(
        tuple(int(np.random.SeedSequence(seed, spawn_key=(_SALT_DRAW_SEEDS, k, r)).generate_state(
            1, np.uint64)[0] >> np.uint64(1)) for r in range(replicates))
        for k in range(draws))


def sample_unit(kind: str, samples: int, dims: int, rng: np.random.Generator) -> np.ndarray:
    """``samples`` x ``dims`` points in [0, 1): independent uniforms, or a Latin hypercube
    (each parameter's range cut into ``samples`` equal strata, one point in each)."""
    u = rng.random((samples, dims))
    if kind == "random":
        return u
    strata = np.stack([rng.permutation(samples) for _ in range(dims)], axis=1)
    return (strata + u) / samples


def scale_unit(u: np.ndarray, r: Range) -> list:
    """Map unit draws onto a parameter's range."""
    if r.integer:
        lo, hi = int(r.low), int(r.high)
        if r.scale == "log":
            v = np.floor(np.exp(np.log(lo) + u * (np.log(hi + 1) - np.log(lo))))
        else:
            v = np.floor(lo + u * (hi - lo + 1))
        return [int(min(max(x, lo), hi)) for x in v]
    if r.scale == "log":
        v = np.exp(np.log(r.low) + u * (np.log(r.high) - np.log(r.low)))
    else:
        v = r.low + u * (r.high - r.low)
    return [float(x) for x in v]


def build_axes(spec: ExperimentSpec, assumptions: tuple[Assumption, ...] = ()
               ) -> tuple[Axis, ...]:
    """The axes of the run grid: variants first, then the sweep blocks in file order, then
    the assumption draws (``draw``, with ``assumptions``: every decision on every draw)."""
    axes: list[Axis] = []
    if spec.variants:
        axes.append(Axis(VARIANT, tuple(v.name for v in spec.variants),
                         overrides=tuple(dict(v.set) for v in spec.variants)))
    n_sample_blocks = 0
    for b, block in enumerate(spec.sweep):
        if block.kind == "grid":
            for path, values in block.values.items():
                axes.append(Axis(path, tuple(_label(v) for v in values), {path: tuple(values)},
                                 tuple({path: v} for v in values)))
        elif block.kind == "zip":
            paths = block.paths
            n = len(block.values[paths[0]])
            dim = block.name or paths[0]
            labels = (tuple(_label(v) for v in block.values[paths[0]]) if dim == paths[0]
                      else tuple(range(n)))
            axes.append(Axis(dim, labels, {p: tuple(block.values[p]) for p in paths},
                             tuple({p: block.values[p][i] for p in paths} for i in range(n))))
        else:
            n_sample_blocks += 1
            dim = block.name or ("sample" if n_sample_blocks == 1 else f"sample_{n_sample_blocks}")
            rng = np.random.Generator(np.random.PCG64(
                np.random.SeedSequence(spec.seed, spawn_key=(_SALT_SAMPLES, b))))
            u = sample_unit(block.kind, block.samples, len(block.ranges), rng)
            params = {p: tuple(scale_unit(u[:, j], r))
                      for j, (p, r) in enumerate(block.ranges.items())}
            axes.append(Axis(dim, tuple(range(block.samples)), params,
                             tuple({p: params[p][i] for p in params}
                                   for i in range(block.samples))))
    if assumptions and spec.n_draws:
        values = draw_values(spec, assumptions)
        k = spec.n_draws
        axes.append(Axis(DRAW, tuple(range(k)), {p: tuple(v) for p, v in values.items()},
                         tuple({p: values[p][i] for p in values} for i in range(k))))
    return tuple(axes)


def expand(experiment: Experiment) -> Plan:
    """The runs of an experiment: every point of the axis grid, once per replicate.

    Pure: the same experiment always gives the same runs, seeds and keys. Runs are
    ordered replicate by replicate (all points of replicate 0 first), so a sweep cut
    short holds whole replicates.
    """
    spec = experiment.spec
    axes = build_axes(spec, experiment.assumptions)
    seeds = replicate_seeds(spec.seed, spec.replicates)
    drawn = axes and axes[-1].dim == DRAW
    per_draw = draw_seeds(spec.seed, len(axes[-1]), spec.replicates) if drawn else None
    base_text = experiment.base.to_toml()
    outputs = json.dumps(spec.outputs.model_dump(mode="json"), sort_keys=True)
    shape = tuple(len(a) for a in axes)
    points = list(np.ndindex(shape)) if shape else [()]
    if len(points) * len(seeds) > MAX_RUNS:
        raise ScenarioError(experiment.source, "", f"{len(points) * len(seeds):,} runs "
                            f"(at most {MAX_RUNS:,})")
    runs = []
    for r, replicate_seed in enumerate(seeds):
        for pos in points:
            overrides: dict[str, Any] = {}
            labels = {}
            for axis, i in zip(axes, pos, strict=True):
                overrides.update(axis.overrides[i])
                labels[axis.dim] = axis.labels[i]
            seed = per_draw[pos[-1]][r] if per_draw else replicate_seed
            key = _hash(base_text, sorted(overrides.items()), seed, outputs)
            runs.append(RunSpec(len(runs), r, seed, tuple(int(i) for i in pos), labels,
                                overrides, key))
    return Plan(axes, seeds, tuple(runs), per_draw)


def expand_runs(experiment: Experiment) -> list[RunSpec]:
    """The runs of :func:`expand`, as a list."""
    return list(expand(experiment).runs)


def run_scenario(experiment: Experiment, run: RunSpec) -> Scenario:
    """The scenario one run simulates: the base, the run's overrides, the replicate seed."""
    return with_overrides(experiment.base, {**run.overrides, "simulation.seed": run.seed},
                          source=f"{experiment.source}: run {run.index} ({run.describe()})")


# -- loading -------------------------------------------------------------------


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file, its base scenario and every run's scenario.

    Raises :class:`ScenarioError` naming the experiment file and the dotted field.
    """
    p = Path(path)
    data = read_toml(p)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:  # read_toml succeeded, so this is a race; still one clear line
        raise ScenarioError(str(p), "", f"cannot read: {exc}") from None
    return experiment_from_dict(data, source=str(p), root=p.parent, text=text)


def experiment_from_dict(data: dict, source: str = "<experiment>", root: str | Path = ".",
                         text: str = "", base: Scenario | None = None) -> Experiment:
    """Validate an experiment given as a dict (``base`` given: the scenario file is not read)."""
    data = _normalise(data)
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        raise _error(exc, data, source) from None
    if base is None:
        base_path = Path(root) / spec.base
        if not base_path.is_file():
            raise ScenarioError(source, "base", f"scenario file {base_path} not found")
        base = load_scenario(base_path)
    _check_paths(spec, source)
    base = _apply(base, {"simulation.agents": spec.agents, "simulation.days": spec.days},
                  source, "", drop_none=True)
    base = _apply(base, spec.set, source, "set")
    assumptions = resolve_assumptions(spec, source, root)
    _check_assumption_paths(spec, assumptions, source)
    experiment = Experiment(spec, base, source, text, assumptions)
    validate_runs(experiment)
    return experiment


def validate_runs(experiment: Experiment) -> None:
    """Every parameter value and every point of the grid must make a valid scenario.

    Each variant and each swept value is checked alone first, so that an error names
    the field that holds it; then every combination (cross-field rules such as shares
    summing to 1 can fail only together).
    """
    spec, base, source = experiment.spec, experiment.base, experiment.source
    for v in spec.variants:
        _apply(base, v.set, source, f"variants.{v.name}.set")
    for b, block in enumerate(spec.sweep):
        where = f"sweep.{block.name}" if block.name else f"sweep[{b}]"
        if block.kind in ("grid", "zip"):
            for path, values in block.values.items():
                labels = [_label(v) for v in values]
                if block.kind == "grid" or path == (block.name or block.paths[0]):
                    if len(set(map(repr, labels))) != len(labels):
                        raise ScenarioError(source, f"{where}.values.{path}",
                                            "values must be distinct (they label an axis)")
                for i, value in enumerate(values):
                    _apply(base, {path: value}, source, f"{where}.values.{path}[{i}]",
                           exact=True)
        else:
            for path, r in block.ranges.items():
                for value in (int(r.low) if r.integer else r.low,
                              int(r.high) if r.integer else r.high):
                    _apply(base, {path: value}, source, f"{where}.ranges.{path}", exact=True)
    for a in experiment.assumptions:  # each alone, over its whole range (or posterior)
        ends = a.typed(a.value([0.0, 1.0])) if a.spec is not None else a.typed(
            [min(a.samples), max(a.samples)])
        field_name = f"{a.where}.{a.path}" if a.spec is None else a.where
        for value in ends:
            _apply(base, {a.path: value}, source, field_name, exact=True)
    plan_axes = build_axes(spec, experiment.assumptions)
    shape = tuple(len(a) for a in plan_axes)
    n_points = math.prod(shape) if shape else 1
    if n_points * spec.replicates > MAX_RUNS:
        raise ScenarioError(source, "", f"{n_points * spec.replicates:,} runs (at most {MAX_RUNS:,})")
    for group in _interacting(plan_axes):
        sizes = tuple(len(plan_axes[a]) for a in group)
        for pos in np.ndindex(sizes):
            overrides: dict[str, Any] = {}
            labels = []
            for a, i in zip(group, pos, strict=True):
                overrides.update(plan_axes[a].overrides[i])
                labels.append(f"{plan_axes[a].dim}={_short(plan_axes[a].labels[i])}")
            try:
                with_overrides(base, overrides, source)
            except ScenarioError as exc:
                raise ScenarioError(source, exc.field, f"{exc.message} (in the run "
                                    f"{', '.join(labels)})") from None


def _interacting(axes) -> list[list[int]]:
    """The axes in groups whose values can make an invalid scenario only together.

    Every value is checked alone first, so a combination can fail only by a rule over
    several fields: those of one table (a channel, a schedule, the product), or the
    scenario's own cross-checks (segment shares, names, roll-out order, guardrails).
    Checking each group's combinations, not the whole grid's, keeps a large grid of
    independent parameters (budgets of six channels) quick to validate.
    """
    def table(path: str) -> str:
        parts = path.split(".")
        if parts[0] in ("segments", "rollout", "guardrails") or parts[-1] == "name":
            return "<cross-checks>"
        return ".".join(parts[:2]) if parts[0] == "channels" else parts[0]

    groups: list[tuple[set[str], list[int]]] = []
    for a, axis in enumerate(axes):
        tables = {table(path) for over in axis.overrides for path in over}
        joined = [g for g in groups if g[0] & tables]
        groups = [g for g in groups if not g[0] & tables]
        groups.append((tables.union(*(g[0] for g in joined)),
                       sorted([a, *(i for g in joined for i in g[1])])))
    return [g[1] for g in groups] or [[]]


def _check_paths(spec: ExperimentSpec, source: str) -> None:
    """Overrides that cannot work: the seed (the experiment owns it), a path set twice."""
    owners: dict[str, str] = {}
    for b, block in enumerate(spec.sweep):
        where = f"sweep.{block.name}" if block.name else f"sweep[{b}]"
        for path in block.paths:
            if path in owners:
                raise ScenarioError(source, f"{where}.{path}",
                                    f"already swept in {owners[path]}")
            owners[path] = where
    dims = [a.dim for a in build_axes_names(spec)]
    if spec.uncertain:
        dims = dims[:-1]  # the draws' own axis
    for d in dims[1:] if spec.variants else dims:  # the axes of the sweep blocks
        if d in RESERVED_DIMS:
            raise ScenarioError(source, "sweep", f"axis name '{d}' is reserved (a run "
                                "dimension, 'variant' or 'replicate')")
        if d in owners and not any(d in block.paths and (block.kind == "grid" or not block.name)
                                   for block in spec.sweep):
            raise ScenarioError(source, "sweep", f"axis name '{d}' is a parameter swept in "
                                f"{owners[d]}")
    seen = set()
    for d in dims:
        if d in seen:
            raise ScenarioError(source, "sweep", f"two axes are named '{d}'; give the block a "
                                "different 'name'")
        seen.add(d)
    tables = [("set", spec.set)] + [(f"variants.{v.name}.set", v.set) for v in spec.variants]
    tables += [(f"sweep[{b}]", dict.fromkeys(block.paths)) for b, block in enumerate(spec.sweep)]
    for where, table in tables:
        for path in table:
            if path == "simulation.seed":
                raise ScenarioError(source, f"{where}.{path}", "the experiment's 'seed' sets "
                                    "the run seeds; it cannot be overridden")
            if where.startswith("variants") and path in owners:
                raise ScenarioError(source, f"{where}.{path}",
                                    f"is swept in {owners[path]}; a variant cannot also set it")


@dataclass(frozen=True)
class _AxisName:
    dim: str


def _check_assumption_paths(spec: ExperimentSpec, assumptions: tuple[Assumption, ...],
                            source: str) -> None:
    """An assumption is not a decision: a path in [[uncertain]] cannot also be set, set by a
    variant or swept, nor be drawn twice, nor be the seed."""
    decided: dict[str, str] = {p: "set" for p in spec.set}
    for v in spec.variants:
        for p in v.set:
            decided.setdefault(p, f"variant '{v.name}'")
    for b, block in enumerate(spec.sweep):
        for p in block.paths:
            decided[p] = f"sweep.{block.name}" if block.name else f"sweep[{b}]"
    seen: dict[str, str] = {}
    for a in assumptions:
        where = f"{a.where}.{a.path}" if a.spec is None else a.where
        if a.path == "simulation.seed" or a.path.startswith("simulation."):
            raise ScenarioError(source, where, f"'{a.path}' is the run's size or seed, not an "
                                "assumption")
        if a.path in seen:
            raise ScenarioError(source, where, f"'{a.path}' is already uncertain in "
                                f"{seen[a.path]}")
        seen[a.path] = a.where
        if a.path in decided:
            raise ScenarioError(source, where, f"'{a.path}' is a decision in "
                                f"{decided[a.path]}: a parameter is either decided "
                                "(variants, sweeps, set) or uncertain, not both")


def build_axes_names(spec: ExperimentSpec) -> list[_AxisName]:
    """The axis names alone (without drawing samples)."""
    names = [_AxisName(VARIANT)] if spec.variants else []
    k = 0
    for block in spec.sweep:
        if block.kind == "grid":
            names += [_AxisName(p) for p in block.paths]
        elif block.kind == "zip":
            names.append(_AxisName(block.name or block.paths[0]))
        else:
            k += 1
            names.append(_AxisName(block.name or ("sample" if k == 1 else f"sample_{k}")))
    if spec.uncertain:
        names.append(_AxisName(DRAW))
    return names


def _apply(base: Scenario, overrides: dict, source: str, where: str,
           drop_none: bool = False, exact: bool = False) -> Scenario:
    """``base`` with ``overrides``; a ScenarioError names the experiment field.

    The field is ``where`` followed by the scenario field at fault, or ``where`` alone
    when ``exact`` (it already names the value, e.g. ``sweep[0].values.product.price[2]``).
    """
    if drop_none:
        overrides = {k: v for k, v in overrides.items() if v is not None}
    if not overrides:
        return base
    try:
        return with_overrides(base, overrides, source)
    except ScenarioError as exc:
        if exact or not exc.field:
            fld = where or exc.field
        else:
            fld = f"{where}.{exc.field}" if where else exc.field
        raise ScenarioError(source, fld, exc.message) from None


def _normalise(data: dict) -> dict:
    """Flatten nested override tables into dotted paths.

    In TOML ``channels.search.daily_budget = 500`` inside ``[set]`` is a nested table;
    the overrides want the dotted path. A table of ``ranges`` stops at a ``{low, high}``
    table; ``values`` stop at lists.
    """
    if not isinstance(data, dict):
        return data
    out = dict(data)
    if isinstance(out.get("set"), dict):
        out["set"] = flatten_overrides(out["set"])
    if isinstance(out.get("variants"), list):
        out["variants"] = [
            {**v, "set": flatten_overrides(v["set"])} if isinstance(v, dict) and isinstance(
                v.get("set"), dict) else v
            for v in out["variants"]]
    if isinstance(out.get("sweep"), list):
        blocks = []
        for block in out["sweep"]:
            if isinstance(block, dict):
                block = dict(block)
                if isinstance(block.get("values"), dict):
                    block["values"] = flatten_overrides(block["values"])
                if isinstance(block.get("ranges"), dict):
                    block["ranges"] = flatten_overrides(block["ranges"], stop=lambda v: "low" in v
                                               or "high" in v)
            blocks.append(block)
        out["sweep"] = blocks
    return out


def _error(exc: ValidationError, data: dict, source: str) -> ScenarioError:
    err = exc.errors()[0]
    fld = _format_loc(_without_union_tags(tuple(err["loc"]), data), data)
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    if err["type"] == "missing":
        msg = "required field missing"
    extra = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
    return ScenarioError(source, fld, msg + extra)


def _without_union_tags(loc: tuple, data: Any) -> tuple:
    """pydantic puts the member of a union it tried into ``loc`` (``list[str]``); a user
    wrote keys and indices only, so keep a name where the data has a table, an index
    where it has a list."""
    out = []
    node = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list):
            out.append(item)
            node = node[item] if item < len(node) else None
        elif isinstance(item, str) and (isinstance(node, dict) or node is None):
            out.append(item)
            node = node.get(item) if isinstance(node, dict) else None
    return tuple(out)


def _label(value: Any) -> Any:
    """An axis label: the value itself when it is a scalar, else its JSON text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:20]
