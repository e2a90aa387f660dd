"""Booking helpers shared by the kernels of every mechanism."""

from __future__ import annotations

from numba import njit

from simulation import counters
from simulation.state import EXISTING, F_FLAGS


@njit(cache=True, inline="always")
def programme_cost(pop, i, a, cost, cnt, nch):
    """A post-purchase programme's cost for customer i (acquired through channel a): in
    the channel's programme costs, and in its base's when i was a customer before day 0
    (the unit economics of the customers a run acquires leave those out)."""
    cnt[counters.CH.programme_cost * nch + a] += cost
    if pop[F_FLAGS][i] & EXISTING:
        cnt[counters.CH.base_programme_cost * nch + a] += cost
