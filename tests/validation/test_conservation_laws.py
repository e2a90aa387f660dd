"""Conservation laws over random valid scenarios (hypothesis), on both backends.

Customers are never created or lost; money adds up order by order and agrees with the
per-customer ledgers; the firm's P&L is the sum of the channels'. The laws and the
scenario strategy are in ``common.py``; tests/test_conservation.py applies the laws to
the example scenarios.
"""

from __future__ import annotations

import pytest
from helpers import simulate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulation.model import set_threads
from simulation.scenario import scenario_from_dict

from .common import check_customers_conserved, check_money_adds_up, scenarios


def check_laws(backend: str, data: dict, seed: int, agents: int, days: int) -> None:
    scenario = scenario_from_dict(data)
    previous = set_threads(1)  # small runs: one thread is fastest (results do not depend on it)
    try:
        ds, model = simulate(scenario, agents, days, seed, backend=backend)
    finally:
        set_threads(previous)
    assert ds.attrs["backend"] == backend
    check_customers_conserved(ds)
    check_money_adds_up(ds, model)
    for i, c in enumerate(scenario.channels):
        if c.capacity is not None:
            assert (ds.leads_served.isel(channel=i) <= c.capacity).all()
    # every lead is served, lost, forgotten or still waiting
    new, served, lost = (int(ds[k].sum()) for k in ("leads_new", "leads_served", "leads_lost"))
    assert served + lost <= new


def examples(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@examples(25)
@given(data=scenarios(), seed=st.integers(0, 2**32))
def test_laws_hold_for_random_scenarios_numba(data, seed):
    check_laws("numba", data, seed, 3_000, 40)


@examples(40)
@given(data=scenarios(), seed=st.integers(0, 2**32))
@pytest.mark.slow  # 40 Mesa runs
def test_laws_hold_for_random_scenarios_mesa(data, seed):
    check_laws("mesa", data, seed, 500, 30)
