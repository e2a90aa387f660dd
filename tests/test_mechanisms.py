"""Mechanisms of the core checked against independent closed forms.

Each test builds a controlled scenario whose dynamics have a known answer
(a Markov chain, a geometric lifetime, the Bass curve) and compares the
simulated counts with it within sampling error. Customers are independent
whenever reach does not depend on the population's state (``list`` reach,
no word of mouth), so each count is binomial and a z-score bound is exact.
"""

from __future__ import annotations

import numpy as np
import pytest

import simulation
from simulation.scenario import scenario_from_dict

STAGES = ["unaware", "aware", "considering", "active", "churned"]


def base(**over) -> dict:
    data = {
        "name": "controlled",
        "simulation": {"agents": 10_000, "days": 50, "seed": 7},
        "product": {"price": 10.0, "business_model": "one_time", "one_time": {"lapse_rate": 0.0}},
        "segments": [{"name": "all", "share": 1.0, "price_sensitivity": 0.0}],
        "channels": [],
        "word_of_mouth": {"enabled": False},
    }
    data.update(over)
    return data


def list_channel(name, freq, audience=STAGES, **effects) -> dict:
    return {"name": name, "kind": "email", "effects": effects,
            "reach": {"model": "list", "frequency": freq, "audience": list(audience)}}


def z_bound(observed, n, p, z=5.0, slack=0.0):
    """|observed - n p| within z binomial standard deviations (plus ``slack`` customers)."""
    sd = np.sqrt(n * p * (1 - p))
    return np.abs(observed - n * p) <= z * sd + slack + 1e-9


# -- the journey is the Markov chain of its daily transition probabilities -----

def markov_matrix(channels: list[dict], forget_aware: float, forget_considering: float,
                  lapse: float) -> np.ndarray:
    """The 5x5 daily transition matrix, written from the model's definition, not the kernel."""
    def moved(stage_effect: str, stage: str) -> float:
        stay = 1.0
        for c in channels:
            if stage in c["reach"]["audience"]:
                stay *= 1.0 - c["reach"]["frequency"] * c["effects"].get(stage_effect, 0.0)
        return 1.0 - stay

    a0, a1 = moved("awareness", "unaware"), moved("consideration", "aware")
    a2, w = moved("decision", "considering"), moved("retention", "churned")
    P = np.zeros((5, 5))
    P[0, 1], P[0, 0] = a0, 1 - a0
    P[1, 2], P[1, 0] = a1, (1 - a1) * forget_aware
    P[1, 1] = 1 - P[1].sum()
    P[2, 3], P[2, 1] = a2, (1 - a2) * forget_considering
    P[2, 2] = 1 - P[2].sum()
    P[3, 4], P[3, 3] = lapse, 1 - lapse
    P[4, 3], P[4, 4] = w, 1 - w
    return P


def test_stage_occupancy_equals_markov_chain():
    channels = [
        list_channel("social", 0.3, awareness=0.05, consideration=0.02),
        list_channel("search", 0.1, audience=["aware", "considering", "churned"],
                     consideration=0.15, decision=0.1, retention=0.05),
        list_channel("shop", 0.05, decision=0.3),
    ]
    data = base(channels=channels, forgetting={"aware": 0.02, "considering": 0.05},
                product={"price": 10.0, "business_model": "one_time",
                         "one_time": {"lapse_rate": 0.01}})
    n, days = 200_000, 240
    ds = simulation.run(scenario_from_dict(data), agents=n, days=days, seed=11)
    P = markov_matrix(channels, 0.02, 0.05, 0.01)
    x = np.zeros(5)
    x[0] = 1.0
    expected = []
    for _ in range(days):
        x = x @ P
        expected.append(x.copy())
    expected = np.array(expected)  # row t: end of day t
    observed = ds.stage_count.sel(stage=STAGES).values
    assert (observed.sum(axis=1) == n).all()
    ok = z_bound(observed, n, expected)
    assert ok.all(), np.argwhere(~ok)[:5]
    # the comparison has power: the chain moves a lot over the run
    assert expected[-1, 3] > 0.05 and expected[-1, 0] < 0.7


def test_markov_check_detects_a_wrong_rate():
    """The same comparison fails when the chain is built with a 10% different effect."""
    channels = [list_channel("social", 0.3, awareness=0.05, consideration=0.02)]
    data = base(channels=channels)
    n, days = 200_000, 60
    ds = simulation.run(scenario_from_dict(data), agents=n, days=days, seed=3)
    wrong = [list_channel("social", 0.3, awareness=0.055, consideration=0.02)]
    P = markov_matrix(wrong, 0.0, 0.0, 0.0)
    x = np.eye(5)[0]
    for _ in range(days):
        x = x @ P
    assert not z_bound(ds.stage_count.isel(day=-1).values, n, x).all()


# -- geometric churn --------------------------------------------------------------

@pytest.mark.parametrize("period,churn", [(1, 0.05), (30, 0.2)])
def test_subscription_churn_gives_geometric_lifetime(period, churn):
    """Everyone subscribes on day 0; churn h at each renewal gives a mean lifetime of 1/h periods."""
    data = base(
        product={"price": 10.0, "business_model": "subscription",
                 "subscription": {"period_days": period, "churn": churn}},
        word_of_mouth={"enabled": True, "p": 1.0, "q": 0.0, "adoption": "active"},
    )
    n = 100_000
    periods = int(np.ceil(np.log(1e-7) / np.log(1 - churn)))  # survival (1-h)^k < 1e-7
    days = period * periods + 1
    ds = simulation.run(scenario_from_dict(data), agents=n, days=days, seed=5)
    assert int(ds.conversions.isel(day=0).sum()) == n
    churned = ds.churned.sum("channel").values
    assert churned.sum() == n
    lifetime = (np.arange(days) * churned).sum() / n  # all were acquired on day 0
    expected = period / churn
    se = period * np.sqrt(1 - churn) / churn / np.sqrt(n)
    assert abs(lifetime - expected) < 5 * se, (lifetime, expected)
    # each customer pays once per period they stay: mean orders = 1/h
    orders = float(ds.orders.sum()) / n
    assert abs(orders - 1 / churn) < 5 * np.sqrt(1 - churn) / churn / np.sqrt(n)
    # renewals happen only on multiples of the period after acquisition
    days_with_churn = np.flatnonzero(churned)
    assert (days_with_churn % period == 0).all()


# -- word of mouth reproduces Bass diffusion --------------------------------------

def bass(t, p, q):
    e = np.exp(-(p + q) * t)
    return (1 - e) / (1 + q / p * e)


def test_word_of_mouth_alone_follows_the_bass_curve():
    p, q, n, days = 0.002, 0.04, 200_000, 365
    data = base(word_of_mouth={"enabled": True, "p": p, "q": q, "advocacy": 1.0,
                               "adoption": "active"})
    ds = simulation.run(scenario_from_dict(data), agents=n, days=days, seed=2)
    F = ds.stage_count.sel(stage="active").values / n
    # the model's daily recursion: hazard p + q F(yesterday)
    Fd, f = [], 0.0
    for _ in range(days):
        f = f + (1 - f) * (p + q * f)
        Fd.append(f)
    Fd = np.array(Fd)
    assert np.abs(F - Fd).max() < 0.01
    # the continuous Bass curve, up to the one-day step (Euler error < 0.01 for these p, q)
    t = np.arange(1, days + 1)
    assert np.abs(F - bass(t, p, q)).max() < 0.02
    # S-shape: adoption speeds up, peaks near t* = ln(q/p)/(p+q), then slows
    adopt = np.diff(F)
    peak = np.argmax(np.convolve(adopt, np.ones(7) / 7, mode="same"))
    t_star = np.log(q / p) / (p + q)
    assert abs(peak - t_star) < 10
    assert (ds.conversions.sel(channel="word_of_mouth").sum() == ds.customers.sum()).item()


# -- capacity: daily service is capped, excess leads wait and decay ----------------

def test_capacity_caps_served_leads_and_counts_decay():
    sales = {"name": "sales", "kind": "direct_sales", "effects": {"decision": 0.5},
             "reach": {"model": "list", "frequency": 0.5, "audience": ["considering"]},
             "capacity": 40, "lead_decay": 0.1}
    awareness = list_channel("ads", 0.5, awareness=0.2, consideration=0.2)
    data = base(channels=[awareness, sales])
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
    data = base(
        product={"price": 10.0, "business_model": "subscription",
                 "subscription": {"period_days": 7, "churn": 0.2}},
        word_of_mouth={"enabled": True, "p": 1.0, "q": 0.0, "adoption": "active"},
    )
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
    data = base(channels=channels, product={"price": 12.0, "business_model": "one_time",
                                            "one_time": {"lapse_rate": 0.01}})
    ds = simulation.run(scenario_from_dict(data), agents=20_000, days=80, seed=2)
    np.testing.assert_array_equal(ds.active.sum("channel"), ds.stage_count.sel(stage="active"))
    first = float(ds.first_order_revenue.sum())
    assert first == pytest.approx(12.0 * float(ds.customers.sum()))
    np.testing.assert_allclose(ds.attributed_revenue.sum("channel"), first)
    np.testing.assert_allclose(ds.attributed_conversions.sum("channel"), float(ds.customers.sum()))
