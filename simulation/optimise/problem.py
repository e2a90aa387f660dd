"""What an optimisation is asked: the channels, their bounds, the total, the objective.

Pure and small: validated before anything runs (bad input is one line, exit 2, nothing
written), and the map from the optimiser's free weights onto the budgets.

The budgets live on a simplex: ``low_i <= x_i <= high_i`` and ``sum x_i = total``, in
whole cents. optuna has no equality constraints, so the optimiser proposes one free
weight per channel in [0, 1] and :func:`split` turns them into budgets: each channel
gets its lower bound, the money left is shared in proportion to the weights, and a
channel pushed past its upper bound is held there while the rest is shared again among
the others (water-filling). The weights are scale-free (only their ratios matter), so
every split is reachable and none is favoured by the map.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from simulation.scenario import Scenario, ScenarioError

OBJECTIVES = {
    "profit": "profit (contribution - fixed costs) of the whole market over the run",
    "contribution": "contribution (gross margin - media and programme costs) of the whole "
                    "market over the run",
    "customers": "new customers over the run",
}
"""The outcomes an optimisation may maximise, from ``simulation.analysis.economics``."""
BUDGETED = ("cpm", "cpc")
"""Reach models that buy their reach with ``daily_budget``."""


@dataclass(frozen=True)
class BudgetProblem:
    """A validated optimisation: budgets in whole cents."""

    channels: tuple[str, ...]
    low: np.ndarray  # cents, per channel
    high: np.ndarray  # cents, per channel
    total: int  # cents
    objective: str
    current: np.ndarray  # cents: the scenario's own budgets
    baseline: np.ndarray  # cents: its split scaled to the total (what the recommendation beats)

    @property
    def free(self) -> int:
        return int(self.total - self.low.sum())

    def budgets(self, cents: np.ndarray) -> dict[str, float]:
        """The daily budgets of a split as scenario values."""
        return {c: int(v) / 100 for c, v in zip(self.channels, cents, strict=True)}

    def overrides(self, cents: np.ndarray) -> dict[str, float]:
        return {f"channels.{c}.daily_budget": v for c, v in self.budgets(cents).items()}

    def split(self, weights) -> np.ndarray:
        return split(weights, self.low, self.high, self.total)

    def weights(self, cents: np.ndarray) -> np.ndarray | None:
        """Weights that :func:`split` maps onto ``cents`` (None: outside the bounds, or
        not this total)."""
        cents = np.asarray(cents, dtype=np.int64)
        if int(cents.sum()) != self.total or (cents < self.low).any() or (cents > self.high).any():
            return None
        room = (cents - self.low).astype(float)
        if room.sum() == 0:
            return np.full(len(cents), 0.5)
        return room / room.max()

    def fingerprint(self) -> str:
        body = json.dumps([self.channels, self.low.tolist(), self.high.tolist(), self.total,
                           self.objective])
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def split(weights, low, high, total: int) -> np.ndarray:
    """Budgets in cents with ``low <= x <= high`` and ``sum x == total`` exactly: the money
    above the lower bounds shared in proportion to ``weights`` (all zero: equally),
    capped at the upper bounds, then rounded to cents by largest remainders."""
    w = np.clip(np.asarray(weights, dtype=float), 0.0, None)
    low = np.asarray(low, dtype=np.int64)
    high = np.asarray(high, dtype=np.int64)
    x = low.astype(float)
    capped = np.zeros(len(w), dtype=bool)
    for _ in range(len(w)):  # each pass caps at least one more channel, or ends
        left = total - x.sum()
        free = ~capped
        share = w * free
        if share.sum() <= 0:
            share = free.astype(float)
        x = x + left * share / share.sum()
        over = x > high
        if not over.any():
            break
        x[over] = high[over]
        capped |= over
    x = np.clip(x, low, high)
    cents = np.floor(x + 1e-9).astype(np.int64)
    remainder = int(total - cents.sum())
    room = cents < high
    order = sorted(np.flatnonzero(room), key=lambda i: (-(x[i] - cents[i]), i))
    for i in order[:max(0, remainder)]:
        cents[i] += 1
    assert int(cents.sum()) == total and (cents >= low).all() and (cents <= high).all()
    return cents


def _cents(value: float, where: str) -> int:
    cents = round(value * 100)
    if not np.isfinite(value) or value < 0 or abs(cents - value * 100) > 1e-6:
        raise ScenarioError(where, "", f"expected a non-negative amount in whole cents, got "
                            f"{value!r}")
    return int(cents)


def parse_bounds(items: list[str] | None) -> dict[str, tuple[float | None, float | None]]:
    """``--bounds channel=low:high`` (repeated, or comma-separated; either end may be
    empty: ``search=100:``)."""
    out: dict[str, tuple[float | None, float | None]] = {}
    for item in items or []:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            name, eq, rng = part.partition("=")
            lo, colon, hi = rng.partition(":")
            if not eq or not colon or not name.strip():
                raise ScenarioError("--bounds", "", f"expected channel=low:high, got {part!r}")
            try:
                values = tuple(float(v) if v.strip() else None for v in (lo, hi))
            except ValueError:
                raise ScenarioError("--bounds", "", f"expected numbers in {part!r}") from None
            if name.strip() in out:
                raise ScenarioError("--bounds", "", f"channel '{name.strip()}' is bounded twice")
            out[name.strip()] = values
    return out


def _budget_problem(scenario: Scenario, name: str) -> str | None:
    """Why the optimiser cannot set this channel's daily budget (None: it can)."""
    c = next(c for c in scenario.channels if c.name == name)
    if not c.enabled:
        return f"channel '{name}' is not enabled"
    if c.reach.model not in BUDGETED:
        return (f"channel '{name}' has no daily budget to set (reach model "
                f"'{c.reach.model}'; only cpm and cpc channels buy reach with a budget)")
    if c.schedule.kind != "constant" or c.schedule.cap is not None:
        return (f"channel '{name}' has a '{c.schedule.kind}' budget schedule"
                f"{' with a cap' if c.schedule.cap is not None else ''}: the optimiser holds "
                "each daily budget over the run (schedule.kind = 'constant', no cap)")
    for change in scenario.changes:
        for path in change.set:
            if path in ("channels", f"channels.{name}") or any(
                    path.startswith(f"channels.{name}.{f}")
                    for f in ("daily_budget", "schedule", "enabled")):
                return (f"channel '{name}': a scheduled change on day {change.day} sets "
                        f"{path}; the optimiser holds each daily budget over the run")
    return None


def plan(scenario: Scenario, total: float, channels: list[str] | None = None,
         bounds: dict[str, tuple[float | None, float | None]] | None = None,
         objective: str = "profit") -> BudgetProblem:
    """Validate an optimisation of ``scenario`` (as it will run) before anything runs."""
    total_cents = _cents(total, "--budget")
    if total_cents <= 0:
        raise ScenarioError("--budget", "", "the total daily budget must be above 0")
    if objective not in OBJECTIVES:
        raise ScenarioError("--objective", "", f"expected one of {', '.join(OBJECTIVES)}")
    known = [c.name for c in scenario.channels]
    if channels is None:
        chosen = [c.name for c in scenario.channels
                  if c.enabled and c.reach.model in BUDGETED and c.daily_budget > 0]
        if len(chosen) < 2:
            raise ScenarioError("--channels", "", f"the scenario has {len(chosen)} enabled "
                                "channel(s) with a daily_budget; a split needs two or more "
                                "(name them with --channels)")
    else:
        chosen = channels
        for name in chosen:
            if name not in known:
                raise ScenarioError("--channels", "", f"no channel named '{name}' (have "
                                    f"{', '.join(known) or 'none'})")
        if len(set(chosen)) != len(chosen):
            raise ScenarioError("--channels", "", "a channel is listed twice")
        if len(chosen) < 2:
            raise ScenarioError("--channels", "", "a split needs two or more channels")
    for name in chosen:
        why = _budget_problem(scenario, name)
        if why:
            raise ScenarioError("--channels", "", why)
    bounds = bounds or {}
    low = np.zeros(len(chosen), dtype=np.int64)
    high = np.full(len(chosen), total_cents, dtype=np.int64)
    for name, (lo, hi) in bounds.items():
        if name not in chosen:
            raise ScenarioError("--bounds", "", f"channel '{name}' is not among the optimised "
                                f"channels ({', '.join(chosen)})")
        i = chosen.index(name)
        if lo is not None:
            low[i] = _cents(lo, "--bounds")
        if hi is not None:
            high[i] = min(_cents(hi, "--bounds"), total_cents)
        if low[i] > high[i]:
            raise ScenarioError("--bounds", "", f"channel '{name}': the low end is above the "
                                "high end (or above the total)")
    if low.sum() > total_cents:
        raise ScenarioError("--budget", "", f"{total_cents / 100:,.2f} is below the sum of the "
                            f"lower bounds ({low.sum() / 100:,.2f})")
    if high.sum() < total_cents:
        raise ScenarioError("--budget", "", f"{total_cents / 100:,.2f} is above the sum of the "
                            f"upper bounds ({high.sum() / 100:,.2f})")
    if low.sum() == total_cents or high.sum() == total_cents:
        raise ScenarioError("--bounds", "", "the bounds leave a single split of the total: "
                            "nothing to optimise")
    by_name = {c.name: c for c in scenario.channels}
    current = np.array([_cents(round(by_name[n].daily_budget, 2), "daily_budget")
                        for n in chosen], dtype=np.int64)
    if current.sum() > 0:
        baseline = split(current.astype(float), np.zeros_like(low), np.full_like(high, total_cents),
                         total_cents)
    else:
        baseline = split(np.ones(len(chosen)), np.zeros_like(low), np.full_like(high, total_cents),
                         total_cents)
    return BudgetProblem(tuple(chosen), low, high, total_cents, objective, current, baseline)
