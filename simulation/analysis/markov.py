"""Markov-chain attribution from the journey transition counts the kernels accumulate.

Every journey is a path start -> channel -> ... -> conversion | no conversion.
The first-order transition matrix over all journeys (converting and not) gives
the probability that a journey starting now ends in a conversion; a channel's
*removal effect* is the share of that probability lost when the channel is
removed (its visits end the journey unconverted). Conversions are credited in
proportion to the removal effects (Anderl et al. 2016).
"""

from __future__ import annotations

import numpy as np


def conversion_probability(trans: np.ndarray, removed: int | None = None) -> float:
    """P(reach 'conversion' from 'start') in the chain of counts ``trans``.

    States: 0 start, 1..k channels, k+1 conversion, k+2 no conversion. ``removed``
    is a channel index (0-based) whose visits end the journey without conversion.
    """
    s = trans.shape[0]
    k = s - 3
    rows = trans[: k + 1].astype(float)
    totals = rows.sum(axis=1, keepdims=True)
    P = np.divide(rows, totals, out=np.zeros_like(rows), where=totals > 0)
    A = P[:, : k + 1]  # transient -> transient
    b = P[:, k + 1].copy()  # transient -> conversion
    if removed is not None:
        A = A.copy()
        A[removed + 1, :] = 0.0
        b[removed + 1] = 0.0
    x = np.linalg.solve(np.eye(k + 1) - A + 1e-15 * np.eye(k + 1), b)
    return float(x[0])


def removal_effects(trans: np.ndarray) -> np.ndarray:
    """Removal effect of each channel: 1 - P(conv without it) / P(conv)."""
    k = trans.shape[0] - 3
    base = conversion_probability(trans)
    if base <= 0.0:
        return np.zeros(k)
    return np.array([1.0 - conversion_probability(trans, c) / base for c in range(k)])


def markov_credit(trans: np.ndarray, conversions: float) -> np.ndarray:
    """Conversions credited to each channel in proportion to its removal effect."""
    re = removal_effects(trans)
    total = re.sum()
    if total <= 0.0:
        return np.zeros_like(re)
    return conversions * re / total
