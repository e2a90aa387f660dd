"""Scheduled changes (``[[changes]]``): from day D the run is the scenario with the change.

Checked against things that do not go through the change machinery: the base run
itself (random streams are keyed per customer, day and decision, so every day before
D is bit for bit the base run's), a channel that ends by its own ``end_day`` (a
hold-out from D is the same run), a run with the new budget from the start (a CPM
channel spends its budget exactly), and the commission rate times the revenue.
"""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
from helpers import DEFAULT, ROOT, assert_one_clear_line, own_market, raw_toml, run_cli, write_toml

import simulation
from simulation.model import MarketModel
from simulation.reference import ReferenceMarketModel
from simulation.scenario import (
    ScenarioError,
    inert_channels,
    late_changes,
    scheduled,
    with_overrides,
)

BUSY = ROOT / "tests/data/docking_all_mechanisms.toml"
D = 30
EVERYTHING_AT_ONCE = {
    "channels.marketplace.enabled": False,
    "channels.paid_social.daily_budget": 8.0,
    "channels.concierge.capacity": 8,
    "product.price": 35.0,
    "segments.loyalists.affinity": {"search": 2.0},
    "forgetting.aware": 0.05,
    "word_of_mouth.adoption": "aware",
    "post_purchase.reminders.enabled": False,
    "post_purchase.onboarding.enabled": False,
    "post_purchase.community.enabled": False,
    "post_purchase.outreach.enabled": False,
    "messaging.strategy": "channel_specific",
}


def with_changes(scenario, *changes):
    return with_overrides(scenario, {"changes": [{"day": d, "set": s} for d, s in changes]})


def run(model_cls, scenario, agents=1_500, days=60, seed=7):
    model = model_cls(scenario, agents=agents, days=days, seed=seed)
    model.run_model()
    return model.results()


def daily_variables(ds):
    return [v for v in ds.data_vars if "day" in ds[v].dims]


@pytest.mark.parametrize("model_cls", [MarketModel, ReferenceMarketModel], ids=["numba", "mesa"])
def test_days_before_a_change_are_the_base_run(model_cls):
    base = simulation.load_scenario(BUSY)
    segment = base.segments[0].name
    change = {k.replace("loyalists", segment): v for k, v in EVERYTHING_AT_ONCE.items()}
    changed = with_changes(base, (D, change))
    a, b = run(model_cls, base), run(model_cls, changed)
    for v in daily_variables(a):
        assert np.array_equal(a[v].isel(day=slice(0, D)).values,
                              b[v].isel(day=slice(0, D)).values, equal_nan=True), v
    # and the change does something from its day on
    assert not np.array_equal(a.revenue.isel(day=slice(D, None)).values,
                              b.revenue.isel(day=slice(D, None)).values)
    assert float(b.reached.sel(channel="marketplace").isel(day=slice(D, None)).sum()) == 0


@pytest.mark.parametrize("model_cls", [MarketModel, ReferenceMarketModel], ids=["numba", "mesa"])
def test_a_hold_out_from_a_day_is_the_channel_ending_the_day_before(model_cls):
    """Disabled from D: no reach, no media or fixed cost, and the customers it won before
    still pay its commission; the same run as the channel's own end_day = D - 1."""
    base = own_market(with_overrides(simulation.load_scenario(DEFAULT), {
        "channels.email.enabled": False}), 4_000)  # its list reach makes the mesa run slow
    held_out = with_changes(base, (D, {"channels.marketplace.enabled": False}))
    ended = with_overrides(base, {"channels.marketplace.end_day": D - 1})
    a, b = run(model_cls, held_out, agents=4_000), run(model_cls, ended, agents=4_000)
    for v in daily_variables(a):
        assert np.array_equal(a[v].values, b[v].values, equal_nan=True), v
    m = a.sel(channel="marketplace")
    after = dict(day=slice(D, None))
    assert float(m.reached.isel(after).sum()) == 0
    assert float(m.spend.isel(after).sum()) == 0  # media and fixed cost
    assert float(m.spend.isel(day=slice(0, D)).sum()) >= 10.0 * D  # its fixed cost ran before
    assert float(m.commission.isel(after).sum()) > 0
    np.testing.assert_allclose(m.commission.values, 0.15 * m.revenue.values, atol=1e-6)


def test_a_budget_change_spends_as_the_budget_from_the_start():
    """A CPM channel spends exactly its budget: from D on, the budget the change set."""
    base = simulation.load_scenario(DEFAULT)
    changed = with_changes(base, (D, {"channels.paid_social.daily_budget": 400.0}))
    from_start = with_overrides(base, {"channels.paid_social.daily_budget": 400.0})
    a, b, c = (run(MarketModel, s, agents=5_000) for s in (base, changed, from_start))
    spend = {k: ds.spend.sel(channel="paid_social").values for k, ds in zip("abc", (a, b, c), strict=True)}
    np.testing.assert_array_equal(spend["b"][:D], spend["a"][:D])
    np.testing.assert_array_equal(spend["b"][D:], spend["c"][D:])
    assert spend["b"][D] == 400.0 and spend["a"][D] == 250.0
    np.testing.assert_array_equal(b.budget.sel(channel="paid_social").values[D:], 400.0)


def test_a_change_wins_over_a_budget_schedule():
    """A ramp from 100 to 1,000 over 100 days: a budget set on day D holds from D on (the
    ramp stops); a new schedule set on day D starts on day D, from the budget in force."""
    ramp = {"channels.paid_social.schedule": {"kind": "linear", "end_budget": 1000.0,
                                              "ramp_days": 100},
            "channels.paid_social.daily_budget": 100.0}
    base = with_overrides(simulation.load_scenario(DEFAULT), ramp)

    def budget(sc):
        return run(MarketModel, sc, agents=2_000).budget.sel(channel="paid_social").values

    ramped = budget(base)
    np.testing.assert_allclose(ramped, 100.0 + 9.0 * np.arange(60))
    held = budget(with_changes(base, (D, {"channels.paid_social.daily_budget": 50.0})))
    np.testing.assert_array_equal(held[:D], ramped[:D])
    np.testing.assert_array_equal(held[D:], 50.0)
    restarted = budget(with_changes(base, (D, {"channels.paid_social.schedule.ramp_days": 10,
                                               "channels.paid_social.daily_budget": 200.0})))
    np.testing.assert_array_equal(restarted[:D], ramped[:D])
    np.testing.assert_allclose(restarted[D:], np.minimum(200.0 + 80.0 * np.arange(60 - D),
                                                         1000.0))


def test_later_changes_build_on_earlier_ones_in_day_order():
    base = simulation.load_scenario(DEFAULT)
    sc = with_changes(base, (50, {"channels.search.daily_budget": 300.0}),
                      (10, {"channels.search.daily_budget": 200.0, "product.price": 30.0}),
                      (50, {"channels.search.daily_budget": 350.0}))
    steps = scheduled(sc)
    assert [d for d, _ in steps] == [10, 50]
    assert steps[0][1].channels[1].daily_budget == 200.0
    assert steps[1][1].channels[1].daily_budget == 350.0  # same day: file order
    assert steps[1][1].product.price == 30.0               # the earlier change stays
    assert all(not s.changes for _, s in steps)


def test_nested_set_tables_mean_dotted_paths(tmp_path):
    data = raw_toml()
    data["changes"] = [{"day": 5, "set": {"post_purchase": {"onboarding": {"enabled": True}}}}]
    sc = simulation.load_scenario(write_toml(tmp_path / "s.toml", data))
    assert sc.changes[0].set == {"post_purchase.onboarding.enabled": True}
    assert scheduled(sc)[0][1].post_purchase.onboarding.enabled
    # and the scenario round-trips through its TOML (the result's attribute)
    again = simulation.load_scenario(write_toml(tmp_path / "t.toml", tomllib.loads(sc.to_toml())))
    assert again == sc


def test_warnings_follow_the_changes():
    base = with_overrides(simulation.load_scenario(DEFAULT), {
        "channels.search.enabled": False, "channels.paid_social.daily_budget": 0.0})
    assert any("'paid_social'" in w for w in inert_channels(base))
    later = with_changes(base, (30, {"channels.search.enabled": True,
                                     "channels.paid_social.daily_budget": 100.0}))
    assert inert_channels(later) == []
    late = with_changes(base, (400, {"product.price": 30.0}))
    assert late_changes(late) == [
        "changes[0] is on day 400, after the run's last day (364), so it never takes effect"]


@pytest.mark.parametrize("change, field, needle", [
    ({"simulation.agents": 5}, "changes[0].set.simulation.agents", "during a run"),
    ({"simulation": {"seed": 5}}, "changes[0].set.simulation.seed", "during a run"),
    ({"segments.casual.share": 0.4}, "changes[0].set.segments.casual.share", "day 0"),
    ({"channels": []}, "changes[0].set.channels", "cannot replace every entry"),
    ({"channels.search.daily_budgett": 5.0}, "changes[0].set.channels.search.daily_budgett",
     "unknown key"),
    ({"channels.nosuch.daily_budget": 5.0}, "changes[0].set.channels.nosuch.daily_budget",
     "no entry named"),
    ({"channels.search.daily_budget": -5.0}, "changes[0].set.channels.search.daily_budget",
     "greater than or equal"),
    ({"channels.search.name": "s2"}, "changes[0].set.channels.search.name", "during a run"),
    ({"post_purchase": {"opt_out_share": 0.1}},
     "changes[0].set.post_purchase.opt_out_share", "during a run"),
    ({"channels.search.capacity": 5}, "changes[0].set.channels.search.capacity", "unset"),
    ({"changes": []}, "changes[0].set.changes", "during a run"),
])
def test_a_refused_change_is_one_line_naming_it(tmp_path, change, field, needle):
    data = raw_toml()
    data["changes"] = [{"day": 10, "set": change}]
    path = write_toml(tmp_path / "s.toml", data)
    out = tmp_path / "r.nc"
    rc, _, err = run_cli(["run", str(path), "--agents", "2000", "--days", "30", "--quiet",
                          "--out", str(out)])
    assert rc == 2, err
    assert_one_clear_line(err, field, needle)
    assert not out.exists()


def test_a_cross_field_error_names_the_change():
    base = simulation.load_scenario(DEFAULT)
    with pytest.raises(ScenarioError) as exc:
        with_changes(base, (3, {"product.price": 20.0}),
                     (10, {"channels.marketplace.launch_day": 50,
                           "channels.marketplace.end_day": 40}))
    assert exc.value.field == "changes[1].set"
    assert "end_day before launch_day" in exc.value.message
