"""The event log of sampled customers (``--events``), kernel side: event kinds and the
append the day kernel makes for each touch, purchase and churn.

The buffers are one tuple (:func:`simulation.events.empty_log`, or an
:class:`simulation.events.EventLog`'s): the sample mask, then per chunk of customers the
customer, day, kind, channel and amount columns, and each chunk's count.
"""

from __future__ import annotations

from numba import njit

# The buffers' tuple, by position: a plain tuple indexed by constants, as the population
# is (writes through a named tuple's fields can be lost inside prange).
L_SAMPLED, L_CUSTOMER, L_DAY, L_KIND, L_CHANNEL, L_AMOUNT, L_COUNT = range(7)
COLUMNS = (L_CUSTOMER, L_DAY, L_KIND, L_CHANNEL, L_AMOUNT)
"""The event table's columns, in the order of the export."""

EV_TOUCH, EV_PURCHASE, EV_CHURN = 0, 1, 2
EVENT_KINDS = ("touch", "purchase", "churn")
"""Names of the kinds, as the Parquet export writes them."""


@njit(cache=True, inline="always")
def log_event(log, ch, i, day, kind, c, amount):
    """Append an event of customer i to its chunk's buffer, if i is in the export sample.

    Without an export the sample mask is empty and this is one length compare.
    """
    if log[L_SAMPLED].shape[0] > i and log[L_SAMPLED][i]:
        k = log[L_COUNT][ch]
        log[L_CUSTOMER][ch, k] = i
        log[L_DAY][ch, k] = day
        log[L_KIND][ch, k] = kind
        log[L_CHANNEL][ch, k] = c
        log[L_AMOUNT][ch, k] = amount
        log[L_COUNT][ch] = k + 1
