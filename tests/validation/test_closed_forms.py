"""Mechanisms against independent closed forms, on both backends.

Each test builds a controlled scenario whose dynamics have a known answer (a Markov
chain, a geometric lifetime, the Bass curve, the BG/NBD expectation) and compares the
simulated counts with it. Customers are independent whenever reach does not depend on
the population's state (``list`` reach, no word of mouth), so each stage count is
binomial around the closed form and a z-score bound is exact; word of mouth couples
customers and gets a tolerance from the run's size instead.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from helpers import STAGES, everyone_buys_on_day_0, list_channel, market, simulate, z_bound
from scipy.special import hyp2f1, roots_genlaguerre, roots_jacobi

from .common import bass, markov_matrix

SIZES = {"numba": 100_000, "mesa": 6_000}
# the Mesa side of each check runs in the whole suite (make test), not in make test-fast
BOTH = pytest.mark.parametrize("backend", ["numba", pytest.param("mesa", marks=pytest.mark.slow)])


# -- the journey is the Markov chain of its daily transition probabilities ----------------

@BOTH
def test_stage_occupancy_is_the_markov_chain(backend):
    channels = [
        list_channel("social", 0.3, awareness=0.05, consideration=0.02),
        list_channel("search", 0.1, audience=["aware", "considering", "churned"],
                     consideration=0.15, decision=0.1, retention=0.05),
        list_channel("shop", 0.05, decision=0.3),
    ]
    data = market(channels=channels, forgetting={"aware": 0.02, "considering": 0.05},
                  product={"price": 10.0, "business_model": "one_time",
                           "one_time": {"lapse_rate": 0.01}})
    n, days = SIZES[backend], 150
    ds, _ = simulate(data, n, days, seed=11, backend=backend)
    P = markov_matrix(channels, 0.02, 0.05, 0.01)
    x = np.eye(5)[0]
    expected = []
    for _ in range(days):
        x = x @ P
        expected.append(x)
    expected = np.array(expected)  # row t: end of day t
    observed = ds.stage_count.sel(stage=STAGES).values
    assert (observed.sum(axis=1) == n).all()
    ok = z_bound(observed, n, expected)
    assert ok.all(), [(int(t), STAGES[s]) for t, s in np.argwhere(~ok)[:5]]
    # the comparison has power: the chain moves a lot over the run
    assert expected[-1, 3] > 0.1 and expected[-1, 4] > 0.02 and expected[-1, 0] < 0.7


def test_markov_check_detects_a_wrong_rate():
    """The same comparison fails when the chain is built with a 10% different effect."""
    channels = [list_channel("social", 0.3, awareness=0.05, consideration=0.02)]
    n, days = 200_000, 60
    ds, _ = simulate(market(channels=channels), n, days, seed=3)
    wrong = [list_channel("social", 0.3, awareness=0.055, consideration=0.02)]
    P = markov_matrix(wrong, 0.0, 0.0, 0.0)
    x = np.eye(5)[0]
    for _ in range(days):
        x = x @ P
    assert not z_bound(ds.stage_count.isel(day=-1).values, n, x).all()


# -- lifetimes are geometric -----------------------------------------------------------------

LIFETIMES = {  # product, days between chances to leave, hazard at each chance
    "subscription": ({"business_model": "subscription",
                      "subscription": {"period_days": 3, "churn": 0.1}}, 3, 0.1),
    "daily_subscription": ({"business_model": "subscription",
                            "subscription": {"period_days": 1, "churn": 0.05}}, 1, 0.05),
    "one_time": ({"business_model": "one_time", "one_time": {"lapse_rate": 0.03}}, 1, 0.03),
}


@BOTH
@pytest.mark.parametrize("case", list(LIFETIMES))
def test_customer_lifetime_is_geometric(backend, case):
    """Everyone buys on day 0; a subscriber cancels with probability h at each renewal
    (every ``period`` days) and pays otherwise, a one-time buyer lapses with daily hazard
    h: still a customer on day t with probability (1 - h) ** (t // period)."""
    product, period, h = LIFETIMES[case]
    n, days = SIZES[backend], 90
    ds, _ = simulate(everyone_buys_on_day_0(**product), n, days, seed=5, backend=backend)
    assert int(ds.conversions.isel(day=0).sum()) == n
    t = np.arange(days)
    survival = (1 - h) ** (t // period)
    active = ds.stage_count.sel(stage="active").values
    ok = z_bound(active, n, survival)
    assert ok.all(), np.flatnonzero(~ok)[:5]
    assert survival[-1] < 0.1  # most of the lifetimes were observed
    churned = ds.churned.sum("channel").values
    np.testing.assert_array_equal(n - np.cumsum(churned), active)
    assert (np.flatnonzero(churned) % period == 0).all()  # only at renewals
    orders = float(ds.orders.sum()) / n
    if product["business_model"] == "one_time":
        assert orders == 1.0
    else:  # one payment per renewal reached: E = sum_k (1 - h) ** k over the renewals
        reached = (1 - h) ** np.arange((days - 1) // period + 1)  # P(orders >= k + 1)
        mean = reached.sum()
        var = ((2 * np.arange(reached.size) + 1) * reached).sum() - mean**2
        assert abs(orders - mean) < 5 * np.sqrt(var / n), (orders, mean)


# -- word of mouth alone is Bass diffusion ----------------------------------------------------

@BOTH
def test_word_of_mouth_alone_is_the_bass_curve(backend):
    p, q, days = 0.004, 0.06, 150
    n = 2 * SIZES[backend]
    data = market(word_of_mouth={"enabled": True, "p": p, "q": q, "advocacy": 1.0,
                                 "adoption": "active"})
    ds, _ = simulate(data, n, days, seed=2, backend=backend)
    F = ds.stage_count.sel(stage="active").values / n
    recursion, f = [], 0.0  # the model's daily form: hazard p + q F(yesterday)
    for _ in range(days):
        f += (1 - f) * (p + q * f)
        recursion.append(f)
    # adopters feed the hazard, so early chance compounds: over 30 seeds the largest daily
    # deviation was at most 3.1 / sqrt(n)
    tolerance = 4.5 / np.sqrt(n)
    assert np.abs(F - np.array(recursion)).max() < tolerance
    t = np.arange(1, days + 1)  # the continuous curve, up to the one-day Euler step
    assert np.abs(F - bass(t, p, q)).max() < tolerance + 0.0125
    # S-shape: adoption speeds up, peaks near t* = ln(q/p)/(p+q), then slows
    adopt = np.diff(F)
    peak = np.argmax(np.convolve(adopt, np.ones(7) / 7, mode="same"))
    assert abs(peak - np.log(q / p) / (p + q)) < 10
    assert (ds.conversions.sel(channel="word_of_mouth").sum() == ds.customers.sum()).item()


# -- repeat buying: expected purchases of the BG/NBD family ---------------------------------

R_SHAPE, MEAN_DAYS, A, B = 2.0, 60.0, 3.0, 6.0   # rate ~ Gamma(r, alpha), dropout ~ Beta(a, b)
ALPHA = R_SHAPE * MEAN_DAYS                     # mean rate r / alpha = 1 / MEAN_DAYS
CHECKPOINTS = (30, 90, 180, 239)


def bg_nbd(t):
    """E[X(t)], BG/NBD (Fader, Hardie & Lee 2005, eq. 9): drop-out only after a repeat purchase."""
    z = t / (ALPHA + t)
    return (A + B - 1) / (A - 1) * (1 - (ALPHA / (ALPHA + t)) ** R_SHAPE
                                    * hyp2f1(R_SHAPE, B, A + B - 1, z))


def daily_exact(t):
    """The same expectation in the model's daily time: at most one order chance a day, with
    probability c = 1 - exp(-rate); the first chance is an order, each later one a drop-out
    with probability p, else an order. Given rate and p: sum over chances k of
    P(k chances by t) (1-p)^(k-1) = (1 - (1 - c p)^t) / p, averaged over Gamma x Beta by
    Gauss quadrature (generalised Laguerre for the rate, Jacobi for p)."""
    x, wx = roots_genlaguerre(80, R_SHAPE - 1)
    y, wy = roots_jacobi(80, B - 1, A - 1)
    c = -np.expm1(-x / ALPHA)[:, None]
    p = ((1 + y) / 2)[None, :]
    value = (1 - (1 - c * p) ** t) / p
    return float(wx @ value @ wy / (wx.sum() * wy.sum()))


@functools.cache
def repeat_purchases(backend, n):
    """Mean repeat purchases per customer by day t, all customers acquired on day 0."""
    data = everyone_buys_on_day_0(business_model="repeat")
    data["segments"] = [{"name": "all", "share": 1.0, "price_sensitivity": 0.0,
                         "purchase_rate": {"shape": R_SHAPE, "mean_days": MEAN_DAYS},
                         "dropout": {"a": A, "b": B}}]
    ds, model = simulate(data, n, max(CHECKPOINTS) + 1, seed=3, backend=backend)
    repeats = np.cumsum(ds.orders.sum("channel").values) - n
    per_customer = model.population.orders.astype(float) - 1.0
    se = per_customer.std() / np.sqrt(n)  # of the final mean; earlier means vary less
    return {t: repeats[t] / n for t in CHECKPOINTS}, se


SIZES_BG = {"numba": 40_000, "mesa": 4_000}


@BOTH
def test_repeat_purchases_follow_bg_nbd(backend):
    """The model's repeat buyers: Gamma rates, Beta drop-out after each repeat purchase
    (BG/NBD, Fader, Hardie & Lee 2005); daily time is a negligible correction."""
    simulated, se = repeat_purchases(backend, SIZES_BG[backend])
    for t in CHECKPOINTS:
        exact = daily_exact(t)
        assert abs(exact - bg_nbd(t)) < 0.01 * bg_nbd(t)  # daily discretisation
        assert abs(simulated[t] - exact) < 4 * se, (t, simulated[t], exact, se)
