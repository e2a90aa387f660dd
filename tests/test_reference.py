"""The Mesa reference backend (``--backend mesa``) as a product: same dataset format as
the numba backend, reproducible for a seed, wired into the API and the command line.

Whether its rules agree with the kernels is tests/test_docking.py's business.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import DEFAULT, ROOT, distsim, own_market, run_cli

import simulation
from simulation.io import read_netcdf
from simulation.reference import Customer, ReferenceMarketModel

AGENTS, DAYS = 1_500, 30


@pytest.fixture(scope="module")
def scenario(default_scenario):
    """This module's market: the default example."""
    return default_scenario


@pytest.fixture(scope="module")
def mesa_run(scenario):
    return simulation.run(own_market(scenario, AGENTS), days=DAYS, seed=4, backend="mesa")


def test_the_dataset_has_the_numba_backends_format(scenario, mesa_run):
    numba_run = simulation.run(own_market(scenario, AGENTS), days=DAYS, seed=4, threads=1)
    assert set(mesa_run.data_vars) == set(numba_run.data_vars)
    for name, var in numba_run.data_vars.items():
        assert mesa_run[name].dims == var.dims, name
        assert mesa_run[name].dtype.kind == var.dtype.kind, name
    for name, coord in numba_run.coords.items():
        np.testing.assert_array_equal(mesa_run[name].values, coord.values)
    assert set(mesa_run.attrs) == set(numba_run.attrs)
    assert mesa_run.attrs["backend"] == "mesa" and numba_run.attrs["backend"] == "numba"
    assert mesa_run.attrs["scenario"] == numba_run.attrs["scenario"]
    assert (mesa_run.stage_count.sum("stage") == AGENTS).all()
    assert int(mesa_run.customers.sum()) > 0


def test_every_figure_the_kernels_fill_is_filled(tmp_path):
    """A busy market: no variable the numba backend fills stays empty on the mesa backend
    (a new kernel counter that the reference customer does not keep shows up here)."""
    scenario = simulation.load_scenario(ROOT / "tests/data/docking_all_mechanisms.toml")
    numba_run = simulation.run(own_market(scenario, AGENTS), days=60, seed=1, threads=1)
    mesa_run = simulation.run(own_market(scenario, AGENTS), days=60, seed=1, backend="mesa")
    empty = [name for name, var in numba_run.data_vars.items()
             if var.dtype.kind in "fiu" and np.nansum(np.abs(var.values)) > 0
             and np.nansum(np.abs(mesa_run[name].values)) == 0]
    assert not empty
    # credit is conserved: each attribution model hands out every conversion and its revenue
    conversions = float(mesa_run.conversions.sum())
    np.testing.assert_allclose(mesa_run.attributed_conversions.sum("channel"), conversions)
    first_revenue = float(mesa_run.first_order_revenue.sum())
    np.testing.assert_allclose(mesa_run.attributed_revenue.sum("channel"), first_revenue)


def test_a_seed_reproduces_the_run(scenario, mesa_run):
    again = simulation.run(own_market(scenario, AGENTS), days=DAYS, seed=4, backend="mesa")
    xr.testing.assert_identical(mesa_run, again)
    other = simulation.run(own_market(scenario, AGENTS), days=DAYS, seed=5, backend="mesa")
    assert not other.stage_count.equals(mesa_run.stage_count)


def test_the_data_collector_sees_what_the_dataset_reports(scenario):
    model = ReferenceMarketModel(own_market(scenario, AGENTS), days=DAYS, seed=2)
    model.run_model()
    ds = model.results()
    frame = model.datacollector.get_model_vars_dataframe()
    for stage in ds.stage.values:
        np.testing.assert_array_equal(frame[stage].values, ds.stage_count.sel(stage=stage).values)
    np.testing.assert_allclose(frame["mean_health"].values, ds.mean_health.values)
    customers = list(model.customers)
    assert len(customers) == AGENTS and all(isinstance(c, Customer) for c in customers)


def test_events_of_the_whole_market_add_up_to_the_dataset(tmp_path, scenario):
    path = tmp_path / "events.parquet"
    ds = simulation.run(own_market(scenario, 800), days=DAYS, seed=3, backend="mesa",
                        events_sample=800, events_path=path)
    events = pd.read_parquet(path)
    assert list(events.columns) == ["customer", "day", "event", "channel", "amount"]
    assert events["day"].is_monotonic_increasing
    purchases = events[events.event == "purchase"]
    assert len(purchases) == int(ds.orders.sum())
    assert purchases.amount.sum() == pytest.approx(float(ds.revenue.sum()))
    assert (events.event == "churn").sum() == int(ds.churned.sum())


def test_unknown_backend_is_refused(scenario):
    with pytest.raises(ValueError, match="available: numba, mesa"):
        simulation.run(own_market(scenario, 10), days=1, backend="netlogo")


def test_cli_runs_the_mesa_backend(tmp_path):
    out = tmp_path / "r.nc"
    code, _, _ = run_cli(["run", DEFAULT, "--backend", "mesa", "--agents", "500", "--days", "10",
                          "--out", out, "--quiet"])
    assert code == 0
    assert read_netcdf(out).attrs["backend"] == "mesa"


@pytest.mark.slow  # a real process running pytest
def test_validate_model_runs_the_validation_suite(tmp_path):
    """``distsim validate-model`` runs tests/validation from anywhere; 0 when the checks pass."""
    proc = distsim("validate-model", "-k", "geometric and one_time and mesa", cwd=tmp_path,
                   timeout=None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
