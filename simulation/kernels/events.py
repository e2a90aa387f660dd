"""The event log of sampled customers (``--events``), kernel side: event kinds and the
append the day kernel makes for each touch, purchase and churn.

The buffers are one tuple (:func:`simulation.events.empty_log`, or an
:class:`simulation.events.EventLog`'s): the sample mask, then per chunk of customers the
customer, day, kind, channel and amount columns, and each chunk's count.
"""

from __future__ import annotations

from numba import njit

EV_TOUCH, EV_PURCHASE, EV_CHURN = 0, 1, 2
EVENT_KINDS = ("touch", "purchase", "churn")
"""Names of the kinds, as the Parquet export writes them."""


@njit(cache=True, inline="always")
def log_event(log, ch, i, day, kind, c, amount):
    """Append an event of customer i to its chunk's buffer, if i is in the export sample.

    Without an export the sample mask is empty and this is one length compare.
    """
    if log[0].shape[0] > i and log[0][i]:
        k = log[6][ch]
        log[1][ch, k] = i
        log[2][ch, k] = day
        log[3][ch, k] = kind
        log[4][ch, k] = c
        log[5][ch, k] = amount
        log[6][ch] = k + 1
