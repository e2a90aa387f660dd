"""``distsim export-mmm``: the series round-trip to the result's totals, the truth is the
lift's, the dates are the run's, a lift of another market is refused, and the three
files appear together or not at all."""

from __future__ import annotations

import datetime
import tomllib

import numpy as np
import pandas as pd
import pytest
import tomli_w
from helpers import DEFAULT, assert_one_clear_line, run_cli

import simulation
from simulation import export_mmm
from simulation.io import write_netcdf
from simulation.lift import run_lift
from simulation.scenario import ScenarioError, seasonal_factors
from simulation.sweep.combine import t_interval

AGENTS, DAYS = 2000, 45
START = datetime.date(2026, 1, 19)  # crosses into February: two months, every weekday
OVERRIDES = [f"market.size={AGENTS}", f"simulation.start_date={START.isoformat()}",
             "seasonality.demand.weekly=[1.0,1.0,1.0,1.0,1.1,1.4,1.2]",
             "seasonality.demand.monthly=[0.9,1.2,1,1,1,1,1,1,1,1,1,1]",
             "seasonality.media_price.weekly=[1.0,1.0,1.0,1.0,1.0,1.2,1.2]"]
HELD = ["search", "paid_social"]
NAMES = ["README.md", "series.csv", "truth.csv"]


@pytest.fixture(scope="module")
def market():
    """A run and the lift of its scenario, the run being the lift's replicate 0."""
    sc = simulation.load_scenario(DEFAULT, OVERRIDES)
    sc = simulation.scenario.resolve_size(sc, AGENTS, DAYS)
    lift, base = run_lift(sc, channels=HELD, replicates=2)
    seed = int(lift.replicate_seed.values[0])
    result = simulation.run(sc, seed=seed)
    return sc, result, lift, base


@pytest.fixture(scope="module")
def files(market, tmp_path_factory):
    """The run and the lift as files, and the export the command wrote from them."""
    _, result, lift, _ = market
    where = tmp_path_factory.mktemp("mmm")
    write_netcdf(result, where / "run.nc")
    write_netcdf(lift, where / "lift.nc")
    rc, out, err = run_cli(["export-mmm", where / "run.nc", "--lift", where / "lift.nc",
                            "--out", where / "export"])
    assert rc == 0, err
    assert "MMM export written" in out
    return where


def test_the_series_sum_to_the_datasets_totals(market, files):
    _, result, _, _ = market
    series = pd.read_csv(files / "export" / "series.csv")
    assert len(series) == DAYS and list(series.day) == list(range(DAYS))
    for c in ("paid_social", "search", "marketplace", "email"):
        got = series[f"spend_{c}"]
        np.testing.assert_allclose(got.sum(), float(result.spend.sel(channel=c).sum()),
                                   rtol=1e-12)
        np.testing.assert_allclose(got, result.spend.sel(channel=c).values, rtol=1e-12)
    for c in map(str, result.channel.values):
        np.testing.assert_allclose(series[f"reach_{c}"].sum(),
                                   float(result.reached.sel(channel=c).sum()), rtol=1e-12)
    assert "spend_word_of_mouth" not in series
    totals = {"new_customers": result.conversions, "orders": result.orders,
              "revenue": result.revenue}
    for col, var in totals.items():
        np.testing.assert_allclose(series[col].sum(), float(var.sum()), rtol=1e-12)
        np.testing.assert_allclose(series[col], var.sum("channel").values, rtol=1e-12)
    spend = sum(series[f"spend_{c}"].sum() for c in export_mmm.scenario_channels(result))
    np.testing.assert_allclose(spend, float(result.spend.sum()), rtol=1e-12)
    assert series.revenue.sum() > 0 and series.new_customers.sum() > 0


def test_the_dates_are_the_runs_and_the_controls_its_calendar(market, files):
    sc, result, _, _ = market
    series = pd.read_csv(files / "export" / "series.csv")
    dates = [START + datetime.timedelta(days=d) for d in range(DAYS)]
    assert list(series.date) == [d.isoformat() for d in dates]
    assert list(series.date) == [str(d)[:10] for d in result.date.values]
    assert list(series.day_of_week) == [d.weekday() for d in dates]
    assert list(series.month) == [d.month for d in dates]
    factors = seasonal_factors(sc, DAYS)
    for name in ("demand", "reach", "media_price"):
        np.testing.assert_array_equal(series[f"season_{name}"], factors[name])
    assert series.season_demand.nunique() > 2  # the calendar moved


def test_the_truth_is_the_lifts_mean_and_its_replicate(market, files):
    _, result, lift, _ = market
    truth = pd.read_csv(files / "export" / "truth.csv")
    assert list(truth.target) == [*HELD, "all_channels"]
    assert list(truth.kind) == ["channel", "channel", "all_channels"]
    for _, row in truth.iterrows():
        sel = lift.sel(target=row.target)
        held = row.channels.split()
        assert held == (HELD if row.target == "all_channels" else [row.target])
        assert row.spend == pytest.approx(float(result.spend.sel(channel=held).sum()),
                                          rel=1e-12)
        assert row.replicates == 2
        for fig in ("customers", "orders", "revenue"):
            values = sel[f"incremental_{fig}"].values
            mean, low, high, _ = t_interval(values)
            assert row[f"incremental_{fig}_mean"] == pytest.approx(values.mean(), rel=1e-12)
            assert row[f"incremental_{fig}_mean"] == pytest.approx(mean, rel=1e-12)
            assert row[f"incremental_{fig}_low"] == pytest.approx(low, rel=1e-12)
            assert row[f"incremental_{fig}_high"] == pytest.approx(high, rel=1e-12)
            assert row[f"incremental_{fig}_this_run"] == float(values[0])
    card = (files / "export" / "README.md").read_text()
    assert "is the lift's replicate 0" in card and "Do the channels' lifts add up?" in card
    assert "`email`" in card  # a paid channel the lift did not hold out is named


def test_this_run_is_the_exact_truth_of_the_series(market, files):
    """The lift's base of the matching replicate is the run, and its hold-out is the run
    without the channel: this_run = the series' total minus that run's."""
    sc, result, _, base = market
    np.testing.assert_array_equal(base.revenue.isel(replicate=0).values, result.revenue.values)
    truth = pd.read_csv(files / "export" / "truth.csv").set_index("target")
    without = simulation.run(simulation.scenario.with_overrides(
        sc, {"channels.search.enabled": False}), seed=int(result.attrs["seed"]))
    series = pd.read_csv(files / "export" / "series.csv")
    assert truth.loc["search", "incremental_revenue_this_run"] == pytest.approx(
        series.revenue.sum() - float(without.revenue.sum()), rel=1e-9)
    assert truth.loc["search", "incremental_customers_this_run"] == pytest.approx(
        series.new_customers.sum() - float(without.conversions.sum()), rel=1e-9)


def test_a_run_on_the_lifts_own_seed_has_no_exact_truth(market):
    _, result, lift, _ = market
    result = result.copy()
    result.attrs["seed"] = 42  # the scenario's seed, which the lift's replicate seeds derive from
    got = export_mmm.build(result, lift)
    assert got.truth.incremental_revenue_this_run.isna().all()
    assert "none of them this run" in got.card


def _edit_scenario(ds, **tables):
    data = tomllib.loads(ds.attrs["scenario"])
    for key, value in tables.items():
        table, _, field = key.partition("__")
        if value is None:
            data[table].pop(field)
        else:
            data.setdefault(table, {})[field] = value
    ds.attrs["scenario"] = tomli_w.dumps(data)
    return ds


def _channel_budget(ds, budget):
    data = tomllib.loads(ds.attrs["scenario"])
    next(c for c in data["channels"] if c["name"] == "search")["daily_budget"] = budget
    ds.attrs["scenario"] = tomli_w.dumps(data)
    return ds


BAD_RESULTS = {
    "another seed": (lambda r: r.attrs.update(seed=7) or r, "run the lift with --seed 7"),
    "another length": (lambda r: r.attrs.update(days=DAYS + 1) or r, "days"),
    "another sample": (lambda r: r.attrs.update(agents=AGENTS * 2) or r, "agents"),
    "another market": (lambda r: _edit_scenario(r, market__size=AGENTS * 2),
                       "a market of"),
    "other settings": (lambda r: _channel_budget(r, 99.0), "channels"),
    "another backend": (lambda r: r.attrs.update(backend="mesa") or r, "backend"),
    "another scenario": (lambda r: r.attrs.update(scenario_name="other") or r,
                         "a lift of 'default'"),
    "no dates": (lambda r: _edit_scenario(r, simulation__start_date=None),
                 "simulation.start_date"),
}


@pytest.mark.parametrize("case", sorted(BAD_RESULTS))
def test_a_lift_of_another_market_is_refused(market, case):
    _, result, lift, _ = market
    edit, needle = BAD_RESULTS[case]
    with pytest.raises(ScenarioError, match=needle):
        export_mmm.build(edit(result.copy(deep=True)), lift)


def test_the_command_refuses_in_one_line_and_writes_nothing(market, tmp_path):
    _, result, lift, _ = market
    edit, needle = BAD_RESULTS["another seed"]
    write_netcdf(edit(result.copy(deep=True)), tmp_path / "run.nc")
    write_netcdf(lift, tmp_path / "lift.nc")
    rc, _, err = run_cli(["export-mmm", tmp_path / "run.nc", "--lift", tmp_path / "lift.nc",
                          "--out", tmp_path / "export"])
    assert rc == 2
    assert_one_clear_line(err, "--lift", needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lift.nc", "run.nc"]
    rc, _, err = run_cli(["export-mmm", tmp_path / "lift.nc", "--lift", tmp_path / "lift.nc",
                          "--out", tmp_path / "export"])
    assert rc == 2
    assert_one_clear_line(err, "a lift result")
    assert not (tmp_path / "export").exists()


BAD_LIFTS = {
    "from a later day": (lambda x: x.attrs.update(lift_from_day=10) or x, "from day 10"),
    "programmes only": (lambda x: x.assign(kind=("target", np.array(
        ["programme"] * x.sizes["target"], dtype=object))), "holds out no channel"),
    "not a lift": (lambda x: x.attrs.update(kind="sweep") or x, "not a distsim lift"),
}


@pytest.mark.parametrize("case", sorted(BAD_LIFTS))
def test_a_lift_that_cannot_be_the_truth_is_refused(market, case):
    _, result, lift, _ = market
    edit, needle = BAD_LIFTS[case]
    with pytest.raises(ScenarioError, match=needle):
        export_mmm.build(result, edit(lift.copy(deep=True)))


def test_a_sweep_is_refused(market):
    _, result, lift, _ = market
    with pytest.raises(ScenarioError, match="a sweep's combined result"):
        export_mmm.check(result.expand_dims(replicate=[0]), lift)


def test_an_output_that_cannot_be_written_writes_none(files, tmp_path):
    out = tmp_path / "export"
    (out / "truth.csv").mkdir(parents=True)
    rc, _, err = run_cli(["export-mmm", files / "run.nc", "--lift", files / "lift.nc",
                          "--out", out])
    assert rc == 2
    assert_one_clear_line(err, "truth.csv", "is a directory")
    assert [p.name for p in out.iterdir()] == ["truth.csv"]  # no series, no card, no temporary


def test_a_failure_while_writing_leaves_the_old_files(files, tmp_path, monkeypatch):
    from simulation.outputs import OutputError, OutputFiles

    out = tmp_path / "export"
    out.mkdir()
    for name in NAMES:
        (out / name).write_text("old\n")
    write = OutputFiles.write
    calls = []

    def failing(self, flag, data):
        calls.append(flag)
        if len(calls) == 2:
            raise OutputError(f"{flag}: cannot write (No space left on device)")
        write(self, flag, data)

    monkeypatch.setattr(OutputFiles, "write", failing)
    rc, _, err = run_cli(["export-mmm", files / "run.nc", "--lift", files / "lift.nc",
                          "--out", out])
    assert rc == 2
    assert_one_clear_line(err, "No space left on device")
    assert sorted(p.name for p in out.iterdir()) == NAMES  # no temporaries left
    assert all((out / name).read_text() == "old\n" for name in NAMES)
    # and a whole export replaces them together
    monkeypatch.setattr(OutputFiles, "write", write)
    assert run_cli(["export-mmm", files / "run.nc", "--lift", files / "lift.nc",
                    "--out", out])[0] == 0
    for name in NAMES:
        assert (out / name).read_bytes() == (files / "export" / name).read_bytes()


def test_the_benchmarks_market_has_dates_and_moving_budgets():
    """benchmarks/mmm_truth.toml: a calendar, and paid budgets that move independently
    (an MMM's signal), at a few days' run."""
    from helpers import ROOT

    sc = simulation.load_scenario(ROOT / "benchmarks" / "mmm_truth.toml")
    assert sc.simulation.start_date is not None
    ds = simulation.run(sc, agents=1000, days=70, seed=1)
    paid = ds.spend.sel(channel=["paid_social", "search", "video"]).values
    assert all(len(np.unique(paid[:, k])) >= 3 for k in range(3))
    assert abs(np.corrcoef(paid.T)[0, 1]) < 0.9
    assert float(ds.revenue.sum()) > 0
