"""One market split into shards on a Dask cluster gives the one-machine dataset, bit
for bit (``simulation.sharded``; ``distsim run --scheduler ADDRESS --shards N``).

Two worker processes (so the shards, the day's arrays and the counters are pickled as on
a real cluster) step a market of 50,000 customers (four chunks) with every mechanism on:
a capacity-limited channel whose lead quotas span the shards, all post-purchase
programmes, a roll-out, a guardrail, the event export. The one-machine run is computed
first, in this process, so the workers load the compiled kernels from the cache.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import ROOT, assert_one_clear_line, invoke, own_market

import simulation
from simulation.io import read_netcdf
from simulation.scenario import with_overrides
from simulation.sharded import shard_chunks

ALL_MECHANISMS = ROOT / "benchmarks" / "all_mechanisms.toml"
AGENTS, DAYS = 50_000, 60


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local:
        yield local


WARM = {"aware": 0.1, "considering": 0.02, "community_members": 500.0, "list_size": 4000.0,
        "customers": [
    {"channel": "search", "segment": "enthusiasts", "active": 2_000.0, "lapsed": 500.0},
    {"channel": "email", "active": 1_500.0, "tenure_days": 60}]}
"""A warm start, so that day 0's draws are also keyed by the market index."""
HOLDOUTS = {"channels.search.holdout_share": 0.1, "channels.concierge.holdout_share": 0.05,
            "rollout.credit": "lift"}
"""Hold-out cells keyed by the market index (search's gates the roll-out on lift), and a
capacity-limited channel's: its served leads' conversions count in the other cells."""
PLAN = {"name": "club", "price": 31.0, "reference_price": 29.0}
"""A plan for one segment: each shard's orders and price factors read its segment's."""


def _run(tmp_path, name, **kw):
    """A run of every mechanism on its own market, started warm, with its event export."""
    scenario = own_market(simulation.load_scenario(ALL_MECHANISMS), AGENTS)
    scenario = with_overrides(scenario, {"initial": WARM, "plans": [PLAN],
                                         "segments.enthusiasts.plan": PLAN["name"],
                                         **HOLDOUTS})
    events = tmp_path / f"{name}.parquet"
    ds = simulation.run(scenario, days=DAYS, seed=5, events_sample=2_000, events_path=events,
                        **kw)
    return ds, pd.read_parquet(events)


def test_a_sharded_market_is_the_one_machine_market(cluster, tmp_path):
    one, one_events = _run(tmp_path, "one")
    sharded, sharded_events = _run(tmp_path, "sharded", scheduler=cluster.scheduler_address)
    # what the comparison exercises: leads served within capacity across chunks (and
    # shards), and the post-purchase programmes
    served = one.leads_served.sel(channel="concierge")
    assert served.sum() > 0 and (served == 60).sum() > 10  # days at capacity
    for programme in ("onboarded", "reminders", "feedback", "community_joins", "shares"):
        assert one[programme].sum() > 0, programme
    assert float(one.base_active.isel(day=0).sum()) > 3000  # the warm start's customers
    assert float(one.community_size.isel(day=0)) > 0
    assert (one.holdout_conversions.sel(channel=["search", "concierge"]).sum("day") > 0).all()
    xr.testing.assert_identical(sharded, one)
    pd.testing.assert_frame_equal(sharded_events, one_events)
    assert len(one_events) > 1000


def test_the_command_line_runs_a_sharded_market(cluster, tmp_path, capsys):
    """Three shards on two workers, a sample of a larger market (scale 20)."""
    out = tmp_path / "sharded.nc"
    rc = invoke(["run", ALL_MECHANISMS, "--agents", AGENTS, "--days", DAYS, "--seed", 3,
                 "--scheduler", cluster.scheduler_address, "--shards", 3, "--out", out,
                 "--quiet"])
    assert rc == 0, capsys.readouterr().err
    one = simulation.run(simulation.load_scenario(ALL_MECHANISMS), agents=AGENTS, days=DAYS,
                         seed=3)
    xr.testing.assert_identical(read_netcdf(out), one)


@pytest.mark.parametrize("args, needles", [
    (["--backend", "mesa", "--scheduler", "tcp://127.0.0.1:1"], ["--backend mesa", "--scheduler"]),
    (["--scheduler", "tcp://127.0.0.1:1", "--shards", 5], ["--shards", "4 chunk"]),
    (["--shards", 2], ["--shards", "--scheduler"]),
    (["--scheduler", "tcp://127.0.0.1:1", "--shards", 0], ["--shards", "positive"]),
])
def test_impossible_shards_are_refused_in_one_line(tmp_path, capsys, args, needles):
    """Refused before connecting to anything: exit 2, one line, nothing written."""
    rc = invoke(["run", ALL_MECHANISMS, "--agents", AGENTS, "--days", 2, *args,
                 "--out", tmp_path / "r.nc"])
    assert rc == 2
    assert_one_clear_line(capsys.readouterr().err, *needles)
    assert list(tmp_path.iterdir()) == []


def test_shards_hold_whole_chunks_in_market_order():
    assert shard_chunks(4, 2) == [(0, 2), (2, 4)]
    assert shard_chunks(5, 3) == [(0, 2), (2, 4), (4, 5)]
    assert shard_chunks(3, 3) == [(0, 1), (1, 2), (2, 3)]
    bounds = shard_chunks(1000, 7)
    assert bounds[0][0] == 0 and bounds[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    assert np.ptp([hi - lo for lo, hi in bounds]) <= 1


def test_shards_need_a_scheduler():
    scenario = simulation.load_scenario(ALL_MECHANISMS)
    with pytest.raises(simulation.ScenarioError, match="--shards: needs --scheduler"):
        simulation.run(scenario, agents=100, days=1, shards=2)


def test_every_customer_draw_is_keyed_by_the_market_index():
    """A kernel that keyed a draw by the index in ``pop`` (``stream(key, i)``) would make a
    shard draw another customer's numbers: the customer argument of every ``stream`` and
    ``draw_bits`` call in the kernels is ``first + ...`` or a parameter that is already
    the market index (``customer``)."""
    import ast

    calls = 0
    for path in sorted((ROOT / "simulation" / "kernels").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("stream", "draw_bits")):
                who = node.args[1]
                keyed = (isinstance(who, ast.BinOp) and isinstance(who.left, ast.Name)
                         and who.left.id == "first") or (
                    isinstance(who, ast.Name) and who.id == "customer")
                assert keyed, f"{path.name}:{node.lineno}: {ast.unparse(node)}"
                calls += 1
    assert calls >= 7  # step_day's three and its reach's, serve_leads', segments', consent's


def test_shards_that_would_not_fit_their_workers_are_refused():
    """A worker's memory limit against what its shards hold (the population's bytes per
    customer and a process's base): one line naming the worker, before anything runs."""
    from simulation.scenario import ScenarioError
    from simulation.sharded import check_workers, shard_bytes_per_customer

    per = shard_bytes_per_customer(simulation.load_scenario(ALL_MECHANISMS))
    assert 55 <= per < 200  # the population's 55 bytes, and a share of the accumulators
    check_workers({"a": 10_000_000, "b": 0}, {"a": 8 * 2**30, "b": 1}, per)
    check_workers({"a": 10**9}, {"a": 0}, per)  # no limit set
    with pytest.raises(ScenarioError, match="worker a would hold 100,000,000 customers"):
        check_workers({"a": 100_000_000}, {"a": 4 * 2**30}, per)
