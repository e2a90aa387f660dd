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
RESERVED_DIMS = frozenset({
    REPLICATE, VARIANT, "day", "channel", "stage", "segment", "attribution_model", "from_state",
    "to_state", "cohort", "cohort_week", "weeks_since", "week",
})
"""Names an axis may not take: the run dimensions of a result and the sweep's own."""

OUTCOMES = ("profit", "revenue", "customers", "cac", "ltv", "ltv_cac", "churn", "brand_equity")
MINIMISED = frozenset({"cac", "churn"})
"""Outcomes where less is better: the default goal of an objective naming them."""

MAX_RUNS = 100_000

# salts of the seed sequences derived from the experiment seed
_SALT_REPLICATE, _SALT_SAMPLES = 0, 1


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
    objective: Objective = Objective()
    outputs: Outputs = Outputs()

    @model_validator(mode="after")
    def _names(self):
        seen = set()
        for v in self.variants:
            if v.name in seen:
                raise ValueError(f"variant names must be unique ('{v.name}' appears twice)")
            seen.add(v.name)
        return self


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

    @property
    def name(self) -> str:
        return self.spec.name

    def with_size(self, agents: int | None = None, days: int | None = None,
                  replicates: int | None = None) -> Experiment:
        """The experiment at another size, for quick tries (``--agents``, ``--days``,
        ``--replicates``). Replicate r keeps its seed whatever the number of replicates."""
        spec, base = self.spec, self.base
        if agents is not None or days is not None:
            base = resolve_size(base, agents, days, source="command line")
        if replicates is not None:
            if replicates < 1:
                raise ScenarioError("command line", "replicates", "must be at least 1")
            spec = spec.model_copy(update={"replicates": replicates})
        return Experiment(spec, base, self.source, self.text)


@dataclass(frozen=True)
class Plan:
    """What :func:`expand` returns: the axes, the replicate seeds and the runs."""

    axes: tuple[Axis, ...]
    replicate_seeds: tuple[int, ...]
    runs: tuple[RunSpec, ...]

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


def build_axes(spec: ExperimentSpec) -> tuple[Axis, ...]:
    """The axes of the run grid: variants first, then the sweep blocks in file order."""
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
    return tuple(axes)


def expand(experiment: Experiment) -> Plan:
    """The runs of an experiment: every point of the axis grid, once per replicate.

    Pure: the same experiment always gives the same runs, seeds and keys. Runs are
    ordered replicate by replicate (all points of replicate 0 first), so a sweep cut
    short holds whole replicates.
    """
    spec = experiment.spec
    axes = build_axes(spec)
    seeds = replicate_seeds(spec.seed, spec.replicates)
    base_text = experiment.base.to_toml()
    outputs = json.dumps(spec.outputs.model_dump(mode="json"), sort_keys=True)
    shape = tuple(len(a) for a in axes)
    points = list(np.ndindex(shape)) if shape else [()]
    if len(points) * len(seeds) > MAX_RUNS:
        raise ScenarioError(experiment.source, "", f"{len(points) * len(seeds):,} runs "
                            f"(at most {MAX_RUNS:,})")
    runs = []
    for r, seed in enumerate(seeds):
        for pos in points:
            overrides: dict[str, Any] = {}
            labels = {}
            for axis, i in zip(axes, pos, strict=True):
                overrides.update(axis.overrides[i])
                labels[axis.dim] = axis.labels[i]
            key = _hash(base_text, sorted(overrides.items()), seed, outputs)
            runs.append(RunSpec(len(runs), r, seed, tuple(int(i) for i in pos), labels,
                                overrides, key))
    return Plan(axes, seeds, tuple(runs))


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
    experiment = Experiment(spec, base, source, text)
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
    plan_axes = build_axes(spec)
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
