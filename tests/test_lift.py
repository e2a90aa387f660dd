"""``distsim lift``: a hold-out's lift is the base run minus the same run without the
channel (or programme), on the same seed, counted by hand here with ``--set``."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DEFAULT, SCENARIOS, assert_one_clear_line, run_cli

import simulation
from simulation.analysis.economics import unit_economics
from simulation.io import read_netcdf

SIZE = ["--agents", "3000", "--days", "60", "--set", "market.size=3000"]
NULL_SOCIAL = ["channels.paid_social.effects.awareness=0",
               "channels.paid_social.effects.consideration=0",
               "channels.paid_social.effects.decision=0",
               "channels.paid_social.effects.retention=0",
               "channels.paid_social.positioning_signal=0"]


def market(ds) -> dict:
    m = unit_economics(ds, market=True).sel(channel="market")
    return {"customers": float(m.customers), "orders": float(ds.orders.sum()),
            "revenue": float(m.revenue), "profit": float(m.profit),
            "contribution": float(m.contribution)}


def by_hand(seed: int, overrides: list[str]) -> dict:
    sc = simulation.load_scenario(DEFAULT, ["market.size=3000", *overrides])
    return market(simulation.run(sc, agents=3000, days=60, seed=seed))


def lift(tmp_path, *args) -> object:
    out = tmp_path / "lift.nc"
    rc, _, err = run_cli(["lift", DEFAULT, *SIZE, *map(str, args), "--out", out, "--quiet"])
    assert rc == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lift.nc"], "no runs left behind"
    return read_netcdf(out)


@pytest.mark.parametrize("from_day, hand", [(0, "channels.search.enabled=false"),
                                            (30, "channels.search.end_day=29")])
def test_a_lift_is_the_base_minus_a_hold_out_run_by_hand(tmp_path, from_day, hand):
    ds = lift(tmp_path, "--channels", "search,email", "--replicates", 1,
              "--from-day", from_day)
    assert list(ds.target.values) == ["search", "email", "all_channels"]
    assert ds.incremental_customers.dims == ("target", "replicate")
    seed = int(ds.replicate_seed.values[0])
    base, held = by_hand(seed, []), by_hand(seed, [hand])
    got = ds.sel(target="search", replicate=0)
    for key in ("customers", "orders", "revenue", "profit", "contribution"):
        assert float(got[f"incremental_{key}"]) == pytest.approx(base[key] - held[key],
                                                                rel=1e-12, abs=1e-6), key
    assert float(got.incremental_customers) > 0


def test_a_channel_with_no_effect_has_a_lift_of_exactly_zero(tmp_path):
    sets = [a for s in NULL_SOCIAL for a in ("--set", s)]
    ds = lift(tmp_path, "--channels", "paid_social", "--replicates", 2, *sets)
    got = ds.sel(target="paid_social")
    for key in ("customers", "orders", "revenue"):
        np.testing.assert_array_equal(got[f"incremental_{key}"].values, 0.0)
    # it only costs: its media spend (no fixed cost), every replicate
    spend = 250.0 * 60
    np.testing.assert_allclose(got.incremental_profit.values, -spend, rtol=1e-12)
    np.testing.assert_allclose(got.incremental_cost.values, spend, rtol=1e-12)


@pytest.mark.slow
def test_programmes_and_the_console(tmp_path):
    scenario = SCENARIOS / "community_flywheel.toml"
    rc, out, err = run_cli(["lift", scenario, "--agents", "4000", "--days", "120",
                            "--programmes", "community", "--replicates", 2,
                            "--out", tmp_path / "l.nc", "--plot", tmp_path / "l.png"])
    assert rc == 0, err
    ds = read_netcdf(tmp_path / "l.nc")
    assert list(ds.target.values) == ["community"]  # programmes alone: no channel hold-outs
    assert str(ds.kind.sel(target="community").values) == "programme"
    assert np.isnan(ds.attributed_conversions.sel(target="community")).all()
    assert "community" in out and "iCAC" in out
    assert (tmp_path / "l.png").stat().st_size > 10_000


@pytest.mark.parametrize("args, needle", [
    (["--channels", "nope"], "no channel named 'nope'"),
    (["--programmes", "telepathy"], "no programme named 'telepathy'"),
    (["--programmes", "community"], "not enabled"),
    (["--from-day", "60"], "--from-day"),
    (["--channels", ","], "--channels"),
])
def test_bad_lift_input_is_one_line_and_writes_nothing(tmp_path, args, needle):
    rc, _, err = run_cli(["lift", DEFAULT, *SIZE, *args, "--out", tmp_path / "l.nc"])
    assert rc == 2
    assert_one_clear_line(err, needle)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("name, agents, days", [("default", 20_000, 180),
                                                ("community_flywheel", 20_000, 365)])
def test_the_examples_diagnostics_do_not_contradict_their_lift(name, agents, days):
    """Neither the plain diagnostics of a run nor those read beside its lift call a
    channel unprofitable that the hold-outs show paying, or excuse one that loses."""
    from simulation.analysis.diagnostics import contradictions, diagnose, lift_verdicts
    from simulation.lift import run_lift

    sc = simulation.load_scenario(SCENARIOS / f"{name}.toml", [
        f"market.size={agents}", f"simulation.agents={agents}", f"simulation.days={days}"])
    programmes = ["community"] if name == "community_flywheel" else []
    lift_ds, base = run_lift(sc, programme_names=programmes, replicates=3)
    verdicts = lift_verdicts(lift_ds)
    assert {v["verdict"] for v in verdicts.values()} != {"unclear"}
    plain = diagnose(base.isel(replicate=0, drop=True))
    assert contradictions(plain, verdicts) == []
    informed = diagnose(base, lift_ds)
    assert contradictions(informed, verdicts) == []
    # every target's verdict is stated, and no channel is excused on attribution alone
    assert {f.channel for f in informed if f.kind.startswith("lift_")} == set(verdicts)
    assert not [f for f in plain if "judge it on assisted credit" in f.detail]


def test_the_report_reads_a_run_beside_its_lift(tmp_path):
    # paid social's hold-out is clear at this size (it saves $250 a day): the report judges it
    ds = lift(tmp_path, "--channels", "paid_social", "--replicates", 2)
    assert ds.attrs["kind"] == "lift"
    run = tmp_path / "run.nc"
    assert run_cli(["run", DEFAULT, *SIZE, "--quiet", "--out", run])[0] == 0
    rc, _, err = run_cli(["report", run, "--lift", tmp_path / "lift.nc",
                          "--out", tmp_path / "r.html"])
    assert rc == 0, err
    text = (tmp_path / "r.html").read_text()
    assert "Incrementality: hold-outs" in text and "by its lift" in text
    other = tmp_path / "other.nc"
    rc = run_cli(["run", SCENARIOS / "saas_case.toml", *SIZE, "--quiet", "--out", other])[0]
    assert rc == 0
    rc, _, err = run_cli(["report", other, "--lift", tmp_path / "lift.nc",
                          "--out", tmp_path / "x.html"])
    assert rc == 2
    assert_one_clear_line(err, "a lift of 'default'")
    assert not (tmp_path / "x.html").exists()
    # a lift of the same scenario at another length, or other settings, is refused too
    for other_args, needle in ((["--days", "40"], "days"),
                               (["--set", "channels.search.daily_budget=999"], "settings")):
        other = tmp_path / "other.nc"
        args = ["run", DEFAULT, "--agents", "3000", "--days", "60", *other_args]
        if "--days" in other_args:
            args = ["run", DEFAULT, "--agents", "3000", *other_args]
        assert run_cli([*args, "--quiet", "--out", other])[0] == 0
        rc, _, err = run_cli(["report", other, "--lift", tmp_path / "lift.nc",
                              "--out", tmp_path / "x.html"])
        assert rc == 2, needle
        assert_one_clear_line(err, needle)
