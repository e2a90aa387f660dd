"""Running sweeps: one job, forked or loky workers and Dask give the same result,
nothing is lost when a sweep is killed, the combined dataset and the summary, the
``distsim sweep`` command, and every example experiment at a small size.

Contract (docs/contracts.md, "Sweep results"): one file per run in ``DIR/runs/`` written
atomically, the combined dataset ``DIR/combined.nc`` with a dimension per swept
parameter or named variant and ``replicate``; a killed sweep resumes without redoing
finished runs, and the result equals an uninterrupted sweep's.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import (
    DEFAULT,
    EXPERIMENTS,
    ROOT,
    assert_one_clear_line,
    assert_png,
    distsim,
    own_market,
    run_cli,
)
from scipy import stats

import simulation
from simulation.analysis.common import sig3
from simulation.analysis.sweep import variant_labels
from simulation.io import read_netcdf, write_netcdf
from simulation.scenario import with_overrides
from simulation.sweep.combine import (
    RESAMPLES,
    outcomes,
    p_best,
    p_positive,
    point_labels,
    summarise,
    t_interval,
)
from simulation.sweep.command import best_line
from simulation.sweep.experiment import Outputs, load_experiment
from simulation.sweep.pool import default_threads
from simulation.sweep.runner import LongestFirst, run_sweep
from simulation.sweep.worker import REQUIRED, Task, shrink

SMALL = f"""
name = "small"
base = "{DEFAULT}"
seed = 3
replicates = 2
agents = 2000
days = 30

[set]                       # prospects on day 0, so that a month wins customers
initial.considering = 0.02

[[variants]]
name = "base"

[[variants]]
name = "social"
[variants.set]
channels.paid_social.daily_budget = 600.0

[[sweep]]
kind = "grid"
values = {{ "channels.search.daily_budget" = [50.0, 300.0] }}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def visible_runs(out: Path) -> list[Path]:
    return sorted(p for p in (out / "runs").glob("*.nc") if not p.name.startswith("."))


def stamps(paths) -> dict:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return write(tmp_path_factory.mktemp("exp") / "small.toml", SMALL)


@pytest.fixture(scope="module")
def reference(small, tmp_path_factory):
    """The small sweep, uninterrupted, one job in this process."""
    out = tmp_path_factory.mktemp("ref") / "sweep"
    return run_sweep(load_experiment(small), out, jobs=1, threads=1)


# -- layout and the combined dataset -----------------------------------------------------


def test_sweep_writes_runs_manifest_combined_and_summary(reference):
    out = reference.out
    assert [p.name for p in visible_runs(out)] == [f"{i:05d}.nc" for i in range(8)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["runs_done"] == manifest["runs_total"] == 8
    assert [e["computed"] for e in manifest["runs"]] == [1] * 8
    ds = reference.combined
    xr.testing.assert_identical(read_netcdf(out / "combined.nc"), ds)
    assert ds.stage_count.dims == ("variant", "channels.search.daily_budget", "replicate",
                                   "day", "stage")
    assert list(ds.variant.values) == ["base", "social"]
    assert list(ds["channels.search.daily_budget"].values) == [50.0, 300.0]
    assert ds.sizes["replicate"] == 2 and ds.replicate_seed.dims == ("replicate",)
    assert sorted(ds.run.values.ravel()) == list(range(8))
    # each run equals its own file and a direct simulation.run of its scenario
    run0 = read_netcdf(out / "runs" / "00000.nc")
    assert int(ds.run.sel(variant="base", replicate=0).isel(
        {"channels.search.daily_budget": 0})) == 0
    np.testing.assert_array_equal(
        ds.conversions.sel(variant="base", replicate=0).isel(
            {"channels.search.daily_budget": 0}).values, run0.conversions.values)
    np.testing.assert_allclose(ds.stage_count.sum("stage"), 200_000)  # the market's people
    assert "stage_count_by_segment" not in ds  # per-day per-segment arrays are dropped
    assert ds.attrs["experiment_name"] == "small" and "[[variants]]" in ds.attrs["experiment"]
    assert 'name = "default"' in ds.attrs["scenario"]
    rows = (out / "summary.csv").read_text().splitlines()
    assert rows[0].startswith("variant,replicates,profit_mean,profit_low,profit_high")
    assert len(rows) == 5
    assert json.loads((out / "summary.json").read_text())["best"]["variant"]


def test_runs_are_the_simulations_of_their_scenarios(reference, small):
    """A run is exactly simulation.run of the base with its overrides and replicate seed."""
    ds = reference.combined
    seed = int(ds.replicate_seed[1])
    scenario = load_experiment(small).base
    direct = simulation.run(with_overrides(scenario, {
        "channels.paid_social.daily_budget": 600.0, "channels.search.daily_budget": 300.0,
        "simulation.seed": seed}), threads=1)
    got = ds.sel({"variant": "social", "channels.search.daily_budget": 300.0, "replicate": 1})
    for name in ("conversions", "revenue", "spend", "stage_count"):
        np.testing.assert_array_equal(got[name].values, direct[name].values)


@pytest.mark.slow  # loky worker processes
def test_jobs_2_gives_the_same_result(reference, small, tmp_path):
    res = run_sweep(load_experiment(small), tmp_path / "j2", jobs=2)
    assert res.threads == default_threads(2)  # the cores shared between the jobs
    # this process has simulated (numba threads are up): loky's fresh processes, not forks
    assert json.loads((tmp_path / "j2" / "manifest.json").read_text())["workers"] == "loky"
    assert res.computed == 8
    xr.testing.assert_identical(res.combined, reference.combined)
    xr.testing.assert_identical(read_netcdf(tmp_path / "j2" / "combined.nc"),
                                read_netcdf(reference.out / "combined.nc"))


def test_runs_go_out_longest_first_once_their_point_is_timed():
    """Each point (variant) is timed by its first run, in plan order; then the longest
    point's runs go first, so the short ones fill in at the end (LPT)."""
    tasks = [Task(i, str(i), i // 3, 0, None, {}, Outputs(), 1, {"variant": "abc"[i % 3]})
             for i in range(9)]
    order = LongestFirst(tasks)
    first = [order.pop() for _ in range(3)]
    assert [t.index for t in first] == [0, 1, 2]  # never timed: plan order
    seconds = {"a": 1.0, "b": 3.0, "c": 2.0}
    for t in first:
        order.record(t, {"sim_seconds": seconds[t.labels["variant"]] + 5.0, "warm": False})
    # a process's first run (kernel load) is replaced by the first warm one
    order.record(tasks[3], {"sim_seconds": 1.0, "warm": True})
    assert order.expected(tasks[6]) == 1.0
    assert order.expected(tasks[4]) == 8.0
    order.record(tasks[4], {"sim_seconds": 3.0, "warm": True})
    order.record(tasks[5], {"sim_seconds": 2.0, "warm": True})
    rest = [order.pop().labels["variant"] for _ in range(len(order))]
    assert rest == ["b", "b", "c", "c", "a", "a"]
    assert len(order) == 0


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as c:
        yield c


@pytest.mark.slow  # a Dask cluster of two processes
def test_dask_local_cluster_gives_the_same_result(reference, small, tmp_path, cluster):
    res = run_sweep(load_experiment(small), tmp_path / "dask", scheduler=cluster.scheduler_address)
    assert res.jobs == 0 and res.computed == 8
    xr.testing.assert_identical(res.combined, reference.combined)
    assert [p.name for p in visible_runs(tmp_path / "dask")] == [f"{i:05d}.nc" for i in range(8)]


@pytest.mark.slow  # a sweep of its own
def test_variants_of_a_replicate_share_customers_and_draws(tmp_path):
    """Common random numbers: a variant that changes only a price of contacts sees the
    same customers make the same moves; another replicate does not."""
    exp = write(tmp_path / "crn.toml", f"""
base = "{DEFAULT}"
seed = 8
replicates = 2
agents = 2000
days = 30
[[variants]]
name = "base"
[[variants]]
name = "dear_email"
set = {{ "channels.email.reach.cost_per_contact" = 0.05 }}
""")
    ds = run_sweep(load_experiment(exp), tmp_path / "out", threads=1).combined
    a, b = ds.sel(variant="base"), ds.sel(variant="dear_email")
    for name in ("conversions", "stage_count", "orders", "revenue"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert float(b.spend.sum()) > float(a.spend.sum())
    assert not ds.conversions.sel(variant="base", replicate=0).equals(
        ds.conversions.sel(variant="base", replicate=1))


# -- nothing lost --------------------------------------------------------------------------


@pytest.mark.slow  # runs the sweep twice
def test_interrupted_sweep_keeps_complete_runs_and_resumes_identically(reference, small,
                                                                        tmp_path):
    out = tmp_path / "cut"

    def stop_after_three(done, total):
        if done >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(load_experiment(small), out, threads=1, progress=stop_after_three)
    saved = visible_runs(out)
    assert len(saved) == 3
    assert not [p for p in out.rglob(".*")]  # no temporary left behind
    assert not (out / "combined.nc").exists()
    for p in saved:
        read_netcdf(p)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["runs_done"] == 3
    before = stamps(saved)
    with pytest.raises(Exception, match="already holds a sweep"):
        run_sweep(load_experiment(small), out, threads=1)
    res = run_sweep(load_experiment(small), out, threads=1, resume=True)
    assert (res.reused, res.computed) == (3, 5)
    assert stamps(saved) == before
    xr.testing.assert_identical(res.combined, reference.combined)


KILL = f"""
name = "kill"
base = "{DEFAULT}"
seed = 99
replicates = 4
agents = 20000
days = 60
[[variants]]
name = "base"
[[variants]]
name = "social"
set = {{ "channels.paid_social.daily_budget" = 500.0 }}
"""


def children(pid: int) -> set[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.slow  # a real process, killed and resumed
def test_sigkill_midway_then_resume_equals_an_uninterrupted_sweep(tmp_path):
    """The sweep's process alone is killed (SIGKILL), with two workers busy: only complete
    run files remain, no worker outlives it, and --resume finishes it identically."""
    exp = write(tmp_path / "kill.toml", KILL)
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulation", "sweep", str(exp), "--out", str(out), "--jobs", "2",
         "--threads", "1", "--quiet"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "runs").exists() or len(visible_runs(out)) < 2:
            if proc.poll() is not None:
                pytest.fail(f"the sweep exited ({proc.returncode}) before it was killed: "
                            f"{proc.stderr.read().decode()[-2000:]}")
            assert time.monotonic() < deadline, "the sweep did not start"
            time.sleep(0.01)
        workers = children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert workers and not any(alive(w) for w in workers), "a worker outlived the sweep"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    saved = visible_runs(out)
    assert 2 <= len(saved) < 8, "the sweep finished before it was killed"
    for p in saved:  # only complete files under their final names
        read_netcdf(p)
    assert not (out / "combined.nc").exists()
    before = stamps(saved)

    rc, stdout, _ = run_cli(["sweep", exp, "--out", out, "--resume", "--threads", "1"])
    assert rc == 0
    assert f"{8 - len(saved)} run(s) computed, {len(saved)} reused" in stdout
    assert stamps(saved) == before  # finished runs were not recomputed
    assert not [p for p in out.rglob(".*")]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["computed"] for e in manifest["runs"]] == [1] * 8

    fresh = run_sweep(load_experiment(exp), tmp_path / "fresh", threads=1)
    xr.testing.assert_identical(read_netcdf(out / "combined.nc"), fresh.combined)


# -- what workers return, outcomes, the summary ---------------------------------------------


@pytest.fixture(scope="module")
def one_run(default_scenario):
    return simulation.run(own_market(default_scenario, 2000), days=30, seed=1,
                          threads=1)


def test_workers_return_a_shrunk_dataset(one_run):
    default = shrink(one_run, Outputs())
    assert "stage_count_by_segment" not in default and "segment" not in default.coords
    assert set(default.data_vars) == {v for v in one_run.data_vars
                                      if not {"day", "segment"} <= set(one_run[v].dims)}
    picked = shrink(one_run, Outputs(variables=["leads_*", "cac"]))
    assert set(picked.data_vars) == (REQUIRED & set(one_run.data_vars)) | {
        "leads_new", "leads_lost", "leads_served", "cac"}
    assert "attribution_model" not in picked.coords
    assert set(shrink(one_run, Outputs(variables="all")).data_vars) == set(one_run.data_vars)


def test_outcomes_of_a_run(one_run):
    o = outcomes(one_run)
    spend = float(one_run.spend.sum())
    programmes = float(one_run.programme_cost.sum() + one_run.programme_fixed_cost.sum())
    assert math.isclose(float(o.profit), float(one_run.gross_margin.sum()) - spend - programmes)
    customers = float(one_run.customers.sum())
    assert float(o.customers) == customers
    assert math.isclose(float(o.cac), spend / customers)
    assert math.isclose(float(o.churn), float(one_run.churned.sum()) / customers)
    assert float(o.brand_equity) == float(one_run.brand_equity[-1])
    assert "brand_equity" not in outcomes(one_run.drop_vars("brand_equity"))


def test_t_interval_and_probability_of_beating():
    v = np.array([1.0, 2.0, 4.0, 7.0])
    mean, low, high, n = t_interval(v)
    half = stats.t.ppf(0.975, 3) * v.std(ddof=1) / 2
    assert (n, mean) == (4, 3.5) and math.isclose(high - mean, half) and math.isclose(
        mean - low, half)
    assert math.isnan(t_interval(np.array([2.0]))[1])
    assert p_positive(np.array([1.0, 1.0, 1.0])) == 1.0
    assert p_positive(np.array([-1.0, 1.0])) == 0.5
    d = np.array([0.5, 1.5, -0.2, 0.9])
    assert math.isclose(p_positive(d), stats.t.cdf(d.mean() / (d.std(ddof=1) / 2), 3))


def test_summary_picks_the_best_variant_with_paired_differences(reference):
    ds = reference.combined
    s = summarise(ds)
    assert [r["variant"] for r in s.rows] == [
        "base, channels.search.daily_budget=50", "base, channels.search.daily_budget=300",
        "social, channels.search.daily_budget=50", "social, channels.search.daily_budget=300"]
    profit = outcomes(ds).profit.transpose("variant", "channels.search.daily_budget",
                                           "replicate").values.reshape(4, 2)
    means = profit.mean(axis=1)
    assert np.allclose([r["profit_mean"] for r in s.rows], means)
    order = np.argsort(-means)
    assert s.best.variant == s.rows[order[0]]["variant"]
    assert s.best.runner_up == s.rows[order[1]]["variant"]
    diff = profit[order[0]] - profit[order[1]]
    assert math.isclose(s.best.difference, diff.mean())
    assert s.best.p_beats_runner_up == p_positive(diff)
    assert s.best.wins == int((diff > 0).sum()) and s.best.replicates == 2
    for name in ("profit", "customers", "cac", "ltv_cac", "churn", "brand_equity"):
        assert name in s.outcomes
    cheapest = summarise(ds, "cac")
    cac = [r["cac_mean"] for r in cheapest.rows]
    assert cheapest.best.variant == cheapest.rows[int(np.nanargmin(cac))]["variant"]
    assert "brand_equity" not in summarise(ds.drop_vars("brand_equity")).outcomes


# -- P(best), the edge of the range and sampled points' labels ------------------------------


def hand_made(run: xr.Dataset, offsets, dim: str = "variant", coords=None) -> xr.Dataset:
    """A combined dataset whose profits are known: point k, replicate r is ``run`` with
    ``offsets[k][r]`` added to one day's gross margin (profit = margin - costs)."""
    offsets = np.asarray(offsets, dtype=float)
    points = []
    for row in offsets:
        reps = []
        for offset in row:
            margin = run.gross_margin.copy()
            margin[0, 0] += offset
            reps.append(run.assign(gross_margin=margin))
        points.append(xr.concat(reps, dim="replicate"))
    ds = xr.concat(points, dim=dim)
    names = coords if coords is not None else [f"v{k}" for k in range(len(points))]
    return ds.assign_coords({dim: names, "replicate": np.arange(offsets.shape[1])})


# the resamples' Monte Carlo error: 3 standard errors of a share near 0.5
MC = 3 * 0.5 / math.sqrt(RESAMPLES)


def test_p_best_is_one_for_a_point_ahead_by_a_wide_margin_in_every_replicate(one_run):
    s = summarise(hand_made(one_run, [[0, 0, 0, 0, 0], [1e4, 1e4, 1e4, 1e4, 1e4],
                                      [50, -50, 20, 0, 10]]))
    assert s.best.variant == "v1" and s.best.p_best == 1.0 and s.best.clear
    assert s.best.p_best_shares == {"v1": 1.0}
    line = best_line(s)
    assert line.startswith("best by profit (highest): v1") and "P(best) > 0.99" in line
    assert "runner-up v2" in line and "better by 9,994" in line  # 1e4 - (50-50+20+0+10)/5
    assert json.loads(s.to_json())["best"]["p_best"] == 1.0


def test_two_identical_points_share_p_best_and_there_is_no_clear_winner(one_run):
    same = [3.0, -7.0, 11.0, 0.0]
    s = summarise(hand_made(one_run, [same, same, [-500.0] * 4]))
    assert s.best.p_best == 0.5 and s.best.p_best_shares == {"v0": 0.5, "v1": 0.5}
    assert not s.best.clear
    line = best_line(s)
    assert line.startswith("no clear winner by profit (highest): P(best) v0 0.50, v1 0.50;")
    assert "v2" not in line.split(";")[0]  # never the best: not among the leaders


def test_p_best_matches_a_hand_count_of_the_resamples():
    # two replicates: A - B = +3 and -1. Resampled pairs (0,0), (0,1), (1,0), (1,1), a
    # quarter each; A leads in all but (1,1) (mean difference 1 + sqrt(2) (d - 1) with d
    # the resampled mean: 3.8, 1, 1, -1.8), so P(A best) = 3/4
    p = p_best(np.array([[3.0, -1.0], [0.0, 0.0]]))
    assert abs(p[0] - 0.75) < MC and math.isclose(p.sum(), 1.0)
    # three points, paired: C is best in replicate 0 only, A in 1 and 2 with the same
    # margin; all of P's mass goes to those two, and it is the same every time
    v = np.array([[5.0, 9.0, 9.0], [0.0, 0.0, 0.0], [8.0, 1.0, 1.0]])
    p = p_best(v)
    assert p[1] == 0 and math.isclose(p.sum(), 1.0) and (p == p_best(v)).all()
    # a point without a finite outcome is never best; non-finite replicates are left out
    p = p_best(np.array([[np.nan, np.nan], [1.0, 2.0], [0.0, np.inf]]))
    assert p[0] == 0 and math.isclose(p[1] + p[2], 1.0)


def test_one_replicate_has_no_measure_of_certainty(one_run):
    s = summarise(hand_made(one_run, [[0.0], [900.0]]))
    assert s.best.variant == "v1" and math.isnan(s.best.p_best) and not s.best.clear
    assert json.loads(s.to_json())["best"]["p_best"] is None
    line = best_line(s)
    assert line.startswith("one replicate: no measure of certainty;")
    assert "best by" not in line and "P(best)" not in line


@pytest.mark.parametrize(("margins", "warned"), [
    ([0, 5, 10], "highest product.price swept (110; range 75 to 110)"),
    ([10, 5, 0], "lowest product.price swept (75; range 75 to 110)"),
    ([0, 10, 5], None),
])
def test_best_at_the_edge_of_a_three_value_grid_is_warned(one_run, margins, warned):
    prices = [75.0, 90.0, 110.0]
    ds = hand_made(one_run, [[m] * 3 for m in margins], "product.price", prices)
    s = summarise(ds)
    assert s.best.variant == f"product.price={prices[int(np.argmax(margins))]:g}"
    if warned is None:
        assert s.warnings == []
    else:
        assert len(s.warnings) == 1 and warned in s.warnings[0]
        assert "optimum may lie beyond the range swept" in s.warnings[0]
        assert json.loads(s.to_json())["warnings"] == s.warnings
    # two values: every point is at an edge, nothing to say
    two = hand_made(one_run, [[0.0] * 3, [9.0] * 3], "product.price", prices[:2])
    assert summarise(two).warnings == []


def test_labels_round_to_three_significant_figures():
    assert [sig3(v) for v in (87.34, 412.4, 12345.6, 0.015349, 99.96, 1.0, 7)] == [
        "87.3", "412", "12300", "0.0153", "100", "1", "7"]


LHS = f"""
name = "lhs"
base = "{DEFAULT}"
seed = 5
replicates = 2

[[sweep]]
kind = "lhs"
samples = 4
[sweep.ranges]
product.price = [20.0, 40.0]
channels.search.daily_budget = {{ low = 50, high = 2000, scale = "log" }}
channels.paid_social.daily_budget = {{ low = 100, high = 900, integer = true }}
"""


def test_sampled_points_are_labelled_by_their_values(tmp_path):
    out = tmp_path / "lhs"
    rc, stdout, _ = run_cli(["sweep", str(write(tmp_path / "lhs.toml", LHS)), "--agents", "300",
                             "--days", "10", "--threads", "1", "--out", str(out)])
    assert rc == 0
    ds = read_netcdf(out / "combined.nc")
    assert list(ds["sample"].values) == [0, 1, 2, 3]  # the index keeps the sample numbers
    price = ds["product.price"].values
    search = ds["channels.search.daily_budget"].values
    social = ds["channels.paid_social.daily_budget"].values
    expected = [f"price={sig3(price[i])}, search.daily_budget={sig3(search[i])}, "
                f"paid_social.daily_budget={int(social[i])}" for i in range(4)]
    assert expected[0].startswith(f"price={round(price[0], 1 if price[0] >= 10 else 2):g}")
    assert point_labels(ds, ["sample"]) == expected
    assert variant_labels(ds) == expected
    assert list(pd.read_csv(out / "summary.csv")["variant"]) == expected
    assert [r["variant"] for r in json.loads((out / "summary.json").read_text())["rows"]] == (
        expected)
    assert all(f"price={sig3(p)}," in stdout for p in price)  # the table (cells wrap)
    # two points that round alike keep apart by their number
    twins = ds.assign_coords({"product.price": ("sample", [30.01, 30.02, 25.0, 35.0]),
                              "channels.search.daily_budget": ("sample", [100.0, 100.0, 1, 2]),
                              "channels.paid_social.daily_budget": ("sample", [5, 5, 6, 7])})
    labels = point_labels(twins, ["sample"])
    assert labels[:2] == ["price=30, search.daily_budget=100, paid_social.daily_budget=5 #0",
                          "price=30, search.daily_budget=100, paid_social.daily_budget=5 #1"]
    assert len(set(labels)) == 4 and "#" not in labels[2]
    # a heat map of sampled points: no grid, each point where its values put it
    from simulation.analysis.plots import plot_bytes

    assert_png(plot_bytes(ds, "heatmap"))


# -- the command line ---------------------------------------------------------------------


@pytest.mark.slow  # a sweep of its own
def test_cli_prints_the_variants_and_the_winner(reference, small, tmp_path):
    rc, out, _ = run_cli(["sweep", str(small), "--out", str(tmp_path / "s"), "--threads", "1",
                          "--replicates", "1", "--objective", "cac"])
    assert rc == 0
    assert "social, channels.search.daily_budget=300" in out
    assert "one replicate: no measure of certainty; lowest cac:" in out
    ds = read_netcdf(tmp_path / "s" / "combined.nc")
    assert ds.sizes["replicate"] == 1
    xr.testing.assert_equal(ds.conversions, reference.combined.conversions.isel(
        replicate=[0]))


@pytest.mark.slow  # a real process forking workers
def test_cli_jobs_2_forks_workers_and_gives_the_same_result(reference, small, tmp_path):
    """The command line forks its workers (a fresh process, no numba threads yet): same
    runs, same combined dataset, and the workers do not outlive the command."""
    out = tmp_path / "cli2"
    proc = distsim("sweep", small, "--out", out, "--jobs", "2", "--quiet", cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    xr.testing.assert_identical(read_netcdf(out / "combined.nc"),
                                read_netcdf(reference.out / "combined.nc"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["workers"] == "forked"
    assert len({r["worker"] for r in manifest["runs"]}) == 2
    assert not [p for p in out.rglob(".*")]


def test_fork_is_refused_once_numba_threads_run(reference):
    """This test process has simulated (numba's thread pool is up): no forking here, the
    sweep uses loky's fresh processes instead."""
    from simulation.sweep.pool import fork_is_safe

    assert not fork_is_safe()


@pytest.mark.parametrize("text, args, words", [
    ("replicates = 0\n", [], "replicates: Input should be greater than or equal to 1"),
    ('[[variants]]\nname = "x"\nset = { "channels.tv.daily_budget" = 1 }\n', [],
     "variants.x.set.channels.tv: no entry named 'tv'"),
    ("", ["--agents", "300000000"], "--agents: Input should be less than or equal to"),
    ("", ["--objective", "happiness"], "--objective: expected METRIC"),
])
def test_cli_bad_input_is_one_line_exit_2_nothing_written(tmp_path, text, args, words):
    exp = write(tmp_path / "bad.toml", f'base = "{DEFAULT}"\n' + text)
    out = tmp_path / "out"
    rc, _, err = run_cli(["sweep", str(exp), "--out", str(out), *args])
    assert rc == 2
    assert_one_clear_line(err, words)
    assert not out.exists()


def test_cli_refuses_to_clobber_a_sweep_or_a_file(reference, small, tmp_path):
    rc, _, err = run_cli(["sweep", str(small), "--out", str(reference.out)])
    assert rc == 2 and "--resume" in err
    rc, _, err = run_cli(["sweep", str(small), "--out", str(reference.out), "--resume",
                          "--days", "20"])
    assert rc == 2 and "different experiment" in err
    afile = write(tmp_path / "file", "x")
    rc, _, err = run_cli(["sweep", str(small), "--out", str(afile)])
    assert rc == 2 and "not a directory" in err


@pytest.mark.slow
def test_resume_and_combine_refuse_runs_of_another_version(reference, small, tmp_path):
    """A sweep started by another version of the model is not finished by this one: its
    runs could give other numbers for the same seeds."""
    import shutil

    from simulation.sweep.combine import combine
    from simulation.sweep.experiment import expand

    out = tmp_path / "old"
    shutil.copytree(reference.out, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["simulation_version"] = "0.1.0"
    (out / "manifest.json").write_text(json.dumps(manifest))
    rc, _, err = run_cli(["sweep", str(small), "--out", str(out), "--resume"])
    assert rc == 2 and "made by distsim 0.1.0" in err and len(err.strip().splitlines()) == 1
    # a run file of another version, under a current manifest
    manifest["simulation_version"] = simulation.__version__
    (out / "manifest.json").write_text(json.dumps(manifest))
    run0 = sorted((out / "runs").glob("*.nc"))[0]
    ds = read_netcdf(run0)
    ds.attrs["simulation_version"] = "0.1.0"
    write_netcdf(ds, run0)
    rc, _, err = run_cli(["sweep", str(small), "--out", str(out), "--resume"])
    assert rc == 2 and "was made by distsim 0.1.0" in err
    experiment = load_experiment(small)
    runs = [read_netcdf(p) for p in sorted((out / "runs").glob("*.nc"))]
    with pytest.raises(simulation.ScenarioError, match="cannot be combined"):
        combine(experiment, expand(experiment), runs)


# -- the example experiments ----------------------------------------------------------------


def test_there_are_example_experiments():
    assert {p.stem for p in EXPERIMENTS} >= {"scaling_strategies", "positioning", "post_purchase",
                                          "saas_channels", "default_assumptions"}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
@pytest.mark.slow  # a sweep per example experiment
def test_example_experiment_runs_at_a_small_size(path, tmp_path):
    out = tmp_path / path.stem
    exp = load_experiment(path)
    draws = ["--draws", "2"] if exp.spec.uncertain else []
    rc, stdout, _ = run_cli(["sweep", str(path), "--agents", "1500", "--days", "30",
                             "--replicates", "1", "--threads", "1", "--out", str(out), *draws])
    assert rc == 0
    ds = read_netcdf(out / "combined.nc")
    assert ds.sizes.get("variant", 0) == len(exp.spec.variants)
    assert ds.sizes["replicate"] == 1 and ds.attrs["agents"] == 1500
    assert ds.sizes.get("draw", 0) == (2 if exp.spec.uncertain else 0)
    market = exp.base.market.size  # the base file's own people
    np.testing.assert_allclose(ds.stage_count.sum("stage"), market)
    if exp.spec.uncertain and len(exp.spec.variants) > 1:  # the draws are the units
        assert "across the assumptions" in stdout
    elif not exp.spec.uncertain:
        assert "one replicate: no measure of certainty" in stdout


def test_a_negative_ltv_cac_never_ranks_the_cheaper_point_below_the_dearer(monkeypatch):
    """Same projected LTV of -10 a customer: the variant paying 5 to acquire loses less
    than the one paying 50, though -10/5 = -2 < -10/50 = -0.2; and any variant with a
    non-negative LTV ranks above both."""
    import xarray as xr

    from simulation.analysis.economics import ltv_cac_rank
    from simulation.sweep import combine

    ranks = ltv_cac_rank([-2.0, -0.2, 0.1], [-10.0, -10.0, 5.0], [5.0, 50.0, 50.0])
    assert ranks[0] > ranks[1] and ranks[2] > ranks[0]
    worse_ltv = ltv_cac_rank([-4.0], [-20.0], [5.0])
    assert worse_ltv[0] < ranks[0]  # same CAC, a worse LTV ranks lower

    points = ["cheap", "dear"]
    reps = [0, 1, 2]

    def field(values):
        return xr.DataArray(np.array(values, dtype=float)[:, None] * np.ones((2, 3)),
                            dims=("variant", "replicate"),
                            coords={"variant": points, "replicate": reps})

    hand = xr.Dataset({"ltv_cac": field([-2.0, -0.2]), "ltv_projected": field([-10.0, -10.0]),
                       "cac_loaded": field([5.0, 50.0])})
    monkeypatch.setattr(combine, "outcomes", lambda ds: hand)
    ds = xr.Dataset(coords={"variant": points, "replicate": reps})
    summary = combine.summarise(ds, "ltv_cac")
    assert summary.best.variant == "cheap"


# -- decisions under assumptions: the draw axis ----------------------------------------------


def hand_made_draws(run: xr.Dataset, offsets, x) -> xr.Dataset:
    """A combined dataset over (variant, draw, replicate) whose profits are known, with an
    assumption ``a.x`` taking the values ``x`` along ``draw``."""
    offsets = np.asarray(offsets, dtype=float)
    points = [xr.concat([hand_made(run, [draw]).squeeze("variant", drop=True) for draw in point],
                        dim="draw") for point in offsets]
    ds = xr.concat(points, dim="variant")
    ds = ds.assign_coords(variant=[f"v{k}" for k in range(len(points))],
                          draw=np.arange(offsets.shape[1]), **{"a.x": ("draw", np.asarray(x))})
    ds["draw"].attrs["kind"] = "point number"
    return ds


def test_summary_over_draws_splits_noise_from_assumptions_and_finds_the_flip(one_run):
    x = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    noise = np.array([10.0, -10.0])
    v0 = [noise for _ in x]  # noise only
    v1 = [2000 * (xi - 0.45) + noise for xi in x]  # better where the assumption is high
    s = summarise(hand_made_draws(one_run, [v0, v1], x))
    base = float(outcomes(one_run).profit)
    assert s.draws == 6 and s.best.units == "draws"
    r0, r1 = s.rows
    assert r1["profit_mean"] == pytest.approx(base + 100) and s.best.variant == "v1"
    assert r0["draws"] == 6 and r0["replicates"] == 2
    # noise: the sd of a run about its draw's mean (10 and -10: sqrt(200)); the
    # assumptions' spread: none for v0, 2000 x sd(x) less the noise for v1
    assert r0["profit_noise_sd"] == pytest.approx(math.sqrt(200))
    assert r0["profit_spread_sd"] == 0.0
    assert r1["profit_spread_sd"] == pytest.approx(math.sqrt(
        (2000 * x).var(ddof=1) - 200 / 2))
    assert r1["profit_range_low"] == pytest.approx(base + np.quantile(2000 * (x - 0.45), 0.05))
    # regret: what each costs against the best of its draw (leads -700 ... 900)
    assert r0["regret"] == pytest.approx((500 + 700 + 900) / 6)
    assert r1["regret"] == pytest.approx((700 + 500 + 300) / 6)
    assert r0["p_best"] + r1["p_best"] == pytest.approx(1.0)
    assert not s.best.clear  # ahead in 3 of 6 draws: no winner declared
    f = s.flips
    assert f["flips"] and f["best_in"] == {"v0": 3, "v1": 3} and f["challenger"] == "v0"
    assert f["driver"] == "a.x" and f["correlation"] == pytest.approx(1.0)
    assert f["threshold"] == pytest.approx(0.45) and f["best_when"] == "above"
    assert f["p_noise"] == 0.0  # paired: the same noise in both, none in the lead
    from simulation.sweep.command import flips_line, summary_table

    line = flips_line(s)
    assert line.startswith("the ranking flips across the assumptions: best in v0 3, v1 3 of "
                           "6 draws")
    assert "v1 leads where it is above about 0.45, v0 where it is below" in line
    assert "ahead in 3 of 6 draw(s)" in best_line(s)
    assert json.loads(s.to_json())["flips"]["driver"] == "a.x"
    summary_table(s, {"experiment_name": "t", "agents": 10, "days": 3, "replicates": 2})


def test_a_ranking_that_holds_says_so(one_run):
    x = np.array([0.1, 0.5, 0.9])
    s = summarise(hand_made_draws(one_run, [[[0.0, 1.0]] * 3, [[500.0, 501.0]] * 3], x))
    from simulation.sweep.command import flips_line

    assert not s.flips["flips"] and s.flips["best_in"] == {"v1": 3}
    assert flips_line(s) == "the ranking holds across the assumptions: v1 is best in all 3 draws"
    assert s.rows[1]["regret"] == 0 and s.rows[0]["regret"] == 500


UNCERTAIN_SMALL = SMALL.split("[[sweep]]")[0].replace("replicates = 2",
                                                      "replicates = 2\ndraws = 2") + """
[[uncertain]]
path = "channels.paid_social.effects.awareness"
distribution = "uniform"
low = 0.01
high = 0.06
"""


@pytest.mark.slow  # a sweep of its own
def test_a_sweep_with_assumptions_pairs_every_decision_on_the_draws(tmp_path):
    exp = write(tmp_path / "u.toml", UNCERTAIN_SMALL)
    out = tmp_path / "u"
    rc, stdout, err = run_cli(["sweep", str(exp), "--out", str(out), "--threads", "1"])
    assert rc == 0, err
    ds = read_netcdf(out / "combined.nc")
    assert ds.stage_count.dims[:3] == ("variant", "draw", "replicate")
    assert ds.replicate_seed.dims == ("draw", "replicate") and ds.attrs["draws"] == 2
    assert ds["channels.paid_social.effects.awareness"].dims == ("draw",)
    manifest = json.loads((out / "manifest.json").read_text())
    seeds = {(r["labels"]["draw"], r["replicate"]): set() for r in manifest["runs"]}
    for r in manifest["runs"]:
        seeds[(r["labels"]["draw"], r["replicate"])].add(r["seed"])
    assert all(len(s) == 1 for s in seeds.values()) and len(seeds) == 4
    frame = pd.read_csv(out / "summary.csv")
    assert {"profit_noise_sd", "profit_spread_sd", "profit_range_low", "p_best", "regret",
            "draws"} <= set(frame.columns)
    assert "2 assumption draw(s) x 2 replicate(s)" in stdout
    assert "across the assumptions" in stdout
    from simulation.analysis.plots import plot_bytes
    from simulation.analysis.sweep import by_variant, interval, kpis

    ci = interval(by_variant(kpis(ds).profit))
    assert {"spread_low", "spread_high"} <= set(ci) and ci.sizes["variant"] == 2
    assert_png(plot_bytes(ds, "variants"))
