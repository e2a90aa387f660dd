"""The per-customer random streams and the customer state declaration."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from simulation import rng
from simulation.state import (
    BYTES_PER_CUSTOMER,
    CUSTOMER_FIELDS,
    F_HEALTH,
    F_REVENUE,
    F_RING_DAY,
    F_STAGE,
    Population,
    describe,
)


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


# -- population fields: writes must land ----------------------------------------------

@njit(cache=True, inline="always")
def _bump_inline(pop, i):
    pop[F_HEALTH][i] += 1


@njit(cache=True)
def _bump(pop, i):
    pop[F_HEALTH][i] += 1


@njit(cache=True)
def _set_in_helper(pop, i):
    _bump_inline(pop, i)  # an inlined helper inside a called helper, as _convert does
    pop[F_RING_DAY][i, 2] = 9


@njit(parallel=True, cache=True)
def _write_everywhere(pop):
    n = pop[F_STAGE].shape[0]
    for ch in prange(4):
        for i in range(ch * n // 4, (ch + 1) * n // 4):
            pop[F_HEALTH][i] += 1  # in the prange body
            _bump_inline(pop, i)   # in an inlined helper
            _bump(pop, i)          # in a called helper
            _set_in_helper(pop, i)
            pop[F_REVENUE][i] += 2.5
            pop[F_RING_DAY][i, 1] = 7


def test_writes_to_the_population_land_inside_prange():
    """numba 0.68 silently drops some writes made through a named tuple's fields inside
    ``prange`` (``pop.health[i] += 1``); the kernels index a plain tuple with constants,
    whose writes land wherever they are made: the prange body, inlined or called helpers."""
    pop = Population(10_000)
    _write_everywhere(pop.arrays())
    _write_everywhere(pop.arrays())
    assert (pop.health == 8).all()
    assert (pop.revenue == 5.0).all()
    assert (pop.ring_day[:, 1] == 7).all() and (pop.ring_day[:, 2] == 9).all()


def test_kernels_never_address_the_population_by_attribute():
    """Kernels write pop[F_HEALTH][i], never pop.health[i]."""
    import ast
    import pathlib

    import simulation

    names = {f.name for f in CUSTOMER_FIELDS}
    for path in (pathlib.Path(simulation.__file__).parent / "kernels").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "pop" and node.attr in names):
                raise AssertionError(f"{path.name}:{node.lineno} uses pop.{node.attr}; "
                                     f"index the tuple with F_{node.attr.upper()} instead")
