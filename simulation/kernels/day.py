"""The numba kernels that step the customer population one day.

Plain functions over arrays and scalars, nothing hidden. The population is
split into fixed chunks of ``CHUNK`` customers; each chunk is stepped by one
thread and writes only its own row of the counter matrix, so there are no
races and every float sum is done in the same order whatever the thread count.
Random numbers come from :mod:`simulation.rng` keyed by (day, customer, decision): each
helper below derives the stream of its own decision from the customer-day's ``base``, so
switching a programme on, or moving one channel's budget, never shifts another decision's
draws (common random numbers across strategies). The customer of a key is the index in the
whole market, ``first + i`` for the ``i``-th customer of ``pop``: a shard of the market
(``first`` > 0) draws what the whole would (``tests/test_shards.py`` checks every draw is
keyed so).

The population arrives as one tuple ``pop`` (``Population.arrays()``) indexed by the
``F_*`` constants of :mod:`simulation.state`: a constant index into a plain tuple is the
one form whose writes numba never loses inside ``prange`` (a named tuple's attributes,
``pop.health[i] = h``, can be; ``tests/test_rng_state.py`` keeps that checked). Counters
are addressed by name, ``cnt[CH.orders * nch + c]`` (:mod:`simulation.counters`). The
rules are named records (:mod:`simulation.parameters`): ``par.unit_cost`` (the market),
``segp[g].price`` (per segment: its plan's), ``chp[c].commission`` (per channel); a
mechanism's own, ``mech.<name>[0]``.
The accumulators of a chunk
(``cnt``: the day's counters, ``attr``: rule-based attribution credit, ``trans``: journey
transitions for Markov attribution, counted touch by touch) are rows owned by that chunk. ``log`` is the
event log of sampled customers, empty unless events are exported.

What happens to a customer on a day, in order:

1. a waiting lead (capacity-limited channel) may decay and be lost;
2. an active customer whose scheduled event falls today has it: a renewal
   (subscription, with churn at renewal), an order chance (repeat buyers: drop
   out with their BG/NBD probability, else order), or a lapse (one-time buyers);
3. each channel that can reach the customer's segment and stage draws whether it
   does, from its own stream keyed by the channel's name; each reach is counted and
   is a touch, and the first reaching channel whose stage effect succeeds (its own
   draw) moves the customer one stage on;
4. if nothing moved an aware or considering customer, they may forget.

A chunk takes its customers a block at a time (:func:`_triage`). The day's common draws
(every channel's exposure, forgetting) are made for the whole block at once, many
customers an instruction; then only customers with something to decide are visited one
by one: an active customer, a waiting lead, a customer who forgets, and one reached by a
channel unless the reach changes nothing but the reach counts (an unaware customer it
does not move on). Everyone else's day, most of a large market's, ends in the block's
counts (:func:`_tally`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from simulation import counters
from simulation.counters import MK
from simulation.kernels import holdout, mailing_list, outreach
from simulation.kernels.books import programme_cost
from simulation.kernels.events import EV_CHURN, EV_PURCHASE, EV_TOUCH, log_event
from simulation.parameters import BM_REPEAT, BM_SUBSCRIPTION
from simulation.rng import (
    beta,
    decision,
    decision_key,
    draw_bits,
    gamma,
    geometric_days,
    odds_of,
    poisson,
    stream,
    uniform,
    uniform_bits,
)
from simulation.state import (
    ACTIVE,
    AWARE,
    CHURNED,
    CONSENT,
    CONSIDERING,
    EXISTING,
    F_ACQ_CHANNEL,
    F_ACQUIRED_DAY,
    F_DROPOUT,
    F_FIRST_CHANNEL,
    F_FIRST_DAY,
    F_FLAGS,
    F_HEALTH,
    F_HEALTH_DAY,
    F_LEAD,
    F_MARGIN,
    F_NEXT_DAY,
    F_ORDERS,
    F_PURCHASE_RATE,
    F_REACHED_MASK,
    F_REVENUE,
    F_RING_CHANNEL,
    F_RING_DAY,
    F_RING_HEAD,
    F_SEGMENT,
    F_STAGE,
    F_TOUCHES,
    LISTED,
    MEMBER,
    NEVER,
    NO_CHANNEL,
    ONBOARDED,
    REMINDER,
    RING,
    UNAWARE,
)

CHUNK = 1 << 14

PROMOTER_HEALTH, DETRACTOR_HEALTH = 0.7, 0.4
# Attribution models computed in the kernel: attr[0, model, channel] credits conversions,
# attr[1, model, channel] the first order's net revenue with the same weights.
ATTR_MODELS = counters.RULE_MODELS

NEVER_DAY = int(NEVER)

CH = counters.CH
"""Counter blocks, with every mechanism's (imported above, each registering its own)."""


class Mechanisms(NamedTuple):
    """Each mechanism's kernel parameters: its component's ``kernel_parameters()``, a
    one-element record (:func:`simulation.jit.record`)."""

    outreach: np.ndarray

# The decisions of a customer-day, each with its own random stream. Channels' reach and
# effect draws are keyed by the channel's name (``channel_keys``).
D_LEAD_DECAY = decision_key("lead_decay")
D_LEAD_SERVED = decision_key("lead_served")
D_RETURN = decision_key("return")
D_SHARE = decision_key("share")
D_FEEDBACK = decision_key("feedback")
D_JOIN = decision_key("community_join")
D_WAIT = decision_key("next_event_wait")
D_PURCHASE_RATE = decision_key("purchase_rate")
D_DROPOUT = decision_key("dropout")
D_ONBOARDING = decision_key("onboarding")
D_REMINDER = decision_key("reminder_response")
D_CHURN = decision_key("churn")
D_FORGET = decision_key("forget")
D_WARM_GROUP = decision_key("warm_start_group")
D_WARM_AGE = decision_key("warm_start_age")
D_WARM_ORDERS = decision_key("warm_start_orders")


def channel_keys(names) -> np.ndarray:
    """Decision keys of the channels' exposures (whether channel c reaches a customer and
    whether its effect works), each keyed by the channel's name, not its position."""
    return np.array([decision_key("exposure:" + n) for n in names], dtype=np.uint64)


@njit(cache=True, inline="always")
def _draw(base, key):
    """The first uniform of a decision's stream."""
    u, _ = uniform(decision(base, key))
    return u



@njit(cache=True, inline="always")
def _health_now(pop, i, day, decay):
    h = pop[F_HEALTH][i] / 255.0 - decay * (day - pop[F_HEALTH_DAY][i])
    return h if h > 0.0 else 0.0


@njit(cache=True, inline="always")
def _set_health(pop, i, day, h):
    if h > 1.0:
        h = 1.0
    elif h < 0.0:  # stored as uint8: a negative value would wrap around
        h = 0.0
    pop[F_HEALTH][i] = np.uint8(h * 255.0 + 0.5)
    pop[F_HEALTH_DAY][i] = day


@njit(cache=True, inline="always")
def _schedule(day, wait):
    nd = day + wait
    return NEVER_DAY if nd >= NEVER_DAY else nd


N_CHANNEL_COUNTERS = len(counters.CHANNEL_COUNTERS)
N_MARKET_COUNTERS = len(counters.MARKET_COUNTERS)
N_STAGES = counters.N_STAGES


@njit(cache=True, inline="always")
def _count_cohort_order(pop, i, a, nch, cnt, segp):
    """An order of a customer won in the run, in the row's cohort block
    (:func:`simulation.counters.cohort_offset`; the block's weeks are what the row has
    room for)."""
    if pop[F_FLAGS][i] & EXISTING:
        return
    off = N_CHANNEL_COUNTERS * nch + N_STAGES * segp.shape[0] + N_MARKET_COUNTERS
    weeks = (cnt.shape[0] - off) // nch
    week = pop[F_ACQUIRED_DAY][i] // 7
    if week < weeks:
        cnt[off + a * weeks + week] += 1.0


@njit(cache=True)
def _book_order(pop, i, a, day, nch, cnt, log, ch, par, segp, chp, base):
    """One order by customer i, booked to acquisition channel a: the price of the customer's
    segment (its plan's, else the product's) at that channel's discount.

    Returns the order's net revenue, gross margin and channel fees.
    """
    price = segp[pop[F_SEGMENT][i]].price * chp[a].price_multiplier
    returned = False
    if par.return_rate > 0.0:
        returned = _draw(base, D_RETURN) < par.return_rate
    rev = 0.0 if returned else price
    comm = chp[a].commission * rev
    fee = chp[a].fee_per_order
    rc = par.return_cost if returned else 0.0
    m = rev - par.unit_cost - par.fulfilment_cost - rc - comm - fee
    cnt[CH.orders * nch + a] += 1.0
    _count_cohort_order(pop, i, a, nch, cnt, segp)
    cnt[CH.revenue * nch + a] += rev
    cnt[CH.cogs * nch + a] += par.unit_cost
    cnt[CH.fulfilment_cost * nch + a] += par.fulfilment_cost
    cnt[CH.return_cost * nch + a] += rc
    cnt[CH.commission * nch + a] += comm
    cnt[CH.order_fees * nch + a] += fee
    if returned:
        cnt[CH.returns * nch + a] += 1.0
        cnt[CH.refunds * nch + a] += price
    pop[F_REVENUE][i] += rev
    pop[F_MARGIN][i] += m
    if pop[F_FLAGS][i] & EXISTING:
        cnt[CH.base_margin * nch + a] += m
    mailing_list.opt_in_at_order(pop, i, a, nch, cnt, par, base)
    if pop[F_ORDERS][i] < 65535:
        pop[F_ORDERS][i] += 1
    log_event(log, ch, i, day, EV_PURCHASE, a, rev)
    return rev, m, comm + fee


@njit(cache=True, inline="always")
def _in_onboarding(pop, i, day, par):
    """Whether an enrolled customer is within onboarding's ``effect_days`` of the first order."""
    return (pop[F_FLAGS][i] & ONBOARDED) != 0 and day - pop[F_ACQUIRED_DAY][i] <= par.onboarding_days


@njit(cache=True, inline="always")
def _onboarding_covers(pop, i, day, par):
    """Whether onboarding cuts the hazard of an enrolled customer's decision to leave today.

    Within ``effect_days`` of the first order, and at the customer's first decision to
    leave wherever it falls: a subscriber's first renewal (one payment so far), a repeat
    buyer's first order chance at which a drop-out is possible (two orders so far). A
    subscriber or repeat buyer decides to leave only at those events, so a programme of
    the first weeks acts through the first renewal or drop-out chance it shapes; without
    this, an effect shorter than the billing period (or the time to a second order
    chance) would never meet a decision. A one-time buyer's lapse is a daily hazard,
    which the window alone covers (:func:`_next_event`).
    """
    if not (pop[F_FLAGS][i] & ONBOARDED):
        return False
    if day - pop[F_ACQUIRED_DAY][i] <= par.onboarding_days:
        return True
    first_decision = 1 if int(par.business_model) == BM_SUBSCRIPTION else 2
    return pop[F_ORDERS][i] == first_decision


@njit(cache=True)
def _churn_multiplier(pop, i, day, g, par, segp):
    """Churn hazard multiplier of a renewal or an order chance: segment, health, onboarding
    (:func:`_onboarding_covers`) and community membership."""
    m = segp[g].churn_multiplier
    if par.health_sensitivity > 0.0:
        h = _health_now(pop, i, day, par.health_decay)
        m *= np.exp(par.health_sensitivity * (0.5 - h))
    if _onboarding_covers(pop, i, day, par):
        m *= 1.0 - par.onboarding_churn_cut
    if pop[F_FLAGS][i] & MEMBER:
        m *= 1.0 - par.community_churn_cut
    return m


@njit(cache=True)
def _next_event(pop, i, day, g, par, segp, base):
    """Day of the next scheduled event of a customer who just ordered (or was won back).

    Subscriptions renew every period. Repeat buyers get their next order chance after a
    geometric wait at their own rate, or a replenishment reminder at run-out if that comes
    first (consenting customers only). One-time buyers lapse after a geometric wait whose
    hazard is lower while onboarding protects them (the wait is memoryless, so it is drawn
    piecewise: within the protected window, then at the ordinary hazard).
    """
    bm = int(par.business_model)
    if bm == BM_SUBSCRIPTION:
        return _schedule(day, int(segp[g].period))
    st = decision(base, D_WAIT)
    if bm == BM_REPEAT:
        lam = pop[F_PURCHASE_RATE][i]
        wait, st = geometric_days(1.0 - np.exp(-lam), st)
        cycle = int(par.reminder_cycle)
        if par.reminders > 0.0 and (pop[F_FLAGS][i] & CONSENT) and wait > cycle:
            pop[F_FLAGS][i] |= REMINDER
            return _schedule(day, cycle)
        return _schedule(day, wait)
    hazard = par.lapse_rate * segp[g].churn_multiplier
    if pop[F_FLAGS][i] & MEMBER:
        hazard *= 1.0 - par.community_churn_cut
    start = 0
    if _in_onboarding(pop, i, day, par):
        window = int(par.onboarding_days) - (day - pop[F_ACQUIRED_DAY][i])
        p = min(1.0, hazard * (1.0 - par.onboarding_churn_cut))
        wait, st = geometric_days(p, st)
        if wait <= window:
            return _schedule(day, wait)
        start = window
    wait, st = geometric_days(min(1.0, hazard), st)
    return _schedule(day, start + wait)


@njit(cache=True)
def _after_order(pop, i, a, day, nch, cnt, par, base):
    """What an order sets off after the sale: satisfaction, unboxing shares, feedback,
    community joining; and the repeat-buyer count."""
    flags = pop[F_FLAGS]
    if pop[F_ORDERS][i] == 2:
        cnt[CH.repeaters * nch + a] += 1.0
    boost = par.satisfaction_boost
    if par.share_rate > 0.0 and _draw(base, D_SHARE) < par.share_rate:
        cnt[CH.shares * nch + a] += 1.0
    if par.feedback_rate > 0.0:
        programme_cost(pop, i, a, par.feedback_cost, cnt, nch)
        if _draw(base, D_FEEDBACK) < par.feedback_rate:
            cnt[CH.feedback * nch + a] += 1.0
            boost += par.feedback_boost
    if par.join_rate > 0.0 and not (flags[i] & MEMBER):
        if _draw(base, D_JOIN) < par.join_rate:
            flags[i] |= MEMBER
            cnt[CH.community_joins * nch + a] += 1.0
    return boost


@njit(cache=True, inline="always")
def _journey_state(pop, i):
    """The Markov state a customer's acquisition journey is in: 0 (start) before the first
    touch, else 1 + the channel of the latest touch (the ring's newest slot).

    Only meaningful before the first purchase: after it the ring also holds touches of a
    lapsed customer, which belong to no acquisition journey.
    """
    if pop[F_TOUCHES][i] == 0:
        return 0
    newest = (int(pop[F_RING_HEAD][i]) + RING - 1) % RING
    return int(pop[F_RING_CHANNEL][i, newest]) + 1


@njit(cache=True, inline="always")
def _touch(pop, i, c, day, trans, log, ch):
    """A touch by channel c: onto the ring (the rule-based models' path) and, while the
    customer has not bought yet, into the Markov counts as the transition from the
    journey's previous touch (or start) to c.

    Counting each transition as it happens keeps the Markov chain exact however long the
    journey; the ring keeps only its last RING touches. Touches after the first purchase
    (of a lapsed customer, or by a channel after the converting one on the same day) are
    not part of the acquisition journey, as for the rule-based models.
    """
    touches = pop[F_TOUCHES]
    if pop[F_ACQ_CHANNEL][i] == NO_CHANNEL:
        trans[_journey_state(pop, i), c + 1] += 1.0
    if touches[i] == 0 and pop[F_FIRST_CHANNEL][i] == NO_CHANNEL:
        pop[F_FIRST_CHANNEL][i] = c
        pop[F_FIRST_DAY][i] = day
    h = pop[F_RING_HEAD][i]
    pop[F_RING_CHANNEL][i, h] = c
    pop[F_RING_DAY][i, h] = day
    pop[F_RING_HEAD][i] = (h + 1) % RING
    if touches[i] < 255:
        touches[i] += 1
    log_event(log, ch, i, day, EV_TOUCH, c, 0.0)


@njit(cache=True)
def _path(pop, i, chans, days):
    """The customer's journey into ``chans``/``days``: the first touch, then the recent ring.

    Returns its length (0 if untouched). When more than RING touches happened the
    middle of the journey is gone; the first touch is kept separately so that
    first-touch and position-based credit stay exact.
    """
    touches = pop[F_TOUCHES][i]
    n = touches if touches < RING else RING
    extra = 1 if touches > RING else 0
    if extra:
        chans[0] = pop[F_FIRST_CHANNEL][i]
        days[0] = pop[F_FIRST_DAY][i]
    head = pop[F_RING_HEAD][i]
    for k in range(n):
        j = (head - n + k) % RING
        chans[extra + k] = pop[F_RING_CHANNEL][i, j]
        days[extra + k] = pop[F_RING_DAY][i, j]
    return n + extra


@njit(cache=True)
def _credit(pop, i, day, attr, half_life, revenue, cnt, nch):
    """Credit one conversion (and its first order's ``revenue``) to the touches on the
    customer's path under each rule-based model.

    The path is :func:`_path`'s: exact for journeys of up to RING + 1 touches; beyond
    that the middle touches are missing (first and last touch stay exact). Markov
    credit does not use it (its transitions are counted touch by touch in :func:`_touch`).
    """
    chans = np.empty(RING + 1, np.int64)
    days = np.empty(RING + 1, np.float64)
    length = _path(pop, i, chans, days)
    if length == 0:
        return
    w = np.zeros((5, length))
    w[0, 0] = 1.0
    w[1, length - 1] = 1.0
    total = 0.0
    for k in range(length):
        days[k] = 0.5 ** ((day - days[k]) / half_life)
        total += days[k]
    for k in range(length):
        w[2, k] = 1.0 / length
        w[3, k] = days[k] / total
        if length == 1:
            w[4, k] = 1.0
        elif length == 2:
            w[4, k] = 0.5
        elif k == 0 or k == length - 1:
            w[4, k] = 0.4
        else:
            w[4, k] = 0.2 / (length - 2)
    for m in range(5):
        for k in range(length):
            attr[0, m, chans[k]] += w[m, k]
            attr[1, m, chans[k]] += w[m, k] * revenue
            cnt[(CH.credit_first_touch + m) * nch + chans[k]] += w[m, k]  # the day's credit


@njit(cache=True)
def _convert(pop, i, c, day, g, nch, cnt, attr, trans, log, ch, par, segp, chp, base):
    """First order of customer i, through channel c (its last touch)."""
    pop[F_STAGE][i] = ACTIVE
    pop[F_ACQ_CHANNEL][i] = c
    pop[F_ACQUIRED_DAY][i] = day
    pop[F_LEAD][i] = 0
    if int(par.business_model) == BM_REPEAT:
        lam, _ = gamma(segp[g].gamma_shape, decision(base, D_PURCHASE_RATE))
        pop[F_PURCHASE_RATE][i] = lam * segp[g].gamma_scale
        p, _ = beta(segp[g].beta_a, segp[g].beta_b, decision(base, D_DROPOUT))
        pop[F_DROPOUT][i] = p
    cnt[CH.conversions * nch + c] += 1.0
    health = par.initial_health
    if par.onboarding_reach > 0.0 and _draw(base, D_ONBOARDING) < par.onboarding_reach:
        pop[F_FLAGS][i] |= ONBOARDED
        cnt[CH.onboarded * nch + c] += 1.0
        cnt[CH.programme_cost * nch + c] += par.onboarding_cost
        cnt[CH.acquisition_programme_cost * nch + c] += par.onboarding_cost
        health += par.onboarding_boost
    rev, margin, fees = _book_order(pop, i, c, day, nch, cnt, log, ch, par, segp, chp, base)
    cnt[CH.first_order_revenue * nch + c] += rev
    cnt[CH.first_order_margin * nch + c] += margin
    cnt[CH.acquisition_fees * nch + c] += fees
    _credit(pop, i, day, attr, par.half_life, rev, cnt, nch)
    trans[_journey_state(pop, i), trans.shape[0] - 2] += 1.0  # the journey ends: conversion
    pop[F_TOUCHES][i] = 0
    boost = _after_order(pop, i, c, day, nch, cnt, par, base)
    _set_health(pop, i, day, health + boost)
    pop[F_NEXT_DAY][i] = _next_event(pop, i, day, g, par, segp, base)


@njit(cache=True, inline="always")
def _census(pop, i, day, par, mech, cnt, off, nch):
    """End of an active customer's day: the mechanisms' end-of-day rules (at-risk
    outreach), then the census: by acquisition channel, mean health, NPS proxy,
    community."""
    a = pop[F_ACQ_CHANNEL][i]
    cnt[CH.active * nch + a] += 1.0
    if pop[F_FLAGS][i] & EXISTING:
        cnt[CH.base_active * nch + a] += 1.0
    h = _health_now(pop, i, day, par.health_decay)
    h = outreach.contact_at_risk(pop, i, a, day, h, par.health_decay, mech.outreach[0], cnt,
                                nch)
    cnt[off + MK.health_sum] += h
    if h >= PROMOTER_HEALTH:
        cnt[off + MK.promoters] += 1.0
    elif h < DETRACTOR_HEALTH:
        cnt[off + MK.detractors] += 1.0
    if pop[F_FLAGS][i] & MEMBER:
        cnt[off + MK.members] += 1.0


@njit(cache=True, inline="always")
def _forget(pop, i, s, cnt, market_off):
    if s == CONSIDERING:
        pop[F_LEAD][i] = 0
        pop[F_STAGE][i] = AWARE
        cnt[market_off + MK.forgot_considering] += 1.0
    else:
        pop[F_STAGE][i] = UNAWARE
        cnt[market_off + MK.forgot_aware] += 1.0


@njit(cache=True)
def _churn(pop, i, a, day, nch, cnt, log, ch, par):
    flags = pop[F_FLAGS]
    pop[F_STAGE][i] = CHURNED
    pop[F_NEXT_DAY][i] = day  # a churned customer's next_day keeps the day of churn
    cnt[CH.churned * nch + a] += 1.0
    if flags[i] & EXISTING:
        cnt[CH.base_churned * nch + a] += 1.0
    cnt[CH.health_at_churn * nch + a] += _health_now(pop, i, day, par.health_decay)
    if flags[i] & MEMBER:
        flags[i] &= ~np.uint8(MEMBER)
        cnt[CH.community_leaves * nch + a] += 1.0
    flags[i] &= ~np.uint8(REMINDER)
    log_event(log, ch, i, day, EV_CHURN, a, 0.0)


@njit(cache=True, inline="always")
def _scheduled_event(pop, i, day, g, nch, cnt, log, ch, par, segp, chp, base):
    """Renewal, order chance, reminder or lapse of an active customer; returns the stage."""
    bm = int(par.business_model)
    a = pop[F_ACQ_CHANNEL][i]
    flags = pop[F_FLAGS]
    # customers who get reminders (consenting, programme on) drift away less
    dropout_cut = 1.0
    if par.reminders > 0.0 and (flags[i] & CONSENT):
        dropout_cut = 1.0 - par.reminder_dropout_cut
    if flags[i] & REMINDER and par.reminders <= 0.0:
        # planned at the order, but a scheduled change has switched reminders off since:
        # none is sent, and the wait for the next order chance starts again (memoryless)
        flags[i] &= ~np.uint8(REMINDER)
        pop[F_NEXT_DAY][i] = _next_event(pop, i, day, g, par, segp, base)
        return ACTIVE
    if flags[i] & REMINDER:
        flags[i] &= ~np.uint8(REMINDER)
        cnt[CH.reminders * nch + a] += 1.0
        programme_cost(pop, i, a, par.reminder_cost, cnt, nch)
        if _draw(base, D_REMINDER) >= par.reminder_response:
            # not now: the next order chance comes at its own pace
            pop[F_NEXT_DAY][i] = _next_event(pop, i, day, g, par, segp, base)
            return ACTIVE
        cnt[CH.reminder_orders * nch + a] += 1.0
    u = _draw(base, D_CHURN)
    if bm == BM_SUBSCRIPTION:
        churn = u < segp[g].subscription_churn * _churn_multiplier(pop, i, day, g, par, segp)
    elif bm == BM_REPEAT:
        # BG/NBD: a customer drops out only after a repeat purchase, so the first chance
        # after the first order is always an order
        churn = pop[F_ORDERS][i] > 1 and (
            u < pop[F_DROPOUT][i] * dropout_cut * _churn_multiplier(pop, i, day, g, par, segp))
    else:
        churn = True
    if churn:
        _churn(pop, i, a, day, nch, cnt, log, ch, par)
        return CHURNED
    _book_order(pop, i, a, day, nch, cnt, log, ch, par, segp, chp, base)
    boost = _after_order(pop, i, a, day, nch, cnt, par, base)
    h = _health_now(pop, i, day, par.health_decay) + par.order_boost + boost
    _set_health(pop, i, day, h)
    pop[F_NEXT_DAY][i] = _next_event(pop, i, day, g, par, segp, base)
    return ACTIVE


@njit(cache=True)
def thresholds(exposure):
    """``exposure[g, s, c, k]`` as ``out[k, c, g * N_STAGES + s]``: a channel's thresholds
    in one row, indexed by the customer's (segment, stage), for :func:`_triage`."""
    nseg, nst, nch = exposure.shape[0], exposure.shape[1], exposure.shape[2]
    out = np.empty((2, nch, nseg * nst), np.uint64)
    for g in range(nseg):
        for s in range(nst):
            for c in range(nch):
                for k in range(2):
                    out[k, c, g * nst + s] = exposure[g, s, c, k]
    return out


BLOCK = 512
"""Customers a chunk sorts at once (:func:`_triage`) before visiting those with something
to decide; small enough that the block's scratch arrays stay in the core's first cache."""


@njit(cache=True)
def _triage(key, first, lo, m, segment, stage, lead, reached_mask, thr, chday, live,
            forget_aware, forget_considering, plain, cnt, cell, bits, mask, works, gone, flag,
            who):
    """Sort customers ``lo ... lo + m - 1`` of the day: those with something to decide go
    into ``who`` (offsets from ``lo``; the count is returned) and the day of the others is
    done here, a channel at a time, many customers an instruction.

    **The exposures.** Each channel draws one uniform ``u`` per customer from its own
    stream, keyed by its name and the day (``chday``), so a channel's budget never moves
    whom another reaches. It reaches if ``u < r`` and its effect works if ``u < r e``:
    given a reach, ``u / r`` is uniform, so the effect has probability ``e`` as its own
    draw would, and both sets only grow with the channel's reach (a higher budget reaches
    and moves everyone a lower one did). ``thr[0, c, g * N_STAGES + s]`` holds ``r`` and
    ``thr[1, ...]`` ``r e`` for segment g in stage s, as :func:`simulation.rng.odds`
    (:func:`thresholds`); only ``live`` channels (a threshold above 0 somewhere today)
    draw. Bit masks into ``mask`` (reached) and ``works`` (would move the customer on).

    **Forgetting** is drawn here too, from the customer-day's stream as the visit would
    (``gone``: an aware or considering customer who forgets today if nothing moves them).

    **Visited** (the full rules of :func:`step_day`): active customers (an event, the
    census), waiting leads, those who forget, and those reached unless the reach changes
    nothing but the reach counts: an unaware customer whom no reaching channel moves,
    when every reaching channel is ``plain`` (not personalised, no hold-out cell, not the
    list channel, no sign-ups to the list at a visit). For those the reach counts and
    reach bits are booked here.

    Every draw is made from the stage at the block's start, which is the stage a customer
    is exposed in: only the customer's own earlier steps of the day (a lost lead, a
    scheduled event) change it, and those leave no exposure that day.
    """
    nch = chday.shape[0]
    for j in range(m):
        cell[j] = np.uint64(segment[lo + j]) * np.uint64(N_STAGES) + np.uint64(stage[lo + j])
        mask[j] = 0
        works[j] = 0
    for c in range(nch):
        if not live[c]:
            continue
        day_key = chday[c]
        reach = thr[0, c]
        effect = thr[1, c]
        bit = np.uint64(c)
        for j in range(m):
            bits[j] = draw_bits(day_key, first + (lo + j))
        for j in range(m):
            mask[j] |= np.uint64(bits[j] < reach[cell[j]]) << bit
            works[j] |= np.uint64(bits[j] < effect[cell[j]]) << bit
    if forget_aware or forget_considering:
        for j in range(m):
            s = stage[lo + j]
            u = uniform_bits(decision(stream(key, first + (lo + j)), D_FORGET))
            odds = forget_aware if s == AWARE else (forget_considering if s == CONSIDERING else 0)
            gone[j] = u < odds
    else:  # nobody forgets: no draw
        gone[:m] = 0
    for j in range(m):
        s = stage[lo + j]
        quiet = (s == UNAWARE) & (works[j] == 0) & ((mask[j] & ~plain) == 0)
        visit = ((s == ACTIVE) | (gone[j] != 0) | ((s == CONSIDERING) & (lead[lo + j] > 0))
                 | ((mask[j] != 0) & ~quiet))
        flag[j] = visit
        bits[j] = 0 if visit else mask[j]  # reached, and nothing more happens today
    n = 0
    eight = flag.view(np.uint64)  # the flags eight at a time: most words hold no visit
    for q in range((m + 7) // 8):
        if eight[q] == 0:
            continue
        for j in range(8 * q, min(m, 8 * q + 8)):
            who[n] = j
            n += flag[j]
    for j in range(m):
        reached_mask[lo + j] |= bits[j]
    for c in range(nch):
        if not live[c]:
            continue
        bit = np.uint64(c)
        reached = 0
        for j in range(m):
            reached += (bits[j] >> bit) & np.uint64(1)
        cnt[CH.reached * nch + c] += reached
    return n


@njit(cache=True, inline="always")
def _exposures(pop, i, s, g, day, mask, works, nch, cnt, attr, trans, log, ch, par, segp,
               chp, base):
    """What the channels in ``mask`` (those reaching customer i today) do: a visit may
    sign the customer up to the firm's list; each reach is counted and is a touch; the
    first in ``works`` (:func:`_triage`) moves the customer one stage on; last, the list
    channel's contact may make them unsubscribe. Returns whether a channel moved the
    customer on.
    """
    moved = False
    lc = int(par.list_channel)
    if lc >= 0:
        mailing_list.opt_in_at_visits(pop, i, mask, nch, cnt, par, chp, base)
    for c in range(nch):
        if not (mask >> np.uint64(c)) & np.uint64(1):
            continue
        cnt[CH.reached * nch + c] += 1.0
        if s != UNAWARE and s != ACTIVE:
            _touch(pop, i, c, day, trans, log, ch)
        if moved:
            continue
        if s == CONSIDERING and chp[c].capacity > 0.0:
            # a capacity-limited channel turns a prospect into a waiting lead;
            # its decision effect applies when the lead is served
            if pop[F_LEAD][i] == 0:
                pop[F_LEAD][i] = c + 1
                cnt[CH.leads_new * nch + c] += 1.0
            continue
        if not (works >> np.uint64(c)) & np.uint64(1):
            continue
        moved = True
        if s == UNAWARE:
            _touch(pop, i, c, day, trans, log, ch)
            target = int(par.word_of_mouth_target) if c == nch - 1 else AWARE
            cnt[CH.moved_aware * nch + c] += 1.0
            if target == ACTIVE:
                _convert(pop, i, c, day, g, nch, cnt, attr, trans, log, ch, par, segp, chp, base)
            else:
                pop[F_STAGE][i] = target
                if target == CONSIDERING:
                    cnt[CH.moved_considering * nch + c] += 1.0
                    mailing_list.opt_in_at_consideration(pop, i, c, nch, cnt, par, base)
        elif s == AWARE:
            pop[F_STAGE][i] = CONSIDERING
            cnt[CH.moved_considering * nch + c] += 1.0
            mailing_list.opt_in_at_consideration(pop, i, c, nch, cnt, par, base)
        elif s == CONSIDERING:
            _convert(pop, i, c, day, g, nch, cnt, attr, trans, log, ch, par, segp, chp, base)
        elif s == CHURNED:
            pop[F_STAGE][i] = ACTIVE
            pop[F_TOUCHES][i] = 0
            cnt[CH.winbacks * nch + c] += 1.0
            a = pop[F_ACQ_CHANNEL][i]
            _book_order(pop, i, a, day, nch, cnt, log, ch, par, segp, chp, base)
            boost = _after_order(pop, i, a, day, nch, cnt, par, base)
            _set_health(pop, i, day, par.initial_health + boost)
            pop[F_NEXT_DAY][i] = _next_event(pop, i, day, g, par, segp, base)
        else:  # ACTIVE: a retention touch lifts health
            h = _health_now(pop, i, day, par.health_decay) + par.order_boost
            _set_health(pop, i, day, h)
    if lc >= 0 and (mask >> np.uint64(lc)) & np.uint64(1):
        mailing_list.contacted(pop, i, lc, nch, cnt, par, base)
    return moved


@njit(cache=True, inline="always")
def _tally(lo, m, segment, stage, flags, listbit, tally):
    """End of the day of customers ``lo ... lo + m - 1``: their count in each (segment,
    stage) cell, and on the firm's list (``tally[:, -1]``, when one exists), into the
    chunk's ``tally`` (:func:`_book_tally`).

    Most customers of a day are never visited one by one (:func:`_triage`), so all of them
    are counted here. Four rows taken in turn, so that neighbours in the same cell do not
    wait for each other's addition.
    """
    for j in range(m):
        tally[j & 3, segment[lo + j] * N_STAGES + stage[lo + j]] += 1
    if listbit:
        for j in range(m):
            tally[j & 3, -1] += (flags[lo + j] & LISTED) != 0


@njit(cache=True, inline="always")
def _book_tally(tally, cnt, stage_off, list_size, listbit):
    """A chunk's :func:`_tally` into its counter row: the occupancy block and the list."""
    cells = tally.shape[1] - 1
    for k in range(cells):
        cnt[stage_off + k] += tally[0, k] + tally[1, k] + tally[2, k] + tally[3, k]
    if listbit:
        cnt[list_size] += tally[0, cells] + tally[1, cells] + tally[2, cells] + tally[3, cells]


@njit(parallel=True, cache=True)
def step_day(day, key, first, pop, exposure, reachable, chday, forget, market, mech, segp, chp,
             cnt_all, attr_all, trans_all, waiting, log, hold, holding):
    """Step every customer through ``day``; counters of the day go to ``cnt_all[chunk]``.

    ``reachable[g, s]`` says whether any channel can reach segment g in stage s today.
    ``hold``, ``holding``: the channels' hold-out cells (:mod:`simulation.kernels.holdout`);
    a channel never reaches a customer of its cell, and a first order of a customer in a
    cell counts in that channel's ``holdout_conversions``.
    ``first`` is the index in the whole market of ``pop``'s customer 0: every draw is
    keyed by the market index, so a shard of the market (:mod:`simulation.shards`) draws
    exactly what the whole would for the same customers (0 when ``pop`` is the whole)."""
    segment = pop[F_SEGMENT]
    stage = pop[F_STAGE]
    next_day = pop[F_NEXT_DAY]
    lead = pop[F_LEAD]
    flags = pop[F_FLAGS]
    reached_mask = pop[F_REACHED_MASK]
    n = stage.shape[0]
    nch = exposure.shape[2]
    nseg = exposure.shape[0]
    stage_off = len(CH) * nch
    market_off = stage_off + 5 * nseg
    has_capacity = False
    personal = np.uint64(0)
    for c in range(nch):
        if chp[c].capacity > 0.0:
            has_capacity = True
        if chp[c].personalised > 0.0:
            personal |= np.uint64(1) << np.uint64(c)
    # the channel sending to the firm's list reaches only those on it (LISTED)
    lc = int(market[0].list_channel)
    listbit = np.uint64(1) << np.uint64(lc) if lc >= 0 else np.uint64(0)
    list_size = CH.list_size * nch + lc
    thr = thresholds(exposure)
    live = np.zeros(nch, np.bool_)
    for c in range(nch):
        live[c] = (thr[0, c] > 0).any()
    forget_aware = odds_of(forget[AWARE])
    forget_considering = odds_of(forget[CONSIDERING])
    # channels whose reach of an unaware customer they do not move changes nothing but the
    # reach counts (:func:`_triage`): not a personalised one, one with a hold-out cell, the
    # list channel (it mails only those on the list, who may unsubscribe), or one whose
    # visit may sign the customer up to the list
    plain = ~(personal | holding | listbit)
    if lc >= 0:
        for c in range(nch):
            if chp[c].opt_in_visit > 0.0:
                plain &= ~(np.uint64(1) << np.uint64(c))
    n_chunks = cnt_all.shape[0]
    for ch in prange(n_chunks):
        par = market[0]  # the rules (a record: par.unit_cost, ...), read inside the loop
        cnt = cnt_all[ch]
        attr = attr_all[ch]
        trans = trans_all[ch]
        lo = ch * CHUNK
        hi = min(n, lo + CHUNK)
        cell = np.empty(BLOCK, np.uint64)
        bits = np.empty(BLOCK, np.uint64)
        reach_mask = np.empty(BLOCK, np.uint64)
        reach_works = np.empty(BLOCK, np.uint64)
        gone = np.empty(BLOCK, np.uint8)
        flag = np.zeros(BLOCK, np.uint8)  # read eight at a time; those past a block's end never count
        who = np.empty(BLOCK, np.int64)
        tally = np.zeros((4, nseg * N_STAGES + 1), np.int64)
        for b0 in range(lo, hi, BLOCK):
            m = min(BLOCK, hi - b0)
            visits = _triage(key, first, b0, m, segment, stage, lead, reached_mask, thr, chday,
                             live, forget_aware, forget_considering, plain, cnt, cell, bits,
                             reach_mask, reach_works, gone, flag, who)
            for v in range(visits):
                j = who[v]
                i = b0 + j
                s = stage[i]
                g = segment[i]
                has_event = s == ACTIVE and next_day[i] == day
                has_lead = s == CONSIDERING and lead[i] > 0
                if not reachable[g, s] and forget[s] <= 0.0 and not has_event and not has_lead:
                    if s == ACTIVE:
                        _census(pop, i, day, par, mech, cnt, market_off, nch)
                    continue
                done = False
                base = np.uint64(0)  # the customer-day's stream, drawn from only when needed
                if has_lead or has_event:
                    base = stream(key, first + i)
                # 1. a waiting lead may be lost
                if has_lead:
                    c = lead[i] - 1
                    if _draw(base, D_LEAD_DECAY) < chp[c].lead_decay:
                        lead[i] = 0
                        stage[i] = AWARE
                        cnt[CH.leads_lost * nch + c] += 1.0
                        done = True
                # 2. the scheduled event of an active customer
                if has_event:
                    s = _scheduled_event(pop, i, day, g, nch, cnt, log, ch, par, segp, chp, base)
                    done = True
                # 3. exposures, 4. forgetting when nothing moved the customer
                if not done:
                    moved = False
                    if reachable[g, s]:
                        mask = reach_mask[j]
                        works = reach_works[j]
                        if mask and not (flags[i] & CONSENT):
                            # personalised contact only reaches customers who consented
                            mask &= ~personal
                            works &= ~personal
                        if mask & listbit and not (flags[i] & LISTED):
                            mask &= ~listbit
                            works &= ~listbit
                        if mask & holding:  # a channel never reaches its hold-out cell
                            out = holdout.held(hold, holding, first + i)
                            mask &= ~out
                            works &= ~out
                        if mask:
                            reached_mask[i] |= mask
                            base = stream(key, first + i)
                            unbought = pop[F_ACQ_CHANNEL][i] == NO_CHANNEL
                            moved = _exposures(pop, i, s, g, day, mask, works, nch, cnt, attr,
                                               trans, log, ch, par, segp, chp, base)
                            if holding and unbought and pop[F_ACQ_CHANNEL][i] != NO_CHANNEL:
                                holdout.count_conversion(hold, holding, first + i, cnt, nch,
                                                         CH.holdout_conversions)
                    s = stage[i]
                    if not moved and (s == AWARE or s == CONSIDERING) and gone[j]:
                        _forget(pop, i, s, cnt, market_off)
                s = stage[i]
                if s == ACTIVE:
                    _census(pop, i, day, par, mech, cnt, market_off, nch)
                elif has_capacity and s == CONSIDERING and lead[i] > 0:
                    waiting[ch, lead[i] - 1] += 1
            _tally(b0, m, segment, stage, flags, listbit, tally)
        _book_tally(tally, cnt, stage_off, list_size, listbit)


@njit(parallel=True, cache=True)
def serve_leads(day, key, first, quota, pop, eff, market, mech, segp, chp, cnt_all, attr_all,
                trans_all, log, hold, holding):
    """Serve waiting leads up to each chunk's quota (in customer order): close or release them.

    ``first``, ``hold``, ``holding``: as for :func:`step_day` (a lead's first order counts in
    the hold-out cells the customer is in)."""
    stage = pop[F_STAGE]
    lead = pop[F_LEAD]
    n = stage.shape[0]
    nch = eff.shape[2]
    nseg = eff.shape[0]
    stage_off = len(CH) * nch
    n_chunks = cnt_all.shape[0]
    for ch in prange(n_chunks):
        par = market[0]
        cnt = cnt_all[ch]
        trans = trans_all[ch]
        left = quota[ch].copy()
        lo = ch * CHUNK
        hi = min(n, lo + CHUNK)
        for i in range(lo, hi):
            if lead[i] == 0 or stage[i] != CONSIDERING:
                continue
            c = lead[i] - 1
            if left[c] <= 0:
                continue
            left[c] -= 1
            g = pop[F_SEGMENT][i]
            cnt[CH.leads_served * nch + c] += 1.0
            base = stream(key, first + i)
            lead[i] = 0
            _touch(pop, i, c, day, trans, log, ch)  # the sales conversation is a touch
            if _draw(base, D_LEAD_SERVED) < eff[g, CONSIDERING, c]:
                listed = pop[F_FLAGS][i] & LISTED
                unbought = pop[F_ACQ_CHANNEL][i] == NO_CHANNEL
                _convert(pop, i, c, day, g, nch, cnt, attr_all[ch], trans, log, ch, par,
                         segp, chp, base)
                if holding and unbought:
                    holdout.count_conversion(hold, holding, first + i, cnt, nch,
                                             CH.holdout_conversions)
                cnt[stage_off + g * 5 + CONSIDERING] -= 1.0
                cnt[stage_off + g * 5 + ACTIVE] += 1.0
                if not listed and pop[F_FLAGS][i] & LISTED:  # joined at the order
                    cnt[CH.list_size * nch + int(par.list_channel)] += 1.0
                _census(pop, i, day, par, mech, cnt, stage_off + 5 * nseg, nch)


@njit(parallel=True, cache=True)
def unconverted_journeys(pop, trans_all):
    """At the end of a run: journeys of touched customers who never bought end in 'no
    conversion' (the transition from their latest touch)."""
    n = pop[F_STAGE].shape[0]
    n_chunks = trans_all.shape[0]
    for ch in prange(n_chunks):
        trans = trans_all[ch]
        end = trans.shape[0] - 1
        lo = ch * CHUNK
        hi = min(n, lo + CHUNK)
        for i in range(lo, hi):
            if pop[F_ACQ_CHANNEL][i] != NO_CHANNEL or pop[F_TOUCHES][i] == 0:
                continue
            trans[_journey_state(pop, i), end] += 1.0


@njit(parallel=True, cache=True)
def assign_segments(segment, cum_share, key, first):
    """Each customer's segment, drawn from its own stream (same on any thread count).

    ``first`` is the index in the whole market of ``segment[0]``: a shard of the market
    draws exactly what the whole market would for the same customers."""
    n = segment.shape[0]
    nseg = cum_share.shape[0]
    for i in prange(n):
        st = stream(key, first + i)
        u, st = uniform(st)
        g = 0
        while g < nseg - 1 and u >= cum_share[g]:
            g += 1
        segment[i] = g


@njit(parallel=True, cache=True)
def assign_consent(flags, opt_out, key, first):
    """Consent to personalised contact, drawn per customer from its own stream (``first``:
    as for :func:`assign_segments`)."""
    for i in prange(flags.shape[0]):
        st = stream(key, first + i)
        u, st = uniform(st)
        if u >= opt_out:
            flags[i] |= CONSENT


@njit(parallel=True, cache=True)
def assign_list(flags, chance, needs_consent, key, first):
    """The firm's list on day 0 (``initial.list_size``): each customer (each consenting one,
    for a personalised list) is on it with probability ``chance``, drawn from their own
    stream (``first``: as for :func:`assign_segments`)."""
    for i in prange(flags.shape[0]):
        if needs_consent and not (flags[i] & CONSENT):
            continue
        u, _ = uniform(stream(key, first + i))
        if u < chance:
            flags[i] |= LISTED


WS_ACTIVE, WS_LAPSED, WS_AWARE, WS_CONSIDERING = range(4)
"""Kinds of a warm start's groups (:func:`warm_start`)."""


@njit(parallel=True, cache=True)
def warm_start(pop, key, first, cum, kind, channel, tenure, member_share, market, segp):
    """Day-0 state of a market that is already running (``[initial]``).

    Customer ``first + i`` of segment g draws one uniform from their own stream and falls
    into the group whose cumulative share ``cum[g, k]`` first exceeds it (beyond the last:
    unaware).
    ``kind[k]``: an existing active customer acquired through ``channel[k]`` over the
    ``tenure[k]`` days before day 0, a lapsed one, or an aware or considering prospect.
    An active customer's state comes from the run's own rules, as if its last simulated
    day had been day -1: a repeat buyer's purchase rate and drop-out from the segment,
    orders so far 1 + Poisson(rate x age), its next order chance (or reminder) a fresh
    wait; a subscriber's next renewal from its age; a one-time buyer's lapse a fresh wait
    (memoryless, so a stationary market stays stationary). Community members are drawn
    among the active with probability ``member_share``.
    """
    stage = pop[F_STAGE]
    n = stage.shape[0]
    for i in prange(n):
        par = market[0]  # read inside the loop, as in step_day
        bm = int(par.business_model)
        base = stream(key, first + i)
        u = _draw(base, D_WARM_GROUP)
        g = pop[F_SEGMENT][i]
        k = 0
        while k < cum.shape[1] and u >= cum[g, k]:
            k += 1
        if k == cum.shape[1]:
            continue
        what = kind[k]
        if what == WS_AWARE:
            stage[i] = AWARE
            continue
        if what == WS_CONSIDERING:
            stage[i] = CONSIDERING
            continue
        pop[F_ACQ_CHANNEL][i] = channel[k]
        pop[F_FLAGS][i] |= EXISTING
        pop[F_ORDERS][i] = 1
        if what == WS_LAPSED:
            stage[i] = CHURNED
            pop[F_NEXT_DAY][i] = 0
            continue
        stage[i] = ACTIVE
        age = 1 + int(_draw(base, D_WARM_AGE) * tenure[k])  # days since the first order
        if member_share > 0.0 and _draw(base, D_JOIN) < member_share:
            pop[F_FLAGS][i] |= MEMBER
        _set_health(pop, i, 0, par.initial_health)
        if bm == BM_REPEAT:
            lam, _ = gamma(segp[g].gamma_shape, decision(base, D_PURCHASE_RATE))
            lam *= segp[g].gamma_scale
            pop[F_PURCHASE_RATE][i] = lam
            p, _ = beta(segp[g].beta_a, segp[g].beta_b, decision(base, D_DROPOUT))
            pop[F_DROPOUT][i] = p
            more, _ = poisson(lam * age, decision(base, D_WARM_ORDERS))
            pop[F_ORDERS][i] = min(65535, 1 + more)
        if bm == BM_SUBSCRIPTION:
            period = int(segp[g].period)
            pop[F_NEXT_DAY][i] = (period - age % period) % period
        else:
            pop[F_NEXT_DAY][i] = _next_event(pop, i, -1, g, par, segp, base)


MOMENTS = ("new_customers", "customers", "revenue", "revenue_squared", "margin", "margin_squared")
"""What :func:`sample_moments` sums per acquisition channel."""


@njit(parallel=True, cache=True)
def sample_moments(pop, n_channels, n_chunks):
    """Per chunk and acquisition channel, the sums the sample's standard errors are
    computed from (``MOMENTS``): new customers, all customers (those from before day 0
    too), and each customer's revenue and gross margin and their squares. By chunk, so
    that the chunks' rows add up in the same order however the market is split."""
    n = pop[F_STAGE].shape[0]
    out = np.zeros((n_chunks, len(MOMENTS), n_channels))
    for ch in prange(n_chunks):
        lo = ch * CHUNK
        hi = min(n, lo + CHUNK)
        for i in range(lo, hi):
            a = pop[F_ACQ_CHANNEL][i]
            if a == NO_CHANNEL:
                continue
            if not (pop[F_FLAGS][i] & EXISTING):
                out[ch, 0, a] += 1.0
            out[ch, 1, a] += 1.0
            r = np.float64(pop[F_REVENUE][i])
            m = np.float64(pop[F_MARGIN][i])
            out[ch, 2, a] += r
            out[ch, 3, a] += r * r
            out[ch, 4, a] += m
            out[ch, 5, a] += m * m
    return out


@njit(parallel=True, cache=True)
def unique_reach(reached_mask, n_channels, n_chunks):
    """Customers ever reached by each channel (popcount of the reach bitmasks, by chunk)."""
    n = reached_mask.shape[0]
    out = np.zeros((n_chunks, n_channels), np.int64)
    for ch in prange(n_chunks):
        lo = ch * CHUNK
        hi = min(n, lo + CHUNK)
        for i in range(lo, hi):
            m = reached_mask[i]
            if m == 0:
                continue
            for c in range(n_channels):
                if (m >> np.uint64(c)) & np.uint64(1):
                    out[ch, c] += 1
    return out.sum(axis=0)
