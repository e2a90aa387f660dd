"""A random stream per decision: common random numbers survive switching things on.

Each draw is keyed by (seed, day, customer, decision) and each channel's exposure by
the channel's name, so a mechanism that changes nothing cannot change anything else,
and one channel's budget cannot change whom another channel reaches.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import differing
from numba import njit

import simulation
from simulation import rng
from simulation.kernels import day as K

SIZE = {"agents": 100_000, "days": 180, "seed": 11}


@njit(cache=True)
def _draws(key, n, keys):
    out = np.empty((n, keys.shape[0]))
    for i in range(n):
        base = rng.stream(key, i)
        for d in range(keys.shape[0]):
            out[i, d], _ = rng.uniform(rng.decision(base, keys[d]))
    return out


@njit(cache=True)
def _reach_masks(key, n, exposure, chday):
    """The kernel's exposure draw (:func:`simulation.kernels.day._triage`) for n customers
    of segment 0 in stage 0."""
    nch = exposure.shape[2]
    thr = K.thresholds(exposure)
    live = np.ones(nch, np.bool_)
    zeros = np.zeros(n, np.uint8)
    reached = np.zeros(n, np.uint64)
    cnt = np.zeros(len(K.CH) * nch)
    b = K.BLOCK
    cell, bits = np.empty(b, np.uint64), np.empty(b, np.uint64)
    mask, works = np.empty(b, np.uint64), np.empty(b, np.uint64)
    gone, flag, who = np.empty(b, np.uint8), np.zeros(b, np.uint8), np.empty(b, np.int64)
    out = np.empty((n, 2), np.uint64)
    for lo in range(0, n, b):
        m = min(b, n - lo)
        K._triage(key, 0, lo, m, zeros, zeros, zeros, reached, thr, chday, live, 0, 0,
                  np.uint64(0), cnt, cell, bits, mask, works, gone, flag, who)
        out[lo:lo + m, 0] = mask[:m]
        out[lo:lo + m, 1] = works[:m]
    return out


def _exposure(reach, eff):
    return np.stack([rng.odds(reach), rng.odds(reach * eff)], axis=-1)


def test_odds_decide_as_the_uniform_would():
    """draw_bits < odds(p) exactly when the uniform draw_bits / 2**53 < p."""
    key = rng.day_key(rng.seed_key(4), 2, 0)
    bits = np.array([rng.draw_bits(key, i) for i in range(20_000)], dtype=np.uint64)
    u = bits.astype(np.float64) / 2.0**53
    for p in (0.0, 1e-9, 0.013, 0.25, 0.5, 0.999999, 1.0, float(u[7]), float(np.nextafter(u[7], 1))):
        np.testing.assert_array_equal(bits < rng.odds(np.array(p)), u < p)


def test_decision_streams_are_uniform_and_independent():
    keys = np.array([rng.decision_key(n) for n in ("forget", "churn", "exposure:search",
                                                    "exposure:email")], dtype=np.uint64)
    x = _draws(rng.day_key(rng.seed_key(3), 7, 0), 200_000, keys)
    assert np.abs(x.mean(axis=0) - 0.5).max() < 0.003
    assert np.abs(x.var(axis=0) - 1 / 12).max() < 0.002
    c = np.corrcoef(x.T)
    assert np.abs(c[np.triu_indices(4, 1)]).max() < 0.01
    # a neighbouring customer's draws of the same decision are unrelated too
    assert abs(np.corrcoef(x[:-1, 0], x[1:, 0])[0, 1]) < 0.01


def test_decision_keys_come_from_names_not_positions():
    assert rng.decision_key("forget") == rng.decision_key("forget")
    assert rng.decision_key("forget") != rng.decision_key("churn")
    a = K.channel_keys(["search", "email"])
    b = K.channel_keys(["email", "paid_social", "search"])
    assert a[0] == b[2] and a[1] == b[0]


def test_one_channels_reach_never_moves_whom_another_reaches():
    """Raising channel 0's reach leaves every other channel's draw, for every customer and
    day, as it was (the kernel's own exposure draw)."""
    chkey = K.channel_keys(["paid_social", "search", "marketplace", "word_of_mouth"])
    low = np.zeros((1, 5, 4))
    low[0, 0] = (0.02, 0.3, 0.05, 0.01)
    eff = np.full((1, 5, 4), 0.4)
    high = low.copy()
    high[0, 0, 0] = 0.6
    others = np.uint64(0b1110)
    for day in range(5):
        key = rng.day_key(rng.seed_key(11), day, 0)
        chday = rng.day_decision_keys(key, chkey)
        a = _reach_masks(key, 50_000, _exposure(low, eff), chday)
        b = _reach_masks(key, 50_000, _exposure(high, eff), chday)
        np.testing.assert_array_equal(a & others, b & others)
        # the raised channel reaches (and moves) everyone it reached (and moved) before
        assert ((a[:, 0] & ~b[:, 0]) & np.uint64(1)).sum() == 0
        assert ((a[:, 1] & ~b[:, 1]) & np.uint64(1)).sum() == 0
    # the probabilities are the channels' own: reach r, and an effect e given a reach
    key = rng.day_key(rng.seed_key(1), 0, 0)
    m = _reach_masks(key, 200_000, _exposure(low, eff), rng.day_decision_keys(key, chkey))
    for c, r in enumerate(low[0, 0]):
        reached = (m[:, 0] >> np.uint64(c)) & np.uint64(1)
        works = (m[:, 1] >> np.uint64(c)) & np.uint64(1)
        assert reached.mean() == pytest.approx(r, abs=4 * np.sqrt(r * (1 - r) / len(m)))
        assert works[reached == 1].mean() == pytest.approx(0.4, abs=0.02)


@pytest.mark.slow
def test_a_programme_with_no_effect_changes_nothing_else():
    """Feedback surveys that lift nothing and cost nothing: only the answers are new."""
    sc = simulation.load_scenario("scenarios/default.toml")
    base = simulation.run(sc, **SIZE)
    null = simulation.load_scenario("scenarios/default.toml", [
        "post_purchase.feedback.enabled=true", "post_purchase.feedback.health_boost=0",
        "post_purchase.feedback.cost_per_survey=0"])
    ds = simulation.run(null, **SIZE)
    assert int(ds.feedback.sum()) > 0
    assert differing(base, ds, {"feedback"}) == []


@pytest.mark.slow
def test_a_channel_with_no_effect_changes_only_its_own_figures():
    """Paid social with every effect 0 (and no positioning signal) at $250 a day against
    $0: only its own spend and reach, and the credit its touches take, may differ."""
    off = ["channels.paid_social.effects.awareness=0",
           "channels.paid_social.effects.consideration=0",
           "channels.paid_social.positioning_signal=0"]
    quiet = simulation.run(simulation.load_scenario("scenarios/default.toml", off), **SIZE)
    idle = simulation.run(simulation.load_scenario(
        "scenarios/default.toml", [*off, "channels.paid_social.daily_budget=0"]), **SIZE)
    assert float(quiet.reached.sel(channel="paid_social").sum()) > 1e5
    own = {"spend", "media_spend", "budget", "reached", "unique_reached", "conversion_rate",
           "cac", "cac_loaded", "ltv_cac", "contribution", "profit"}
    credit = {"attributed_conversions", "attributed_revenue", "journey_transitions"}
    assert differing(quiet, idle, own | credit) == []
    for v in own:
        others = quiet[v].drop_sel(channel="paid_social")
        np.testing.assert_array_equal(others.values,
                                      idle[v].drop_sel(channel="paid_social").values)
    assert int(quiet.orders.sum()) == int(idle.orders.sum())
    # the credit moves between channels, it is not created
    for v in ("attributed_conversions",):
        np.testing.assert_allclose(quiet[v].sum("channel"), idle[v].sum("channel"))


def _mix64(z):
    """SplitMix64's finaliser in plain numpy (wrapping uint64 arithmetic), apart from the
    kernels' own."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def test_a_days_reaches_and_forgetting_are_the_draws_counted_by_hand():
    """One day of a market in mid-journey, recounted from the draws in numpy: each
    channel's reach count (a customer is reached when the channel's draw falls below the
    odds of its stage at the day's start), the aware and considering customers who forget
    (not moved on, and their forgetting draw below the odds), and the day's occupancy.
    Most customers are counted in blocks by the kernel rather than one by one, so this
    checks those tallies against the rules."""
    from simulation.model import SALT_STEP, MarketModel
    from simulation.state import ACTIVE, AWARE, CONSIDERING

    scenario = simulation.load_scenario("benchmarks/market_100m.toml")
    model = MarketModel(scenario, agents=40_000, days=40)
    for _ in range(30):
        model.step()
    pop = model.population
    day = model.day
    stage, segment = pop.stage.copy(), pop.segment.copy()
    event = (stage == ACTIVE) & (pop.next_day == day)  # the day's event comes instead
    model.step()
    key = rng.day_key(model.key, day, SALT_STEP)
    chday = rng.day_decision_keys(key, model.channel_keys)
    odds = _exposure(model.reach, model.eff)[segment, stage]  # (customer, channel, 2)
    customer = np.arange(model.n, dtype=np.uint64)
    u = np.stack([_mix64(k + customer * rng.GOLDEN) >> np.uint64(11) for k in chday], axis=1)
    reached = (u < odds[:, :, 0]) & ~event[:, None]
    moved = (u < odds[:, :, 1]).any(axis=1) & ~event
    np.testing.assert_array_equal(model.recorder.channel("reached", day), reached.sum(axis=0))
    base = _mix64(key + customer * rng.GOLDEN)
    draw = _mix64((base ^ rng.decision_key("forget")) + rng.GOLDEN) >> np.uint64(11)
    for s, name in ((AWARE, "forgot_aware"), (CONSIDERING, "forgot_considering")):
        gone = (stage == s) & ~moved & (draw < rng.odds(np.array(model.forget[s])))
        assert model.recorder.market(name, day) == gone.sum() > 0
    occupancy = np.zeros((len(scenario.segments), 5))
    np.add.at(occupancy, (pop.segment, pop.stage), 1)
    np.testing.assert_array_equal(model.recorder.occupancy(day), occupancy)
