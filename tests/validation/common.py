"""What the validation tests share: the laws every run obeys and the random scenarios
they are checked on, and the closed forms the mechanisms are compared with.

The builders of controlled markets and the runner (``market``, ``simulate``...) are in
``tests/helpers.py``; ``tests/test_conservation.py`` applies the laws to the examples.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import strategies as st

from simulation.state import EXISTING

# -- conservation laws ----------------------------------------------------------------------


def check_customers_conserved(ds: xr.Dataset) -> None:
    n = ds.attrs["agents"]
    sc = ds.stage_count
    assert (sc.sum("stage") == n).all()
    assert (sc >= 0).all()
    flows = ds[["conversions", "winbacks", "churned", "moved_aware"]].sum("channel")
    prev = sc.shift(day=1).fillna(0)
    prev.loc[{"day": 0}] = ds.stage_count_start  # all unaware, or the warm start's
    assert int(ds.stage_count_start.sum()) == n
    d = sc - prev
    # active customers change only by conversions, win-backs and churn
    np.testing.assert_array_equal(
        d.sel(stage="active"), flows.conversions + flows.winbacks - flows.churned)
    # churned customers: churn in, win-backs out
    np.testing.assert_array_equal(d.sel(stage="churned"), flows.churned - flows.winbacks)
    # unaware customers: forgetting in, first exposures that worked out
    np.testing.assert_array_equal(d.sel(stage="unaware"), ds.forgot_aware - flows.moved_aware)


def check_money_adds_up(ds: xr.Dataset, model) -> None:
    sc = model.scenario
    p = sc.product
    tot = ds.sum("day")
    kept = tot.orders - tot.returns
    nch = ds.sizes["channel"]
    # a customer pays their segment's price (its plan's, else the product's) at their
    # acquisition channel's discount on every order: their revenue is a whole number of
    # kept orders at that price, and the kept orders add up to each channel's count
    multiplier = np.array([1.0 - c.discount for c in sc.channels] + [1.0])
    segment_price = np.array([t.price for t in sc.segment_terms()])
    pop = model.population
    acq = pop.acq_channel.astype(np.int64)
    bought = acq != 255
    unit = segment_price[pop.segment[bought].astype(np.int64)] * multiplier[acq[bought]]
    orders_paid = pop.revenue[bought].astype(np.float64) / unit
    whole = np.rint(orders_paid)
    assert np.abs(orders_paid - whole).max(initial=0.0) < 0.05  # the ledgers are float32
    np.testing.assert_array_equal(np.bincount(acq[bought], weights=whole, minlength=nch), kept)
    np.testing.assert_allclose(tot.revenue, np.bincount(acq[bought], weights=whole * unit,
                                                        minlength=nch), rtol=1e-9, atol=1e-6)
    # a refund is one order's price: between the cheapest and the dearest segment's
    lowest, highest = segment_price.min() * multiplier, segment_price.max() * multiplier
    assert (tot.refunds >= tot.returns * lowest * (1 - 1e-9) - 1e-6).all()
    assert (tot.refunds <= tot.returns * highest * (1 + 1e-9) + 1e-6).all()
    per_order = model.post_purchase.per_order_cost()  # delivery, packaging, tracking
    np.testing.assert_allclose(tot.cogs, tot.orders * p.unit_cost, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(tot.fulfilment_cost, tot.orders * (p.fulfilment_cost + per_order),
                               rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(tot.return_cost, tot.returns * p.return_cost, rtol=1e-9, atol=1e-6)
    rates = np.array([c.commission for c in sc.channels] + [0.0])
    fees = np.array([c.fee_per_order for c in sc.channels] + [0.0])
    np.testing.assert_allclose(tot.commission, rates * tot.revenue, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(tot.order_fees, fees * tot.orders, rtol=1e-9, atol=1e-6)
    costs = tot.cogs + tot.fulfilment_cost + tot.return_cost + tot.commission + tot.order_fees
    np.testing.assert_allclose(tot.gross_margin, tot.revenue - costs, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(tot.contribution,
                               tot.gross_margin - tot.media_spend - tot.programme_cost,
                               rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(tot.profit, tot.contribution - tot.fixed_cost, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(tot.acquisition_programme_cost,
                               tot.onboarded * sc.post_purchase.onboarding.cost_per_customer,
                               rtol=1e-9, atol=1e-6)
    # programme costs add up from their counts
    pp = sc.post_purchase
    expected_programmes = (
        tot.onboarded * (pp.onboarding.cost_per_customer if pp.onboarding.enabled else 0.0)
        + tot.reminders * pp.reminders.cost_per_reminder
        + (tot.orders * pp.feedback.cost_per_survey if pp.feedback.enabled else 0.0))
    np.testing.assert_allclose(tot.programme_cost, expected_programmes, rtol=1e-9, atol=1e-6)
    # per-customer ledgers (float32, kept by the kernels) agree with the channel totals
    by_rev = np.bincount(acq[bought], weights=pop.revenue[bought].astype(np.float64), minlength=nch)
    by_gm = np.bincount(acq[bought], weights=pop.margin[bought].astype(np.float64), minlength=nch)
    scale = max(1.0, float(np.abs(tot.revenue).max()))
    np.testing.assert_allclose(by_rev, tot.revenue, atol=1e-4 * scale)
    np.testing.assert_allclose(by_gm, tot.gross_margin, atol=1e-4 * scale)
    existing = (pop.flags & EXISTING) != 0  # a warm start's: their first orders came before
    if not existing.any():
        assert int(pop.orders.sum()) == int(tot.orders.sum())
    assert int((bought & ~existing).sum()) == int(tot.conversions.sum())
    # the firm's P&L is the sum of the channels' and the firm-wide programme costs
    assert model.firm.revenue == pytest.approx(float(tot.revenue.sum()))
    assert model.firm.profit == pytest.approx(
        float(tot.profit.sum()) - float(ds.programme_fixed_cost.sum()))
    # spend follows each reach model's price; fixed costs accrue on the days a channel runs
    creative = (sc.messaging.cost_per_channel_per_day
                if sc.messaging.strategy == "channel_specific" else 0.0)
    for i, c in enumerate(sc.channels):
        media = ds.media_spend.isel(channel=i)
        reached = ds.reached.isel(channel=i)
        if c.reach.model == "cpc":
            np.testing.assert_allclose(media, reached * c.reach.cpc)
        elif c.reach.model == "list":
            np.testing.assert_allclose(media, reached * c.reach.cost_per_contact)
        elif c.reach.model == "fixed":
            assert (media == 0).all()
        else:
            np.testing.assert_allclose(media, ds.budget.isel(channel=i) * (reached > 0 ) +
                                       media * (reached == 0))
        running = ds.running.isel(channel=i)
        np.testing.assert_allclose(ds.fixed_cost.isel(channel=i),
                                   running * (c.fixed_daily_cost + creative))
        assert (reached.where(running == 0, 0) == 0).all()  # a channel that is off reaches nobody


# -- random valid scenarios ------------------------------------------------------------------

prob = st.floats(0.0, 1.0)
small_prob = st.floats(0.0, 0.3)
money = st.floats(0.0, 50.0)
stage_names = ["unaware", "aware", "considering", "active", "churned"]


@st.composite
def channels(draw, index):
    model = draw(st.sampled_from(["cpm", "cpc", "fixed", "list"]))
    reach = {"model": model, "cpm": draw(st.floats(1.0, 30.0)), "cpc": draw(st.floats(0.1, 5.0)),
             "daily_visitors": draw(st.floats(0.0, 500.0)), "frequency": draw(small_prob),
             "cost_per_contact": draw(st.floats(0.0, 0.05)),
             "max_daily_reach": draw(st.floats(0.01, 1.0))}
    if draw(st.booleans()):
        reach["audience"] = draw(st.lists(st.sampled_from(stage_names), min_size=1, max_size=5,
                                          unique=True))
    cap = draw(st.one_of(st.none(), st.integers(0, 30)))
    return {
        "name": f"ch{index}", "kind": draw(st.sampled_from(["search", "marketplace", "email",
                                                             "direct_sales", "paid_social"])),
        "effects": {k: draw(prob) for k in ("awareness", "consideration", "decision", "retention")},
        "reach": reach, "daily_budget": draw(st.floats(0.0, 300.0)),
        "commission": draw(st.floats(0.0, 0.4)), "fee_per_order": draw(st.floats(0.0, 3.0)),
        "fixed_daily_cost": draw(st.floats(0.0, 20.0)), "capacity": cap,
        "lead_decay": draw(prob), "intent": draw(prob), "message_alignment": draw(prob),
    }


@st.composite
def scenarios(draw):
    n_ch = draw(st.integers(0, 4))
    n_seg = draw(st.integers(1, 3))
    weights = [draw(st.floats(0.1, 1.0)) for _ in range(n_seg)]
    shares = [w / sum(weights) for w in weights]
    shares[-1] = 1.0 - sum(shares[:-1])
    segments = [{
        "name": f"s{g}", "share": shares[g], "price_sensitivity": draw(st.floats(0.0, 3.0)),
        "purchase_rate": {"shape": draw(st.floats(0.3, 5.0)), "mean_days": draw(st.floats(2.0, 90.0))},
        "dropout": {"a": draw(st.floats(0.3, 3.0)), "b": draw(st.floats(0.3, 10.0))},
        "churn_multiplier": draw(st.floats(0.0, 3.0)),
    } for g in range(n_seg)]
    plans = []
    if draw(st.booleans()):  # the last segment on a plan of its own
        plan = {"name": "premium", "price": draw(st.floats(1.0, 300.0)),
                "reference_price": draw(st.one_of(st.none(), st.floats(1.0, 300.0))),
                "period_days": draw(st.one_of(st.none(), st.integers(1, 40))),
                "churn": draw(st.one_of(st.none(), prob))}
        plans = [{k: v for k, v in plan.items() if v is not None}]
        segments[-1]["plan"] = "premium"
    p_wom = draw(small_prob)
    return {
        "product": {"price": draw(st.floats(1.0, 100.0)), "reference_price": draw(st.floats(1.0, 100.0)),
                    "unit_cost": draw(money), "fulfilment_cost": draw(money),
                    "return_rate": draw(small_prob), "return_cost": draw(money),
                    "business_model": draw(st.sampled_from(["one_time", "repeat", "subscription"])),
                    "subscription": {"period_days": draw(st.integers(1, 40)), "churn": draw(prob)},
                    "one_time": {"lapse_rate": draw(small_prob)}},
        "plans": plans,
        "segments": segments,
        "channels": [draw(channels(i)) for i in range(n_ch)],
        "word_of_mouth": {"enabled": draw(st.booleans()), "p": p_wom,
                          "q": draw(st.floats(0.0, 1.0 - p_wom)), "advocacy": draw(prob),
                          "adoption": draw(st.sampled_from(["aware", "considering", "active"]))},
        "forgetting": {"aware": draw(small_prob), "considering": draw(small_prob)},
        "health": {"initial": draw(prob), "decay": draw(st.floats(0.0, 0.05)),
                   "order_boost": draw(prob), "churn_sensitivity": draw(st.floats(0.0, 3.0))},
    }



# -- closed forms -----------------------------------------------------------------------------


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


def bass(t, p, q):
    """The continuous Bass curve: share adopted by time t."""
    e = np.exp(-(p + q) * t)
    return (1 - e) / (1 + q / p * e)
