"""The firm's list, per customer: who is on it, how they join and how they leave.

A channel with a ``list`` table (email, SMS) contacts only the customers on the firm's
list (``flags`` bit LISTED), so its reach is what the list has earned, not the whole
audience. People join by opting in: at a visit (a reach by a channel with an
``opt_in_visit`` chance), when a channel moves them into consideration, and at an order
(the checkout's box); each contact by the list channel may make its receiver
unsubscribe. A personalised list channel's list admits only customers who consented.

The rules read the market record ``par`` (``par.list_channel`` is -1 without a list) and
the channel records (``chp[c].opt_in_visit``); each decision draws from its own stream
of the customer-day (``base``), so the list never shifts another decision's draws.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simulation import counters
from simulation.counters import Variable
from simulation.rng import decision, decision_key, uniform
from simulation.state import CONSENT, F_FLAGS, LISTED

COUNTERS = (
    Variable("list_opt_ins", "customers",
             "customers joining the firm's list, by the channel that signed them up (the "
             "visited or moving channel; for an order, the acquisition channel)"),
    Variable("list_unsubscribes", "customers",
             "customers leaving the firm's list, by the list channel whose contact made them"),
    Variable("list_size", "customers",
             "customers on the firm's list at the end of the day, in the list channel's "
             "column", "last"),
)
counters.register(*COUNTERS)

D_OPT_IN_VISIT = decision_key("list_opt_in_visit")
D_OPT_IN_CONSIDERATION = decision_key("list_opt_in_consideration")
D_OPT_IN_PURCHASE = decision_key("list_opt_in_purchase")
D_UNSUBSCRIBE = decision_key("list_unsubscribe")


@njit(cache=True, inline="always")
def _u(base, key):
    u, _ = uniform(decision(base, key))
    return u


@njit(cache=True, inline="always")
def may_join(pop, i, par):
    """Whether customer i could join the list now: there is one, they are not on it, and
    (for a personalised list) they consented."""
    f = pop[F_FLAGS][i]
    return (par.list_channel >= 0.0 and not (f & LISTED)
            and (par.list_needs_consent <= 0.0 or (f & CONSENT) != 0))


@njit(cache=True, inline="always")
def _join(pop, i, c, cnt, nch):
    pop[F_FLAGS][i] |= np.uint8(LISTED)
    cnt[counters.CH.list_opt_ins * nch + c] += 1.0


@njit(cache=True)
def opt_in_at_visits(pop, i, mask, nch, cnt, par, chp, base):
    """Customer i was reached today by the channels in ``mask``: each with an
    ``opt_in_visit`` chance signs them up in turn, as independent draws would (one uniform,
    rescaled after each miss: given ``u >= v``, ``(u - v) / (1 - v)`` is uniform again)."""
    if not may_join(pop, i, par):
        return
    u = _u(base, D_OPT_IN_VISIT)
    for c in range(nch):
        if not (mask >> np.uint64(c)) & np.uint64(1):
            continue
        v = chp[c].opt_in_visit
        if v <= 0.0:
            continue
        if u < v:
            _join(pop, i, c, cnt, nch)
            return
        u = (u - v) / (1.0 - v)


@njit(cache=True, inline="always")
def opt_in_at_consideration(pop, i, c, nch, cnt, par, base):
    """Channel c has just moved customer i into consideration (a trial, a sign-up)."""
    p = par.list_opt_in_consideration
    if p > 0.0 and may_join(pop, i, par) and _u(base, D_OPT_IN_CONSIDERATION) < p:
        _join(pop, i, c, cnt, nch)


@njit(cache=True, inline="always")
def opt_in_at_order(pop, i, a, nch, cnt, par, base):
    """Customer i (acquired through a) has just ordered: the checkout's box."""
    p = par.list_opt_in_purchase
    if p > 0.0 and may_join(pop, i, par) and _u(base, D_OPT_IN_PURCHASE) < p:
        _join(pop, i, a, cnt, nch)


@njit(cache=True, inline="always")
def contacted(pop, i, c, nch, cnt, par, base):
    """The list channel c has contacted customer i: they may unsubscribe (independently of
    what the contact does to their journey)."""
    p = par.list_unsubscribe
    if p > 0.0 and _u(base, D_UNSUBSCRIBE) < p:
        pop[F_FLAGS][i] &= ~np.uint8(LISTED)
        cnt[counters.CH.list_unsubscribes * nch + c] += 1.0
