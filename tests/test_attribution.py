"""Attribution: each model credits exactly what its definition says.

The rule-based models are credited by the kernel at each conversion
(``simulation.kernels.day._credit``) from the customer's first touch and last four
touches. Here journeys are written by hand into a population and the kernel's credit
is compared with the definitions, written independently below. Markov transitions are
counted touch by touch (``_touch``), so they cover the whole journey; removal effects
are compared with a direct computation on the same transition matrix (a hand-solved
chain, and powers of the full stochastic matrix); on real runs every model credits
exactly the run's conversions, and Markov credit equals that of every customer's full
journey rebuilt from the event export, in both backends.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import own_market
from hypothesis import given, settings
from hypothesis import strategies as st

import simulation
from simulation.analysis.markov import conversion_probability, markov_credit, removal_effects
from simulation.events import empty_log
from simulation.kernels.day import ATTR_MODELS, _credit, _touch, unconverted_journeys
from simulation.scenario import scenario_from_dict
from simulation.state import RING, Population

NCH = 4  # channels 0..3 in the hand-built journeys
FIRST, LAST, LINEAR, DECAY, POSITION = range(5)


def population_with(journeys: list[list[tuple[int, int]]]) -> Population:
    """Customers whose touches (channel, day) are written the way the kernel keeps them:
    the first touch separately, the most recent RING in a ring buffer."""
    pop = Population(len(journeys))
    for i, touches in enumerate(journeys):
        if not touches:
            continue
        pop.first_channel[i], pop.first_day[i] = touches[0]
        for k, (c, d) in enumerate(touches):
            pop.ring_channel[i, k % RING] = c
            pop.ring_day[i, k % RING] = d
        pop.ring_head[i] = len(touches) % RING
        pop.touches[i] = min(len(touches), 255)
    return pop


def kernel_credit(touches: list[tuple[int, int]], day: int, half_life: float = 7.0):
    """attr[model, channel] credited by the kernel for one conversion.

    The revenue twin (first-order revenue 10.0) must carry exactly the same weights, and
    so must the day's credit counters (roll-out gates and guardrails read them).
    """
    from simulation.counters import CH, width

    pop = population_with([touches])
    attr = np.zeros((2, len(ATTR_MODELS), NCH))
    cnt = np.zeros(width(NCH, 1, 1))
    _credit(pop.arrays(), 0, day, attr, half_life, 10.0, cnt, NCH)
    np.testing.assert_allclose(attr[1], 10.0 * attr[0])
    for m, model in enumerate(ATTR_MODELS):
        block = getattr(CH, f"credit_{model}")
        np.testing.assert_array_equal(cnt[block * NCH:(block + 1) * NCH], attr[0, m])
    return attr[0]


def expected_credit(touches: list[tuple[int, int]], day: int, half_life: float = 7.0):
    """The definitions, on the kept path (the first touch, then the last RING touches)."""
    kept = touches if len(touches) <= RING else [touches[0], *touches[-RING:]]
    n = len(kept)
    out = np.zeros((5, NCH))
    if n == 0:
        return out
    out[FIRST, kept[0][0]] += 1.0
    out[LAST, kept[-1][0]] += 1.0
    weights = np.array([2.0 ** (-(day - d) / half_life) for _, d in kept])
    weights /= weights.sum()
    for k, (c, _) in enumerate(kept):
        out[LINEAR, c] += 1.0 / n
        out[DECAY, c] += weights[k]
        if n == 1:
            out[POSITION, c] += 1.0
        elif n == 2:
            out[POSITION, c] += 0.5
        elif k in (0, n - 1):
            out[POSITION, c] += 0.4
        else:
            out[POSITION, c] += 0.2 / (n - 2)
    return out


def test_model_order_is_the_contract():
    assert ATTR_MODELS == ("first_touch", "last_touch", "linear", "time_decay", "position_based")


def test_one_touch_gets_all_the_credit_under_every_model():
    attr = kernel_credit([(2, 5)], day=9)
    assert np.array_equal(attr, np.tile(np.eye(NCH)[2], (5, 1)))


def test_two_touches():
    attr = kernel_credit([(0, 1), (3, 5)], day=10, half_life=7.0)
    w = np.array([2 ** (-9 / 7), 2 ** (-5 / 7)])
    w /= w.sum()
    assert attr[FIRST].tolist() == [1, 0, 0, 0]
    assert attr[LAST].tolist() == [0, 0, 0, 1]
    assert attr[LINEAR].tolist() == [0.5, 0, 0, 0.5]
    assert attr[POSITION].tolist() == [0.5, 0, 0, 0.5]  # 40/20/40 has no middle: half each
    assert attr[DECAY] == pytest.approx([w[0], 0, 0, w[1]], abs=1e-12)


def test_three_touches_with_a_channel_repeated():
    attr = kernel_credit([(1, 0), (2, 3), (1, 6)], day=6)
    assert attr[FIRST].tolist() == [0, 1, 0, 0]
    assert attr[LAST].tolist() == [0, 1, 0, 0]
    assert attr[LINEAR] == pytest.approx([0, 2 / 3, 1 / 3, 0])
    assert attr[POSITION] == pytest.approx([0, 0.8, 0.2, 0])
    w = np.array([2 ** (-6 / 7), 2 ** (-3 / 7), 1.0])
    w /= w.sum()
    assert attr[DECAY] == pytest.approx([0, w[0] + w[2], w[1], 0], abs=1e-12)


def test_four_touches_fill_the_ring_exactly():
    attr = kernel_credit([(0, 0), (1, 1), (2, 2), (3, 3)], day=3)
    assert attr[POSITION] == pytest.approx([0.4, 0.1, 0.1, 0.4])
    assert attr[LINEAR] == pytest.approx([0.25] * 4)
    assert attr[FIRST].tolist() == [1, 0, 0, 0]


def test_longer_journey_keeps_the_first_touch_and_the_last_four():
    # seven touches: 0 first, then 1 1 2 | 3 2 1 3 in the ring; the middle 1 1 2 is gone
    touches = [(0, 0), (1, 2), (1, 4), (2, 6), (3, 8), (2, 9), (1, 11), (3, 12)]
    attr = kernel_credit(touches, day=12, half_life=7.0)
    assert attr[FIRST].tolist() == [1, 0, 0, 0]  # the true first touch, no longer in the ring
    assert attr[LAST].tolist() == [0, 0, 0, 1]
    # kept path: (0, 0), then the ring (3, 8), (2, 9), (1, 11), (3, 12)
    assert attr[LINEAR] == pytest.approx([0.2, 0.2, 0.2, 0.4])
    # position-based: 0.4 first (channel 0), 0.4 last (channel 3), 0.2 over the 3 middle
    assert attr[POSITION] == pytest.approx([0.4, 0.2 / 3, 0.2 / 3, 0.4 + 0.2 / 3])
    assert attr == pytest.approx(expected_credit(touches, 12))


def test_half_life_sets_the_time_decay_weights():
    touches = [(0, 0), (1, 10)]
    short = kernel_credit(touches, day=10, half_life=1.0)
    long = kernel_credit(touches, day=10, half_life=1000.0)
    assert short[DECAY, 1] == pytest.approx(1 / (1 + 2 ** -10))
    assert long[DECAY] == pytest.approx([0.5, 0.5, 0, 0], abs=1e-2)
    # no other model depends on the half-life
    assert np.array_equal(np.delete(short, DECAY, axis=0), np.delete(long, DECAY, axis=0))


def test_an_untouched_customer_is_credited_nothing():
    assert not kernel_credit([], day=3).any()


journeys = st.lists(st.tuples(st.integers(0, NCH - 1), st.integers(0, 6)), min_size=1,
                    max_size=12).map(lambda t: [(c, sum(g for _, g in t[: k + 1]))
                                                for k, (c, _) in enumerate(t)])


@settings(max_examples=150, deadline=None)
@given(touches=journeys, wait=st.integers(0, 30),
       half_life=st.floats(0.5, 60.0, allow_nan=False))
def test_every_model_matches_its_definition_on_random_journeys(touches, wait, half_life):
    day = touches[-1][1] + wait
    attr = kernel_credit(touches, day, half_life)
    assert attr == pytest.approx(expected_credit(touches, day, half_life), abs=1e-12)
    # one conversion: every model hands out exactly one unit of credit
    assert attr.sum(axis=1) == pytest.approx(np.ones(5), abs=1e-12)


# -- Markov journey transitions, touch by touch -----------------------------------------


def kernel_transitions(touches: list[int], bought_after: int | None = None) -> np.ndarray:
    """The transitions the kernel counts for one customer touched by ``touches`` in turn
    (``_touch``), ending unconverted at the end of the run (``unconverted_journeys``);
    with ``bought_after`` = k the customer is marked acquired after the k-th touch, as
    the first purchase does, and the journey is not closed at the end."""
    pop = Population(1)
    arrays = pop.arrays()
    trans = np.zeros((1, NCH + 3, NCH + 3))
    log = empty_log(1)
    for k, c in enumerate(touches):
        if k == bought_after:
            pop.acq_channel[0] = touches[k - 1]
        _touch(arrays, 0, c, k, trans[0], log, 0)
    unconverted_journeys(arrays, trans)
    return trans[0]


def test_a_journey_longer_than_the_ring_is_counted_step_by_step():
    touches = [0, 1, 1, 2, 3, 2, 1, 3]  # twice the ring
    path = [0, *(c + 1 for c in touches), NCH + 2]  # start, channels, no conversion
    expected = np.zeros((NCH + 3, NCH + 3))
    for a, b in zip(path, path[1:], strict=False):
        expected[a, b] += 1
    assert np.array_equal(kernel_transitions(touches), expected)


def test_touches_after_the_first_purchase_are_no_journey():
    # three touches, then the purchase (through the third), then a lapsed customer's touches
    trans = kernel_transitions([2, 0, 1, 3, 3, 0], bought_after=3)
    expected = np.zeros((NCH + 3, NCH + 3))
    for a, b in [(0, 3), (3, 1), (1, 2)]:  # start -> 2 -> 0 -> 1; its end is the purchase's
        expected[a, b] += 1
    assert np.array_equal(trans, expected)


def test_an_untouched_customer_has_no_journey():
    assert not kernel_transitions([]).any()


# -- Markov removal effects ------------------------------------------------------------


def counts(paths: list[tuple[list[int], bool]], nch: int) -> np.ndarray:
    """Transition counts of journeys (channel lists, converted?) in the kernel's layout."""
    trans = np.zeros((nch + 3, nch + 3))
    for chans, converted in paths:
        prev = 0
        for c in chans:
            trans[prev, c + 1] += 1
            prev = c + 1
        trans[prev, nch + 1 if converted else nch + 2] += 1
    return trans


def test_removal_effects_on_a_chain_solved_by_hand():
    # start->A 2, start->B 2; A->conv 1, A->B 1; B->conv 1, B->null 2
    # P(conv) = 1/2 (1/2 + 1/2 1/3) + 1/2 1/3 = 1/2; without A: 1/6; without B: 1/4
    trans = counts([([0], True), ([0, 1], True), ([1], False), ([1], False)], nch=2)
    assert conversion_probability(trans) == pytest.approx(0.5)
    assert conversion_probability(trans, removed=0) == pytest.approx(1 / 6)
    assert conversion_probability(trans, removed=1) == pytest.approx(1 / 4)
    assert removal_effects(trans) == pytest.approx([2 / 3, 1 / 2])
    assert markov_credit(trans, 2.0) == pytest.approx([8 / 7, 6 / 7])


def absorbed_in_conversion(trans: np.ndarray, removed: int | None = None) -> float:
    """P(start ends in conversion) by raising the full stochastic matrix to a high power."""
    s = trans.shape[0]
    nch = s - 3
    P = np.zeros((s, s))
    for i in range(s):
        total = trans[i].sum()
        if i >= nch + 1 or total == 0:
            P[i, i] = 1.0  # absorbing (conversion, no conversion) or never left
        else:
            P[i] = trans[i] / total
    if removed is not None:
        P[removed + 1] = 0.0
        P[removed + 1, nch + 2] = 1.0
    M = P.copy()
    for _ in range(40):  # P^(2^40): every transient state has drained
        M = M @ M
    return float(M[0, nch + 1])


def test_removal_effects_equal_a_direct_computation_on_a_cyclic_chain():
    rng = np.random.default_rng(5)
    nch = 4
    paths = []
    for _ in range(400):
        length = int(rng.integers(1, 7))
        chans = [int(c) for c in rng.choice(nch, size=length, p=[0.4, 0.3, 0.2, 0.1])]
        converted = bool(rng.random() < 0.15 + 0.1 * chans.count(2))
        paths.append((chans, converted))
    trans = counts(paths, nch)
    base = absorbed_in_conversion(trans)
    assert conversion_probability(trans) == pytest.approx(base, rel=1e-9)
    direct = np.array([1 - absorbed_in_conversion(trans, c) / base for c in range(nch)])
    assert removal_effects(trans) == pytest.approx(direct, rel=1e-9, abs=1e-12)
    credit = markov_credit(trans, 60.0)
    assert credit == pytest.approx(60.0 * direct / direct.sum())
    assert credit.sum() == pytest.approx(60.0)


def test_removal_effects_of_simulated_journeys_match_the_chain():
    """Walk the chain of a hand-made matrix with numpy; the walks' own removal effects
    (computed by re-walking with the channel removed) agree within sampling error."""
    P = np.array([  # start, A, B, C, conv, null
        [0, 0.5, 0.3, 0.2, 0, 0],
        [0, 0.1, 0.3, 0.2, 0.1, 0.3],
        [0, 0.2, 0, 0.3, 0.2, 0.3],
        [0, 0.1, 0.1, 0, 0.4, 0.4],
    ])
    rng = np.random.default_rng(11)
    n = 200_000

    def walk(removed=None):
        state = np.zeros(n, dtype=int)
        conv = np.zeros(n, bool)
        alive = np.ones(n, bool)
        trans = np.zeros((6, 6))
        for _ in range(60):
            if not alive.any():
                break
            cum = np.cumsum(P[state[alive]], axis=1)
            nxt = (rng.random(alive.sum())[:, None] > cum).sum(axis=1)
            np.add.at(trans, (state[alive], nxt), 1)
            if removed is not None:
                nxt = np.where(nxt == removed + 1, 5, nxt)
            idx = np.flatnonzero(alive)
            state[idx] = nxt
            conv[idx] = nxt == 4
            alive[idx] = nxt < 4
        return trans, conv.mean()

    trans, p = walk()
    # the counts of the walks estimate P; removal effects from them match the exact chain
    exact = np.array([1 - absorbed_in_conversion(_pad(P), c) / absorbed_in_conversion(_pad(P))
                      for c in range(3)])
    assert removal_effects(trans) == pytest.approx(exact, abs=0.01)
    for c in range(3):
        _, p_without = walk(removed=c)
        assert 1 - p_without / p == pytest.approx(exact[c], abs=0.01)


def _pad(P: np.ndarray) -> np.ndarray:
    """Probabilities as 'counts' (the functions normalise rows), absorbing rows zero."""
    out = np.zeros((6, 6))
    out[:4] = P * 1000
    return out


# -- on real runs ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["default_run", "saas_run"])
def test_credit_sums_to_the_conversions_under_every_model(name, request):
    ds = request.getfixturevalue(name)
    conversions = float(ds.conversions.sum())
    assert conversions > 100
    credited = ds.attributed_conversions.sum("channel")
    assert [str(m) for m in ds.attribution_model.values] == [*ATTR_MODELS, "markov"]
    assert credited.values == pytest.approx(np.full(6, conversions), rel=1e-9)
    # last touch is the acquisition channel
    assert ds.attributed_conversions.sel(attribution_model="last_touch").values == pytest.approx(
        ds.conversions.sum("day").values)


def test_markov_row_is_the_removal_effects_of_the_run_transitions(default_run):
    ds = default_run
    credit = markov_credit(ds.journey_transitions.values, float(ds.conversions.sum()))
    assert ds.attributed_conversions.sel(attribution_model="markov").values == pytest.approx(credit)
    trans = ds.journey_transitions
    # every journey starts once and ends once (in conversion or not)
    starts = float(trans.sel(from_state="start").sum())
    ends = float(trans.sel(to_state=["conversion", "no_conversion"]).sum())
    assert starts == ends
    assert float(trans.sel(to_state="conversion").sum()) == float(ds.conversions.sum())


# -- exact Markov: the run's chain is the chain of every full journey -------------------------


def absorbing_solve(trans: np.ndarray, removed: int | None = None) -> float:
    """P(a journey from 'start' ends in conversion), by the fundamental matrix of the
    absorbing chain (Q transient -> transient, R transient -> absorbing: B = (I - Q)^-1 R).

    Removing a channel sends every transition into it to 'no conversion' (the textbook
    form; :mod:`simulation.analysis.markov` instead ends the journey at the channel's
    visits: the same probabilities, reached another way)."""
    s = trans.shape[0]
    counts = trans.astype(float).copy()
    if removed is not None:
        counts[:, s - 1] += counts[:, removed + 1]
        counts[:, removed + 1] = 0.0
    totals = counts[: s - 2].sum(axis=1)
    P = counts[: s - 2] / np.where(totals > 0, totals, 1.0)[:, None]
    Q, R = P[:, : s - 2], P[:, s - 2 :]
    B = np.linalg.solve(np.eye(s - 2) - Q, R)
    return float(B[0, 0])


def test_the_absorbing_solve_on_a_chain_solved_by_hand():
    # the chain of test_removal_effects_on_a_chain_solved_by_hand: 1/2, 1/6 without A,
    # 1/4 without B
    trans = counts([([0], True), ([0, 1], True), ([1], False), ([1], False)], nch=2)
    assert absorbing_solve(trans) == pytest.approx(0.5)
    assert absorbing_solve(trans, removed=0) == pytest.approx(1 / 6)
    assert absorbing_solve(trans, removed=1) == pytest.approx(1 / 4)


def full_journeys(ev, channels: list[str]) -> list[tuple[list[int], bool]]:
    """Every touched customer's whole acquisition journey from the event table: the touches
    from the first one to the first purchase (converted), or to the end of the run (not).

    Touches after the first purchase (a lapsed customer's, or another channel's later on
    the purchase day) belong to no acquisition journey; the table keeps each customer's
    events in the order they happened."""
    idx = {c: k for k, c in enumerate(channels)}
    ev = ev.reset_index(drop=True)
    bought = (ev.event == "purchase").astype(int).groupby(ev.customer).cumsum()
    pre = ev[(ev.event == "touch") & (bought == 0)]
    converted = set(ev.customer[ev.event == "purchase"])
    return [([idx[c] for c in g.channel], customer in converted)
            for customer, g in pre.groupby("customer")]


@pytest.fixture(scope="module", params=["numba", "mesa"])
def long_journeys(request, default_scenario, tmp_path_factory):
    """default.toml at 3,000 customers for 120 days, every customer exported: its budgets,
    written for 200,000 customers, saturate this market, so nearly every journey is far
    longer than the ring (about 95 touches on average)."""
    path = tmp_path_factory.mktemp("markov") / f"{request.param}.parquet"
    ds = simulation.run(own_market(default_scenario, 3000), days=120, seed=3, backend=request.param,
                        events_sample=3000, events_path=path)
    channels = [str(c) for c in ds.channel.values]
    return ds, full_journeys(pd.read_parquet(path), channels)


def test_markov_credit_is_that_of_the_full_journeys(long_journeys):
    """The run's Markov credit equals Markov credit recomputed from every customer's whole
    journey in the event table, with the absorbing solve above: no touch is lost however
    long the journey (the ring keeps only the last RING)."""
    ds, paths = long_journeys
    nch = ds.sizes["channel"]
    assert sum(len(p) > RING + 1 for p, _ in paths) > 0.9 * len(paths)  # the ring overflows
    trans = counts(paths, nch)
    assert np.array_equal(ds.journey_transitions.values, trans)
    base = absorbing_solve(trans)
    effects = np.array([1.0 - absorbing_solve(trans, c) / base for c in range(nch)])
    expected = effects / effects.sum()
    markov = ds.attributed_conversions.sel(attribution_model="markov").values
    assert markov.sum() == pytest.approx(float(ds.conversions.sum()), rel=1e-9)
    assert markov / markov.sum() == pytest.approx(expected, abs=1e-6)
    assert sum(converted for _, converted in paths) == int(ds.conversions.sum())


def test_half_life_comes_from_the_scenario(default_scenario):
    data = default_scenario.model_dump(mode="json")
    out = {}
    for half_life in (0.5, 1e9):
        data["attribution"] = {"half_life_days": half_life}
        sc = scenario_from_dict(data)
        out[half_life] = simulation.run(own_market(sc, 4000), days=60, seed=9).attributed_conversions
    a, b = out[0.5], out[1e9]
    assert not np.allclose(a.sel(attribution_model="time_decay"), b.sel(attribution_model="time_decay"))
    others = [m for m in ATTR_MODELS if m != "time_decay"]
    assert np.array_equal(a.sel(attribution_model=others), b.sel(attribution_model=others))
    # with an endless half-life every touch weighs the same: time decay is linear
    assert b.sel(attribution_model="time_decay").values == pytest.approx(
        b.sel(attribution_model="linear").values, rel=1e-6)
