"""Random streams keyed by decision, counter-based so results do not depend on threads.

A draw is a hash of (run seed, day, customer, decision, draw index): no generator
state is stored per customer and no two threads share one. Each decision of a
customer-day (is channel c reaching them, does its effect work, do they forget, churn,
return the order, ...) has its own stream, keyed by the decision's name, so the draws
of one decision never depend on which other decisions were drawn first. The same
customer therefore sees the same numbers for the same decision on the same day under
every strategy of a sweep replicate (common random numbers), even when a strategy
switches a programme on or moves another channel's budget.

The mixer is splitmix64's finaliser (Steele, Lea & Flood 2014), which passes
BigCrush as a counter-based generator.
"""

from __future__ import annotations

import hashlib

import numpy as np
from numba import njit

import simulation.jit  # noqa: F401  (where compiled kernels are cached; before any is declared)

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO53 = 9007199254740992.0  # 2**53
_INV53 = 1.0 / _TWO53


@njit(cache=True, inline="always")
def mix64(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def day_key(seed_key, day: int, salt: int) -> np.uint64:
    """Key of one day (and one pass, ``salt``) of a run; customers branch from it."""
    return np.uint64(_day_key(np.uint64(seed_key), day, salt))


@njit(cache=True)
def _day_key(seed_key, day, salt):
    return mix64(np.uint64(seed_key) ^ mix64(np.uint64(day) * np.uint64(0x632BE59BD9B4E019) + np.uint64(salt)))


@njit(cache=True, inline="always")
def stream(key, customer):
    """The stream state of one customer on one day; decisions branch from it with
    :func:`decision`. Mixed here, once per customer-day, so that the draws of neighbouring
    customers' streams never overlap."""
    return mix64(np.uint64(key) + np.uint64(customer) * GOLDEN)


@njit(cache=True, inline="always")
def decision(base, key):
    """The stream of one decision of a customer-day: ``base`` is :func:`stream`, ``key`` the
    decision's :func:`decision_key`. Draw from it with :func:`uniform` and the others."""
    return np.uint64(base) ^ np.uint64(key)


@njit(cache=True, inline="always")
def draw_bits(key, customer):
    """The one draw of a decision keyed for a whole day (a channel's exposure: ``key`` from
    :func:`day_decision_keys`), SplitMix64 over customers, one mix per draw: a 53-bit
    integer ``k``, the uniform ``k / 2**53``. Compared with :func:`odds` of a probability,
    it decides without converting to a float."""
    return mix64(np.uint64(key) + np.uint64(customer) * GOLDEN) >> _S11


def odds(p: np.ndarray) -> np.ndarray:
    """Probabilities as 53-bit thresholds: ``draw_bits(...) < odds(p)`` exactly when the
    uniform ``draw_bits(...) / 2**53 < p`` (``p * 2**53`` is exact for p in [0, 1])."""
    return np.ceil(np.clip(p, 0.0, 1.0) * _TWO53).astype(np.uint64)


@njit(cache=True, inline="always")
def odds_of(p):
    """:func:`odds` of one probability, inside a kernel."""
    return np.uint64(np.ceil(min(max(p, 0.0), 1.0) * _TWO53))


def day_decision_keys(day_key, keys: np.ndarray) -> np.ndarray:
    """Each decision's key for one day: the day's key mixed with the decision's."""
    return np.array([mix64(np.uint64(day_key) ^ np.uint64(k)) for k in keys], dtype=np.uint64)


def decision_key(name: str) -> np.uint64:
    """64-bit key of a named decision: the first 8 bytes of its BLAKE2b digest.

    Stable across runs, versions and platforms, and independent of the order in which
    decisions or channels are declared (a channel's reach is keyed by its name)."""
    return np.uint64(int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(),
                                    "little"))


@njit(cache=True, inline="always")
def uniform(state):
    """A uniform in [0, 1) and the advanced state.

    The 53 bits are converted to a float through a signed integer: exact (they fit), and
    one instruction, where an unsigned 64-bit conversion is a slow branchy sequence."""
    return np.int64(uniform_bits(state)) * _INV53, np.uint64(state) + GOLDEN


@njit(cache=True, inline="always")
def uniform_bits(state):
    """The first :func:`uniform` of a stream as its 53-bit integer ``k`` (the uniform is
    ``k / 2**53``): ``uniform_bits(s) < odds(p)`` exactly when ``uniform(s)[0] < p``."""
    return mix64(np.uint64(state) + GOLDEN) >> _S11


@njit(cache=True)
def normal(state):
    """A standard normal (Box-Muller, one of the pair) and the advanced state."""
    u1, state = uniform(state)
    u2, state = uniform(state)
    return np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2), state


@njit(cache=True)
def gamma(shape, state):
    """Gamma(shape, 1) by Marsaglia & Tsang (2000); shape < 1 by boosting."""
    boost = 1.0
    if shape < 1.0:
        u, state = uniform(state)
        boost = (1.0 - u) ** (1.0 / shape)
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * d)
    while True:
        x, state = normal(state)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u, state = uniform(state)
        if np.log(1.0 - u) < 0.5 * x * x + d - d * v + d * np.log(v):
            return d * v * boost, state


@njit(cache=True)
def beta(a, b, state):
    x, state = gamma(a, state)
    y, state = gamma(b, state)
    return x / (x + y), state


@njit(cache=True)
def geometric_days(p, state):
    """Days until an event of daily probability ``p`` happens (>= 1); a huge value if p is 0."""
    if p <= 0.0:
        return 1 << 30, state
    if p >= 1.0:
        return 1, state
    u, state = uniform(state)
    return 1 + int(np.log(1.0 - u) / np.log1p(-p)), state


@njit(cache=True)
def poisson(mean, state):
    """A Poisson count of ``mean`` (by inversion; a rounded normal above a mean of 60,
    where the two agree to well under a count) and the advanced state."""
    if mean <= 0.0:
        return 0, state
    if mean > 60.0:
        x, state = normal(state)
        k = int(mean + np.sqrt(mean) * x + 0.5)
        return (k if k > 0 else 0), state
    limit = np.exp(-mean)
    k = 0
    p = 1.0
    while True:
        u, state = uniform(state)
        p *= 1.0 - u
        if p <= limit:
            return k, state
        k += 1


def seed_key(seed: int) -> np.uint64:
    """The 64-bit key of a run seed."""
    return np.uint64(mix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) ^ np.uint64(0x2545F4914F6CDD1D)))
