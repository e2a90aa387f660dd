"""The controlled test (``distsim abtest``, :mod:`simulation.abtest`): the arms are keyed
halves of one market, the stopping rule's two readings and the z-test are what they
say, and the command writes both files or nothing."""

from __future__ import annotations

import numpy as np
import pytest

from simulation import abtest
from simulation.analysis.abtest import stop_day, z_statistic, ztest_power
from simulation.scenario import ScenarioError, load_scenario

SMALL = """
name = "ab_small"
[simulation]
agents = {agents}
days = {days}
seed = 11
[product]
price = 20.0
unit_cost = 8.0
business_model = "one_time"
[[segments]]
name = "a"
share = 0.6
affinity = {{ social = 1.5 }}
[[segments]]
name = "b"
share = 0.4
[[channels]]
name = "social"
kind = "paid_social"
stage = "awareness"
effects = {{ awareness = 0.2, consideration = 0.2, decision = 0.05 }}
reach = {{ model = "cpm", cpm = 5.0 }}
daily_budget = {budget}
[word_of_mouth]
enabled = false
"""


def small(tmp_path, agents=1000, days=20, budget=5.0):
    path = tmp_path / "small.toml"
    path.write_text(SMALL.format(agents=agents, days=days, budget=budget))
    return path


# -- pure functions, against counts and numbers by hand ------------------------------

def test_stop_day_readings_on_hand_made_counts():
    days = 30
    daily = np.zeros((3, 2, days))
    daily[0, 0, :] = 20  # arm 0 has 100 by day index 4, arm 1 (10 a day) by index 9
    daily[0, 1, :] = 10
    daily[1, :, :] = 4   # 100 by day index 24 in both arms
    daily[2, :, :] = 1   # 30 in the whole run: never 100
    cum = daily.cumsum(axis=-1)
    stop, met = stop_day(cum, 14, 100, "later")
    assert stop.tolist() == [13, 24, 29] and met.tolist() == [True, True, False]
    stop, met = stop_day(cum, 14, 100, "first")
    assert stop.tolist() == [9, 13, 13] and met.tolist() == [True, True, True]
    # fewer days than the minimum: 'first' waits for the conversions, 'later' never stops
    stop, met = stop_day(cum[:, :, :12], 14, 100, "first")
    assert stop.tolist() == [9, 11, 11] and met.tolist() == [True, False, False]


def test_z_statistic_by_hand():
    # 30/200 against 50/200: pooled 0.2, se sqrt(0.2 * 0.8 * 2 / 200) = 0.04, z = 0.1 / 0.04
    assert z_statistic(30, 200, 50, 200) == pytest.approx(2.5)
    assert z_statistic(50, 200, 30, 200) == pytest.approx(-2.5)
    assert z_statistic(0, 100, 0, 100) == 0.0


def test_ztest_power_against_binomial_draws():
    """The closed-form power against the rejection rate of simulated binomial arms."""
    gen = np.random.default_rng(5)
    for p_c, p_t, n in ((0.05, 0.07, 1500), (0.1, 0.1, 800), (0.2, 0.15, 400)):
        x_c = gen.binomial(n, p_c, 40_000)
        x_t = gen.binomial(n, p_t, 40_000)
        rejected = (np.abs(z_statistic(x_c, n, x_t, n)) > 1.959964).mean()
        assert ztest_power(p_c, p_t, n, n) == pytest.approx(rejected, abs=0.015)


def test_refused_and_supported_changes():
    for path in ("channels.x.effects.decision", "channels.x.message_alignment",
                 "segments.g.affinity.x", "segments.g.purchase_rate.mean_days",
                 "channels.x.fit.niche"):
        abtest.arm_path(path)
    for path, why in (("channels.x.daily_budget", "budget"), ("product.price", "price"),
                      ("channels.x.discount", "price"), ("word_of_mouth.q", "market-level"),
                      ("segments.g.share", "halves"), ("channels.x.commission", "per channel")):
        with pytest.raises(ScenarioError, match=why):
            abtest.arm_path(path)


# -- the arms in the simulation ------------------------------------------------------

def test_arm_split_is_a_keyed_half_that_keeps_every_segment(tmp_path):
    """Each segment splits into a fair half per customer (a binomial band), the same at
    every effect size, and each customer keeps the segment the plain run gives them."""
    from simulation.model import MarketModel

    sc = load_scenario(small(tmp_path, agents=6000, days=2))
    test = abtest.plan(sc, "channels.social.effects.decision=0.1", (0.0, 3.0), replicates=1)
    pops = []
    for k in range(2):
        model = abtest.arm_model_class("numba")(test.arms(k), seed=test.seeds[0])
        pops.append(model.population.segment.copy())
    assert np.array_equal(pops[0], pops[1])
    plain = MarketModel(sc, seed=test.seeds[0]).population.segment
    assert np.array_equal(pops[0] // 2, plain)
    for g, share in enumerate((0.6, 0.4)):
        n = int((plain == g).sum())
        assert abs(n - share * 6000) < 3 * np.sqrt(6000 * share * (1 - share))
        treated = int((pops[0] == 2 * g + 1).sum())
        assert abs(treated - n / 2) < 3 * np.sqrt(n / 4)


def test_treatment_plan_rows_follow_the_changed_scenario(tmp_path):
    """Affinity 0 in the treatment: the channel reaches no treated customer of the segment
    (word of mouth is off, so nobody else touches them), and the control half of it as
    before."""
    sc = load_scenario(small(tmp_path, agents=2000, days=10, budget=20.0))
    test = abtest.plan(sc, "segments.a.affinity.social=0", (1.0,), replicates=1)
    model = abtest.arm_model_class("numba")(test.arms(0), seed=test.seeds[0])
    model.run_model()
    pop = model.population
    touched = pop.first_day != 65535
    assert touched[pop.segment == 1].sum() == 0       # a, treatment
    assert touched[pop.segment == 0].sum() > 100      # a, control
    assert touched[pop.segment == 3].sum() > 100      # b, treatment: more impressions


def test_null_change_picks_each_arm_half_the_time_and_the_ztest_rejects_at_alpha(tmp_path):
    sc = load_scenario(small(tmp_path, agents=600, days=15, budget=5.0))
    test = abtest.plan(sc, "channels.social.effects.decision=0.05", (0.0,), replicates=200,
                       min_days=7, min_conversions=20)
    ds = abtest.measure(test, threads=1)
    assert ds.conversions.sum() > 0
    for rule in ("rule_later", "rule_first"):
        picks = float(ds.picks_treatment.sel(procedure=rule, effect=0.0))
        # ties pick neither arm; of the picks, each arm about half (binomial, 3 sd)
        decided = float(picks + ds.picks_control.sel(procedure=rule, effect=0.0))
        assert abs(picks / decided - 0.5) < 3 * np.sqrt(0.25 / (200 * decided))
    # the z-test picks an arm only when it rejects; at the null the horizon is the run's
    rejects = float(ds.picks_treatment.sel(procedure="ztest_later", effect=0.0)
                    + ds.picks_control.sel(procedure="ztest_later", effect=0.0))
    assert abs(rejects - 0.05) < 3 * np.sqrt(0.05 * 0.95 / 200)
    assert np.isnan(ds.power.sel(effect=0.0)).all()


def test_large_effect_power_goes_to_one(tmp_path):
    sc = load_scenario(small(tmp_path, agents=1000, days=20, budget=10.0))
    test = abtest.plan(sc, "channels.social.effects.decision=0.25", (1.0,), replicates=5,
                       min_conversions=20)
    ds = abtest.measure(test, threads=1)
    assert (ds.true_effect > 0).all()
    assert (ds.power == 1.0).all() and (ds.wrong == 0.0).all()
    assert (ds.conversions.sum("day").sel(arm="treatment")
            > ds.conversions.sum("day").sel(arm="control")).all()


def test_mesa_backend_runs_the_arms(tmp_path):
    """The reference backend splits and plans the arms the same way (its own draws)."""
    sc = load_scenario(small(tmp_path, agents=800, days=12, budget=10.0))
    test = abtest.plan(sc, "channels.social.effects.decision=0.5", (1.0,), replicates=1,
                       backend="mesa")
    ds = abtest.measure(test)
    size = ds.arm_size.values.ravel()
    assert size.sum() == 800 and abs(size[1] - 400) < 3 * np.sqrt(200)
    conv = ds.conversions.sum("day").values.ravel()
    assert conv[1] > conv[0] > 0


# -- the command ---------------------------------------------------------------------

def test_cli_writes_both_files(tmp_path):
    from simulation.cli import main
    from simulation.io import read_netcdf

    path = small(tmp_path, agents=500, days=15, budget=5.0)
    out = tmp_path / "ab"
    assert main(["abtest", str(path), "--change", "channels.social.effects.decision=0.1",
                 "--effects", "0,1", "--replicates", "2", "--threads", "1", "--quiet",
                 "--out", str(out)]) == 0
    assert (out / "power.png").read_bytes()[:4] == b"\x89PNG"
    ds = read_netcdf(out / "abtest.nc")
    assert ds.conversions.dims == ("effect", "replicate", "arm", "day")
    assert list(ds.arm.values) == ["control", "treatment"]
    assert ds.attrs["change_path"] == "channels.social.effects.decision"


@pytest.mark.parametrize("args, words", [
    (["--change", "channels.social.daily_budget=10"], "budget"),
    (["--change", "channels.nope.effects.decision=0.1"], "no entry named 'nope'"),
    (["--change", "channels.social.effects.decision=2"], "--effects"),
    (["--change", "channels.social.effects.decision=0.1", "--agents", "400"], "--agents"),
    (["--change", "channels.social.effects.decision=0.1", "--effects", "a"], "--effects"),
])
def test_cli_refuses_bad_change_in_one_line_and_writes_nothing(tmp_path, capsys, args, words):
    from simulation.cli import main

    path = small(tmp_path, agents=500, days=15)
    out = tmp_path / "ab"
    assert main(["abtest", str(path), *args, "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and words in err
    assert not out.exists()
