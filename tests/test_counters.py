"""The counter table and the result dataset name the same variables, the same way."""

from __future__ import annotations

import pytest
from helpers import simulate

from simulation import counters
from simulation.kernels import day as K


@pytest.mark.parametrize("backend", ["numba", "mesa"])
def test_every_result_variable_is_in_the_table_with_its_dims_and_units(backend, default_scenario):
    ds, _ = simulate(default_scenario, agents=400, days=8, backend=backend)
    table = counters.variables()
    assert set(ds.data_vars) == set(table), "dataset and counter table differ"
    for name, v in table.items():
        assert ds[name].dims == v.dims, name
        assert ds[name].attrs["units"] == v.unit and ds[name].attrs["description"], name
        assert ds[name].attrs["aggregate"] == v.aggregate, name


def test_counter_names_are_unique_and_every_mechanism_is_registered():
    names = [v.name for v in counters.CHANNEL_COUNTERS]
    assert len(names) == len(set(names))
    assert K.CH is counters.CH and "outreach_contacts" in K.CH._fields
    assert counters.width(5, 3, 10) == (len(names) * 5 + 5 * 3 + len(counters.MARKET_COUNTERS)
                                        + 5 * 10)  # the cohort block: 10 weeks a channel
    assert counters.cohort_offset(5, 3) == counters.width(5, 3, 0)
