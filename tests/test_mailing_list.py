"""The firm's list (a channel's ``list`` table): the list channel reaches only the people
on it, who joined by opting in and leave by unsubscribing.

Each mechanism against something independent: a count by hand of who was reached and
who is listed (the population's own bits), a binomial count of buyers, the closed forms of
joining at visits (``1 - (1 - r v)^t``) and of a list that only decays (``(1 - f q)^t``),
and the stock against its flows.
"""

from __future__ import annotations

import numpy as np
import pytest

import simulation
from simulation.model import MarketModel
from simulation.reference import ReferenceMarketModel
from simulation.scenario import ScenarioError, scenario_from_dict
from simulation.state import CONSENT, LISTED

EMAIL = 0


def market(agents: int, days: int, email_list: dict, *, initial_list: float = 0.0,
           frequency: float = 0.0, channels: tuple = (), **extra) -> dict:
    """A market of ``agents`` people with an email channel (channel 0) sending to the list
    ``email_list``, and no other way to move unless ``extra`` adds one."""
    email = {"name": "email", "kind": "email", "reach": {"model": "list", "frequency": frequency},
             "list": email_list}
    data = {"simulation": {"agents": agents, "days": days, "seed": 3},
            "channels": [email, *channels], "initial": {"list_size": initial_list}}
    data.update(extra)
    return data


def stock_follows_flows(ds) -> None:
    """The list's size, counted customer by customer each evening, moves by the day's
    opt-ins less its unsubscribes (counted where they happen)."""
    size = ds.list_size.sel(channel="email").values.astype(float)
    flow = (ds.list_opt_ins.sum("channel") - ds.list_unsubscribes.sum("channel")).values
    np.testing.assert_allclose(np.diff(size), flow[1:])


@pytest.mark.parametrize("model_cls", [MarketModel, ReferenceMarketModel])
def test_only_people_on_the_list_are_reached(model_cls):
    """Every day the email channel contacts all of the list and no one else: reached ==
    list size (frequency 1, nobody joins or leaves), and every customer it ever reached
    is on the list, every one on it was reached (counted from the customers' own bits)."""
    scenario = scenario_from_dict(market(3_000, 5, {}, initial_list=600, frequency=1.0))
    model = model_cls(scenario)
    model.run_model()
    ds = model.results()
    pop = model.population
    listed = (pop.flags & LISTED) != 0
    reached = (pop.reached_mask & np.uint64(1 << EMAIL)) != 0
    assert 450 < listed.sum() < 750  # 600 expected, binomial sd 22
    np.testing.assert_array_equal(reached, listed)
    np.testing.assert_array_equal(ds.reached.sel(channel="email").values, listed.sum())
    np.testing.assert_array_equal(ds.list_size.sel(channel="email").values, listed.sum())
    assert float(ds.media_spend.sum()) == 0.0  # no cost_per_contact set


def test_purchase_opt_ins_are_a_binomial_count_of_buyers():
    """One order per buyer (word of mouth makes them buy at once, nothing else orders):
    with an opt-in chance p at the order the list holds Binomial(buyers, p); the opt-ins
    are booked to the acquiring channel; for a personalised list only the consenting
    join, and with p = 1 all of them do: an exact count by hand."""
    base = market(20_000, 30, {"opt_in_purchase": 0.3},
                  word_of_mouth={"p": 0.01, "adoption": "active"},
                  product={"business_model": "one_time", "one_time": {"lapse_rate": 0.0}})
    model = MarketModel(scenario_from_dict(base))
    model.run_model()
    ds = model.results()
    pop = model.population
    buyers = int((pop.orders > 0).sum())
    listed = (pop.flags & LISTED) != 0
    assert buyers > 3_000 and (pop.orders <= 1).all()
    assert np.all(pop.orders[listed] == 1)  # only buyers joined
    sd = np.sqrt(buyers * 0.3 * 0.7)
    assert abs(listed.sum() - 0.3 * buyers) < 4 * sd
    assert int(ds.list_opt_ins.sel(channel="word_of_mouth").sum()) == listed.sum()
    stock_follows_flows(ds)

    base["channels"][0]["personalised"] = True
    base["channels"][0]["list"]["opt_in_purchase"] = 1.0
    base["post_purchase"] = {"opt_out_share": 0.4}
    model = MarketModel(scenario_from_dict(base))
    model.run_model()
    pop = model.population
    consenting_buyers = (pop.orders > 0) & ((pop.flags & CONSENT) != 0)
    np.testing.assert_array_equal((pop.flags & LISTED) != 0, consenting_buyers)


def test_visits_sign_people_up_at_the_closed_form_rate():
    """A website reaching each person with daily chance r = 1 - exp(-visitors / market)
    signs a visitor up with chance v: after t days a share 1 - (1 - r v)^t is on the list
    (the visits are independent day to day; nothing else joins or leaves)."""
    n, days, visitors, v = 20_000, 30, 4_000.0, 0.05
    site = {"name": "website", "kind": "organic", "reach": {"model": "fixed",
                                                            "daily_visitors": visitors}}
    ds = simulation.run(scenario_from_dict(market(n, days, {"opt_in_visit": {"website": v}},
                                                  channels=(site,))))
    r = 1.0 - np.exp(-visitors / n)
    t = np.arange(1, days + 1)
    expected = n * (1.0 - (1.0 - r * v) ** t)
    size = ds.list_size.sel(channel="email").values
    sd = np.sqrt(expected * (1.0 - expected / n))
    assert np.all(np.abs(size - expected) < 4 * sd + 1), (size[-1], expected[-1])
    assert int(ds.list_opt_ins.sel(channel="website").sum()) == size[-1]
    stock_follows_flows(ds)


def test_a_list_only_unsubscribing_decays_geometrically():
    """No opt-ins, a contact a day with chance f, each unsubscribing with chance
    q = unsubscribe x (1 + fatigue x f): the list keeps a share (1 - f q)^(t + 1) at the end
    of day t, from its day-0 size."""
    n, days, f, u, k = 20_000, 60, 0.5, 0.02, 2.0
    scenario = scenario_from_dict(market(n, days, {"unsubscribe": u, "fatigue": k},
                                         initial_list=10_000, frequency=f))
    model = MarketModel(scenario)
    start = int(((model.population.flags & LISTED) != 0).sum())
    model.run_model()
    ds = model.results()
    q = u * (1.0 + k * f)
    keep = (1.0 - f * q) ** np.arange(1, days + 1)
    size = ds.list_size.sel(channel="email").values
    sd = np.sqrt(start * keep * (1.0 - keep))
    assert np.all(np.abs(size - start * keep) < 4 * sd + 1), (size[-1], start * keep[-1])
    assert int(ds.list_unsubscribes.sel(channel="email").sum()) == start - size[-1]
    stock_follows_flows(ds)


def test_a_list_channel_without_a_list_contacts_its_audience():
    """Without a ``list`` table a ``list`` channel is a sales team's follow-up: it contacts
    everyone in its audience (here: every considering prospect, each day), as before."""
    data = {"simulation": {"agents": 2_000, "days": 3, "seed": 1},
            "initial": {"considering": 0.5},
            "channels": [{"name": "sales", "kind": "direct_sales",
                          "reach": {"model": "list", "frequency": 1.0,
                                    "audience": ["considering"]}}]}
    ds = simulation.run(scenario_from_dict(data))
    considering = ds.stage_count.sel(stage="considering").values
    assert ds.reached.sel(channel="sales").values[0] > 800
    np.testing.assert_array_equal(ds.reached.sel(channel="sales").values[1:], considering[:-1])
    assert int(ds.list_size.sum()) == 0


@pytest.mark.parametrize("change,needle", [
    ({"channels": [{"name": "web", "kind": "organic", "reach": {"model": "fixed"},
                    "list": {}}]}, "a list table needs reach.model = 'list'"),
    ({"channels": [{"name": f"mail{i}", "kind": "email", "reach": {"model": "list"},
                    "list": {}} for i in range(2)]}, "at most one channel"),
    ({"channels": [{"name": "mail", "kind": "email", "reach": {"model": "list"},
                    "list": {"opt_in_visit": {"shop": 0.1}}}]}, "unknown channel(s) ['shop']"),
    ({"initial": {"list_size": 5.0}}, "initial.list_size needs a channel with a list table"),
    ({"simulation": {"agents": 100}, "channels": [
        {"name": "mail", "kind": "email", "reach": {"model": "list"}, "list": {},
         "personalised": True}], "post_purchase": {"opt_out_share": 0.5},
      "initial": {"list_size": 60.0}}, "exceeds the consenting people (50)"),
])
def test_impossible_lists_are_refused(change, needle):
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(change, "x.toml")
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_a_list_no_one_can_join_is_warned_about():
    scenario = scenario_from_dict(market(100, 5, {}, frequency=0.2))
    (warning,) = simulation.scenario.inert_channels(scenario)
    assert "sends to a list no one can join" in warning
