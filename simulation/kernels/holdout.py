"""In-run hold-out cells: the share of the market a channel never reaches, for lift.

A channel with ``holdout_share`` s > 0 leaves a keyed share s of the market unreached for
the whole run: customer ``first + i`` is held out of channel c when the one draw of the
hash of (seed, customer, channel name) falls below s. Nothing is stored per customer (the
``flags`` bits are taken, and a channel's cell is one hash away), so it costs a hash per
reaching channel with a hold-out, only for customers some such channel reaches, and only
on runs that have one. The same customers are held out every day, and the cells of two
channels are independent (their keys differ by the channel's name).

The conversions among each cell (new customers by any channel) are counted daily as
``holdout_conversions`` in the cell's channel's column, and the cell's size once on day 0
(:func:`sizes`), so :mod:`simulation.components.scaling` can compare the conversion rate of
the cell with that of everyone else (``credit = "lift"``).

``hold`` is a (2, channels) uint64 array: the channels' hold-out keys and their shares as
:func:`simulation.rng.odds` (0: no hold-out).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from simulation import counters, rng
from simulation.counters import Variable
from simulation.rng import draw_bits

COUNTERS = (
    Variable("holdout_conversions", "customers",
             "new customers (first orders, by any channel) among the customers held out of "
             "the channel (`holdout_share`): its hold-out cell's conversions, for lift"),
)
counters.register(*COUNTERS)


def hold(seed_key, names: list[str], shares: list[float]) -> np.ndarray:
    """The kernels' ``hold`` array for a run: each channel's hold-out key, from the run's
    seed and the channel's name (not its position), and its share as 53-bit odds."""
    keys = rng.day_decision_keys(rng.day_key(seed_key, 0, 0x401D),
                                 np.array([rng.decision_key("holdout:" + n) for n in names],
                                          dtype=np.uint64))
    return np.stack([keys, rng.odds(np.asarray(shares, dtype=np.float64))])


def holding(hold: np.ndarray) -> np.uint64:
    """Bit mask of the channels that have a hold-out."""
    mask = 0
    for c in np.flatnonzero(hold[1] > 0):
        mask |= 1 << int(c)
    return np.uint64(mask)


@njit(cache=True, inline="always")
def held(hold, holding, customer):
    """Bit mask of the channels (among ``holding``) that hold ``customer`` (the market
    index) out."""
    out = np.uint64(0)
    if holding == 0:
        return out
    for c in range(hold.shape[1]):
        if hold[1, c] > 0 and draw_bits(hold[0, c], customer) < hold[1, c]:
            out |= np.uint64(1) << np.uint64(c)
    return out


@njit(cache=True, inline="always")
def count_conversion(hold, holding, customer, cnt, nch, block):
    """A new customer: a conversion of each hold-out cell they are in (``block``: the
    ``holdout_conversions`` counter block)."""
    mask = held(hold, holding, customer)
    if mask == 0:
        return
    for c in range(nch):
        if (mask >> np.uint64(c)) & np.uint64(1):
            cnt[block * nch + c] += 1.0


@njit(parallel=True, cache=True)
def sizes(n, first, hold, holding, n_chunks, chunk):
    """Customers ``first`` ... ``first + n - 1`` in each channel's hold-out cell, by chunk
    (whole counts: the shards' sums are the market's in any order)."""
    nch = hold.shape[1]
    out = np.zeros((n_chunks, nch), np.int64)
    for ch in prange(n_chunks):
        lo = ch * chunk
        hi = min(n, lo + chunk)
        for i in range(lo, hi):
            m = held(hold, holding, first + i)
            if m == 0:
                continue
            for c in range(nch):
                if (m >> np.uint64(c)) & np.uint64(1):
                    out[ch, c] += 1
    return out.sum(axis=0)
