"""A cohort's weekly orders (``cohort_orders``): counted as orders are booked, checked
against two independent counts of the same orders: the daily ``orders`` counter (by the
week they were placed in) and the customers' order counts at the end
(``orders_per_customer``, by the cohort they were won in)."""

from pathlib import Path

import numpy as np
import pytest

import simulation
from simulation.calibration.targets import Observed, figure, load_targets
from simulation.scenario import ScenarioError

MARKET = Path(__file__).parent / "data" / "calibration_market.toml"


@pytest.fixture(scope="module", params=["numba", "mesa"])
def run(request):
    scenario = simulation.load_scenario(MARKET)
    agents = 3000 if request.param == "numba" else 500
    return simulation.run(scenario, agents=agents, days=45, seed=2, backend=request.param)


def test_a_cohorts_weekly_orders_are_every_order_once(run):
    co = run.cohort_orders
    assert co.dims == ("channel", "cohort_week", "week") and co.sizes["week"] == 7
    assert co.sum() > 100
    # by the week they were placed in: the daily counter, summed by week (the last week
    # has 3 days); no customer here was a customer before day 0
    weekly = run.orders.groupby(run.day // 7).sum().rename({"day": "week"})
    np.testing.assert_allclose(co.sum("cohort_week").transpose("week", "channel").values,
                               weekly.transpose("week", "channel").values, rtol=1e-12)
    # by the cohort they were won in: each customer's orders at the end
    hist = run.orders_per_customer
    assert hist.isel(orders_placed=-1).sum() == 0  # no customer in the open top bin
    per_cohort = (hist * hist.orders_placed).sum("orders_placed")
    np.testing.assert_allclose(co.sum("week").values, per_cohort.values, rtol=1e-12)


def test_no_cohort_orders_before_it_was_won(run):
    co = run.cohort_orders
    before = co.where(co.week < co.cohort_week, 0)
    assert before.sum() == 0
    # the week a cohort was won in holds at least its first orders
    won = run.orders_per_customer.sum("orders_placed")
    first_week = np.einsum("ckk->ck", co.values)
    assert (first_week >= won.values - 1e-9).all() and won.sum() > 0


def test_a_cohort_figure_is_read_week_by_week(run):
    co = run.cohort_orders.sel(channel="search").isel(cohort_week=slice(1, 3)).sum("cohort_week")
    weekly = figure(run, Observed(variable="cohort_orders", channel="search", cohorts=[1, 2],
                                  days=[7, 34], weekly=True, value=[1.0] * 4, sd=1.0))
    np.testing.assert_allclose(weekly, co.values[1:5], rtol=1e-12)
    total = figure(run, Observed(variable="cohort_orders", channel="search", cohorts=[1, 2],
                                 days=[7, 44], value=1.0, sd=1.0))  # to the run's end
    assert total[0] == pytest.approx(co.values[1:].sum(), rel=1e-12)


@pytest.mark.parametrize("entry, needle", [
    ('days = [3, 30]\nweekly = true\nvalue = [1.0, 1.0, 1.0]',
     "starts on a week's first day"),
    ('cohorts = [0, 20]\nvalue = 1.0', "week 20 is beyond the run"),
])
def test_a_cohort_figure_that_cannot_be_read_is_one_line(tmp_path, entry, needle):
    path = tmp_path / "targets.toml"
    path.write_text(f"""
[[parameters]]
path = "segments.everyone.purchase_rate.mean_days"
low = 10.0
high = 30.0

[[observed]]
variable = "cohort_orders"
sd = 1.0
{entry}
""")
    with pytest.raises(ScenarioError) as err:
        load_targets(path, simulation.load_scenario(MARKET))
    assert needle in str(err.value) and "\n" not in str(err.value)
