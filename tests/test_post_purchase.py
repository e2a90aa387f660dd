"""Onboarding, replenishment reminders and the warnings about programmes that do nothing.

Onboarding's churn cut covers every decision to leave within ``effect_days`` of the first
order and the customer's first decision wherever it falls (a subscriber's first renewal,
a repeat buyer's first drop-out chance): checked against survival products and Beta
moments on both backends. Reminders bring order chances forward without changing the
drop-out at each one: checked against the drop-out probability by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import everyone_buys_on_day_0, run_cli, simulate, z_bound

import simulation
from simulation.scenario import ScenarioError, inert_programmes, scenario_from_dict
from simulation.state import CHURNED, ONBOARDED

BOTH = pytest.mark.parametrize("backend", ["numba", pytest.param("mesa", marks=pytest.mark.slow)])
SIZES = {"numba": 60_000, "mesa": 6_000}


# -- onboarding on subscriptions: the renewals it covers ---------------------------------

PERIOD, CHURN, CUT, REACH = 10, 0.3, 0.5, 0.6


@BOTH
@pytest.mark.parametrize("effect_days, covered", [(3, 1), (25, 2)])
def test_onboarding_cuts_the_renewals_it_covers(backend, effect_days, covered):
    """Everyone subscribes on day 0 (renewals every 10 days, 30% cancel at each); 60% are
    enrolled. An enrolled subscriber cancels with 0.3 x 0.5 at the renewals within
    ``effect_days`` and at the first renewal even when it falls later (3 days: the first
    only; 25 days: days 10 and 20), at 0.3 after. Still a customer on day t with
    probability 0.6 S_on(t) + 0.4 S_off(t), products over the renewals by day t."""
    data = everyone_buys_on_day_0(business_model="subscription",
                                  subscription={"period_days": PERIOD, "churn": CHURN})
    data["post_purchase"] = {"onboarding": {"enabled": True, "reach": REACH,
                                            "churn_reduction": CUT, "effect_days": effect_days}}
    n, days = SIZES[backend], 4 * PERIOD + 1
    ds, model = simulate(data, n, days, seed=4, backend=backend)
    renewals = np.arange(days) // PERIOD  # renewals passed by the end of day t
    cut = np.where(np.arange(1, 5) <= covered, CHURN * (1 - CUT), CHURN)
    s_on = np.concatenate([[1.0], np.cumprod(1 - cut)])[renewals]
    s_off = (1 - CHURN) ** renewals
    enrolled = int(ds.onboarded.sum())
    assert z_bound(enrolled, n, REACH)
    pop = model.population
    assert int(((pop.flags & ONBOARDED) != 0).sum()) == enrolled
    # given who was enrolled, each group's survivors are binomial around its product
    on = (pop.flags & ONBOARDED) != 0
    for group, size, survival in ((on, enrolled, s_on), (~on, n - enrolled, s_off)):
        still = int((pop.stage[group] != CHURNED).sum())
        assert z_bound(still, size, survival[-1]), (still, size * survival[-1])
    active = ds.stage_count.sel(stage="active").values
    ok = z_bound(active, n, REACH * s_on + (1 - REACH) * s_off)
    assert ok.all(), np.flatnonzero(~ok)[:5]


def test_a_short_onboarding_acts_on_a_monthly_subscription():
    """The user's case (issue 15): a 14-day effect on monthly billing changes the churn."""
    def churned(reduction):
        data = everyone_buys_on_day_0(business_model="subscription",
                                      subscription={"period_days": 30, "churn": 0.2})
        data["post_purchase"] = {"onboarding": {"enabled": True, "effect_days": 14,
                                                "churn_reduction": reduction}}
        ds, _ = simulate(data, 20_000, 31, seed=2)
        return float(ds.churned.sum())
    assert churned(0.0) == pytest.approx(0.2 * 20_000, rel=0.05)
    assert churned(0.5) == pytest.approx(0.1 * 20_000, rel=0.07)


# -- onboarding on repeat purchases: the first drop-out chance -------------------------------

A, B = 2.0, 8.0  # drop-out p ~ Beta(2, 8): E[p] = 0.2, E[p^2] = 6 / 110


@BOTH
@pytest.mark.parametrize("reduction", [0.0, 0.5])
def test_onboarding_cuts_a_repeat_buyers_first_dropout_chance(backend, reduction):
    """Repeat buyers with an order chance every ~5 days, all bought on day 0, all enrolled
    with a 1-day effect (so only the first drop-out chance rule acts). No one can drop out
    at the first chance (BG/NBD); at the second a buyer drops out with p (1 - cut), and at
    the third with p again. Among those who reached a chance, the share who dropped out
    there is E[p](1 - cut), then E[p (1 - p (1 - cut))] / E[1 - p (1 - cut)] (survivors of
    the second have a lower p): Beta moments, and rates independent of p, so the run's end
    censors no differently."""
    data = everyone_buys_on_day_0(business_model="repeat")
    data["segments"] = [{"name": "all", "share": 1.0, "price_sensitivity": 0.0,
                         "purchase_rate": {"shape": 50.0, "mean_days": 5.0},
                         "dropout": {"a": A, "b": B}}]
    data["post_purchase"] = {"onboarding": {"enabled": True, "churn_reduction": reduction,
                                            "effect_days": 1}}
    n = {"numba": 40_000, "mesa": 4_000}[backend]
    _, model = simulate(data, n, 40, seed=6, backend=backend)
    pop = model.population
    orders = pop.orders.astype(np.int64)
    churned = pop.stage == CHURNED
    mean_p, mean_p2 = A / (A + B), A * (A + 1) / ((A + B) * (A + B + 1))
    kept = 1 - reduction
    second = mean_p * kept
    third = (mean_p - kept * mean_p2) / (1 - kept * mean_p)
    for k, expected in ((2, second), (3, third)):
        reached = int((orders > k).sum() + (churned & (orders == k)).sum())
        dropped = int((churned & (orders == k)).sum())
        assert reached > 0.8 * n * (1 - mean_p) ** (k - 2)  # most reached it within the run
        assert z_bound(dropped, reached, expected), (k, dropped / reached, expected)


# -- reminders: order chances come sooner, the drop-out at each is the same ----------------

P_DROP = 0.2  # Beta(2000, 8000): every buyer's p is 0.2 within 0.004


def reminder_market(reminders: bool) -> dict:
    data = everyone_buys_on_day_0(business_model="repeat")
    data["segments"] = [{"name": "all", "share": 1.0, "price_sensitivity": 0.0,
                         "purchase_rate": {"shape": 2.0, "mean_days": 40.0},
                         "dropout": {"a": 2000.0, "b": 8000.0}}]
    data["post_purchase"] = {"opt_out_share": 0.0, "reminders": {
        "enabled": reminders, "cycle_days": 20, "response": 0.6, "dropout_reduction": 0.0}}
    return data


def test_reminders_without_a_dropout_reduction_keep_the_dropout_per_chance():
    """With ``dropout_reduction = 0`` a reminder only brings an order chance forward: the
    share of drop-out chances that end in a drop-out stays p (0.2) with and without
    reminders, while the chances per customer-year of active life rise; so do the drop-outs
    per customer-year, by as much. That is why the churn rate of a run rises with
    reminders (the same lifetime orders, sooner), unless dropout_reduction keeps buyers."""
    n, days = 30_000, 200
    per_year = {}
    for reminders in (False, True):
        ds, model = simulate(reminder_market(reminders), n, days, seed=9)
        orders = model.population.orders.astype(np.int64)
        dropouts = float(ds.churned.sum())
        # every order chance after the first repeat order is a drop-out chance: it ends in
        # an order or a drop-out (no win-backs here)
        chances = float((np.maximum(orders - 2, 0)).sum()) + dropouts
        assert z_bound(dropouts, chances, P_DROP, slack=0.01 * chances), (dropouts / chances)
        years = float(ds.stage_count.sel(stage="active").sum()) / 365.0
        per_year[reminders] = (dropouts / years, chances / years)
        if reminders:
            assert float(ds.reminder_orders.sum()) > 0.1 * float(ds.orders.sum())
    (d0, c0), (d1, c1) = per_year[False], per_year[True]
    assert c1 > 1.3 * c0  # reminders bring chances forward
    assert d1 / d0 == pytest.approx(c1 / c0, rel=0.05)  # and drop-outs follow them


# -- programmes that would do nothing are warned about ------------------------------------

def saas(**changes) -> simulation.Scenario:
    data = simulation.load_scenario("scenarios/saas_case.toml").model_dump(mode="json")
    for path, value in changes.items():
        node = data
        *parents, last = path.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return scenario_from_dict(data)


@pytest.mark.parametrize("changes, needle", [
    ({"post_purchase.onboarding": {"enabled": True, "churn_reduction": 0.0},
      "health.churn_sensitivity": 0.0}, "churn_reduction is 0"),
    ({"post_purchase.onboarding": {"enabled": True, "reach": 0.0}}, "reach = 0"),
    ({"post_purchase.reminders": {"enabled": True}}, "only on repeat purchases"),
    ({"post_purchase.outreach": {"enabled": True}, "health.churn_sensitivity": 0.0},
     "contacts cost without keeping anyone"),
    ({"post_purchase.outreach": {"enabled": True, "threshold": 0.0}}, "never falls below"),
    ({"post_purchase.community": {"enabled": True, "join_rate": 0.0}}, "no one joins"),
    ({"post_purchase.feedback": {"enabled": True}, "product.business_model": "one_time"},
     "lapse does not depend on health"),
])
def test_programmes_that_change_nothing_are_warned_about(changes, needle):
    warnings = inert_programmes(saas(**changes))
    assert len(warnings) == 1 and needle in warnings[0], warnings
    assert "enabled = false" in warnings[0]


def test_programmes_that_act_are_not_warned_about():
    assert inert_programmes(saas(**{
        "post_purchase.onboarding": {"enabled": True, "churn_reduction": 0.0},  # health acts
        "post_purchase.outreach": {"enabled": True},
        "post_purchase.community": {"enabled": True}})) == []
    # a programme given its effect by a scheduled change is not warned about
    data = saas(**{"post_purchase.community": {"enabled": True, "join_rate": 0.0}}
                ).model_dump(mode="json")
    data["changes"] = [{"day": 10, "set": {"post_purchase.community.join_rate": 0.1}}]
    assert inert_programmes(scenario_from_dict(data)) == []


def test_validate_prints_an_inert_programme_as_one_warning():
    rc, _, err = run_cli(["validate", "scenarios/saas_case.toml", "--set",
                          "post_purchase.reminders.enabled=true"])
    assert rc == 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning") and "reminders" in lines[0]


def test_onboarding_days_is_gone_and_the_error_names_effect_days():
    with pytest.raises(ScenarioError) as exc:
        saas(**{"post_purchase.onboarding": {"enabled": True, "days": 14}})
    assert exc.value.field == "post_purchase.onboarding.days"
    assert "effect_days" in str(exc.value) and "\n" not in str(exc.value)
