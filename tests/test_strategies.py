"""Strategy mechanisms (scaling, positioning, post-purchase): each shows its effect in
the expected direction and, where there is a closed form, of the configured size.

Comparisons between two configurations use the same seed: the kernels' random
streams are keyed by (seed, day, customer), so both see the same customers and the
same draws wherever the strategy does not change them (common random numbers).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import market, own_market

import simulation
from simulation.components.scaling import scheduled_budget
from simulation.scenario import Channel, scenario_from_dict


def scenario(**over):
    """The controlled market (helpers.market), 20,000 customers over 60 days unless
    ``simulation`` says otherwise."""
    over.setdefault("simulation", {"agents": 20_000, "days": 60, "seed": 4})
    return scenario_from_dict(market(name="strategy", **over))


def run(sc, **kw):
    """Run ``sc``; a given ``agents`` is the market's size too (a test counts the
    simulated customers)."""
    if "agents" in kw:
        sc = own_market(sc, kw.pop("agents"))
    return simulation.run(sc, **kw)


def social(name="social", budget=100.0, **extra):
    ch = {"name": name, "kind": "paid_social", "effects": {"awareness": 0.1, "consideration": 0.1,
                                                            "decision": 0.05},
          "reach": {"model": "cpm", "cpm": 10.0}, "daily_budget": budget}
    ch.update(extra)
    return ch


def shop(name="shop", freq=0.2, **extra):
    ch = {"name": name, "kind": "marketplace", "effects": {"decision": 0.2},
          "reach": {"model": "list", "frequency": freq, "audience": ["considering"]}}
    ch.update(extra)
    return ch


# -- scaling ----------------------------------------------------------------------

def test_budget_schedules():
    def ch(**sched):
        return Channel(name="c", kind="search", daily_budget=100.0, schedule=sched)

    assert scheduled_budget(ch(), 50) == 100.0
    lin = ch(kind="linear", end_budget=300.0, ramp_days=10)
    assert [scheduled_budget(lin, t) for t in (0, 5, 10, 20)] == [100.0, 200.0, 300.0, 300.0]
    exp = ch(kind="exponential", growth=0.1, cap=150.0)
    assert scheduled_budget(exp, 2) == pytest.approx(121.0)
    assert scheduled_budget(exp, 10) == 150.0
    steps = ch(kind="steps", steps=[[0, 50.0], [7, 80.0], [14, 0.0]])
    assert [scheduled_budget(steps, t) for t in (0, 6, 7, 13, 14)] == [50.0, 50.0, 80.0, 80.0, 0.0]


def test_launch_day_and_ramp_drive_budget_and_spend():
    sc = scenario(channels=[social(budget=100.0, launch_day=10,
                                   schedule={"kind": "linear", "end_budget": 500.0, "ramp_days": 20})])
    ds = run(sc, agents=5_000, days=40)
    budget = ds.budget.sel(channel="social").values
    assert (budget[:10] == 0).all()
    expected = [100.0 + 400.0 * min(1.0, t / 20) for t in range(30)]
    np.testing.assert_allclose(budget[10:], expected)
    np.testing.assert_allclose(ds.spend.sel(channel="social").values, budget)
    assert (ds.reached.sel(channel="social").values[:10] == 0).all()


def test_reach_saturates_with_spend():
    """Poisson reach: ten times the budget reaches far less than ten times the people."""
    reached = []
    for budget in (50.0, 500.0):
        ds = run(scenario(channels=[social(budget=budget)]), agents=20_000, days=5)
        reached.append(float(ds.reached.sel(channel="social").isel(day=0)))
    lam = np.array([50.0, 500.0]) / 10.0 * 1000 / 20_000
    np.testing.assert_allclose(reached, 20_000 * (1 - np.exp(-lam)), rtol=0.05)
    assert reached[1] < 5 * reached[0]


def test_staged_rollout_waits_for_validation_window():
    sc = scenario(channels=[social("first"), social("second"), social("third")],
                  rollout={"order": ["first", "second", "third"], "validation_days": 15,
                           "validation_conversions": 0})
    ds = run(sc, agents=5_000, days=50)
    launch = [int(np.argmax(ds.budget.sel(channel=c).values > 0)) for c in ("first", "second", "third")]
    assert launch == [0, 15, 30]


def test_rollout_also_waits_for_conversions():
    sc = scenario(channels=[social("first", effects={"awareness": 0.1, "consideration": 0.1}),
                            shop("closer"), social("second")],
                  rollout={"order": ["closer", "second"], "validation_days": 5,
                           "validation_conversions": 50})
    ds = run(sc, agents=20_000, days=80)
    won = np.cumsum(ds.conversions.sel(channel="closer").values)
    start = int(np.argmax(ds.budget.sel(channel="second").values > 0))
    first_ok = int(np.argmax(won >= 50))
    assert start == max(first_ok + 1, 5)


def test_a_gate_counts_customers_by_the_credit_it_names():
    """An awareness channel first in the roll-out wins no last-touch customers, so a gate
    on last touch never opens; on first touch, the next channel launches the day after
    the awareness channel's first-touch customers (counted by hand from each customer's
    first touch and first order) reach the gate."""
    from simulation.model import MarketModel

    channels = [social("awareness", effects={"awareness": 0.2}),
                shop("consider", effects={"consideration": 0.2}, freq=0.3,
                     reach={"model": "list", "frequency": 0.3, "audience": ["aware"]}),
                shop("closer"), social("second")]
    gate = {"order": ["awareness", "second"], "validation_days": 5,
            "validation_conversions": 50}
    last = run(scenario(channels=channels, rollout=gate), agents=20_000, days=80)
    assert float(last.budget.sel(channel="second").sum()) == 0  # never launches
    sc = own_market(scenario(channels=channels, rollout={**gate, "credit": "first_touch"}),
                    20_000)
    model = MarketModel(sc, days=80)
    model.run_model()
    ds = model.results()
    pop = model.population
    first = (pop.first_channel == 0) & (pop.acq_channel != 255)
    by_day = np.bincount(pop.acquired_day[first].astype(int), minlength=80)[:80]
    first_ok = int(np.argmax(np.cumsum(by_day) >= 50))
    assert np.cumsum(by_day)[-1] >= 50
    start = int(np.argmax(ds.budget.sel(channel="second").values > 0))
    assert start == max(first_ok + 1, 5)
    assert float(ds.attributed_conversions.sel(attribution_model="first_touch",
                                               channel="awareness")) == by_day.sum()


def test_guardrail_pauses_expensive_channel_only_after_validation_window():
    sc = scenario(channels=[social("costly", budget=2_000.0), shop()],
                  guardrails=[{"channel": "costly", "metric": "cac", "above": 1.0,
                               "action": "pause", "validation_days": 21,
                               "validation_conversions": 10, "every_days": 7}])
    ds = run(sc, agents=20_000, days=60)
    action = ds.guardrail_action.sel(channel="costly").values
    fired = np.flatnonzero(action)
    assert len(fired) == 1 and fired[0] >= 20 and action[fired[0]] == 1
    assert (ds.spend.sel(channel="costly").values[fired[0] + 1 :] == 0).all()
    assert (ds.spend.sel(channel="costly").values[: fired[0] + 1] > 0).all()


def test_guardrail_does_not_fire_on_small_samples():
    sc = scenario(channels=[social("costly", budget=2_000.0), shop()],
                  guardrails=[{"channel": "costly", "metric": "cac", "above": 1.0,
                               "validation_days": 7, "validation_conversions": 10**6}])
    ds = run(sc, agents=20_000, days=60)
    assert (ds.guardrail_action == 0).all()


def test_guardrail_scale_and_hold():
    sc = scenario(channels=[social("good", budget=100.0, schedule={"kind": "linear",
                                                                   "end_budget": 1000.0,
                                                                   "ramp_days": 50}), shop()],
                  guardrails=[{"channel": "good", "metric": "cac", "below": 1e9, "action": "hold",
                               "validation_days": 14, "validation_conversions": 0,
                               "every_days": 14}])
    ds = run(sc, agents=10_000, days=40)
    b = ds.budget.sel(channel="good").values
    assert ds.guardrail_action.sel(channel="good").values[13] == 2
    assert (b[14:] == b[13]).all()  # held where it was on the day it fired


def test_audience_dilution_lowers_effect_per_exposure_at_high_spend():
    rates = {}
    for dilution in (0.0, 2.0):
        ds = run(scenario(channels=[social(budget=3_000.0, dilution=dilution)]), agents=20_000,
                 days=3)
        reached = float(ds.reached.isel(day=0).sel(channel="social"))
        rates[dilution] = float(ds.moved_aware.isel(day=0).sel(channel="social")) / reached
    lam = 3_000.0 / 10.0 * 1000 / 20_000
    assert rates[0.0] == pytest.approx(0.1, rel=0.1)
    assert rates[2.0] == pytest.approx(0.1 / (1 + 2.0 * lam), rel=0.15)


def test_novelty_fades():
    sc = scenario(channels=[social(budget=200.0, novelty={"boost": 1.0, "half_life_days": 5.0},
                                   effects={"awareness": 0.05})])
    ds = run(sc, agents=50_000, days=40)
    per_reach = (ds.moved_aware.sel(channel="social") / ds.reached.sel(channel="social")).values
    # unaware share changes slowly; effect per reach of unaware ~ 0.05 * (1 + 2^(-t/5))
    early, late = per_reach[0], per_reach[-5:].mean()
    unaware0 = 1.0
    assert early / unaware0 == pytest.approx(0.1, rel=0.1)
    assert late < 0.6 * early


# -- positioning -------------------------------------------------------------------

def premium_case(with_marketplace: bool):
    channels = [
        {"name": "site", "kind": "organic", "effects": {"awareness": 0.05, "consideration": 0.1,
                                                         "decision": 0.1},
         "reach": {"model": "fixed", "daily_visitors": 2000.0}, "positioning_signal": 0.5},
    ]
    if with_marketplace:
        channels.append({"name": "discounter", "kind": "marketplace",
                         "effects": {"awareness": 0.05, "consideration": 0.1, "decision": 0.2},
                         "reach": {"model": "fixed", "daily_visitors": 6000.0},
                         "positioning_signal": -0.6, "discount": 0.25, "commission": 0.15})
    return scenario(
        product={"price": 80.0, "reference_price": 60.0, "positioning": "premium",
                 "business_model": "one_time", "one_time": {"lapse_rate": 0.0}},
        segments=[{"name": "connoisseurs", "share": 1.0, "price_sensitivity": 1.0,
                   "brand_sensitivity": 2.0}],
        channels=channels, brand={"build_rate": 0.5, "decay": 0.001},
        simulation={"agents": 30_000, "days": 365, "seed": 3})


@pytest.mark.slow  # two runs of 30,000 customers x a year
def test_premium_product_on_discount_marketplace_erodes_equity_and_price():
    alone = run(premium_case(False))
    both = run(premium_case(True))
    assert alone.brand_equity.values[-1] > alone.brand_equity.values[0]  # premium signal builds
    assert both.brand_equity.values[-1] < both.brand_equity.values[0] - 0.1  # discounter erodes
    # lower equity makes the own site convert worse per visitor
    site_alone = alone.conversions.sel(channel="site").sum() / alone.reached.sel(channel="site").sum()
    site_both = both.conversions.sel(channel="site").sum() / both.reached.sel(channel="site").sum()
    assert float(site_both) < 0.9 * float(site_alone)
    # and the realised price per kept order falls
    def price(ds):
        kept = ds.orders.sum() - ds.returns.sum()
        return float(ds.revenue.sum() / kept)
    assert price(alone) == pytest.approx(80.0)
    assert price(both) < 75.0


def test_channel_specific_message_beats_one_message_everywhere():
    ch = social(message_alignment=0.5, effects={"awareness": 0.1})
    uniform = run(scenario(channels=[ch]), agents=20_000, days=3)
    tailored = run(scenario(channels=[ch], messaging={"strategy": "channel_specific",
                                                      "cost_per_channel_per_day": 50.0}),
                   agents=20_000, days=3)
    def rate(ds):
        return float(ds.moved_aware.isel(day=0)[0] / ds.reached.isel(day=0)[0])
    assert rate(uniform) == pytest.approx(0.05, rel=0.15)
    assert rate(tailored) == pytest.approx(0.10, rel=0.1)
    np.testing.assert_allclose(tailored.fixed_cost.sel(channel="social"), 50.0)


@pytest.mark.parametrize("archetype,expected", [("commodity", 0.02), ("niche", 0.08)])
def test_channel_product_fit_scales_effects(archetype, expected):
    ch = social(effects={"awareness": 0.1}, fit={"commodity": 0.2, "niche": 0.8, "innovative": 1.0})
    sc = scenario(channels=[ch], product={"price": 10.0, "archetype": archetype,
                                          "business_model": "one_time"})
    ds = run(sc, agents=40_000, days=2)
    rate = float(ds.moved_aware.isel(day=0)[0] / ds.reached.isel(day=0)[0])
    assert rate == pytest.approx(expected, rel=0.15)


# -- post-purchase -----------------------------------------------------------------

def subscribers(**post):
    return scenario(
        product={"price": 20.0, "business_model": "subscription",
                 "subscription": {"period_days": 10, "churn": 0.3}},
        word_of_mouth={"enabled": True, "p": 1.0, "q": 0.0, "adoption": "active"},
        post_purchase=post, simulation={"agents": 60_000, "days": 31, "seed": 8})


def test_onboarding_lowers_early_churn_by_the_configured_amount():
    n = 60_000
    plain = run(subscribers())
    onboarded = run(subscribers(onboarding={"enabled": True, "churn_reduction": 0.5,
                                            "effect_days": 30, "cost_per_customer": 2.0}))
    for ds, h in ((plain, 0.3), (onboarded, 0.15)):
        churned = float(ds.churned.sum())  # renewals on days 10, 20, 30
        p = 1 - (1 - h) ** 3
        assert abs(churned - n * p) < 5 * math.sqrt(n * p * (1 - p))
    assert float(onboarded.onboarded.sum()) == n
    assert float(onboarded.programme_cost.sum()) == pytest.approx(2.0 * n)


def test_declining_health_precedes_churn():
    sc = scenario(
        product={"price": 20.0, "business_model": "subscription",
                 "subscription": {"period_days": 30, "churn": 0.15}},
        word_of_mouth={"enabled": True, "p": 0.02, "q": 0.0, "adoption": "active"},
        health={"initial": 0.9, "decay": 0.01, "order_boost": 0.15, "churn_sensitivity": 3.0},
        channels=[{"name": "email", "kind": "email", "effects": {"retention": 0.5},
                   "reach": {"model": "list", "frequency": 0.03, "audience": ["active"]}}],
        simulation={"agents": 30_000, "days": 200, "seed": 2})
    ds = run(sc)
    churners = float(ds.health_at_churn.sum() / ds.churned.sum())
    active = float(ds.mean_health.isel(day=slice(60, None)).mean())
    assert churners < active - 0.05


def repeat_buyers(**post):
    return scenario(
        product={"price": 40.0, "business_model": "repeat"},
        segments=[{"name": "dog_owners", "share": 1.0, "price_sensitivity": 0.0,
                   "purchase_rate": {"shape": 2.0, "mean_days": 110.0},
                   "dropout": {"a": 1.0, "b": 4.0}}],
        word_of_mouth={"enabled": True, "p": 0.05, "q": 0.0, "adoption": "active"},
        post_purchase=post, simulation={"agents": 30_000, "days": 300, "seed": 5})


@pytest.mark.slow  # two runs of 30,000 x 300 days
def test_replenishment_reminders_bring_orders_forward_and_keep_customers():
    base = run(repeat_buyers())
    reminded = run(repeat_buyers(opt_out_share=0.3, reminders={
        "enabled": True, "cycle_days": 70, "response": 0.5, "dropout_reduction": 0.5,
        "cost_per_reminder": 0.1}))
    assert float(reminded.orders.sum()) > 1.1 * float(base.orders.sum())
    assert float(reminded.churn_rate[-1]) < float(base.churn_rate[-1])
    sent = float(reminded.reminders.sum())
    assert sent > 0 and float(reminded.programme_cost.sum()) == pytest.approx(0.1 * sent)
    assert float(reminded.reminder_orders.sum()) == pytest.approx(0.5 * sent, rel=0.05)


def test_personalised_channels_reach_only_consenting_customers():
    ch = {"name": "tailored", "kind": "email", "personalised": True, "effects": {},
          "reach": {"model": "list", "frequency": 0.5, "audience": ["unaware"]}}
    ds = run(scenario(channels=[ch], post_purchase={"opt_out_share": 0.4}), agents=50_000, days=1)
    reached = float(ds.reached.isel(day=0)[0])
    p = 0.6 * 0.5
    assert abs(reached - 50_000 * p) < 5 * math.sqrt(50_000 * p * (1 - p))


@pytest.mark.slow  # larger runs
def test_community_grows_and_members_churn_less():
    plain = run(repeat_buyers())
    com = run(repeat_buyers(community={"enabled": True, "join_rate": 0.3, "half_size": 500.0,
                                       "churn_reduction": 0.6, "cost_per_member_day": 0.01}))
    size = com.community_size.values
    assert size[-1] > 1000 and (np.diff(size[:100]) >= -50).all()
    assert float(com.churn_rate[-1]) < float(plain.churn_rate[-1])
    assert float(com.programme_fixed_cost.sum()) > 0


def test_flexible_returns_lift_conversion_and_returns():
    def case(flexible):
        return scenario(channels=[social(), shop()], product={
            "price": 50.0, "return_rate": 0.05, "return_cost": 5.0, "business_model": "one_time"},
            post_purchase={"returns": {"flexible": flexible, "conversion_lift": 0.3,
                                       "extra_return_rate": 0.1}})
    strict, flexible = run(case(False)), run(case(True))
    assert float(flexible.customers.sum()) > 1.05 * float(strict.customers.sum())
    share = lambda ds: float(ds.returns.sum() / ds.orders.sum())  # noqa: E731
    assert share(strict) == pytest.approx(0.05, abs=0.02)
    assert share(flexible) == pytest.approx(0.15, abs=0.03)


@pytest.mark.slow  # larger runs
def test_unboxing_shares_feed_word_of_mouth():
    def case(share_rate):
        return scenario(channels=[social(budget=50.0), shop()],
                        word_of_mouth={"enabled": True, "p": 0.0, "q": 0.2, "advocacy": 0.1},
                        post_purchase={"packaging": {"quality": 0.9, "share_rate": share_rate}},
                        simulation={"agents": 30_000, "days": 120, "seed": 1})
    quiet, sharing = run(case(0.0)), run(case(0.5))
    assert float(sharing.shares.sum()) > 0 and float(quiet.shares.sum()) == 0
    wom = lambda ds: float(ds.moved_aware.sel(channel="word_of_mouth").sum())  # noqa: E731
    assert wom(sharing) > 1.1 * wom(quiet)


@pytest.mark.slow  # larger runs
def test_feedback_surveys_answered_at_the_response_rate():
    ds = run(repeat_buyers(feedback={"enabled": True, "response_rate": 0.25, "cost_per_survey": 0.2}))
    orders = float(ds.orders.sum())
    answered = float(ds.feedback.sum())
    assert abs(answered - 0.25 * orders) < 5 * math.sqrt(orders * 0.25 * 0.75)
    assert float(ds.programme_cost.sum()) == pytest.approx(0.2 * orders)


def test_capacity_limit_caps_daily_conversions_and_counts_lost_leads():
    sales = {"name": "sales", "kind": "direct_sales", "effects": {"decision": 1.0},
             "reach": {"model": "list", "frequency": 1.0, "audience": ["considering"]},
             "capacity": 25, "lead_decay": 0.2}
    sc = scenario(channels=[social(budget=500.0, effects={"awareness": 0.3, "consideration": 0.3}),
                            sales])
    ds = run(sc, agents=20_000, days=40)
    conv = ds.conversions.sel(channel="sales").values
    assert conv.max() == 25 and (conv <= 25).all()
    assert int(ds.leads_lost.sel(channel="sales").sum()) > 100
