"""What ``distsim app`` does, without a browser (the page itself: test_app_browser.py):
its knobs set exactly the scenario fields ``--set`` would, a stopped run stops, the
comparison reads the two runs' own figures, and the downloads reproduce the run."""

from __future__ import annotations

import math

import pytest
from helpers import run_cli

import simulation
from simulation.analysis.summary import totals
from simulation.app import session
from simulation.io import read_netcdf
from simulation.scenario import ScenarioError, load_scenario, scenario_from_toml

SMALL = {"simulation.agents": 2000, "simulation.days": 40}


@pytest.fixture(scope="module")
def base():
    return load_scenario("scenarios/default.toml")


def test_knobs_are_the_fields_set_would_change(base, tmp_path):
    values = {**SMALL, "channels.search.daily_budget": 420.0, "post_purchase.reminders.enabled":
              True, "channels.marketplace.enabled": False, "product.price": 31.5}
    edited = session.edited(base, values)
    by_set = load_scenario("scenarios/default.toml", [
        "channels.search.daily_budget=420.0", "post_purchase.reminders.enabled=true",
        "channels.marketplace.enabled=false", "product.price=31.5",
        "simulation.agents=2000", "simulation.days=40"])
    assert edited == by_set
    assert edited.market.size == base.market.size  # fewer customers, the same market
    assert {k.path for k in session.knobs(base)} >= set(values)


def test_a_bad_value_is_one_line_naming_the_field(base):
    with pytest.raises(ScenarioError, match="channels.search.daily_budget"):
        session.edited(base, {"channels.search.daily_budget": -5.0})
    with pytest.raises(ScenarioError, match="at most"):
        session.edited(base, {"simulation.agents": session.MAX_AGENTS + 1})


def test_a_stopped_run_ends_at_the_next_day(base):
    scenario = session.edited(base, SMALL)
    days = []
    with pytest.raises(session.Cancelled):
        session.simulate(scenario, progress=lambda d, n: days.append(d),
                         stop=lambda: len(days) >= 5)
    assert days == [1, 2, 3, 4, 5]


def test_a_run_shows_the_results_figures_and_compares_with_the_previous(base):
    longer = {**SMALL, "simulation.days": 120}
    low = session.simulate(session.edited(base, longer))
    high = session.simulate(session.edited(base, {**longer, "channels.search.daily_budget": 900.0}))
    assert set(high.plots) == {kind for kind, _ in session.PLOTS} and not high.problems
    assert all(png[:8] == b"\x89PNG\r\n\x1a\n" for png in high.plots.values())
    assert high.totals == totals(high.ds)
    rows = {r["figure"]: r for r in session.compare(high, low)}
    search = {r["channel"]: r for r in high.rows}["search"]
    before = {r["channel"]: r for r in low.rows}["search"]
    row = rows["search: new customers"]
    assert row["this run"].startswith(f"{search['customers']:,} ± ")
    assert row["previous run"] == f"{before['customers']:,}"
    diff = search["customers"] - before["customers"]
    assert diff > 0 and row["change"].startswith(f"+{diff:,} ")
    spend = rows["media and channel spend"]["change"]
    assert spend.startswith("+") and math.isclose(
        float(spend.split()[0][1:].replace(",", "")),
        high.totals["spend"] - low.totals["spend"], abs_tol=1)
    assert "comes from the edits" in session.noise_note(high, low)
    assert all(r["previous run"] == "" for r in session.compare(high, None))


def test_the_downloads_reproduce_the_run(base, tmp_path):
    scenario = session.edited(base, {**SMALL, "channels.search.daily_budget": 321.0})
    shown = session.simulate(scenario)
    again = scenario_from_toml(session.scenario_bytes(scenario), "download.toml")
    assert again == scenario
    path = tmp_path / "run.nc"
    path.write_bytes(session.result_bytes(shown))
    saved = read_netcdf(path)
    assert totals(saved) == shown.totals
    rerun = simulation.run(again)
    assert float(rerun.revenue.sum()) == shown.totals["revenue"]


def test_the_command_refuses_a_bad_scenario_and_a_busy_port(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[simulation]\nagents = -1\n")
    code, _, err = run_cli(["app", str(bad)])
    assert code == 2 and "simulation.agents" in err and err.count("\n") == 1
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = run_cli(["app", "--port", str(port)])
    assert code == 2 and f"--port {port}" in err
    code, _, err = run_cli(["app", "--agents", str(session.MAX_AGENTS + 1)])
    assert code == 2 and "at most" in err


def test_the_page_says_what_the_command_line_warns_about(base):
    """The scenario warnings of distsim run, the diagnostics, the sample's standard errors
    and programmes that the file prices at nothing: a strategist reading only the page is
    told what the console would have told them."""
    scenario = session.edited(base, {**SMALL, "simulation.days": 120,
                                     "channels.paid_social.daily_budget": 0.0,
                                     "post_purchase.reminders.enabled": True})
    shown = session.simulate(scenario)
    assert any("paid_social" in w and "reach" in w for w in shown.warnings), shown.warnings
    assert shown.findings and all(sev in ("ok", "warning", "critical")
                                  for sev, _ in shown.findings)
    rows = {r["figure"]: r for r in session.compare(shown, None)}
    se = float(shown.ds.standard_error_total.sel(figure="revenue"))
    assert rows["revenue"]["this run"].endswith(f" ± {se:,.0f}")
    margin_se = float(shown.ds.standard_error_total.sel(figure="gross_margin"))
    assert rows["profit"]["this run"].endswith(f" ± {margin_se:,.0f}")  # as distsim run
    labels = {k.path: k.title for k in session.knobs(base)}
    assert labels["post_purchase.reminders.enabled"] == "reminders (no cost set in the file)"


def test_sessions_run_one_at_a_time_and_a_waiting_run_can_be_stopped(base):
    """Two browser sessions share the server's cores (and numba's threading layer): the
    second run waits for the first, and Stop ends it while it waits."""
    import threading

    scenario = session.edited(base, SMALL)
    first_day, release = threading.Event(), threading.Event()

    def hold(day, days):
        first_day.set()
        release.wait(30)

    first = threading.Thread(target=session.simulate, args=(scenario, hold))
    first.start()
    assert first_day.wait(60)
    told, stopped = [], threading.Event()
    second = threading.Thread(target=lambda: _stopped(scenario, told, stopped))
    second.start()
    second.join(30)
    release.set()
    first.join(60)
    assert told == ["waiting"] and stopped.is_set()


def _stopped(scenario, told, stopped):
    try:
        session.simulate(scenario, waiting=lambda: told.append("waiting"),
                         stop=lambda: bool(told))  # Stop pressed once it waits
    except session.Cancelled:
        stopped.set()
