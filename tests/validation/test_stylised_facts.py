"""Stylised facts from the marketing literature that the model should show.

- Diminishing returns to spend: reach saturates, so each extra dollar of media buys
  fewer customers than the one before (the concave response curves of media-mix
  models such as Meridian and Robyn).
- Word of mouth makes adoption S-shaped: with imitation (q >> p) adoption starts slowly,
  accelerates and peaks mid-way (Bass 1969; Rogers' diffusion of innovations); with
  external influence alone it is fastest at launch and only slows down.
- Heterogeneous repeat buying makes customer value skewed: with Gamma purchase rates
  and Beta drop-out (Ehrenberg's repeat-buying regularities, the BG/NBD story) a
  minority of customers brings most of the revenue; identical customers do not.

These run on the numba backend, at sizes where sampling noise is far below the effects.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import everyone_buys_on_day_0, market, simulate
from scipy import stats


@pytest.mark.slow  # five runs of 100,000 customers
def test_diminishing_returns_to_spend():
    """Spend buys awareness; a spend-independent store does the rest of the funnel."""
    store = {"name": "store", "kind": "organic", "effects": {"consideration": 0.1, "decision": 0.1},
             "reach": {"model": "list", "frequency": 0.3, "audience": ["aware", "considering"]}}
    budgets = np.array([100.0, 200.0, 400.0, 800.0, 1600.0])
    customers, spend = [], []
    for budget in budgets:
        ads = {"name": "ads", "kind": "paid_social", "effects": {"awareness": 0.05},
               "reach": {"model": "cpm", "cpm": 10.0}, "daily_budget": float(budget)}
        data = market(channels=[ads, store], forgetting={"aware": 0.02, "considering": 0.03})
        ds, _ = simulate(data, 100_000, 60, seed=3)
        customers.append(float(ds.customers.sum()))
        spend.append(float(ds.spend.sel(channel="ads").sum()))
    customers, spend = np.array(customers), np.array(spend)
    assert (np.diff(customers) > 0).all()          # more spend still buys more customers
    per_dollar = customers / spend
    assert (np.diff(per_dollar) < 0).all()         # ... at a falling average rate
    marginal = np.diff(customers) / np.diff(spend)
    assert (np.diff(marginal) < 0).all()           # ... and a falling marginal rate
    assert marginal[-1] < 0.3 * marginal[0]        # strongly so over a 16x range


def adoption(p: float, q: float, n: int = 50_000, days: int = 147) -> np.ndarray:
    """Share of the market that has adopted by each day (word of mouth, adoption = buying)."""
    data = market(word_of_mouth={"enabled": True, "p": p, "q": q, "advocacy": 1.0,
                                 "adoption": "active"})
    ds, _ = simulate(data, n, days, seed=7)
    return np.cumsum(ds.conversions.sum("channel").values) / n


@pytest.mark.slow  # two runs of 50,000 x 147 days
def test_word_of_mouth_makes_adoption_s_shaped():
    days = 147
    with_wom = adoption(0.002, 0.1, days=days)
    weekly = np.diff(np.concatenate([[0.0], with_wom]))[:days].reshape(-1, 7).sum(axis=1)
    peak = int(np.argmax(weekly))
    assert 2 <= peak <= len(weekly) - 3            # adoption peaks mid-way: an S-curve ...
    assert weekly[peak] > 5 * weekly[0]            # ... after a slow start
    assert (np.diff(weekly[: peak + 1]) > 0).all()  # accelerating up to the peak
    after = weekly[peak:]
    assert (np.diff(after[after > 0.02 * weekly[peak]]) < 0).all()  # decelerating after it
    # the inflection comes before half the market has adopted, at (q - p) / 2q
    at_peak = with_wom[peak * 7 + 3]
    assert 0.3 < at_peak < 0.6

    without = adoption(0.02, 0.0, days=days)       # external influence only
    weekly = np.diff(np.concatenate([[0.0], without]))[:days].reshape(-1, 7).sum(axis=1)
    assert int(np.argmax(weekly)) == 0              # fastest at launch: concave, no S
    assert (np.diff(weekly) < 0).all()


def customer_value(shape: float, a: float, b: float) -> np.ndarray:
    """Revenue per customer over a year, everyone acquired on day 0."""
    data = everyone_buys_on_day_0(business_model="repeat")
    data["segments"] = [{"name": "all", "share": 1.0, "price_sensitivity": 0.0,
                         "purchase_rate": {"shape": shape, "mean_days": 40.0},
                         "dropout": {"a": a, "b": b}}]
    _, model = simulate(data, 20_000, 365, seed=6)
    return model.population.revenue.astype(np.float64)


def top_share(values: np.ndarray, top: float = 0.2) -> float:
    ranked = np.sort(values)[::-1]
    return float(ranked[: int(len(ranked) * top)].sum() / ranked.sum())


@pytest.mark.slow  # two runs of 20,000 customers x a year
def test_repeat_buying_heterogeneity_skews_customer_value():
    # same mean purchase rate (one order per 40 days) and mean drop-out (1/7) in both markets
    mixed = customer_value(shape=0.5, a=1.0, b=6.0)          # Gamma(0.5) rates, Beta(1, 6)
    alike = customer_value(shape=200.0, a=100.0, b=600.0)    # nearly identical customers
    assert top_share(mixed) > 0.55                            # a fifth bring most of the revenue
    assert top_share(mixed) > top_share(alike) + 0.1
    assert stats.skew(mixed) > 3.0 and stats.skew(alike) < 1.0
    assert mixed.mean() > 1.5 * np.median(mixed)             # a long right tail
    assert alike.mean() < 1.2 * np.median(alike)
