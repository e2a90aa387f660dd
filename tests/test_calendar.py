"""The calendar: ``simulation.start_date`` dates the days, ``[seasonality]`` moves demand,
reach and media prices by weekday and month. Each check is the closed form of the day's
reach or conversion chance, compared day by day with the counts (binomial bands)."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
from helpers import market, simulate

from simulation.scenario import ScenarioError, scenario_from_dict

N = 20_000
MONDAY = "2026-11-02"


def calendar(seasonality: dict, channels: list, days: int = 42, **over) -> dict:
    data = market(channels=channels, seasonality=seasonality, **over)
    data["simulation"] = {"agents": N, "days": days, "start_date": MONDAY}
    return data


def within(counts, expected, p, sigmas=4.5):
    """Every day's count within ``sigmas`` binomial standard deviations of its mean."""
    sd = np.sqrt(np.maximum(expected * (1.0 - p), 1e-9))
    z = (np.asarray(counts, float) - expected) / sd
    assert np.abs(z).max() < sigmas, z


def test_media_prices_by_weekday_buy_less_reach_on_dearer_days():
    """A CPM budget buys ``budget / (cpm × m) × 1000`` impressions: each person is reached
    with chance ``1 - exp(-impressions / N)``; weekends cost twice as much."""
    weekly = [1, 1, 1, 1, 1, 2, 2]
    social = {"name": "social", "kind": "paid_social", "effects": {"awareness": 0.0},
              "reach": {"model": "cpm", "cpm": 10.0}, "daily_budget": 100.0}
    ds, _ = simulate(calendar({"media_price": {"weekly": weekly}}, [social]), N, 42)
    m = np.array([weekly[d % 7] for d in range(42)], float)  # day 0 is a Monday
    p = 1.0 - np.exp(-100.0 / (10.0 * m) * 1000.0 / N)
    within(ds.reached.sel(channel="social").values, N * p, p)
    np.testing.assert_allclose(ds.spend.sel(channel="social").values, 100.0)  # budget spent


def test_demand_by_month_moves_the_chance_of_a_first_order():
    """Everyone is considering on day 0; a list channel reaching each with chance f closes
    with chance e × demand: December doubles November's first orders per prospect."""
    monthly = [1.0] * 12
    monthly[11] = 2.0
    close = {"name": "close", "kind": "email", "effects": {"decision": 0.05},
             "reach": {"model": "list", "frequency": 0.2, "audience": ["considering"]}}
    data = calendar({"demand": {"monthly": monthly}}, [close], days=50,
                    initial={"considering": 1.0})
    ds, _ = simulate(data, N, 50)
    considering = ds.stage_count.sel(stage="considering").values.astype(float)
    before = np.concatenate([[N], considering[:-1]])  # prospects at the start of each day
    demand = np.array([2.0 if d >= 29 else 1.0 for d in range(50)])  # 1 December is day 29
    p = 0.2 * 0.05 * demand
    within(ds.conversions.sel(channel="close").values, before * p, p)


def test_organic_reach_by_weekday():
    """A fixed number of visitors a day, times the weekday's reach multiplier, spread over
    the market: each person visits with chance ``1 - exp(-visitors × m / N)``."""
    weekly = [1.0, 1.0, 1.0, 1.0, 1.5, 0.5, 0.0]
    site = {"name": "site", "kind": "organic", "effects": {"awareness": 0.0},
            "reach": {"model": "fixed", "daily_visitors": 3000}}
    ds, _ = simulate(calendar({"reach": {"weekly": weekly}}, [site]), N, 28)
    m = np.array([weekly[d % 7] for d in range(28)])
    p = 1.0 - np.exp(-3000.0 * m / N)
    within(ds.reached.sel(channel="site").values, N * p, p)
    assert (ds.reached.sel(channel="site").values[6::7] == 0).all()  # no visitors on Sundays


def test_the_result_carries_the_dates_and_the_scenario_reloads():
    site = {"name": "site", "kind": "organic", "effects": {"awareness": 0.1},
            "reach": {"model": "fixed", "daily_visitors": 300}}
    ds, _ = simulate(calendar({}, [site], days=10), N, 10)
    assert str(ds.date.values[0])[:10] == MONDAY and str(ds.date.values[-1])[:10] == "2026-11-11"
    again = scenario_from_dict(tomllib.loads(ds.attrs["scenario"]))
    assert str(again.simulation.start_date) == MONDAY


@pytest.mark.parametrize("seasonality, start, message", [
    ({"demand": {"weekly": [1, 1, 1, 1, 1, 2, 2]}}, None, "needs simulation.start_date"),
    ({"media_price": {"weekly": [1, 1, 1, 1, 1, 0, 1]}}, MONDAY, "above 0"),
    ({"reach": {"monthly": [1.0] * 11}}, MONDAY, "at least 12"),
])
def test_impossible_calendars_are_refused(seasonality, start, message):
    data = market(seasonality=seasonality)
    data["simulation"] = {"start_date": start} if start else {}
    with pytest.raises(ScenarioError, match=message):
        scenario_from_dict(data)
