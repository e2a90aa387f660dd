"""The per-customer random streams and the customer state declaration."""

from __future__ import annotations

import numpy as np
from numba import njit

from simulation import rng
from simulation.state import BYTES_PER_CUSTOMER, CUSTOMER_FIELDS, Population, describe


@njit(cache=True)
def _draws(key, customers, k):
    out = np.empty((customers, k))
    for i in range(customers):
        st = rng.stream(key, i)
        for j in range(k):
            out[i, j], st = rng.uniform(st)
    return out


@njit(cache=True)
def _samples(key, n, shape, a, b, p):
    g = np.empty(n)
    be = np.empty(n)
    geo = np.empty(n)
    st = rng.stream(key, 0)
    for i in range(n):
        g[i], st = rng.gamma(shape, st)
        be[i], st = rng.beta(a, b, st)
        geo[i], st = rng.geometric_days(p, st)
    return g, be, geo


def test_uniforms_are_uniform_and_independent_across_customers_and_days():
    a = _draws(rng.day_key(rng.seed_key(1), 0, 0), 100_000, 4)
    b = _draws(rng.day_key(rng.seed_key(1), 1, 0), 100_000, 4)
    for x in (a, b):
        assert abs(x.mean() - 0.5) < 0.003 and abs(x.var() - 1 / 12) < 0.002
        assert ((x >= 0) & (x < 1)).all()
        hist = np.histogram(x, bins=20, range=(0, 1))[0]
        expected = x.size / 20
        assert ((hist - expected) ** 2 / expected).sum() < 60  # chi2, 19 dof
    # neighbouring customers, consecutive draws and consecutive days are uncorrelated
    assert abs(np.corrcoef(a[:-1, 0], a[1:, 0])[0, 1]) < 0.02
    assert abs(np.corrcoef(a[:, 0], a[:, 1])[0, 1]) < 0.02
    assert abs(np.corrcoef(a[:, 0], b[:, 0])[0, 1]) < 0.02


def test_streams_depend_only_on_seed_day_customer():
    key = rng.day_key(rng.seed_key(5), 3, 0)
    np.testing.assert_array_equal(_draws(key, 1000, 3), _draws(key, 1000, 3))
    other = rng.day_key(rng.seed_key(6), 3, 0)
    assert not np.array_equal(_draws(key, 10, 1), _draws(other, 10, 1))


def test_gamma_beta_geometric_moments():
    g, be, geo = _samples(rng.day_key(rng.seed_key(2), 0, 9), 200_000, 0.7, 2.0, 5.0, 0.05)
    assert abs(g.mean() - 0.7) < 0.01 and abs(g.var() - 0.7) < 0.03
    assert abs(be.mean() - 2 / 7) < 0.002
    assert abs(be.var() - 2 * 5 / (49 * 8)) < 0.001
    assert geo.min() >= 1 and abs(geo.mean() - 20) < 0.2  # mean 1/p days


def test_customer_state_is_declared_once_and_small():
    assert BYTES_PER_CUSTOMER <= 64
    pop = Population(1000)
    assert pop.nbytes == 1000 * BYTES_PER_CUSTOMER
    assert len(pop.arrays()) == len(CUSTOMER_FIELDS)
    assert all(arr.shape[0] == 1000 for arr in pop.arrays())
    assert f"{BYTES_PER_CUSTOMER}  bytes per customer" in describe()
