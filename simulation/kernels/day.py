"""The numba kernels that step the customer population one day.

Plain functions over arrays and scalars, nothing hidden. The population is
split into fixed chunks of ``CHUNK`` customers; each chunk is stepped by one
thread and writes only its own row of the counter matrix, so there are no
races and every float sum is done in the same order whatever the thread count.
Random numbers come from :mod:`simulation.rng` keyed by (day, customer).

What happens to a customer on a day, in order:

1. a waiting lead (capacity-limited channel) may decay and be lost;
2. an active customer whose scheduled event falls today has it: a renewal
   (subscription, with churn at renewal), an order chance (repeat buyers: drop
   out with their BG/NBD probability, else order), or a lapse (one-time buyers);
3. one uniform decides whether any channel reaches the customer today (the
   common case is "none", and it costs this single draw); reached channels are
   found by sequential conditioning, each counted, each a touch, and the first
   whose stage effect succeeds moves the customer one stage on;
4. if nothing moved an aware or considering customer, they may forget.

Customers who have nothing to decide today (nobody can reach them, they cannot
forget, no event is scheduled) cost a byte or two of reads and no draw.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from simulation.rng import beta, gamma, geometric_days, stream, uniform
from simulation.state import ACTIVE, AWARE, CHURNED, CONSIDERING, RING, UNAWARE

CHUNK = 1 << 14

# Per-channel counter blocks: counter index = block * n_channels + channel.
(
    REACHED, CONVERSIONS, ORDERS, REVENUE, COGS, FULFILMENT, RETURN_COST, COMMISSION, ORDER_FEES,
    RETURNS, REFUNDS, CHURNED_BY, WINBACKS, LEADS_NEW, LEADS_LOST, LEADS_SERVED, MOVED_AWARE,
    MOVED_CONSIDERING,
) = range(18)
N_BLOCKS = 18
BLOCK_NAMES = (
    "reached", "conversions", "orders", "revenue", "cogs", "fulfilment_cost", "return_cost",
    "commission", "order_fees", "returns", "refunds", "churned", "winbacks", "leads_new",
    "leads_lost", "leads_served", "moved_aware", "moved_considering",
)
# Attribution models computed in the kernel (index into attr[:, model, channel]).
ATTR_MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based")

# Scalar parameters, packed in one float64 array.
(
    P_PRICE, P_UNIT_COST, P_FULFIL, P_RET_RATE, P_RET_COST, P_BM, P_PERIOD, P_SUB_CHURN, P_LAPSE,
    P_H_INIT, P_H_DECAY, P_H_BOOST, P_H_SENS, P_WOM_TARGET, P_HALF_LIFE,
) = range(15)
N_PAR = 15
BM_ONE_TIME, BM_REPEAT, BM_SUBSCRIPTION = 0, 1, 2
# Per-segment parameters.
S_GAMMA_SHAPE, S_GAMMA_SCALE, S_BETA_A, S_BETA_B, S_CHURN_MULT = range(5)
# Per-channel parameters.
C_COMMISSION, C_FEE, C_CAPACITY, C_LEAD_DECAY = range(4)
N_CHP = 4

NEVER_DAY = 65535


def counter_width(n_channels: int, n_segments: int) -> int:
    """Counters per chunk: the per-channel blocks, stage x segment occupancy, two forgetting flows."""
    return N_BLOCKS * n_channels + 5 * n_segments + 2


@njit(cache=True, inline="always")
def _health_now(health, health_day, i, day, decay):
    h = health[i] / 255.0 - decay * (day - health_day[i])
    return h if h > 0.0 else 0.0


@njit(cache=True, inline="always")
def _set_health(health, health_day, i, day, h):
    if h > 1.0:
        h = 1.0
    health[i] = np.uint8(h * 255.0 + 0.5)
    health_day[i] = day


@njit(cache=True, inline="always")
def _schedule(day, wait):
    nd = day + wait
    return NEVER_DAY if nd >= NEVER_DAY else nd


@njit(cache=True)
def _book_order(i, a, nch, cnt, revenue, margin, orders, par, chp, st):
    """One order by customer i, booked to acquisition channel a."""
    price = par[P_PRICE]
    returned = False
    if par[P_RET_RATE] > 0.0:
        u, st = uniform(st)
        returned = u < par[P_RET_RATE]
    rev = 0.0 if returned else price
    comm = chp[a, C_COMMISSION] * rev
    fee = chp[a, C_FEE]
    rc = par[P_RET_COST] if returned else 0.0
    m = rev - par[P_UNIT_COST] - par[P_FULFIL] - rc - comm - fee
    cnt[ORDERS * nch + a] += 1.0
    cnt[REVENUE * nch + a] += rev
    cnt[COGS * nch + a] += par[P_UNIT_COST]
    cnt[FULFILMENT * nch + a] += par[P_FULFIL]
    cnt[RETURN_COST * nch + a] += rc
    cnt[COMMISSION * nch + a] += comm
    cnt[ORDER_FEES * nch + a] += fee
    if returned:
        cnt[RETURNS * nch + a] += 1.0
        cnt[REFUNDS * nch + a] += price
    revenue[i] += rev
    margin[i] += m
    if orders[i] < 65535:
        orders[i] += 1
    return st


@njit(cache=True)
def _next_event(i, day, g, purchase_rate, par, segp, st):
    """Day of the next scheduled event of a customer who just ordered (or was won back)."""
    bm = int(par[P_BM])
    if bm == BM_SUBSCRIPTION:
        return _schedule(day, int(par[P_PERIOD])), st
    if bm == BM_REPEAT:
        lam = purchase_rate[i]
        wait, st = geometric_days(1.0 - np.exp(-lam), st)
        return _schedule(day, wait), st
    p = par[P_LAPSE] * segp[g, S_CHURN_MULT]
    wait, st = geometric_days(p if p < 1.0 else 1.0, st)
    return _schedule(day, wait), st


@njit(cache=True, inline="always")
def _touch(i, c, day, ring_channel, ring_day, ring_head, touches, first_channel, first_day):
    if touches[i] == 0 and first_channel[i] == 255:
        first_channel[i] = c
        first_day[i] = day
    h = ring_head[i]
    ring_channel[i, h] = c
    ring_day[i, h] = day
    ring_head[i] = (h + 1) % RING
    if touches[i] < 255:
        touches[i] += 1


@njit(cache=True)
def _credit(i, day, attr, ring_channel, ring_day, ring_head, touches, first_channel, first_day, half_life):
    """Credit one conversion to the touches on the customer's path under each rule-based model."""
    n = touches[i] if touches[i] < RING else RING
    extra = 1 if touches[i] > RING else 0  # the first touch fell out of the ring: prepend it
    length = n + extra
    if length == 0:
        return
    chans = np.empty(length, np.int64)
    days = np.empty(length, np.float64)
    if extra:
        chans[0] = first_channel[i]
        days[0] = first_day[i]
    head = ring_head[i]
    for k in range(n):
        j = (head - n + k) % RING
        chans[extra + k] = ring_channel[i, j]
        days[extra + k] = ring_day[i, j]
    attr[0, chans[0]] += 1.0
    attr[1, chans[length - 1]] += 1.0
    total = 0.0
    for k in range(length):
        days[k] = 0.5 ** ((day - days[k]) / half_life)
        total += days[k]
    for k in range(length):
        c = chans[k]
        attr[2, c] += 1.0 / length
        attr[3, c] += days[k] / total
        if length == 1:
            attr[4, c] += 1.0
        elif length == 2:
            attr[4, c] += 0.5
        elif k == 0 or k == length - 1:
            attr[4, c] += 0.4
        else:
            attr[4, c] += 0.2 / (length - 2)


@njit(cache=True)
def _convert(i, c, day, g, nch, cnt, attr, stage, acq_channel, first_channel, first_day,
             ring_channel, ring_day, ring_head, touches, lead, health, health_day, acquired_day,
             next_day, orders, purchase_rate, dropout, revenue, margin, par, segp, chp, st):
    """First order of customer i, through channel c (its last touch)."""
    _credit(i, day, attr, ring_channel, ring_day, ring_head, touches, first_channel, first_day,
            par[P_HALF_LIFE])
    stage[i] = ACTIVE
    acq_channel[i] = c
    acquired_day[i] = day
    lead[i] = 0
    touches[i] = 0
    _set_health(health, health_day, i, day, par[P_H_INIT])
    if int(par[P_BM]) == BM_REPEAT:
        lam, st = gamma(segp[g, S_GAMMA_SHAPE], st)
        purchase_rate[i] = lam * segp[g, S_GAMMA_SCALE]
        p, st = beta(segp[g, S_BETA_A], segp[g, S_BETA_B], st)
        dropout[i] = p
    cnt[CONVERSIONS * nch + c] += 1.0
    st = _book_order(i, c, nch, cnt, revenue, margin, orders, par, chp, st)
    nd, st = _next_event(i, day, g, purchase_rate, par, segp, st)
    next_day[i] = nd
    return st


@njit(cache=True)
def _churn_multiplier(i, day, g, health, health_day, par, segp):
    m = segp[g, S_CHURN_MULT]
    if par[P_H_SENS] > 0.0:
        h = _health_now(health, health_day, i, day, par[P_H_DECAY])
        m *= np.exp(par[P_H_SENS] * (0.5 - h))
    return m


@njit(parallel=True, cache=True)
def step_day(
    day, key,
    segment, stage, acq_channel, first_channel, first_day, ring_channel, ring_day, ring_head,
    touches, lead, health, health_day, acquired_day, next_day, orders, purchase_rate, dropout,
    revenue, margin, reached_mask,
    reach, p_any, eff, forget, par, segp, chp,
    cnt_all, attr_all, waiting,
):
    """Step every customer through ``day``; counters of the day go to ``cnt_all[chunk]``."""
    n = stage.shape[0]
    nch = reach.shape[2]
    nseg = reach.shape[0]
    stage_off = 18 * nch
    forgot_off = stage_off + 5 * nseg
    has_capacity = False
    for c in range(nch):
        if chp[c, C_CAPACITY] > 0.0:
            has_capacity = True
    n_chunks = cnt_all.shape[0]
    for ch in prange(n_chunks):
        cnt = cnt_all[ch]
        attr = attr_all[ch]
        lo = ch * CHUNK
        hi = min(n, lo + CHUNK)
        for i in range(lo, hi):
            s = stage[i]
            g = segment[i]
            pa = p_any[g, s]
            has_event = s == ACTIVE and next_day[i] == day
            has_lead = s == CONSIDERING and lead[i] > 0
            if pa <= 0.0 and forget[s] <= 0.0 and not has_event and not has_lead:
                cnt[stage_off + g * 5 + s] += 1.0
                continue
            st = stream(key, i)
            done = False
            # 1. a waiting lead may be lost
            if has_lead:
                c = lead[i] - 1
                u, st = uniform(st)
                if u < chp[c, C_LEAD_DECAY]:
                    lead[i] = 0
                    stage[i] = AWARE
                    s = AWARE
                    cnt[LEADS_LOST * nch + c] += 1.0
                    done = True
            # 2. the scheduled event of an active customer
            if has_event:
                done = True
                bm = int(par[P_BM])
                a = acq_channel[i]
                u, st = uniform(st)
                churn = False
                if bm == BM_SUBSCRIPTION:
                    churn = u < par[P_SUB_CHURN] * _churn_multiplier(i, day, g, health, health_day, par, segp)
                elif bm == BM_REPEAT:
                    churn = u < dropout[i] * _churn_multiplier(i, day, g, health, health_day, par, segp)
                else:
                    churn = True
                if churn:
                    stage[i] = CHURNED
                    s = CHURNED
                    next_day[i] = NEVER_DAY
                    cnt[CHURNED_BY * nch + a] += 1.0
                else:
                    st = _book_order(i, a, nch, cnt, revenue, margin, orders, par, chp, st)
                    h = _health_now(health, health_day, i, day, par[P_H_DECAY]) + par[P_H_BOOST]
                    _set_health(health, health_day, i, day, h)
                    nd, st = _next_event(i, day, g, purchase_rate, par, segp, st)
                    next_day[i] = nd
            if not done:
                u, st = uniform(st)
                moved = False
                if u < pa:
                    # 3. which channels reach the customer today
                    acc = 0.0
                    q = 1.0
                    first = -1
                    for c in range(nch):
                        r = reach[g, s, c]
                        w = q * r
                        if u < acc + w:
                            first = c
                            break
                        acc += w
                        q *= 1.0 - r
                    if first < 0:  # rounding at the edge of p_any: the last reachable channel
                        for c in range(nch):
                            if reach[g, s, c] > 0.0:
                                first = c
                    s0 = s
                    for c in range(first, nch):
                        r = reach[g, s0, c]
                        if r <= 0.0:
                            continue
                        if c > first:
                            v, st = uniform(st)
                            if v >= r:
                                continue
                        cnt[REACHED * nch + c] += 1.0
                        reached_mask[i] |= np.uint64(1) << np.uint64(c)
                        if s0 != UNAWARE and s0 != ACTIVE:
                            _touch(i, c, day, ring_channel, ring_day, ring_head, touches,
                                   first_channel, first_day)
                        if moved:
                            continue
                        if s0 == CONSIDERING and chp[c, C_CAPACITY] > 0.0:
                            # a capacity-limited channel turns a prospect into a waiting lead;
                            # its decision effect applies when the lead is served
                            if lead[i] == 0:
                                lead[i] = c + 1
                                cnt[LEADS_NEW * nch + c] += 1.0
                            continue
                        e = eff[g, s0, c]
                        if e <= 0.0:
                            continue
                        v, st = uniform(st)
                        if v >= e:
                            continue
                        moved = True
                        if s0 == UNAWARE:
                            _touch(i, c, day, ring_channel, ring_day, ring_head, touches,
                                   first_channel, first_day)
                            target = int(par[P_WOM_TARGET]) if c == nch - 1 else AWARE
                            cnt[MOVED_AWARE * nch + c] += 1.0
                            if target == ACTIVE:
                                st = _convert(i, c, day, g, nch, cnt, attr, stage, acq_channel,
                                              first_channel, first_day, ring_channel, ring_day,
                                              ring_head, touches, lead, health, health_day,
                                              acquired_day, next_day, orders, purchase_rate,
                                              dropout, revenue, margin, par, segp, chp, st)
                            else:
                                stage[i] = target
                                if target == CONSIDERING:
                                    cnt[MOVED_CONSIDERING * nch + c] += 1.0
                        elif s0 == AWARE:
                            stage[i] = CONSIDERING
                            cnt[MOVED_CONSIDERING * nch + c] += 1.0
                        elif s0 == CONSIDERING:
                            st = _convert(i, c, day, g, nch, cnt, attr, stage, acq_channel,
                                          first_channel, first_day, ring_channel, ring_day,
                                          ring_head, touches, lead, health, health_day,
                                          acquired_day, next_day, orders, purchase_rate,
                                          dropout, revenue, margin, par, segp, chp, st)
                        elif s0 == CHURNED:
                            stage[i] = ACTIVE
                            touches[i] = 0
                            cnt[WINBACKS * nch + c] += 1.0
                            _set_health(health, health_day, i, day, par[P_H_INIT])
                            a = acq_channel[i]
                            st = _book_order(i, a, nch, cnt, revenue, margin, orders, par, chp, st)
                            nd, st = _next_event(i, day, g, purchase_rate, par, segp, st)
                            next_day[i] = nd
                        else:  # ACTIVE: a retention touch lifts health
                            h = _health_now(health, health_day, i, day, par[P_H_DECAY]) + par[P_H_BOOST]
                            _set_health(health, health_day, i, day, h)
                    s = stage[i]
                    # 4. forgetting, when nothing moved the customer
                    if not moved and (s == AWARE or s == CONSIDERING) and forget[s] > 0.0:
                        v, st = uniform(st)
                        if v < forget[s]:
                            _forget(i, s, stage, lead, cnt, forgot_off)
                            s = stage[i]
                elif s == AWARE or s == CONSIDERING:
                    # no reach: reuse the same draw, rescaled to [0, 1)
                    if (u - pa) < forget[s] * (1.0 - pa):
                        _forget(i, s, stage, lead, cnt, forgot_off)
                        s = stage[i]
            s = stage[i]
            cnt[stage_off + g * 5 + s] += 1.0
            if has_capacity and s == CONSIDERING and lead[i] > 0:
                waiting[ch, lead[i] - 1] += 1


@njit(cache=True, inline="always")
def _forget(i, s, stage, lead, cnt, forgot_off):
    if s == CONSIDERING:
        lead[i] = 0
        stage[i] = AWARE
        cnt[forgot_off + 1] += 1.0
    else:
        stage[i] = UNAWARE
        cnt[forgot_off] += 1.0


@njit(parallel=True, cache=True)
def serve_leads(
    day, key, quota,
    segment, stage, acq_channel, first_channel, first_day, ring_channel, ring_day, ring_head,
    touches, lead, health, health_day, acquired_day, next_day, orders, purchase_rate, dropout,
    revenue, margin, reached_mask,
    eff, par, segp, chp, cnt_all, attr_all,
):
    """Serve waiting leads up to each chunk's quota (in customer order): close or release them."""
    n = stage.shape[0]
    nch = eff.shape[2]
    stage_off = 18 * nch
    n_chunks = cnt_all.shape[0]
    for ch in prange(n_chunks):
        cnt = cnt_all[ch]
        attr = attr_all[ch]
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
            g = segment[i]
            cnt[LEADS_SERVED * nch + c] += 1.0
            st = stream(key, i)
            u, st = uniform(st)
            lead[i] = 0
            if u < eff[g, CONSIDERING, c]:
                _convert(i, c, day, g, nch, cnt, attr, stage, acq_channel, first_channel, first_day,
                         ring_channel, ring_day, ring_head, touches, lead, health, health_day,
                         acquired_day, next_day, orders, purchase_rate, dropout, revenue, margin,
                         par, segp, chp, st)
                cnt[stage_off + g * 5 + CONSIDERING] -= 1.0
                cnt[stage_off + g * 5 + ACTIVE] += 1.0


@njit(parallel=True, cache=True)
def assign_segments(segment, cum_share, key):
    """Each customer's segment, drawn from its own stream (same on any thread count)."""
    n = segment.shape[0]
    nseg = cum_share.shape[0]
    for i in prange(n):
        st = stream(key, i)
        u, st = uniform(st)
        g = 0
        while g < nseg - 1 and u >= cum_share[g]:
            g += 1
        segment[i] = g


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
