"""In-run hold-out cells (``channels.NAME.holdout_share``) and ``credit = "lift"``.

Each check is against something independent of the code under test: the binomial band of
a keyed share, customers counted one by one in the population's ``reached_mask``, the
closed form of a constant daily conversion chance, and a roll-out's launch day counted by
hand from the recorded daily counts.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    assert_one_clear_line,
    list_channel,
    market,
    run_cli,
    simulate,
    write_toml,
    z_bound,
)

N, MESA_N = 20_000, 4_000


def _held(share: float, name: str = "shop", freq: float = 1.0, **effects) -> dict:
    return dict(list_channel(name, freq, **effects), holdout_share=share)


def _scaled(data: dict, agents: int, days: int, seed: int = 1):
    """A run of ``agents`` simulated customers standing for the dict's ``market.size``."""
    from simulation.model import MarketModel
    from simulation.scenario import scenario_from_dict

    model = MarketModel(scenario_from_dict(data), agents=agents, days=days, seed=seed)
    model.run_model()
    return model.results(), model


def _unreached(model, c: int) -> int:
    """Customers whose ``reached_mask`` lacks channel c's bit, counted one by one."""
    return int(np.count_nonzero((model.population.reached_mask >> np.uint64(c)) & np.uint64(1)
                                == 0))


@pytest.mark.parametrize("backend, n", [("numba", N), ("mesa", MESA_N)])
def test_the_hold_out_is_a_keyed_share_its_channel_never_reaches(backend, n):
    """Two channels that reach everyone every day, each with a cell of 20%: each cell is a
    binomial share of the market; exactly its customers stay unreached by the channel;
    the two cells are independent (both hold out 4%); another seed holds out others."""
    sc = market(channels=[_held(0.2, "a"), _held(0.2, "b")])
    ds, model = simulate(sc, n, 2, backend=backend)
    size = ds.holdout_size.sel(channel=["a", "b"]).values
    assert z_bound(size, n, 0.2).all()
    assert [_unreached(model, 0), _unreached(model, 1)] == list(size)
    assert (ds.reached.sel(channel=["a", "b"]).isel(day=0).values == n - size).all()
    mask = model.population.reached_mask
    assert z_bound(np.count_nonzero(mask == 0), n, 0.04)
    assert int(ds.holdout_size.sel(channel="word_of_mouth")) == 0
    if backend == "numba":
        _, again = simulate(sc, n, 2, seed=2)
        assert np.count_nonzero((again.population.reached_mask & 1) != (mask & 1)) > 0.2 * n


@pytest.mark.parametrize("backend, n", [("numba", N), ("mesa", MESA_N)])
def test_a_channel_without_effect_has_no_lift(backend, n):
    """``noise`` reaches everyone and does nothing; ``shop`` sells to half the considering
    customers' days. The lift of ``noise`` over the run is 0 within 3.5 standard errors of
    the difference of two proportions, scaled to the customers ``noise`` may reach."""
    sc = market(channels=[_held(0.2, "noise"), list_channel("shop", 0.5, decision=0.1)],
                initial={"considering": 1.0})
    ds, model = simulate(sc, n, 8, backend=backend)
    from simulation.components.scaling import lift_credit

    n_held = float(ds.holdout_size.sel(channel="noise"))
    conv_held = float(ds.holdout_conversions.sel(channel="noise").sum())
    conv = float(ds.conversions.sum())
    n_out, conv_out = n - n_held, conv - conv_held
    p_out, p_held = conv_out / n_out, conv_held / n_held
    lift = (p_out - p_held) * n_out
    assert lift == pytest.approx(lift_credit(model)[:, 0].sum(), rel=1e-9, abs=1e-6)
    se = n_out * np.sqrt(p_out * (1 - p_out) / n_out + p_held * (1 - p_held) / n_held)
    assert 50 < conv_held and abs(lift) < 3.5 * se


def test_a_channel_that_is_the_only_route_to_purchase():
    """Every customer considering on day 0; ``shop`` reaches everyone it may every day and
    closes each with chance e. Its cell never buys, so its lift is all its conversions, and
    those follow the closed form N (1 − share) (1 − (1 − e)^T); the market-wide rate
    (lift / (1 − share) people) is the rate N (1 − (1 − e)^T) had it held no one out. The
    market is 4 times the sample: every count is in people."""
    share, e, days = 0.2, 0.1, 10
    sc = market(channels=[_held(share, decision=e)], initial={"considering": 1.0},
                market={"size": 4 * N})
    ds, model = _scaled(sc, N, days)
    from simulation.components.scaling import won

    assert model.scale == 4
    assert float(ds.holdout_conversions.sel(channel="shop").sum()) == 0.0
    conversions = float(ds.conversions.sel(channel="shop").sum())  # people
    lift = won(model, "lift", 0, 0, days)  # people
    assert lift == pytest.approx(conversions)
    q = 1 - (1 - e) ** days
    assert z_bound(lift / 4, N, (1 - share) * q)
    assert z_bound(lift / (1 - share) / 4, N, q, z=5 / (1 - share))


def test_a_lift_gate_launches_the_next_channel_the_day_after_the_lift_reaches_it():
    """``shop`` (a 20% cell) gates ``next`` on 1,500 people of lift. Counted by hand from the
    recorded daily conversions, cell conversions and cell size (all in people, the market
    twice the sample): ``next`` launches on the first day after the one the cumulative lift
    reached the gate, and not before ``validation_days``."""
    gate = 1_500
    sc = market(channels=[_held(0.2, freq=0.2, decision=0.05),
                          list_channel("next", 0.2, decision=0.05)],
                initial={"considering": 1.0}, market={"size": 2 * 10_000},
                rollout={"order": ["shop", "next"], "validation_days": 3,
                         "validation_conversions": gate, "credit": "lift"})
    ds, _ = _scaled(sc, 10_000, 20)
    n = 2 * 10_000
    n_held = float(ds.holdout_size.sel(channel="shop"))
    daily = (ds.conversions.sum("channel").values
             - ds.holdout_conversions.sel(channel="shop").values * n / n_held)
    lift = np.cumsum(daily)  # through the end of each day
    reached = int(np.argmax(lift >= gate))
    assert lift[reached] >= gate and reached + 1 > 3  # the gate, not the days, decided
    running = ds.running.sel(channel="next").values
    assert int(np.argmax(running == 1)) == reached + 1
    assert running[: reached + 1].sum() == 0


def test_a_lift_guardrail_pauses_a_channel_that_adds_nothing():
    """``noise`` costs 100 a day and changes no one's mind; ``shop`` sells. On linear credit
    ``noise`` is credited its share of the sales it touched (most of them), a CAC the rule
    accepts; on lift its incremental customers over the window are 0 give or take ~40, the
    CAC infinite or above 20, and the rule pauses it at its first check, its 10th day
    (day 9), after which it never runs again."""
    rule = {"channel": "noise", "metric": "cac", "above": 5.0, "validation_days": 10,
            "validation_conversions": 0, "every_days": 10, "lookback_days": 10}
    noise = dict(_held(0.2, "noise", freq=1.0), fixed_daily_cost=100.0)
    sc = market(channels=[noise, list_channel("shop", 0.5, decision=0.1)],
                initial={"considering": 1.0})
    on_lift, _ = simulate({**sc, "guardrails": [{**rule, "credit": "lift"}]}, 5_000, 20)
    on_linear, _ = simulate({**sc, "guardrails": [{**rule, "credit": "linear"}]}, 5_000, 20)
    assert on_linear.guardrail_action.sel(channel="noise").sum() == 0
    action = on_lift.guardrail_action.sel(channel="noise").values
    assert list(np.flatnonzero(action)) == [9] and action[9] == 1
    assert on_lift.running.sel(channel="noise").values[10:].sum() == 0


@pytest.mark.parametrize("table, needle", [
    ({"rollout": {"order": ["b", "a"], "credit": "lift"}}, "channels.b.holdout_share"),
    ({"guardrails": [{"channel": "b", "metric": "cac", "above": 1.0, "credit": "lift"}]},
     "channels.b.holdout_share"),
    ({"guardrails": [{"metric": "cac", "above": 1.0, "credit": "lift"}]},
     "channels.b.holdout_share"),
])
def test_lift_without_a_hold_out_is_refused_in_one_line(tmp_path, table, needle):
    path = write_toml(tmp_path / "s.toml", market(
        channels=[_held(0.1, "a"), list_channel("b", 0.1, decision=0.1)], **table))
    rc, _, err = run_cli(["run", path, "--agents", 100, "--days", 2, "--out",
                          tmp_path / "r.nc"])
    assert rc == 2
    assert_one_clear_line(err, "lift", needle)
