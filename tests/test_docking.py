"""Docking: the numba kernels and the plain-Mesa reference backend agree in distribution.

The two backends share the scenario, the channels' daily plans, the strategy
components and the result format, but step customers with independently written
rules and unrelated random streams. For each example scenario (but those in ``COVERED``,
whose mechanisms the busy file below docks already) both run ``REPLICATES``
times at a small size; per replicate we summarise the run (stage counts at four points
of the run, conversions per channel, orders, revenue, churn) and compare the two
samples statistic by statistic with Welch's t-test. A statistic fails when the
difference of the means lies outside the 99% band of the difference,
``|mean_mesa - mean_numba| > t * sqrt(s_mesa^2 / R + s_numba^2 / R)``, with ``t`` the
Bonferroni-corrected critical value over the scenario's statistics: a correct pair
fails a scenario at most 1% of the time. The band is symmetric, so "mesa within numba's
band" and "numba within mesa's band" are the same check. Replicate seeds are fixed, so
the outcome is reproducible.

Sizes: 2,000 customers over 80 days, 20 replicates a side: about 8 seconds of one core
per case. The bands are then 3-5% of the mean for active customers, conversions by the
main channels, orders and revenue, so a rule that moves them by ~7% is caught; a
doubled decision effect or disabled forgetting fails 20 of ~28 statistics
(``test_a_changed_rule_is_detected``). The example scenarios' budgets are written for
200,000 customers, so at this size their paid channels saturate and their roll-outs and
programmes barely start; ``tests/data/docking_all_mechanisms.toml``, sized for a few
thousand customers, keeps every mechanism busy, and runs as a repeat, subscription and
one-time product.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import DEFAULT, EXAMPLE_SCENARIOS, ROOT, STAGES
from scipy import stats

import simulation
from simulation.model import MarketModel, set_threads
from simulation.reference import Customer, ReferenceMarketModel
from simulation.scenario import scenario_from_dict, with_overrides
from simulation.state import CONSIDERING

BUSY = ROOT / "tests/data/docking_all_mechanisms.toml"
COVERED = ("premium_on_marketplace", "scaling_paid_social", "saas_case", "staged_rollout")
"""Examples whose mechanisms the busy file docks already (positioning and a discount
marketplace, budget ramps with dilution and novelty, a capacity-limited sales team, a
staged roll-out with a guardrail): left out to keep the suite's time."""
CASES = [pytest.param(p, {}, id=p.stem) for p in EXAMPLE_SCENARIOS if p.stem not in COVERED] + [
    pytest.param(BUSY, {"product.business_model": model}, id=f"all_mechanisms_{model}")
    for model in ("repeat", "subscription", "one_time")
]
AGENTS, DAYS, REPLICATES = 2_000, 80, 20
ALPHA = 0.01  # family-wise, per scenario

pytestmark = pytest.mark.slow  # 20 replicates a side per case: about 80 s in all


def summary(ds) -> dict[str, float]:
    """The per-replicate figures the backends must agree on."""
    days = ds.sizes["day"]
    out = {}
    for t in (days // 4, days // 2, 3 * days // 4, days - 1):
        counts = ds.stage_count.isel(day=t)
        for s in STAGES:
            out[f"{s}@day{t}"] = float(counts.sel(stage=s))
    for ch in ds.channel.values:
        out[f"conversions[{ch}]"] = float(ds.conversions.sel(channel=ch).sum())
    out["orders"] = float(ds.orders.sum())
    out["revenue"] = float(ds.revenue.sum())
    out["churned"] = float(ds.churned.sum())
    out["outreach_contacts"] = float(ds.outreach_contacts.sum())
    out["list_size@end"] = float(ds.list_size.isel(day=-1).sum())
    out["list_opt_ins"] = float(ds.list_opt_ins.sum())
    out["list_unsubscribes"] = float(ds.list_unsubscribes.sum())
    out["holdout_size"] = float(ds.holdout_size.sum())
    out["holdout_conversions"] = float(ds.holdout_conversions.sum())
    return out


def replicate_summaries(model_cls, scenario, seeds, agents=AGENTS, days=DAYS) -> dict[str, np.ndarray]:
    rows = []
    previous = set_threads(1)  # small runs: threads only add overhead (results do not depend on it)
    try:
        for seed in seeds:
            model = model_cls(scenario, agents=agents, days=days, seed=seed)
            model.run_model()
            rows.append(summary(model.results()))
    finally:
        set_threads(previous)
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def load(path: Path, overrides: dict):
    """The scenario as a market of AGENTS people: docking compares the backends' sample
    mechanics, with enough events per replicate to see a changed rule."""
    scenario = simulation.load_scenario(path)
    factor = AGENTS / scenario.market.size  # a warm start keeps its shares of the market
    init = scenario.initial.model_dump()
    for e in init["customers"]:
        e["active"] *= factor
        e["lapsed"] *= factor
    init["community_members"] *= factor
    init["list_size"] *= factor
    scenario = with_overrides(scenario, {"market.size": AGENTS, "initial": init})
    return with_overrides(scenario, overrides) if overrides else scenario


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray], alpha: float = ALPHA) -> list[str]:
    """Statistics whose means differ beyond the Bonferroni-corrected Welch band."""
    names = [k for k in a if not (np.ptp(a[k]) == 0 and np.ptp(b[k]) == 0 and a[k][0] == b[k][0])]
    failures = []
    for k in names:
        x, y = a[k], b[k]
        se = np.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))
        if se == 0:
            failures.append(f"{k}: always {x[0]:g} vs always {y[0]:g}")
            continue
        # Welch-Satterthwaite degrees of freedom
        vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
        dof = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
        t_crit = stats.t.ppf(1 - alpha / len(names) / 2, dof)
        diff = x.mean() - y.mean()
        if abs(diff) > t_crit * se:
            failures.append(f"{k}: {x.mean():.1f} vs {y.mean():.1f} "
                            f"(difference {diff:+.1f}, band +-{t_crit * se:.1f})")
    return failures


_NUMBA: dict[str, dict] = {}


def numba_summaries(path: Path, overrides: dict) -> dict[str, np.ndarray]:
    """The numba side of a case, computed once per session (the changed-rule test reuses it)."""
    key = (path, tuple(sorted(overrides.items())))
    if key not in _NUMBA:
        _NUMBA[key] = replicate_summaries(MarketModel, load(path, overrides),
                                          range(1, REPLICATES + 1))
    return _NUMBA[key]


@pytest.mark.parametrize("path,overrides", CASES)
def test_backends_agree_in_distribution(path, overrides):
    mesa_side = replicate_summaries(ReferenceMarketModel, load(path, overrides),
                                    range(1001, 1001 + REPLICATES))
    numba_side = numba_summaries(path, overrides)
    failures = compare(mesa_side, numba_side)
    assert not failures, f"{path.stem} {overrides}: mesa vs numba\n" + "\n".join(failures)
    # the comparison is about something: customers were won and money moved
    assert numba_side["revenue"].mean() > 0 and mesa_side["revenue"].mean() > 0


CHANGES = [{"day": 40, "set": {
    "channels.search.enabled": False, "channels.paid_social.daily_budget": 8.0,
    "channels.concierge.capacity": 8, "forgetting.aware": 0.05,
    "post_purchase.reminders.enabled": False, "post_purchase.onboarding.enabled": False,
    "post_purchase.community.enabled": False}},
    {"day": 60, "set": {"post_purchase.reminders.enabled": True, "product.price": 34.0}}]


@pytest.mark.parametrize("model", ["repeat", "one_time"])
def test_backends_agree_with_scheduled_changes(model):
    """Changes at days 40 and 60 (a channel held out, budgets, capacity, programmes off and
    on again): the backends still agree, the programmes planned at an order included."""
    scenario = with_overrides(load(BUSY, {"product.business_model": model}), {"changes": CHANGES})
    mesa_side = replicate_summaries(ReferenceMarketModel, scenario, range(1001, 1001 + REPLICATES))
    numba_side = replicate_summaries(MarketModel, scenario, range(1, REPLICATES + 1))
    failures = compare(mesa_side, numba_side)
    assert not failures, f"changes ({model}): mesa vs numba\n" + "\n".join(failures)


def test_a_changed_rule_is_detected(monkeypatch):
    """Doubling the decision effect in the mesa customers must fail the docking test
    (even with half the replicates on the mesa side)."""
    original = Customer._exposures

    def doubled_decision(self, day, stage):
        if stage == CONSIDERING:  # a decision effect twice as strong
            model = self.model
            saved = model.offers[self.segment][stage]
            model.offers[self.segment][stage] = [
                (c, r, min(1.0, 2 * e), q, p) for c, r, e, q, p in saved]
            try:
                return original(self, day, stage)
            finally:
                model.offers[self.segment][stage] = saved
        return original(self, day, stage)

    monkeypatch.setattr(Customer, "_exposures", doubled_decision)
    path = DEFAULT
    mesa_side = replicate_summaries(ReferenceMarketModel, load(path, {}),
                                    range(1001, 1001 + REPLICATES // 2))
    failures = compare(mesa_side, numba_summaries(path, {}))
    assert any(f.startswith("conversions[") for f in failures), failures


def test_backends_agree_when_orders_hurt_health():
    """Bad delivery with no initial goodwill: each order takes health below zero."""
    data = {"name": "unhappy",
            "product": {"price": 10.0, "business_model": "subscription",
                        "subscription": {"period_days": 10, "churn": 0.05}},
            "word_of_mouth": {"p": 0.05, "adoption": "active"},
            "health": {"initial": 0.0, "decay": 0.0, "churn_sensitivity": 2.0},
            "post_purchase": {"satisfaction_weight": 1.0, "delivery": {"satisfaction": 0.0}}}
    scenario = scenario_from_dict(data)
    failures = compare(replicate_summaries(ReferenceMarketModel, scenario, range(1001, 1009)),
                       replicate_summaries(MarketModel, scenario, range(1, 9)))
    assert not failures, failures
