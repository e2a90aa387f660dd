"""Conservation laws on the example scenarios: customers are never created or lost,
money adds up; and a seed gives the same dataset on any thread count.

The laws (``validation/common.py``) compare the dataset's per-channel totals with
relations that hold order by order (revenue = price x kept orders, commission = rate x
revenue, ...) and with the per-customer accumulators that the kernels keep
independently. ``validation/test_conservation_laws.py`` checks them on random valid
scenarios (hypothesis) on both backends.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import xarray as xr
from helpers import DEFAULT, EXAMPLE_SCENARIOS, ROOT, simulate
from validation.common import check_customers_conserved, check_money_adds_up

import simulation
from simulation.io import read_netcdf

# the default example is the quick check; the others run in the whole suite
EXAMPLES = [pytest.param(p, id=p.stem, marks=() if p == DEFAULT else pytest.mark.slow)
            for p in EXAMPLE_SCENARIOS]


@pytest.mark.parametrize("path", EXAMPLES)
def test_example_scenarios_conserve_customers_and_money(path):
    ds, model = simulate(simulation.load_scenario(path), 20_000, 120)
    check_customers_conserved(ds)
    check_money_adds_up(ds, model)
    assert int(ds.customers.sum()) > 0


# -- a seed gives the same dataset on any thread count ---------------------------

RUN_SNIPPET = """
import sys, simulation
from simulation.io import write_netcdf
sc = simulation.load_scenario(sys.argv[1])
write_netcdf(simulation.run(sc, agents=70_000, days=60, seed=9), sys.argv[2])
"""


@pytest.mark.slow  # two fresh processes, each loading the kernels
def test_same_seed_same_dataset_on_one_and_two_threads(tmp_path):
    paths = []
    for threads in (1, 2):
        out = tmp_path / f"t{threads}.nc"
        env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
        subprocess.run([sys.executable, "-c", RUN_SNIPPET, str(DEFAULT),
                        str(out)], check=True, env=env, cwd=ROOT)
        paths.append(out)
    a = read_netcdf(paths[0])
    b = read_netcdf(paths[1])
    xr.testing.assert_identical(a, b)
    assert int(a.customers.sum()) > 0  # something happened worth comparing


def test_seed_changes_the_draws_and_threads_do_not():
    scenario = simulation.load_scenario(DEFAULT)
    a = simulation.run(scenario, agents=40_000, days=40, seed=1, threads=1)
    b = simulation.run(scenario, agents=40_000, days=40, seed=1, threads=2)
    c = simulation.run(scenario, agents=40_000, days=40, seed=2, threads=2)
    xr.testing.assert_identical(a, b)
    assert not a.stage_count.equals(c.stage_count)
