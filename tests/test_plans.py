"""Plans: a segment that names a ``[[plans]]`` entry pays its price, compares it with its
reference price and renews on its period and churn, in both backends.

Checked against counts by hand: who buys on which day is known exactly (word of mouth
with p = 1 and immediate adoption, no lapse, churn 0 or 1), so revenue is the segments'
sizes times their prices to the cent; the price factor against its closed form
``(price × (1 − discount) / reference) ** −elasticity`` through the binomial count of
first orders; the economics' estimate from the stored scenario against a hand-weighted
mean. Docking with every mechanism busy: ``tests/data/docking_all_mechanisms.toml``
puts a segment on a plan (``tests/test_docking.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from helpers import (
    assert_one_clear_line,
    everyone_buys_on_day_0,
    list_channel,
    market,
    run_cli,
    simulate,
    write_toml,
    z_bound,
)

from simulation.analysis.economics import first_order_revenue
from simulation.scenario import ScenarioError, scenario_from_dict, with_overrides

BACKENDS = ["numba", "mesa"]
ENTERPRISE = {"name": "enterprise", "price": 50.0}


def two_segments(plan: dict, **over) -> dict:
    """``market`` with a small-team segment on the product's terms and an enterprise one
    on ``plan``."""
    product = over.pop("product", {"business_model": "one_time", "one_time": {"lapse_rate": 0.0}})
    data = everyone_buys_on_day_0(**product)
    data.update(plans=[plan], segments=[
        {"name": "small", "share": 0.7, "price_sensitivity": 0.0},
        {"name": "big", "share": 0.3, "price_sensitivity": 0.0, "plan": plan["name"]}], **over)
    return data


def by_segment(ds, stage: str, day: int = -1) -> dict[str, int]:
    counts = ds.stage_count_by_segment.isel(day=day).sel(stage=stage)
    return {str(g): int(counts.sel(segment=g)) for g in ds.segment.values}


@pytest.mark.parametrize("backend", BACKENDS)
def test_revenue_is_each_segment_times_its_plans_price(backend):
    """Everyone buys once on day 0: revenue = small × 10 + big × 50, to the cent."""
    ds, _ = simulate(two_segments(ENTERPRISE), agents=3_000, days=2, backend=backend)
    n = by_segment(ds, "active")
    assert sum(n.values()) == 3_000 and min(n.values()) > 500
    assert float(ds.revenue.sum()) == 10.0 * n["small"] + 50.0 * n["big"]
    assert float(ds.first_order_revenue.sum()) == float(ds.revenue.sum())


@pytest.mark.parametrize("backend", BACKENDS)
def test_subscriptions_renew_on_their_plans_period_and_churn(backend):
    """Small teams renew weekly and never cancel (days 0, 7, ..., 28: five payments of
    10); the plan bills every 10 days and everyone cancels at the first renewal (one
    payment of 50, all churned on day 10)."""
    plan = {"name": "enterprise", "price": 50.0, "period_days": 10, "churn": 1.0}
    data = two_segments(plan, product={"business_model": "subscription",
                                       "subscription": {"period_days": 7, "churn": 0.0}})
    ds, _ = simulate(data, agents=2_000, days=30, backend=backend)
    n = by_segment(ds, "active", day=0)
    assert float(ds.orders.sum()) == 5 * n["small"] + n["big"]
    assert float(ds.revenue.sum()) == 5 * 10.0 * n["small"] + 50.0 * n["big"]
    churned = ds.churned.sum("channel")
    assert int(churned.sel(day=10)) == n["big"] == int(churned.sum())
    assert by_segment(ds, "churned") == {"small": 0, "big": n["big"]}


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_price_factor_uses_the_segments_price(backend):
    """Everyone considers on day 0; one list channel with a 20% discount reaches them all
    with decision 0.5. Small teams: (10 × 0.8 / 10) ** −1 = 1.25, so 0.625 convert; the
    plan: (40 × 0.8 / 20) ** −1 = 0.625, so 0.3125. Each first order at its discounted
    price."""
    plan = {"name": "enterprise", "price": 40.0, "reference_price": 20.0}
    shop = {**list_channel("shop", 1.0, audience=["considering"], decision=0.5),
            "discount": 0.2}
    data = market(channels=[shop], plans=[plan], initial={"considering": 1.0},
                  forgetting={"aware": 0.0, "considering": 0.0}, segments=[
                      {"name": "small", "share": 0.5, "price_sensitivity": 1.0},
                      {"name": "big", "share": 0.5, "price_sensitivity": 1.0,
                       "plan": "enterprise"}])
    ds, _ = simulate(data, agents=8_000, days=1, backend=backend)
    bought = by_segment(ds, "active", day=0)
    size = {g: bought[g] + by_segment(ds, "considering", day=0)[g] for g in bought}
    assert z_bound(bought["small"], size["small"], 0.625)
    assert z_bound(bought["big"], size["big"], 0.3125)
    assert float(ds.revenue.sum()) == pytest.approx(8.0 * bought["small"] + 32.0 * bought["big"])


def test_a_plans_price_can_change_during_a_run():
    """From day 12 the plan costs 80: the weekly payments of days 0 and 7 are at 50, those
    of days 14, 21 and 28 at 80; the small teams' price is untouched."""
    data = two_segments(ENTERPRISE, product={"business_model": "subscription",
                                             "subscription": {"period_days": 7, "churn": 0.0}})
    data["changes"] = [{"day": 12, "set": {"plans.enterprise.price": 80.0}}]
    ds, _ = simulate(data, agents=2_000, days=30)
    n = by_segment(ds, "active")
    assert float(ds.revenue.sum()) == 5 * 10.0 * n["small"] + (2 * 50.0 + 3 * 80.0) * n["big"]


def test_the_estimate_without_first_order_revenue_weights_segment_prices_by_reach():
    """An older result without the first-order revenue counter: each channel's first order
    is estimated at its segments' prices weighted by share × affinity (the plan's 50, the
    product's 10; the store's 10% discount)."""
    data = two_segments(ENTERPRISE)
    data["channels"] = [list_channel("sales", 0.1, decision=0.1),
                        {**list_channel("store", 0.1, decision=0.1), "discount": 0.1}]
    data["segments"][0]["affinity"] = {"sales": 0.0, "store": 1.0}
    data["segments"][1]["affinity"] = {"sales": 2.0, "store": 1.0}
    scenario = scenario_from_dict(data)
    names = ["sales", "store", "word_of_mouth"]
    ds = xr.Dataset({"conversions": (("day", "channel"), np.ones((1, 3)))},
                    coords={"channel": names}, attrs={"scenario": scenario.to_toml()})
    rev, estimated = first_order_revenue(ds)
    assert estimated
    store = 0.9 * (0.7 * 10.0 + 0.3 * 50.0)
    np.testing.assert_allclose(rev.values, [50.0, store, 0.7 * 10.0 + 0.3 * 50.0])


@pytest.mark.parametrize("change, needle", [
    ({"segments": [{"name": "all", "share": 1.0, "plan": "gold"}]},
     "segment 'all' names unknown plan 'gold'"),
    ({"plans": [{"name": "gold", "price": 0.0}]}, "plans.gold.price"),
    ({"plans": [{"name": "gold", "price": 5.0, "period_days": 0}]}, "plans.gold.period_days"),
    ({"plans": [{"name": "gold", "price": 5.0}, {"name": "gold", "price": 6.0}]},
     "plans names must be unique"),
])
def test_a_bad_plan_is_one_clear_line(tmp_path, change, needle):
    path = write_toml(tmp_path / "s.toml", market(**change))
    rc, _, err = run_cli(["validate", str(path)])
    assert rc == 2, err
    assert_one_clear_line(err, needle)


def test_a_segments_plan_is_fixed_during_a_run():
    data = two_segments(ENTERPRISE)
    data["plans"].append({"name": "gold", "price": 70.0})
    data["changes"] = [{"day": 5, "set": {"segments.small.plan": "gold"}}]
    with pytest.raises(ScenarioError, match="renewal period"):
        scenario_from_dict(data)


def test_plans_can_be_set_whole_where_there_are_none():
    """A variant or ``--set`` may add the plans a scenario lacks (nothing is dropped), and
    then put a segment on one; a list that has entries is still changed entry by entry."""
    base = scenario_from_dict(market())
    sc = with_overrides(base, {"plans": [{"name": "gold", "price": 70.0}],
                               "segments.all.plan": "gold"})
    assert [t.price for t in sc.segment_terms()] == [70.0]
    with pytest.raises(ScenarioError, match="cannot replace every entry"):
        with_overrides(sc, {"plans": []})
