"""A warm start (``[initial]``): a market already running on day 0.

The stationarity test builds a market whose customers are independent Markov chains
(list channels reach each customer with a fixed daily chance, word of mouth has no
imitation, one-time buyers lapse at a fixed hazard): its stationary distribution is a
closed form of the daily transition matrix. Started there, every stage must stay there.
Prospects and customers are two closed classes of the chain (no one un-buys, and with
a decision effect every prospect ends up a customer), so the market has prospects
cycling through innovation and forgetting, customers through churn and win-back, and
the stationary state is each class's, in the proportion the warm start sets.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import list_channel, market, own_market, simulate

from simulation.model import MarketModel
from simulation.scenario import ScenarioError, scenario_from_dict
from simulation.state import EXISTING

N, DAYS = 50_000, 365
LAPSE = 0.02


def flowing_market(initial: dict | None = None) -> dict:
    """Innovation (word of mouth p), consideration and win-back by list channels, forgetting
    from aware and considering, lapsing one-time buyers: every stage flows."""
    data = market(
        product={"price": 10.0, "business_model": "one_time", "one_time": {"lapse_rate": LAPSE}},
        word_of_mouth={"enabled": True, "p": 0.01, "q": 0.0, "adoption": "aware"},
        channels=[list_channel("consider", 0.3, ["aware"], consideration=0.2),
                  list_channel("winback", 0.2, ["churned"], retention=0.1)],
        forgetting={"aware": 0.02, "considering": 0.03},
    )
    if initial is not None:
        data["initial"] = initial
    return data


SOME_OF_EVERY_STAGE = {"aware": 0.2, "considering": 0.1, "customers": [
    {"channel": "winback", "active": 0.1 * N, "lapsed": 0.1 * N}]}
CUSTOMERS = 0.3
"""The share of the market that are customers (active or lapsed) in the stationary test."""
"""A list channel reaches no one in an empty audience; beyond that its reach is fixed."""


def transition_matrix() -> np.ndarray:
    """The daily transition matrix of one customer, from the model's day-0 plan (reach and
    effect per stage and channel) and its rules, in the kernels' order: the scheduled
    event, then the one channel acting on the stage, then forgetting if nothing moved."""
    model = MarketModel(own_market(flowing_market(SOME_OF_EVERY_STAGE), N), days=DAYS)
    model.plan_day(0)
    works = (model.reach * model.eff)[0]  # (stage, channel): the chance a channel moves one
    moved = 1.0 - np.prod(1.0 - works, axis=1)
    forget = model.forget
    P = np.zeros((5, 5))
    U, A, C, ACT, CH = range(5)
    P[U, A] = moved[U]
    P[A, C] = moved[A]
    P[A, U] = (1.0 - moved[A]) * forget[A]
    assert moved[C] == 0.0  # no decision effect: prospects stay prospects
    P[C, A] = (1.0 - moved[C]) * forget[C]
    P[ACT, CH] = LAPSE
    P[CH, ACT] = moved[CH]
    P[np.arange(5), np.arange(5)] = 1.0 - P.sum(axis=1)
    return P


def stationary(P: np.ndarray) -> np.ndarray:
    """Each closed class's stationary distribution, the customers' holding CUSTOMERS."""
    pi = np.zeros(5)
    for states, share in (([0, 1, 2], 1.0 - CUSTOMERS), ([3, 4], CUSTOMERS)):
        block = P[np.ix_(states, states)]
        w, v = np.linalg.eig(block.T)
        p = np.real(v[:, np.argmin(np.abs(w - 1.0))])
        pi[states] = share * p / p.sum()
    return pi


def mean_standard_error(P: np.ndarray, pi: np.ndarray, n: int, days: int) -> np.ndarray:
    """Standard error of a stage's count averaged over ``days`` days of a stationary run of
    ``n`` independent customers: Var = n / T^2 sum_{t,t'} pi_s (P^|t-t'|[s,s] - pi_s)."""
    lag_cov = np.empty((days, 5))
    Pk = np.eye(5)
    for k in range(days):
        lag_cov[k] = pi * (np.diag(Pk) - pi)
        Pk = Pk @ P
    weights = np.where(np.arange(days) == 0, days, 2.0 * (days - np.arange(days)))
    return np.sqrt(n * (weights[:, None] * lag_cov).sum(axis=0)) / days


def test_a_stationary_market_stays_stationary():
    P = transition_matrix()
    pi = stationary(P)
    assert (pi > 0.02).all(), pi  # every stage holds people, every flow runs
    warm = flowing_market({
        "aware": float(pi[1]), "considering": float(pi[2]),
        "customers": [{"channel": "winback", "active": float(pi[3] * N),
                       "lapsed": float(pi[4] * N)}]})
    ds, _ = simulate(warm, N, DAYS, seed=7)
    counts = ds.stage_count.values.astype(float)  # (day, stage)
    se = mean_standard_error(P, pi, N, DAYS)
    z_mean = (counts.mean(axis=0) - N * pi) / se
    assert (np.abs(z_mean) < 3.0).all(), (z_mean, counts.mean(axis=0), N * pi)
    daily_sd = np.sqrt(N * pi * (1.0 - pi))
    z_day = (counts - N * pi) / daily_sd
    assert np.abs(z_day).max() < 5.0, np.abs(z_day).max(axis=0)
    # and the flows do run: people move every day in both directions
    assert ds.churned.sum() > 10_000 and ds.winbacks.sum() > 10_000
    assert ds.forgot_aware.sum() > 10_000 and ds.forgot_considering.sum() > 10_000
    assert ds.moved_aware.sum() > 10_000 and ds.moved_considering.sum() > 10_000


def test_a_cold_start_of_the_same_market_is_far_from_it():
    """The check above can fail: the same market started cold is nowhere near stationary."""
    pi = stationary(transition_matrix())
    ds, _ = simulate(flowing_market(), N, 60, seed=7)
    counts = ds.stage_count.values.astype(float)
    z_day = (counts - N * pi) / np.sqrt(N * pi * (1.0 - pi))
    assert np.abs(z_day).max() > 50.0


def test_the_day0_groups_are_drawn_as_declared_in_market_units():
    """Shares and counts of [initial] hold in any sample of the market (within 4 binomial
    standard deviations), and the existing customers carry their channel and flag."""
    size = 1_000_000
    data = flowing_market({"aware": 0.2, "considering": 0.05, "customers": [
        {"channel": "winback", "active": 60_000.0, "lapsed": 30_000.0},
        {"channel": "consider", "active": 10_000.0}]})
    data["market"] = {"size": size}
    for agents in (40_000, 160_000):
        sc = scenario_from_dict({**data, "simulation": {"agents": agents, "days": 1}})
        model = MarketModel(sc)
        pop = model.population
        expect = {1: 0.2, 2: 0.05, 3: 0.07, 4: 0.03}
        for stage, share in expect.items():
            got = np.count_nonzero(pop.stage == stage)
            assert abs(got - share * agents) < 4 * np.sqrt(agents * share * (1 - share)), stage
        existing = (pop.flags & EXISTING) != 0
        assert np.array_equal(existing, pop.stage >= 3)
        by_channel = np.bincount(pop.acq_channel[existing & (pop.stage == 3)], minlength=4)
        assert abs(by_channel[0] - 0.01 * agents) < 4 * np.sqrt(0.01 * agents)
        assert by_channel[0] + by_channel[1] == np.count_nonzero(pop.stage == 3)


def test_customers_of_a_segment_are_drawn_within_it():
    """Customers given a segment are that segment's people; the segments' shares hold."""
    data = flowing_market({"aware": 0.1, "customers": [
        {"channel": "winback", "segment": "big", "active": 5_000.0},
        {"channel": "consider", "active": 20_000.0}]})
    data["segments"] = [{"name": "small", "share": 0.9}, {"name": "big", "share": 0.1}]
    data["market"] = {"size": 200_000}
    sc = scenario_from_dict({**data, "simulation": {"agents": 100_000, "days": 1}})
    pop = MarketModel(sc).population
    big = pop.segment == 1
    assert abs(big.mean() - 0.1) < 4 * np.sqrt(0.09 / 100_000)
    won = (pop.stage == 3) & (pop.acq_channel == 1)  # winback's customers
    assert not (won & ~big).any()
    expect = 5_000 / 200_000 * 100_000  # 2,500 simulated, every one in "big"
    assert abs(won.sum() - expect) < 4 * np.sqrt(expect)
    spread = (pop.stage == 3) & (pop.acq_channel == 0)
    for g in (0, 1):  # 10% of each segment
        n_g = (pop.segment == g).sum()
        assert abs(spread[pop.segment == g].sum() - 0.1 * n_g) < 4 * np.sqrt(0.09 * n_g)


def test_existing_customers_count_in_profit_not_in_the_new_customers_figures():
    """A base with no acquisition: revenue and profit come from it; the per-new-customer
    figures have no customers to speak of (and are not the base's)."""
    data = flowing_market({"customers": [{"channel": "shop", "active": 5_000.0}]})
    data["product"] = {"price": 10.0, "unit_cost": 4.0, "business_model": "repeat"}
    data["channels"] = [list_channel("shop", 0.0, ["considering"])]  # no one reached
    data["word_of_mouth"] = {"enabled": False}
    ds, _ = simulate(data, 20_000, 90, seed=2)
    assert int(ds.customers.sum()) == 0
    orders = float(ds.orders.sum())
    assert orders > 1000
    assert float(ds.revenue.sum()) == 10.0 * orders
    assert float(ds.base_margin.sum()) == pytest.approx(6.0 * orders)
    assert float(ds.profit.sum()) == pytest.approx(6.0 * orders)
    assert np.isnan(ds.ltv.values).all()
    assert float(ds.base_churned.sum()) == float(ds.churned.sum()) > 0
    assert float(ds.base_active.isel(day=-1).sum()) == float(ds.active.isel(day=-1).sum())
    assert np.isnan(ds.cohort_retention.values).all() or float(
        np.nansum(ds.cohort_retention.values)) == 0.0


def test_new_customers_figures_ignore_the_base():
    """The same market acquiring new customers gives the same LTV whether or not a large
    base of old ones runs beside it (they share no draws' meaning, so within noise)."""
    def acquiring(initial=None):
        data = flowing_market(initial)
        data["channels"].append(list_channel("decide", 0.5, ["considering"], decision=0.1))
        return data

    base = {"customers": [{"channel": "decide", "active": 20_000.0}]}
    ds0, _ = simulate(acquiring(), 40_000, 120, seed=3)
    ds1, _ = simulate(acquiring(base), 40_000, 120, seed=3)
    assert int(ds0.customers.sel(channel="decide")) > 1000
    for figure in ("ltv", "ltv_projected", "churn_rate"):
        new0 = float(ds0[figure].sel(channel="decide"))
        new1 = float(ds1[figure].sel(channel="decide"))
        assert new1 == pytest.approx(new0, rel=0.15), figure
    # the base's orders (win-backs of one-time buyers) are in the channel's revenue
    assert float(ds1.base_margin.sel(channel="decide").sum()) > 0
    assert float(ds1.revenue.sel(channel="decide").sum()) > float(
        ds0.revenue.sel(channel="decide").sum())


def test_subscribers_renew_on_the_phase_of_their_tenure():
    """Subscribers acquired evenly over one period renew evenly over the next: about
    1/period of them each day of the first period, none twice."""
    data = flowing_market({"customers": [{"channel": "shop", "active": 30_000.0,
                                          "tenure_days": 30}]})
    data["product"] = {"price": 10.0, "business_model": "subscription",
                       "subscription": {"period_days": 30, "churn": 0.0}}
    data["channels"] = [list_channel("shop", 0.0, ["considering"])]
    data["word_of_mouth"] = {"enabled": False}
    ds, _ = simulate(data, 30_000, 30, seed=4)
    orders = ds.orders.sum("channel").values.astype(float)
    assert orders.sum() == 30_000
    assert np.abs(orders - 1000.0).max() < 5 * np.sqrt(1000.0)


@pytest.mark.parametrize("initial, message", [
    ({"customers": [{"channel": "nowhere", "active": 10.0}]}, "unknown channel 'nowhere'"),
    ({"aware": 0.7, "considering": 0.4}, "more than all of it"),
    ({"customers": [{"channel": "winback", "segment": "nobody", "active": 10.0}]},
     "unknown segment 'nobody'"),
    ({"customers": [{"channel": "winback", "active": 10.0}], "community_members": 50.0},
     "exceeds the active customers"),
])
def test_impossible_initial_states_are_refused(initial, message):
    with pytest.raises(ScenarioError, match=message):
        scenario_from_dict(flowing_market(initial))


def test_initial_cannot_change_during_a_run():
    data = flowing_market()
    data["changes"] = [{"day": 10, "set": {"initial.aware": 0.5}}]
    with pytest.raises(ScenarioError, match="cannot change during a run"):
        scenario_from_dict(data)
