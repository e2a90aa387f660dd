"""At-risk outreach, per customer: the day a consenting customer's health falls below
the threshold, the firm contacts them (a call, a personal message), at a cost, and
their health rises by the boost.

Health declines linearly from the day it was last set, so it crosses the threshold
on one day of each decline: that day, and only that day, triggers a contact. A
contact that leaves health still below the threshold is not repeated until an order
or a retention touch lifts it above and it falls again.
"""

from __future__ import annotations

from typing import NamedTuple

from numba import njit

from simulation import counters
from simulation.counters import Variable
from simulation.kernels.books import programme_cost
from simulation.state import CONSENT, F_FLAGS, F_HEALTH, F_HEALTH_DAY

COUNTERS = (
    Variable("outreach_contacts", "customers",
             "at-risk customers contacted the day their health fell below the threshold, by "
             "acquisition channel"),
)
counters.register(*COUNTERS)


class Parameters(NamedTuple):
    """What the kernels need of the programme (as :func:`simulation.jit.record`)."""

    on: bool
    threshold: float
    health_boost: float
    cost_per_contact: float


@njit(cache=True, inline="always")
def falls_below(pop, i, day, h, decay, threshold):
    """Whether health ``h`` (today's) fell below ``threshold`` today: it was at or above it
    yesterday, on the same decline (not set today)."""
    last_set = pop[F_HEALTH_DAY][i]
    if h >= threshold or last_set >= day:
        return False
    yesterday = pop[F_HEALTH][i] / 255.0 - decay * (day - 1 - last_set)
    return yesterday >= threshold


@njit(cache=True, inline="always")
def contact_at_risk(pop, i, a, day, h, decay, o, cnt, nch):
    """End of the day of active customer i (acquired through a): contact them if they are
    at risk today. ``o`` is the :class:`Parameters` record. Returns their health after it,
    for the census."""
    if o.on <= 0.0 or not (pop[F_FLAGS][i] & CONSENT) or not falls_below(pop, i, day, h, decay,
                                                                      o.threshold):
        return h
    cnt[counters.CH.outreach_contacts * nch + a] += 1.0
    programme_cost(pop, i, a, o.cost_per_contact, cnt, nch)
    if o.health_boost <= 0.0:
        return h  # nothing to store (storing would re-round the decayed health)
    h = min(1.0, h + o.health_boost)
    pop[F_HEALTH][i] = int(h * 255.0 + 0.5)
    pop[F_HEALTH_DAY][i] = day
    return pop[F_HEALTH][i] / 255.0
