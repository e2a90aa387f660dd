"""``--plan plan.csv``: a planned budget, week by week, forecast beside the recommendation.

The file has a ``week`` column (0, 1, 2, ... in order: week w is days 7w to 7w + 6 of
the run) and a column per optimised channel, each cell the channel's budget for that
week (money a week; the run spends a seventh of it a day). Weeks after the last row keep
its budgets. The plan runs as the scenario with week 0's budgets as the daily budgets and
a scheduled change at the start of every later week, on the check's fresh seeds, paired
with the recommended and the current splits.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulation.scenario import Scenario, ScenarioError


@dataclass(frozen=True)
class BudgetPlan:
    channels: tuple[str, ...]
    weekly: np.ndarray  # (weeks, channels): money a week

    @property
    def daily(self) -> np.ndarray:
        return self.weekly / 7.0

    def overrides(self, scenario: Scenario) -> dict:
        """Scenario overrides that run the plan: week 0's budgets, then a change a week."""
        over = {f"channels.{c}.daily_budget": float(v)
                for c, v in zip(self.channels, self.daily[0], strict=True)}
        days = scenario.simulation.days
        changes = [c.model_dump(mode="json") for c in scenario.changes]
        for w in range(1, len(self.weekly)):
            if 7 * w >= days:
                break
            if np.array_equal(self.weekly[w], self.weekly[w - 1]):
                continue
            changes.append({"day": 7 * w, "set": {
                f"channels.{c}.daily_budget": float(v)
                for c, v in zip(self.channels, self.daily[w], strict=True)}})
        if len(changes) > len(scenario.changes):
            over["changes"] = changes
        return over

    def average_daily(self, days: int) -> np.ndarray:
        """Each channel's average daily budget over a run of ``days`` days."""
        d = np.arange(days) // 7
        return self.daily[np.minimum(d, len(self.weekly) - 1)].mean(axis=0)


def load_plan(path: str | Path, channels: tuple[str, ...]) -> BudgetPlan:
    """Read and check ``plan.csv`` against the optimised ``channels``; one line on error."""
    where = f"--plan {path}"
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError:
        raise ScenarioError(where, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(where, "", f"cannot read ({getattr(exc, 'strerror', None) or exc})"
                            ) from None
    except csv.Error as exc:
        raise ScenarioError(where, "", f"not a CSV file ({exc})") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise ScenarioError(where, "", "empty: expected a header 'week,CHANNEL,...' and a row "
                            "per week")
    header = [h.strip() for h in rows[0]]
    if not header or header[0] != "week":
        raise ScenarioError(where, "", "the first column must be 'week'")
    names = header[1:]
    for name in names:
        if name not in channels:
            raise ScenarioError(where, "", f"column '{name}' is not an optimised channel "
                                f"({', '.join(channels)})")
    if len(set(names)) != len(names):
        raise ScenarioError(where, "", "a channel has two columns")
    missing = [c for c in channels if c not in names]
    if missing:
        raise ScenarioError(where, "", f"no column for {', '.join(missing)} (a column per "
                            "optimised channel)")
    body = rows[1:]
    if not body:
        raise ScenarioError(where, "", "no weeks: a row per week, from week 0")
    weekly = np.zeros((len(body), len(channels)))
    for i, row in enumerate(body):
        line = i + 2
        if len(row) != len(header):
            raise ScenarioError(where, "", f"line {line}: {len(row)} cells, the header has "
                                f"{len(header)}")
        try:
            week = int(row[0])
            values = [float(v) for v in row[1:]]
        except ValueError:
            raise ScenarioError(where, "", f"line {line}: expected a whole week number and "
                                "amounts") from None
        if week != i:
            raise ScenarioError(where, "", f"line {line}: week {week}; the weeks go 0, 1, 2, "
                                "... in order")
        for name, v in zip(names, values, strict=True):
            if not math.isfinite(v) or v < 0:
                raise ScenarioError(where, "", f"line {line}: {name}'s budget must be a "
                                    f"non-negative amount, got {v!r}")
            weekly[i, channels.index(name)] = v
    return BudgetPlan(tuple(channels), weekly)
