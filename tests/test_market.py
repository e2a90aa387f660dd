"""The market and the sample: ``--agents`` changes the precision of an answer, never the
answer. Each simulated customer stands for ``market.size / agents`` people; budgets,
visitors and capacities are the market's; results are in market units."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DEFAULT, SCENARIOS, run_cli

import simulation
from simulation.analysis.summary import totals
from simulation.io import read_netcdf

SAAS = SCENARIOS / "saas_case.toml"


def test_the_market_is_the_files_own_agents_whatever_the_override():
    sc = simulation.load_scenario(DEFAULT, ["simulation.agents=5000"])
    assert sc.market.size == 200_000 and sc.simulation.agents == 5000 and sc.scale == 40.0
    resized = simulation.scenario.resolve_size(sc, agents=400_000)
    assert resized.market.size == 200_000 and resized.scale == 0.5
    explicit = simulation.load_scenario(DEFAULT, ["market.size=1000000"])
    assert explicit.scale == 5.0


def test_a_capacity_is_people_a_day_with_an_exact_mean():
    """9 leads a day at scale 4 serves 2 or 3 simulated leads, 2.25 on average."""
    from simulation.model import MarketModel

    sc = simulation.load_scenario(SAAS, ["channels.direct_sales.capacity=9",
                                         "market.size=4000"])
    model = MarketModel(sc, agents=1000, days=400)
    c = [ch.name for ch in sc.channels].index("direct_sales")
    served = np.array([model.capacity_today(c, day) for day in range(400)])
    assert set(served) == {2, 3}
    assert abs(served.mean() - 2.25) < 3 * 0.433 / np.sqrt(400)
    again = MarketModel(sc, agents=1000, days=400)
    assert [again.capacity_today(c, d) for d in range(400)] == list(served)


def _se(values) -> float:
    return float(np.std(values, ddof=1) / np.sqrt(len(values)))


@pytest.mark.slow
def test_the_answer_does_not_depend_on_the_sample_size():
    """saas_case at 50k and at 200k simulated customers, 4 seeds each: totals within
    max(5%, 3 combined standard errors), each channel's customers within 3."""
    runs = {n: [simulation.run(simulation.load_scenario(SAAS), agents=n, seed=s)
                for s in (1, 2, 3, 4)] for n in (50_000, 200_000)}
    for n, dss in runs.items():
        for ds in dss:
            assert ds.attrs["market_size"] == 200_000 and ds.attrs["scale"] == 200_000 / n
    for key in ("customers", "revenue", "profit"):
        small = [totals(ds)[key] for ds in runs[50_000]]
        large = [totals(ds)[key] for ds in runs[200_000]]
        gap = abs(np.mean(small) - np.mean(large))
        se = np.hypot(_se(small), _se(large))
        assert gap <= max(0.05 * abs(np.mean(large)), 3 * se), (key, small, large)
    for channel in map(str, runs[50_000][0].channel.values):
        small = [float(ds.customers.sel(channel=channel)) for ds in runs[50_000]]
        large = [float(ds.customers.sel(channel=channel)) for ds in runs[200_000]]
        se = np.hypot(_se(small), _se(large))
        assert abs(np.mean(small) - np.mean(large)) <= 3 * se + 1e-9, (channel, small, large)


@pytest.mark.slow
def test_a_sweep_at_a_smaller_sample_gives_the_same_answer(tmp_path):
    """saas_case swept at 50k and 200k simulated customers (half a year, 3 replicates):
    the same profit within max(5%, 3 combined standard errors)."""
    experiment = tmp_path / "e.toml"
    experiment.write_text(f'name = "e"\nbase = "{SAAS}"\nreplicates = 3\nseed = 2\n')
    profit = {}
    for n in (50_000, 200_000):
        out = tmp_path / f"s{n}"
        rc, _, err = run_cli(["sweep", experiment, "--agents", n, "--days", 180, "--out", out,
                              "--quiet"])
        assert rc == 0, err
        ds = read_netcdf(out / "combined.nc")
        profit[n] = [totals(ds.isel(replicate=r))["profit"] for r in range(3)]
    gap = abs(np.mean(profit[50_000]) - np.mean(profit[200_000]))
    se = np.hypot(_se(profit[50_000]), _se(profit[200_000]))
    assert gap <= max(0.05 * abs(np.mean(profit[200_000])), 3 * se), profit


def test_figures_on_few_simulated_conversions_are_flagged():
    """At 5,000 of saas_case's 200,000 people a conversion stands for 40: a channel's
    hundreds of market customers may rest on a handful of simulated ones."""
    from simulation.analysis.diagnostics import diagnose

    ds = simulation.run(simulation.load_scenario(SAAS), agents=5000, days=120, seed=3)
    few = {f.channel: f.figures for f in diagnose(ds) if f.kind == "few_conversions"}
    assert few, "nothing flagged"
    for channel, figures in few.items():
        simulated = float(ds.conversions.sel(channel=channel).sum()) / ds.attrs["scale"]
        assert figures["simulated_conversions"] == pytest.approx(simulated) and simulated < 30
        assert figures["customers"] == pytest.approx(simulated * 40)


def test_the_standard_error_a_result_carries_is_the_spread_across_seeds():
    """Where customers are independent (list channels, no imitation, no capacity) the
    sample's standard error is exact: over 16 seeds the figures spread as the results say
    (the ratio of the seeds' standard deviation to the mean standard error within
    [0.5, 1.5]: about three standard errors of a 16-seed estimate), in market units at a
    scale of 4."""
    from helpers import list_channel, market

    data = market(
        product={"price": 10.0, "unit_cost": 4.0, "business_model": "repeat"},
        word_of_mouth={"enabled": True, "p": 0.02, "q": 0.0, "adoption": "aware"},
        channels=[list_channel("consider", 0.3, ["aware"], consideration=0.1),
                  list_channel("decide", 0.2, ["considering"], decision=0.1),
                  list_channel("close", 0.1, ["considering"], decision=0.2)])
    data["market"] = {"size": 80_000}
    data["simulation"] = {"agents": 20_000, "days": 120}
    sc = simulation.scenario.scenario_from_dict(data)
    runs = [simulation.run(sc, seed=s) for s in range(16)]
    figures = {"customers": lambda ds: ds.customers.values[1:3],
               "revenue": lambda ds: ds.revenue.sum("day").values[1:3],
               "gross_margin": lambda ds: ds.gross_margin.sum("day").values[1:3]}
    for name, of in figures.items():
        values = np.array([of(ds) for ds in runs])  # (seed, channel)
        se = np.array([ds.standard_error.sel(figure=name).values[1:3] for ds in runs])
        ratio = values.std(axis=0, ddof=1) / se.mean(axis=0)
        assert ((ratio > 0.5) & (ratio < 1.5)).all(), (name, ratio)
        total_sd = np.array([float(ds[name].sum()) for ds in runs]).std(ddof=1)
        total_se = np.mean([float(ds.standard_error_total.sel(figure=name)) for ds in runs])
        assert 0.5 < total_sd / total_se < 1.5, (name, total_sd / total_se)
