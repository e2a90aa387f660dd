"""TARGETS.toml: what the business observed, and which scenario fields are free.

Each ``[[observed]]`` figure names what it is, so that the same figure can be read off
a simulated result (:func:`simulated`):

- a result variable counted per day (``conversions``, ``orders``, ``revenue``,
  ``churned``, ``spend``, ... by acquisition channel; ``stage_count`` by ``stage``;
  ``stage_count_by_segment`` by ``segment`` and ``stage``; market series such as
  ``brand_equity``), summed over a day window for a flow, read at its last day for a
  stock, averaged for a level (each variable's ``aggregate`` in
  :mod:`simulation.counters`); with ``weekly = true`` the same, week by week, a value
  per whole week of the window;
- ``orders_per_customer``: the customers of the acquisition cohorts of weeks
  ``cohorts = [first, last]`` by the orders they placed, a value per count 1, 2, ...
  and the last value counting that many *or more* (a histogram of repeat buying);
- ``cohort_orders``: the orders the acquisition cohorts of weeks ``cohorts`` placed in
  the window (which starts on a week's first day, ``days[0]`` a multiple of 7), in all or,
  with ``weekly = true``, week by week: a cohort's weekly orders;
- a defined metric of :func:`simulation.analysis.economics.unit_economics` (``cac``,
  ``ltv``, ``ltv_projected``, ``payback_days``, ...) over the window.

``channel`` is one channel (acquisition channel for the flows) or ``all`` (the market).
Every figure is in market units, so a fit at any ``--agents`` aims at the same answer.
``sd`` is the figure's uncertainty: the fit's distance measures each miss in sds.

``[[parameters]]`` are dotted scenario paths, as ``--set`` takes them, with a prior
(:mod:`.priors`). ``[fit]`` sets the ABC-SMC's size (:class:`FitSettings`).
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulation.calibration.priors import Prior
from simulation.scenario import STAGES, Scenario, ScenarioError, read_toml, with_overrides

ALL = "all"
HISTOGRAM = "orders_per_customer"
COHORT_ORDERS = "cohort_orders"
BY_COHORT = (HISTOGRAM, COHORT_ORDERS)
"""Figures of weekly acquisition cohorts (``cohorts``)."""
METRICS = ("cac", "cac_loaded", "ltv", "ltv_projected", "ltv_cac", "payback_days",
           "first_order_margin", "margin_per_active_day", "churn_hazard", "monthly_churn",
           "contribution", "profit", "profit_per_customer", "contribution_margin", "roas")
"""Defined metrics (``simulation/analysis/economics.py``) a figure may name."""
MAX_REPLICATES = 16


class FitSettings(BaseModel):
    """``[fit]``: the size of the ABC-SMC (docs/calibration.md)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    population: int = Field(200, ge=10, le=100_000,
                            description="particles per generation (accepted draws)")
    generations: int = Field(8, ge=1, le=100, description="generations at most, the "
                                                          "prior's included")
    epsilon: float = Field(1.0, ge=0.0, description="the tolerance to reach: the fit ends "
                                                    "when the accepted runs miss the "
                                                    "targets by at most this, in sds (RMS)")
    quantile: float = Field(0.5, gt=0.0, lt=1.0, description="each generation's tolerance "
                                                             "is this quantile of the "
                                                             "previous one's distances")
    min_acceptance: float = Field(0.02, gt=0.0, le=1.0, description="the fit ends when a "
                                  "generation accepts fewer of its proposals than this")
    replicates: int | Literal["auto"] = Field(
        "auto", description="runs averaged per evaluation; auto: enough that the run's "
                            "noise is at most half of each figure's sd (a pilot of 4 runs "
                            "measures it), at most 16")
    check_runs: int = Field(8, ge=2, le=1000, description="runs of the calibrated scenario "
                                                          "for the fit table and fit.png")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="the fit's seed "
                                                                  "(default: the scenario's)")

    @field_validator("replicates")
    @classmethod
    def _replicates(cls, v):
        if isinstance(v, int) and not 1 <= v <= MAX_REPLICATES:
            raise ValueError(f"must be 1 to {MAX_REPLICATES} or \"auto\"")
        return v


class Observed(BaseModel):
    """One observed figure (module docstring)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    name: str | None = Field(None, description="label in the fit table (default: from the "
                                               "fields)")
    variable: str = Field(min_length=1, description="a result variable, "
                                                    "orders_per_customer, or a metric")
    channel: str = Field(ALL, description="a channel, or all")
    segment: str | None = Field(None, description="stage_count_by_segment: the segment")
    stage: Literal[STAGES] | None = Field(None, description="stage_count(_by_segment): the "
                                                            "stage")
    days: list[int] | None = Field(None, min_length=2, max_length=2,
                                   description="[first, last] day, inclusive (default: the "
                                               "whole run)")
    weekly: bool = Field(False, description="a value per whole week of the window")
    cohorts: list[int] | None = Field(None, min_length=2, max_length=2,
                                      description="orders_per_customer, cohort_orders: "
                                                  "[first, last] acquisition week")
    value: float | list[float] = Field(description="the observed figure(s)")
    sd: float | list[float] = Field(description="its uncertainty, > 0 (one for all values, "
                                                "or one per value)")

    @model_validator(mode="after")
    def _shape(self) -> Observed:
        values = self.values
        if not values:
            raise ValueError("value: an empty list")
        sds = self.sds
        if len(sds) not in (1, len(values)):
            raise ValueError(f"sd: {len(sds)} values for {len(values)} observed")
        if any(not s > 0 for s in sds):
            raise ValueError("sd: must be > 0")
        if self.days is not None and not 0 <= self.days[0] <= self.days[1]:
            raise ValueError("days: needs 0 <= first <= last")
        if self.cohorts is not None and not 0 <= self.cohorts[0] <= self.cohorts[1]:
            raise ValueError("cohorts: needs 0 <= first <= last")
        if self.variable == HISTOGRAM:
            if self.weekly or self.days is not None:
                raise ValueError("orders_per_customer: the whole run's orders; give cohorts, "
                                 "not days or weekly")
            if len(values) < 2:
                raise ValueError("orders_per_customer: a value per order count, at least "
                                 "two (1, and 2 or more)")
        elif self.cohorts is not None and self.variable != COHORT_ORDERS:
            raise ValueError("cohorts: only for orders_per_customer and cohort_orders")
        if self.variable == COHORT_ORDERS and self.days is not None and self.days[0] % 7:
            raise ValueError("days: cohort_orders are counted by week; the window starts "
                             "on a week's first day (a multiple of 7)")
        if self.variable in METRICS and self.weekly:
            raise ValueError(f"{self.variable}: a metric is one figure per window, not weekly")
        if not self.weekly and self.variable != HISTOGRAM and len(values) != 1:
            raise ValueError("value: one number (a list needs weekly = true)")
        return self

    @property
    def values(self) -> list[float]:
        return [float(v) for v in (self.value if isinstance(self.value, list) else [self.value])]

    @property
    def sds(self) -> list[float]:
        return [float(v) for v in (self.sd if isinstance(self.sd, list) else [self.sd])]

    def label(self) -> str:
        if self.name:
            return self.name
        parts = [self.variable]
        parts += [p for p in (self.segment, self.stage) if p]
        if self.channel != ALL:
            parts.append(self.channel)
        if self.days is not None:
            parts.append(f"days {self.days[0]}-{self.days[1]}")
        if self.cohorts is not None:
            parts.append(f"cohorts {self.cohorts[0]}-{self.cohorts[1]}")
        if self.weekly:
            parts.append("weekly")
        return " ".join(parts)


class Targets(BaseModel):
    """A TARGETS.toml file."""

    model_config = ConfigDict(extra="forbid", strict=True)

    fit: FitSettings = Field(default_factory=FitSettings)
    parameters: list[Prior] = Field(min_length=1)
    observed: list[Observed] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Targets:
        paths = [p.path for p in self.parameters]
        for p in paths:
            if paths.count(p) > 1:
                raise ValueError(f"parameter {p} is listed twice")
        labels = [o.label() for o in self.observed]
        for label in labels:
            if labels.count(label) > 1:
                raise ValueError(f"two observed figures are both '{label}' (name them)")
        return self

    def vector(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Observed values, sds and the figure each belongs to, concatenated in file order."""
        obs, sds, owner = [], [], []
        for i, o in enumerate(self.observed):
            v = o.values
            s = o.sds * (len(v) if len(o.sds) == 1 else 1)
            obs += v
            sds += s
            owner += [i] * len(v)
        return np.array(obs), np.array(sds), np.array(owner, dtype=np.int64)


# -- loading ---------------------------------------------------------------------------


def load_targets(path: str | Path, scenario: Scenario) -> Targets:
    """Read and validate TARGETS.toml against the scenario it calibrates: one
    :class:`ScenarioError` line naming the file and the field."""
    data = read_toml(path)
    source = str(path)
    try:
        targets = Targets.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _field(err["loc"], data)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        raise ScenarioError(source, field, msg) from None
    for i, p in enumerate(targets.parameters):
        _check_parameter(source, f"parameters[{i}]", p, scenario)
    for i, o in enumerate(targets.observed):
        _check_observed(source, f"observed[{i}] ({o.label()})", o, scenario)
    return targets


def _field(loc: tuple, data: dict) -> str:
    out = []
    for item in loc:
        if isinstance(item, int) and out:
            out[-1] += f"[{item}]"
        else:
            out.append(str(item))
    return ".".join(out)


def _check_parameter(source: str, where: str, p: Prior, scenario: Scenario) -> None:
    data = scenario.model_dump(mode="json")
    node = data
    for part in p.path.split("."):
        if isinstance(node, list):
            node = next((e for e in node if isinstance(e, dict) and e.get("name") == part), None)
        elif isinstance(node, dict):
            node = node.get(part, _MISSING)
        else:
            node = _MISSING
        if node is None or node is _MISSING:
            raise ScenarioError(source, f"{where}.path", f"{p.path}: no such field in the "
                                "scenario")
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise ScenarioError(source, f"{where}.path", f"{p.path}: not a number in the "
                            "scenario (a free parameter is a real-valued field)")
    if isinstance(node, int) and not _takes_float(scenario, p.path):
        raise ScenarioError(source, f"{where}.path", f"{p.path}: a whole-number field; a "
                            "free parameter is a real-valued field")
    for q in (0.0, 1.0):  # the range's ends must make valid scenarios
        x = p.quantile(q)
        if not math.isfinite(x):
            continue
        try:
            with_overrides(scenario, {p.path: float(x)}, source="")
        except ScenarioError as exc:
            raise ScenarioError(source, f"{where}", f"{p.path} = {x:g} (the prior's "
                                f"{'low' if q == 0 else 'high'} end) is not a valid scenario: "
                                f"{exc.message}") from None


_MISSING = object()


def _takes_float(scenario: Scenario, path: str) -> bool:
    try:
        with_overrides(scenario, {path: 0.5}, source="")
    except ScenarioError:
        return False
    return True


def _check_observed(source: str, where: str, o: Observed, scenario: Scenario) -> None:
    from simulation import counters
    from simulation.kernels import day  # noqa: F401  (registers every mechanism's counters)

    known = counters.variables()
    names = [c.name for c in scenario.channels] + ["word_of_mouth"]
    days = scenario.simulation.days
    if o.variable not in known and o.variable not in METRICS:
        raise ScenarioError(source, f"{where}.variable", f"'{o.variable}' is neither a result "
                            f"variable nor a metric ({', '.join(METRICS)})")
    if o.variable in METRICS or o.variable in BY_COHORT:
        dims = ("channel",)
    else:
        dims = known[o.variable].dims
        if "day" not in dims:
            raise ScenarioError(source, f"{where}.variable", f"'{o.variable}' is a whole-run "
                                "figure; name a daily variable or a metric")
    if o.channel != ALL and "channel" not in dims:
        raise ScenarioError(source, f"{where}.channel", f"'{o.variable}' is not per channel")
    if o.channel != ALL and o.channel not in names:
        raise ScenarioError(source, f"{where}.channel", f"no channel named '{o.channel}' "
                            f"(have {', '.join(names)}, or all)")
    needs_stage = "stage" in dims
    if needs_stage != (o.stage is not None):
        raise ScenarioError(source, f"{where}.stage", "needed for a count by stage, and only "
                            "there" if needs_stage else "only for a count by stage")
    needs_segment = "segment" in dims
    segments = [s.name for s in scenario.segments]
    if needs_segment != (o.segment is not None):
        raise ScenarioError(source, f"{where}.segment", "needed for a count by segment" if
                            needs_segment else "only for a count by segment")
    if o.segment is not None and o.segment not in segments:
        raise ScenarioError(source, f"{where}.segment", f"no segment named '{o.segment}' "
                            f"(have {', '.join(segments)})")
    first, last = o.days if o.days is not None else (0, days - 1)
    if last >= days:
        raise ScenarioError(source, f"{where}.days", f"day {last} is beyond the run "
                            f"(days 0 to {days - 1})")
    if o.weekly:
        weeks = (last - first + 1) // 7
        if weeks != len(o.values):
            raise ScenarioError(source, f"{where}.value", f"{len(o.values)} values for the "
                                f"{weeks} whole week(s) of days {first}-{last}")
    if o.cohorts is not None and o.cohorts[1] >= counters.weeks(days):
        raise ScenarioError(source, f"{where}.cohorts", f"week {o.cohorts[1]} is beyond the "
                            f"run ({counters.weeks(days)} weeks)")


def read_text(path: str | Path) -> str:
    """The file's text (stored with the posterior, so that it says what it fitted)."""
    return Path(path).read_text(encoding="utf-8-sig")


def targets_from_text(text: str) -> Targets:
    return Targets.model_validate(tomllib.loads(text))


# -- reading a figure off a result -------------------------------------------------------


def simulated(ds, targets: Targets) -> np.ndarray:
    """The observed figures' simulated values, concatenated as :meth:`Targets.vector`."""
    return np.concatenate([figure(ds, o) for o in targets.observed])


def figure(ds, o: Observed) -> np.ndarray:
    """One observed figure read off a result dataset (module docstring)."""
    from simulation import counters
    from simulation.analysis.economics import unit_economics

    days = ds.sizes["day"]
    first, last = o.days if o.days is not None else (0, days - 1)
    if o.variable == COHORT_ORDERS:
        return _cohort_orders(ds, o, first, last)
    if o.variable == HISTOGRAM:
        counts = _of_cohorts(ds, o)
        k = len(o.values)
        return np.concatenate([counts[:k - 1], [counts[k - 1:].sum()]])
    if o.variable in METRICS:
        window = ds.isel(day=slice(first, last + 1))
        econ = unit_economics(window, market=o.channel == ALL)
        value = econ[o.variable].isel(channel=0) if o.channel == ALL else \
            econ[o.variable].sel(channel=o.channel)
        return np.array([float(value)])
    var = counters.variables()[o.variable]
    x = ds[o.variable]
    if o.segment is not None:
        x = x.sel(segment=o.segment)
    if o.stage is not None:
        x = x.sel(stage=o.stage)
    if "channel" in x.dims:
        x = x.sum("channel") if o.channel == ALL else x.sel(channel=o.channel)
    series = np.asarray(x.values, dtype=float)[first:last + 1]
    if o.weekly:
        weeks = len(series) // 7
        blocks = series[:weeks * 7].reshape(weeks, 7)
    else:
        blocks = series[None, :]
    if var.aggregate == "sum":
        return blocks.sum(axis=1)
    if var.aggregate == "last":
        return blocks[:, -1]
    return blocks.mean(axis=1)


def _cohort_orders(ds, o: Observed, first: int, last: int) -> np.ndarray:
    """The orders of the cohorts ``o.cohorts`` placed in the window's weeks (a week the
    window ends within counts whole: the window starts on a week's first day)."""
    weekly = _of_cohorts(ds, o)
    start = first // 7
    if o.weekly:
        return weekly[start:start + (last - first + 1) // 7]
    return np.array([weekly[start:last // 7 + 1].sum()])


def _of_cohorts(ds, o: Observed) -> np.ndarray:
    """``o.variable`` (by channel and ``cohort_week``) summed over the cohorts ``o.cohorts``
    (default: all) and over the market for ``all``, else of ``o.channel``."""
    x = ds[o.variable]
    if o.cohorts is not None:
        x = x.isel(cohort_week=slice(o.cohorts[0], o.cohorts[1] + 1))
    x = x.sum("cohort_week")
    x = x.sum("channel") if o.channel == ALL else x.sel(channel=o.channel)
    return np.asarray(x.values, dtype=float)
