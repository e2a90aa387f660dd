"""The controlled test (``distsim abtest``): two arms of one market, and how often a
stopping rule picks the better one.

An A/B test in a real market splits its customers, not its market: both arms hear the
same word of mouth, see the same brand equity, queue for the same sales team and are
bought by the same budget. So the arms here are halves of one market in one run. Each
scenario segment ``g`` becomes two segments, ``g__control`` and ``g__treatment``, each
with half of ``g``'s share. A customer's segment is drawn from one uniform keyed by
(seed, market index) against the cumulative shares (``assign_segments``); splitting every
segment's interval in two keeps each customer's original segment and makes the arm the
half of that interval the same uniform falls in: a keyed fair coin, the same for every
effect size of a replicate (common random numbers), independent of every other decision
(each has its own stream). The Mesa backend draws segments from cumulative weights too,
so the same split holds there.

Every day the channels plan twice from the market's occupancy: once under the scenario
(the control rows of the reach and effect tables) and once under the scenario with the
change (the treatment rows), each as if its policy ran in the whole market; the budget
is booked once, by the control plan's agents. Rules the kernels keep per segment
(repeat buying, churn) and the positioning component's per-segment sensitivities take
the treatment's values in the treatment segments. What the kernels keep once per channel
or per market (budgets, prices, discounts, commissions, capacities, programmes, word of
mouth) cannot differ between arms: such a ``--change`` is refused (:func:`arm_path`).

The effect sizes are multipliers of the change (``--effects``): multiplier ``m`` gives
the treatment ``base + m × (value − base)``; 0 is the null test (the arms under the same
rules). Replicate ``r`` runs with the sweep's replicate seed ``r`` at every effect size.
A run returns the arms' daily conversions (first orders), newly exposed customers
(first touch by any channel, word of mouth included) and sizes; the rules' verdicts and
the z-test are read from them (:mod:`simulation.analysis.abtest`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import xarray as xr

from simulation.analysis.abtest import ARMS  # arm k of segment g is segment 2 g + k
from simulation.scenario import (
    Scenario,
    ScenarioError,
    _drop_none,
    apply_override,
    scenario_from_dict,
)

DEFAULT_EFFECTS = (0.0, 0.5, 1.0, 1.5, 2.0)
"""Multipliers of the change run by default: the null, half, the change, 1.5 and twice."""

ARM_FIELDS = (
    ("channels.*.effects.awareness", "the channel's effects"),
    ("channels.*.effects.consideration", ""),
    ("channels.*.effects.decision", ""),
    ("channels.*.effects.retention", ""),
    ("channels.*.message_alignment", "message alignment"),
    ("channels.*.intent", "intent"),
    ("channels.*.fit.*", "channel-product fit"),
    ("channels.*.dilution", "dilution"),
    ("channels.*.novelty.*", "novelty"),
    ("channels.*.reach.max_daily_reach", "the cap on a customer's daily reach"),
    ("segments.*.affinity.*", "segment affinities"),
    ("segments.*.price_sensitivity", "price and brand sensitivity"),
    ("segments.*.brand_sensitivity", ""),
    ("segments.*.churn_multiplier", "churn"),
    ("segments.*.purchase_rate.*", "repeat buying"),
    ("segments.*.dropout.*", ""),
)
"""``--change`` paths that can differ between the arms of one market (``*``: any name),
with the words the README and the refusal use for them."""

REFUSED = (
    ("channels.*.daily_budget", "a budget buys one market's impressions: both arms share it"),
    ("channels.*.schedule", "a budget buys one market's impressions: both arms share it"),
    ("channels.*.reach", "a channel's reach model buys one market's impressions: both arms "
                         "share it"),
    ("channels.*.launch_day", "a channel runs or not in the whole market"),
    ("channels.*.end_day", "a channel runs or not in the whole market"),
    ("channels.*.enabled", "a channel runs or not in the whole market"),
    ("channels.*.discount", "the price a channel's orders book is one rule per channel for "
                            "the whole market (and its discount moves brand equity, one "
                            "market-level quantity)"),
    ("channels.*", "the kernels keep a channel's order rules (commission, fees, capacity, "
                   "leads, consent) and its brand signal once per channel for the whole "
                   "market"),
    ("segments.*.name", "the arms are halves of each segment"),
    ("segments.*.share", "the arms are halves of each segment"),
    ("product", "the product, its price and its costs are the same in the whole market"),
    ("simulation", "the run's size, length and seed are the test's, not an arm's"),
    ("market", "the market's size is the test's, not an arm's"),
    ("", "it is one market-level setting (word of mouth, brand, programmes, the calendar, "
         "attribution, ...) that both arms share"),
)
"""Why any other path cannot differ between arms: the first pattern that matches."""


def _matches(pattern: str, parts: list[str]) -> bool:
    pat = pattern.split(".") if pattern else []
    return len(parts) >= len(pat) and all(p in ("*", q) for p, q in zip(pat, parts, strict=False))


def supported_text() -> str:
    """The arm-level fields, in words (the README and the refusal say them alike)."""
    words = [w for _, w in ARM_FIELDS if w]
    return ", ".join(words[:-1]) + " and " + words[-1]


def arm_path(path: str, source: str = "command line") -> None:
    """Refuse, in one line saying why, a ``--change`` path that cannot differ between the
    arms of one market (:data:`ARM_FIELDS` lists those that can)."""
    parts = path.split(".")
    if any(_matches(p, parts) and len(parts) == len(p.split(".")) for p, _ in ARM_FIELDS):
        return
    why = next(w for p, w in REFUSED if _matches(p, parts))
    raise ScenarioError(source, "--change", f"{path} cannot differ between the arms of one "
                        f"market: {why}; the arms can differ in {supported_text()}")


def _value(data: dict, path: str):
    """The value at ``path`` (list entries by name) in scenario ``data``; a segment's
    affinity left out is its default, 1."""
    node = data
    parts = path.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, list):
            node = next((e for e in node if isinstance(e, dict) and e.get("name") == part), None)
        elif isinstance(node, dict):
            if part not in node and i == len(parts) - 1 and parts[-2] == "affinity":
                return 1.0
            node = node.get(part)
        else:
            node = None
        if node is None:
            return None
    return node


def split_data(control: dict, treatment: dict) -> dict:
    """Scenario data whose segment g is two: g's control half (``control``'s segment g)
    and g's treatment half (``treatment``'s), each with half its share; everything else
    is ``control``'s. ``[[initial.customers]]`` naming a segment put half of their people
    in each half (the same share of each half's people)."""
    data = copy.deepcopy(control)
    segments = []
    for sc, st in zip(control["segments"], treatment["segments"], strict=True):
        for arm, seg in zip(ARMS, (sc, st), strict=True):
            segments.append({**copy.deepcopy(seg), "name": f"{seg['name']}__{arm}",
                             "share": seg["share"] / 2.0})
    data["segments"] = segments
    groups = []
    for entry in (data.get("initial") or {}).get("customers", []):
        if entry.get("segment") is None:
            groups.append(entry)
            continue
        for arm in ARMS:
            half = {**entry, "segment": f"{entry['segment']}__{arm}"}
            for key in ("active", "lapsed"):
                if key in half:
                    half[key] = half[key] / 2.0
            groups.append(half)
    if groups:
        data["initial"]["customers"] = groups
    data["changes"] = []
    return data


@dataclass(frozen=True)
class Arms:
    """The three scenarios one arm run needs from one day on: ``mixed`` (the kernels'
    rules and the components: control segments as the scenario, treatment segments with
    the change), ``control`` and ``treatment`` (each arm's channel plans: the whole split
    market under the scenario, or under the scenario with the change)."""

    mixed: Scenario
    control: Scenario
    treatment: Scenario


@dataclass(frozen=True)
class AbtestPlan:
    """What ``distsim abtest`` runs: the change, its effect sizes and the replicates."""

    scenario: Scenario          # as it runs (size and seed resolved), with its [[changes]]
    path: str
    base_value: float
    value: float
    effects: tuple[float, ...]  # multipliers of (value - base_value)
    values: tuple[float, ...]   # the treatment's value at each effect size
    replicates: int
    seeds: tuple[int, ...]
    min_days: int
    min_conversions: float
    alpha: float
    backend: str

    @property
    def middle(self) -> int:
        """Index of the middle effect size: the middle of the non-null multipliers (the
        lower middle of an even count), where the z-test's horizon is matched to the rule's
        power; the null itself when it is the only one."""
        order = [k for k in np.argsort(self.effects, kind="stable") if self.effects[k] != 0.0]
        return int(order[(len(order) - 1) // 2]) if order else 0

    def arms(self, effect: int) -> list[tuple[int, Arms]]:
        """``(day, arms)`` from day 0 and from each day with scheduled changes: the change
        applies on top of the scenario in force (so a change of the same field on a later
        day is overridden by the test's value, for the treatment)."""
        from simulation.scenario import scheduled

        value = self.values[effect]
        days = self.scenario.simulation.days
        in_force = [(0, self.scenario), *[(d, s) for d, s in scheduled(self.scenario)
                                           if 0 < d < days]]
        out = []
        for day, sc in in_force:
            base = _drop_none(sc.model_dump(mode="json"))
            base["changes"] = []
            changed = copy.deepcopy(base)
            apply_override(changed, self.path, value, "--change")
            out.append((day, Arms(
                mixed=scenario_from_dict(split_data(base, changed), "--change"),
                control=scenario_from_dict(split_data(base, base), "--change"),
                treatment=scenario_from_dict(split_data(changed, changed), "--change"))))
        return out


def parse_effects(text: str | None) -> tuple[float, ...]:
    """``--effects`` as multipliers of the change: comma-separated numbers."""
    if text is None:
        return DEFAULT_EFFECTS
    try:
        values = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise ScenarioError("command line", "--effects", f"expected comma-separated numbers "
                            f"(multipliers of the change), got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise ScenarioError("command line", "--effects", "multipliers must be finite")
    if len(set(values)) != len(values):
        raise ScenarioError("command line", "--effects", "a multiplier is listed twice")
    return values


def plan(scenario: Scenario, change: str, effects: tuple[float, ...] = DEFAULT_EFFECTS,
         replicates: int = 20, min_days: int = 14, min_conversions: float = 100.0,
         alpha: float = 0.05, backend: str = "numba",
         source: str = "command line") -> AbtestPlan:
    """Validate a controlled test and lay it out, before anything runs: the path can
    differ between arms, its value is a number, every effect size gives a valid scenario,
    and the whole market is simulated (a test's noise is its customers')."""
    from simulation.scenario import parse_value
    from simulation.sweep.experiment import replicate_seeds

    if "=" not in change:
        raise ScenarioError(source, "--change", f"expected path=value, got {change!r}")
    path, _, text = change.partition("=")
    path = path.strip()
    value = parse_value(text.strip())
    arm_path(path, source)
    data = _drop_none(scenario.model_dump(mode="json"))
    base = _value(data, path)
    trial = copy.deepcopy(data)
    apply_override(trial, path, value, "--change")  # an unknown name fails here, by name
    for v, what in ((value, "the value"), (base, f"{path} in the scenario")):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ScenarioError(source, "--change", f"{what} is not a number ({v!r}): the "
                                "effect sizes scale a numeric change")
    if scenario.scale != 1.0:
        n = int(scenario.market.size)
        raise ScenarioError(source, "--agents", f"abtest simulates every person of the "
                            f"market (a test's noise is its customers'): simulate "
                            f"{scenario.market.size:,.0f} customers, or test a smaller market "
                            f"(--set market.size={min(n, 20_000)} --agents "
                            f"{min(n, 20_000)})")
    if scenario.simulation.days < 2:
        raise ScenarioError(source, "--days", "a test needs at least 2 days")
    values = tuple(float(base) + m * (float(value) - float(base)) for m in effects)
    if not 0.0 < alpha < 1.0:
        raise ScenarioError(source, "--alpha", f"must lie between 0 and 1, got {alpha:g}")
    if backend not in ("numba", "mesa"):
        raise ScenarioError(source, "--backend", f"unknown backend {backend!r}")
    out = AbtestPlan(scenario, path, float(base), float(value), tuple(effects), values,
                     replicates, replicate_seeds(scenario.simulation.seed, replicates),
                     min_days, float(min_conversions), alpha, backend)
    for k, m in enumerate(effects):  # every effect size is a valid scenario
        try:
            out.arms(k)
        except ScenarioError as exc:
            raise ScenarioError(source, "--effects", f"{m:g} sets {path} = {values[k]:g}: "
                                f"{exc.message}") from None
    return out


def arm_model_class(backend: str):
    """The market model of ``backend`` with arms: channels plan each arm's rows under its
    own scenario (:func:`_with_arms`)."""
    if backend == "mesa":
        from simulation.reference import ReferenceMarketModel as Base
    else:
        from simulation.model import MarketModel as Base
    return _with_arms(Base)


def _with_arms(Base):
    from simulation.agents import ChannelAgent

    class ArmsModel(Base):
        """A market whose even segments are the control arm and odd ones the treatment:
        the model's channels plan the control rows under ``arms.control`` and book the
        day; a second set of channel agents, which book nothing, plans the treatment rows
        under ``arms.treatment``. Word of mouth is the market's, in both."""

        def __init__(self, schedule: list[tuple[int, Arms]], *, seed: int):
            day0 = schedule[0][1]
            super().__init__(day0.mixed, seed=seed)
            self.arm_schedule = dict(schedule)
            self.pending_changes = [(d, a.mixed) for d, a in schedule[1:] if d < self.days]
            self.treated = [ChannelAgent(self, c, i) for i, c in enumerate(day0.treatment.channels)]
            for a in self.treated:
                a.remove()  # plans only: not one of the market's agents
            self._configure_arms(day0)

        def _configure_arms(self, arms: Arms) -> None:
            for a in self.channel_agents:
                a.configure(arms.control)
            for a in self.treated:
                a.configure(arms.treatment)

        def take_effect(self, scenario: Scenario, day: int) -> None:
            super().take_effect(scenario, day)
            self._configure_arms(self.arm_schedule[day])

        def plan_day(self, day: int) -> None:
            super().plan_day(day)
            for c, a in enumerate(self.treated):
                reach = a.plan(day, self.occupancy)
                self.reach[1::2, :, c] = reach[1::2]
                self.eff[1::2, :, c] = a.effects[1::2]

    return ArmsModel


def arm_counts(segment: np.ndarray, acquired_day: np.ndarray, first_day: np.ndarray,
               flags: np.ndarray, days: int) -> dict[str, np.ndarray]:
    """Per arm (segment parity): daily first orders of the run's new customers, daily
    first touches, and the arm's size, from the customers' final state."""
    from simulation.state import EXISTING, NEVER

    arm = (segment % 2).astype(np.int64)
    new = ((flags & EXISTING) == 0) & (acquired_day != NEVER)
    touched = first_day != NEVER
    conversions = np.zeros((2, days), np.int64)
    exposed = np.zeros((2, days), np.int64)
    np.add.at(conversions, (arm[new], acquired_day[new].astype(np.int64)), 1)
    np.add.at(exposed, (arm[touched], first_day[touched].astype(np.int64)), 1)
    return {"conversions": conversions, "exposed": exposed,
            "size": np.bincount(arm, minlength=2).astype(np.int64)}


def run_arms(schedule: list[tuple[int, Arms]], seed: int, backend: str = "numba",
             threads: int | None = None) -> dict[str, np.ndarray]:
    """One run of the split market: :func:`arm_counts` of its customers."""
    from simulation.model import numba_threads

    with numba_threads(None if backend == "mesa" else threads):
        model = arm_model_class(backend)(schedule, seed=seed)
        model.run_model()
        pop = model.population
        return arm_counts(pop.segment, pop.acquired_day, pop.first_day, pop.flags, model.days)


def _task(test: AbtestPlan, effect: int, replicate: int, threads: int | None):
    return effect, replicate, run_arms(test.arms(effect), test.seeds[replicate], test.backend,
                                       threads)


def measure(test: AbtestPlan, *, jobs: int = 1, threads: int | None = None,
            progress=None) -> xr.Dataset:
    """Run every (effect, replicate) of ``test``, ``jobs`` at a time (joblib processes),
    and read the rules and the z-test from the counts
    (:func:`simulation.analysis.abtest.evaluate`)."""
    import os

    from joblib import Parallel, delayed

    from simulation.analysis.abtest import evaluate

    days = test.scenario.simulation.days
    n_eff, reps = len(test.effects), test.replicates
    conversions = np.zeros((n_eff, reps, 2, days), np.int64)
    exposed = np.zeros_like(conversions)
    size = np.zeros((n_eff, reps, 2), np.int64)
    if threads is None:  # many small runs: share the cores between jobs
        threads = max(1, (os.cpu_count() or 1) // jobs)
    tasks = [(k, r) for k in range(n_eff) for r in range(reps)]
    if jobs == 1:
        results = (_task(test, k, r, threads) for k, r in tasks)
    else:
        results = Parallel(n_jobs=jobs, return_as="generator_unordered")(
            delayed(_task)(test, k, r, threads) for k, r in tasks)
    for done, (k, r, counts) in enumerate(results, 1):
        conversions[k, r] = counts["conversions"]
        exposed[k, r] = counts["exposed"]
        size[k, r] = counts["size"]
        if progress is not None:
            progress(done, len(tasks))
    return evaluate(conversions, exposed, size, test, dataset_attrs(test))


def dataset_attrs(test: AbtestPlan) -> dict:
    """The abtest dataset's attributes: the scenario, the change and the rule."""
    from simulation.version import __version__

    sc = test.scenario
    return {
        "kind": "abtest", "scenario": sc.to_toml(), "scenario_name": sc.name,
        "agents": int(sc.simulation.agents), "days": int(sc.simulation.days),
        "seed": int(sc.simulation.seed), "backend": test.backend,
        "simulation_version": __version__, "change_path": test.path,
        "change_base": test.base_value, "change_value": test.value,
        "replicates": int(test.replicates), "min_days": int(test.min_days),
        "min_conversions": float(test.min_conversions), "alpha": float(test.alpha),
        "middle_effect": float(test.effects[test.middle]),
    }

