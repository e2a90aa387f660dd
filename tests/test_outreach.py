"""At-risk outreach: counted by hand, docked across backends, and an effect on churn."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import differing, everyone_buys_on_day_0, simulate

import simulation
from simulation.scenario import scenario_from_dict
from simulation.state import CONSENT

DECAY, THRESHOLD, BOOST, COST = 0.01, 0.5, 0.2, 1.5


def contacts_by_hand(days: int, initial: float, quantised: bool) -> int:
    """Contacts of one consenting customer whose health is set on day 0 and then only
    declines: each day their health falls below the threshold, a contact lifts it.
    ``quantised``: health stored in 1/255 steps, as the numba backend keeps it."""
    def store(h):
        h = min(1.0, max(0.0, h))
        return round(h * 255.0) / 255.0 if quantised else h

    stored, last_set, n = store(initial), 0, 0
    for day in range(1, days):
        h = max(0.0, stored - DECAY * (day - last_set))
        yesterday = stored - DECAY * (day - 1 - last_set)
        if h < THRESHOLD <= yesterday:
            n += 1
            stored, last_set = store(h + BOOST), day
    return n


def at_risk_market(**outreach) -> dict:
    data = everyone_buys_on_day_0(business_model="one_time", one_time={"lapse_rate": 0.0})
    data["health"] = {"initial": 0.8, "decay": DECAY}
    data["post_purchase"] = {"satisfaction_weight": 0.0, "opt_out_share": 0.3, "outreach": {
        "enabled": True, "threshold": THRESHOLD, "health_boost": BOOST,
        "cost_per_contact": COST, **outreach}}
    return data


def with_outreach(scenario, **outreach):
    """``scenario`` with outreach on at a threshold that a healthy SaaS customer crosses
    between renewals (health 0.8 at the first payment, 0.002 a day lost)."""
    data = scenario.model_dump(mode="json")
    data["post_purchase"]["outreach"] = {"enabled": True, "threshold": 0.78, **outreach}
    return scenario_from_dict(data)


@pytest.mark.parametrize("backend", ["numba", pytest.param("mesa", marks=pytest.mark.slow)])
def test_contacts_are_those_counted_by_hand(backend):
    days = 200
    ds, model = simulate(at_risk_market(), agents=3000, days=days, backend=backend)
    if backend == "numba":
        consenting = int(((model.population.flags & CONSENT) != 0).sum())
    else:
        consenting = sum(c.consented for c in model.customers)
    assert 0.6 * 3000 < consenting < 0.8 * 3000
    each = contacts_by_hand(days, 0.8, quantised=backend == "numba")
    assert each >= 5
    contacts = ds.outreach_contacts.sum("day")
    assert int(contacts.sum()) == consenting * each
    assert float(ds.programme_cost.sum()) == pytest.approx(consenting * each * COST)
    # a customer is contacted the day they fall below: 31 days after their first order
    first = int(np.flatnonzero(ds.outreach_contacts.sum("channel").values)[0])
    assert first == 31
    assert ds.outreach_contacts.attrs["units"] == "customers"


@pytest.mark.slow
def test_off_or_empty_outreach_changes_nothing_else():
    """A programme that lifts nothing and costs nothing: only its contact count is new
    (each decision has its own random stream)."""
    sc = simulation.load_scenario("scenarios/saas_case.toml")
    base = simulation.run(sc, agents=20_000, days=150, seed=3)
    empty = simulation.run(with_outreach(sc, health_boost=0.0, cost_per_contact=0.0),
                           agents=20_000, days=150, seed=3)
    assert int(empty.outreach_contacts.sum()) > 100
    assert int(base.outreach_contacts.sum()) == 0
    assert differing(base, empty, {"outreach_contacts"}) == []


@pytest.mark.slow
def test_outreach_keeps_customers_whose_churn_follows_health():
    """With churn sensitive to health, contacts lift health and fewer customers churn:
    the same customers and draws with and without it (common random numbers)."""
    sc = simulation.load_scenario("scenarios/saas_case.toml", ["health.churn_sensitivity=4"])
    off = simulation.run(sc, agents=20_000, days=240, seed=5)
    on = simulation.run(with_outreach(sc, health_boost=0.3, cost_per_contact=2.0),
                        agents=20_000, days=240, seed=5)
    assert int(on.outreach_contacts.sum()) > 100
    assert float(on.churned.sum()) < float(off.churned.sum())
    assert float(on.mean_health.isel(day=-1)) > float(off.mean_health.isel(day=-1))
