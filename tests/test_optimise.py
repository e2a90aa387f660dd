"""``distsim optimise``: the budget split held exactly, bounds respected, common seeds
across candidates, resumable, and one clear line for bad input."""

from __future__ import annotations

import tomllib
from decimal import Decimal

import numpy as np
import pytest
from helpers import DEFAULT, ROOT, assert_one_clear_line, assert_png, run_cli

import simulation
from simulation.analysis.economics import unit_economics
from simulation.io import read_netcdf
from simulation.optimise.problem import BudgetProblem, plan, split
from simulation.scenario import ScenarioError, load_scenario, resolve_size

BENCH = ROOT / "benchmarks" / "optimise_two_channels.toml"
SIZE = ["--agents", "2000", "--days", "30", "--seed", "3"]
SMALL = [*SIZE, "--popsize", "4", "--fresh-seeds", "2", "--quiet"]


def optimise(out, *args, trials=5, replicates=2, curve_points=2):
    rc, stdout, err = run_cli(["optimise", BENCH, "--budget", "600", *SMALL, "--trials", trials,
                               "--replicates", replicates, "--curve-points", curve_points,
                               *map(str, args), "--out", out])
    assert rc == 0, err
    return read_netcdf(out / "optimise.nc")


@pytest.fixture(scope="module")
def bounded(tmp_path_factory):
    """One small optimisation with bounds and a plan (the scenario's own split in week 0,
    300 a day each from week 1), shared by the output checks."""
    where = tmp_path_factory.mktemp("opt")
    plan_csv = where / "plan.csv"
    plan_csv.write_text("week,display,paid_social\n0,2940,1260\n1,2100,2100\n")
    out = where / "out"
    ds = optimise(out, "--bounds", "paid_social=50.5:400,display=:500", "--plan", plan_csv)
    return out, ds


def test_the_split_holds_the_total_to_the_cent_within_the_bounds():
    rng = np.random.default_rng(1)
    low = np.array([0, 5_050, 0, 10_000])
    high = np.array([60_000, 40_000, 12_345, 60_000])
    for weights in [*rng.random((300, 4)), np.zeros(4), [1, 0, 0, 0], [0, 0, 1e-12, 1]]:
        cents = split(weights, low, high, 60_001)
        assert cents.sum() == 60_001
        assert (cents >= low).all() and (cents <= high).all()
    # the weights' ratios set the free money's shares; the map inverts on the simplex
    assert split([1, 3], [0, 0], [10_000, 10_000], 10_000).tolist() == [2_500, 7_500]
    assert split([1, 3], [0, 0], [10_000, 5_000], 10_000).tolist() == [5_000, 5_000]
    prob = BudgetProblem(("a", "b", "c"), np.array([0, 100, 0]), np.array([900, 900, 900]),
                         1_000, "profit", np.zeros(3, np.int64), np.zeros(3, np.int64))
    cents = np.array([123, 456, 421])
    assert prob.split(prob.weights(cents)).tolist() == cents.tolist()


def test_recommended_toml_holds_the_budget_exactly_and_runs(bounded, tmp_path):
    out, ds = bounded
    assert sorted(p.name for p in out.iterdir()) == [
        "optimise.journal", "optimise.nc", "recommended.toml", "response.png"]
    text = (out / "recommended.toml").read_text()
    data = tomllib.loads(text)
    budgets = {c["name"]: c["daily_budget"] for c in data["channels"]}
    assert sum(Decimal(str(v)) for v in budgets.values()) == Decimal("600")
    for name, v in budgets.items():
        assert float(ds.recommended_budget.sel(channel=name)) == v
    rc, _, err = run_cli(["run", out / "recommended.toml", *SIZE, "--quiet",
                          "--out", tmp_path / "run.nc"])
    assert rc == 0, err
    assert_png(out / "response.png", min_std=0.01)


def test_every_candidate_respects_the_bounds_and_the_total(bounded):
    _, ds = bounded
    budgets = ds.trial_budget
    assert ds.sizes["trial"] == 5  # the scenario's split, then a generation of 4
    assert np.allclose(budgets.sum("channel"), 600.0, atol=1e-9)
    assert (budgets.sel(channel="paid_social") >= 50.5).all()
    assert (budgets.sel(channel="paid_social") <= 400).all()
    assert (budgets.sel(channel="display") <= 500).all()
    assert list(ds.lower_bound.values) == [50.5, 0.0]
    assert list(ds.upper_bound.values) == [400.0, 500.0]
    # trial 0 is the scenario's own split; the recommendation is the best trial
    assert list(ds.trial_budget[0].values) == list(ds.current_budget.values) == [180.0, 420.0]
    best = int(np.argmax(ds.trial_objective.values))
    assert list(ds.recommended_budget.values) == list(ds.trial_budget[best].values)
    assert ds.trial_profit.dims == ("trial", "replicate")
    assert np.allclose(ds.trial_objective, ds.trial_profit.mean("replicate"))


def test_outputs_are_readable_and_the_improvement_is_paired(bounded):
    _, ds = bounded
    assert ds.attrs["kind"] == "optimise" and ds.attrs["objective"] == "profit"
    diff = (ds.fresh_profit.sel(split="recommended") - ds.fresh_profit.sel(split="current"))
    assert np.allclose(ds.improvement, diff)
    a = ds.improvement.attrs
    assert a["ci_low"] <= a["mean"] <= a["ci_high"]
    assert not set(ds.fresh_seed.values.tolist()) & set(ds.replicate_seed.values.tolist())
    assert ds.incremental_profit.dims == ("channel", "curve_point", "curve_replicate")
    assert (ds.incremental_customers.isel(curve_point=0) == 0).all()  # against budget 0
    assert ds.curve_budget.sel(channel="paid_social").values.tolist() == [0.0, 400.0]
    assert ds.attrs["search_runs"] == 5 * 2 and ds.attrs["check_runs"] == 3 * 2


def test_candidates_share_the_seeds(bounded):
    """Common random numbers: a candidate's figures are those of plain runs on the
    search's seeds, so two candidates with equal budgets have identical objectives."""
    from simulation.optimise.evaluate import Runs

    _, ds = bounded
    scenario = resolve_size(load_scenario(BENCH), 2000, 30, 3)
    seeds = ds.replicate_seed.values.tolist()
    over = {f"channels.{c}.daily_budget": float(v) for c, v in
            zip(ds.channel.values, ds.trial_budget[1].values, strict=True)}
    with Runs(scenario) as runs:
        twice = runs([over, over], seeds)
    assert np.array_equal(twice[0], twice[1])
    assert np.array_equal(twice[0][:, 0], ds.trial_profit[1].values)
    by_hand = simulation.run(load_scenario(BENCH, [f"{k}={v}" for k, v in over.items()]),
                             agents=2000, days=30, seed=seeds[0])
    m = unit_economics(by_hand, market=True).sel(channel="market")
    assert float(m.profit) == float(ds.trial_profit[1, 0])


def test_a_killed_search_resumes_as_if_never_stopped(tmp_path, monkeypatch):
    """Killed while generation 1 runs: the resumed search runs that generation's
    candidates again and asks generation 2 as the uninterrupted search did."""
    small = {"trials": 9, "replicates": 1, "curve_points": 0}
    whole = optimise(tmp_path / "whole", **small)
    from simulation.optimise import evaluate

    calls = [0]
    real = evaluate.Runs.__call__

    def killed_in_generation_1(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 2:  # trial 0, then generation 1
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(evaluate.Runs, "__call__", killed_in_generation_1)
    out = tmp_path / "cut"
    argv = ["optimise", BENCH, "--budget", "600", *SMALL, "--trials", "9", "--replicates", "1",
            "--curve-points", "0", "--out", out]
    rc, _, err = run_cli(argv)
    assert rc == 130 and "no output written" in err
    assert sorted(p.name for p in out.iterdir()) == ["optimise.journal"]
    monkeypatch.setattr(evaluate.Runs, "__call__", real)
    rc, _, err = run_cli(argv)
    assert rc == 2 and "--resume" in err
    resumed = optimise(out, "--resume", **small)
    for name in ("trial_budget", "trial_profit", "recommended_budget", "improvement"):
        assert np.array_equal(resumed[name].values, whole[name].values), name


@pytest.mark.parametrize("args, needle", [
    (["--channels", "paid_social,tv"], "no channel named 'tv'"),
    (["--channels", "paid_social"], "two or more channels"),
    (["--bounds", "paid_social=400:,display=300:"], "below the sum of the lower bounds"),
    (["--bounds", "paid_social=:100,display=:100"], "above the sum of the upper bounds"),
    (["--bounds", "search=0:10"], "not among the optimised channels"),
    (["--bounds", "paid_social=5"], "expected channel=low:high"),
    (["--budget", "600.005"], "whole cents"),
    (["--budget", "0"], "above 0"),
    (["--trials", "0"], "--trials"),
    (["--popsize", "3"], "--popsize"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, needle):
    out = tmp_path / "out"
    argv = ["optimise", BENCH, "--budget", "600", *SIZE, *args, "--out", out]
    rc, _, err = run_cli(argv)
    assert rc == 2
    assert_one_clear_line(err, needle)
    assert not out.exists()


@pytest.mark.parametrize("args, needle", [
    (["--channels", "paid_social,marketplace"], "no daily budget to set (reach model 'fixed'"),
    (["--channels", "search,email"], "'email' has no daily budget"),
    (["--set", "channels.search.schedule.kind='linear'"], "'linear' budget schedule"),
    (["--set", "channels.search.enabled=false"], "enabled channel(s) with a daily_budget"),
    (["--resume"], "no search to resume"),
])
def test_channels_without_a_budget_to_set_are_refused(tmp_path, args, needle):
    out = tmp_path / "out"
    rc, _, err = run_cli(["optimise", DEFAULT, "--budget", "400", *SIZE, *args, "--out", out])
    assert rc == 2
    assert_one_clear_line(err, needle)
    assert not out.exists()


def test_plan_scales_the_scenarios_split_to_the_total():
    scenario = load_scenario(DEFAULT)
    prob = plan(scenario, 800.0)  # paid social 250, search 150 in the file
    assert prob.channels == ("paid_social", "search")
    assert prob.current.tolist() == [25_000, 15_000]
    assert prob.baseline.tolist() == [50_000, 30_000]
    with pytest.raises(ScenarioError, match="two or more"):
        plan(scenario, 800.0, ["search"])


@pytest.mark.slow
def test_jobs_and_a_cluster_give_the_one_process_search(tmp_path):
    """Candidates farmed out to worker processes or a Dask cluster: the same trials,
    figures, check and curves."""
    from distributed import LocalCluster

    one = optimise(tmp_path / "one", trials=9)
    two = optimise(tmp_path / "two", "--jobs", "2", trials=9)
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        dask = optimise(tmp_path / "dask", "--scheduler", cluster.scheduler_address, trials=9)
    for other in (two, dask):
        for name in ("trial_budget", "trial_profit", "fresh_profit", "recommended_budget",
                     "incremental_profit"):
            assert np.array_equal(one[name].values, other[name].values), name


def test_a_plan_is_forecast_on_the_fresh_seeds(bounded):
    """The plan's second week is a scheduled change on day 7, run on the fresh seeds."""
    _, ds = bounded
    assert list(ds.split.values) == ["recommended", "current", "plan"]
    assert ds.plan_budget.sel(channel="paid_social").values.tolist() == [180.0, 300.0]
    assert float(ds.plan_average_budget.sel(channel="paid_social")) == pytest.approx(
        (7 * 180 + 23 * 300) / 30)
    change = ('changes=[{day = 7, set = {"channels.paid_social.daily_budget" = 300.0, '
              '"channels.display.daily_budget" = 300.0}}]')
    by_hand = simulation.run(load_scenario(BENCH, [change]), agents=2000, days=30,
                             seed=int(ds.fresh_seed[1]))
    m = unit_economics(by_hand, market=True).sel(channel="market")
    assert float(m.profit) == float(ds.fresh_profit.sel(split="plan", fresh=1))
    gap = ds.fresh_profit.sel(split="recommended") - ds.fresh_profit.sel(split="plan")
    assert np.allclose(ds.plan_gap, gap)


@pytest.mark.parametrize("text, needle", [
    ("week,paid_social\n0,100\n", "no column for display"),
    ("week,paid_social,search\n0,1,2\n", "column 'search' is not an optimised channel"),
    ("week,paid_social,display\n0,1,2\n2,1,2\n", "line 3: week 2"),
    ("week,paid_social,display\n0,-1,2\n", "non-negative"),
    ("paid_social,display\n1,2\n", "the first column must be 'week'"),
    ("", "empty"),
])
def test_a_bad_plan_is_one_line_and_writes_nothing(tmp_path, text, needle):
    plan_csv = tmp_path / "plan.csv"
    plan_csv.write_text(text)
    out = tmp_path / "out"
    rc, _, err = run_cli(["optimise", BENCH, "--budget", "600", *SIZE, "--plan", plan_csv,
                          "--out", out])
    assert rc == 2
    assert_one_clear_line(err, needle)
    assert not out.exists()


def test_help(capsys):
    from simulation.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["optimise", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "usage: distsim optimise" in text and "--budget" in text and "--plan" in text
