"""Mechanisms of the core checked against what they must add up to.

Capacity caps the leads served and counts the rest; the cohort-retention counter is the
survival curve of a cohort; the per-channel books (active customers, attributed
revenue) add up. The closed forms of the journey (Markov occupancy, geometric
lifetimes, the Bass curve, BG/NBD repeat purchases) are in
``validation/test_closed_forms.py``, on both backends.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import everyone_buys_on_day_0, list_channel, market, z_bound

import simulation
from simulation.scenario import scenario_from_dict

# -- capacity: daily service is capped, excess leads wait and decay ----------------

def test_capacity_caps_served_leads_and_counts_decay():
    sales = {"name": "sales", "kind": "direct_sales", "effects": {"decision": 0.5},
             "reach": {"model": "list", "frequency": 0.5, "audience": ["considering"]},
             "capacity": 40, "lead_decay": 0.1}
    awareness = list_channel("ads", 0.5, awareness=0.2, consideration=0.2)
    data = market(channels=[awareness, sales])
    ds = simulation.run(scenario_from_dict(data), agents=20_000, days=60, seed=1)
    served = ds.leads_served.sel(channel="sales").values
    assert served.max() == 40 and (served <= 40).all()
    conv = ds.conversions.sel(channel="sales").values
    assert (conv <= 40).all()
    lost = int(ds.leads_lost.sel(channel="sales").sum())
    assert lost > 0
    # closing rate of served leads is the decision effect
    rate = conv.sum() / served.sum()
    assert abs(rate - 0.5) < 5 * np.sqrt(0.25 / served.sum())
    # leads are conserved: new = served + lost + still waiting (<= one day's backlog)
    new = int(ds.leads_new.sel(channel="sales").sum())
    waiting = new - int(served.sum()) - lost
    assert 0 <= waiting <= int(ds.stage_count.isel(day=-1).sel(stage="considering"))


# -- bookkeeping that later analysis relies on ------------------------------------

def test_cohort_retention_is_the_survival_curve():
    """Everyone subscribes on day 0; churn h at weekly renewals: retained at week k = (1-h)^k."""
    data = everyone_buys_on_day_0(business_model="subscription",
                                  subscription={"period_days": 7, "churn": 0.2})
    n = 100_000
    ds = simulation.run(scenario_from_dict(data), agents=n, days=70, seed=3)
    curve = ds.cohort_retention.sel(channel="word_of_mouth", cohort_week=0).values
    k = np.arange(curve.size)
    ok = ~np.isnan(curve)
    assert ok.sum() == 10  # weeks 0..9 lie within 70 days
    assert z_bound(curve[ok] * n, n, 0.8 ** k[ok]).all()
    assert np.isnan(ds.cohort_retention.sel(cohort_week=slice(1, None))).all()  # nobody else


def test_active_by_channel_and_attributed_revenue_add_up():
    channels = [list_channel("social", 0.3, awareness=0.05, consideration=0.05),
                list_channel("shop", 0.1, audience=["considering"], decision=0.2)]
    data = market(channels=channels, product={"price": 12.0, "business_model": "one_time",
                                            "one_time": {"lapse_rate": 0.01}})
    ds = simulation.run(scenario_from_dict(data), agents=20_000, days=80, seed=2)
    np.testing.assert_array_equal(ds.active.sum("channel"), ds.stage_count.sel(stage="active"))
    first = float(ds.first_order_revenue.sum())
    assert first == pytest.approx(12.0 * float(ds.customers.sum()))
    np.testing.assert_allclose(ds.attributed_revenue.sum("channel"), first)
    np.testing.assert_allclose(ds.attributed_conversions.sum("channel"), float(ds.customers.sum()))
