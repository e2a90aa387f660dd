"""Experiment files and their expansion into runs (pure: no simulation here).

Contract: an experiment is a base scenario plus named variants and swept parameters
(grid, zip, random, Latin hypercube) over replicates; bad input is one ScenarioError
naming the experiment file and the dotted field; the expansion is a pure function;
replicate seeds derive from the experiment seed, and every variant of a replicate
shares its seed (common random numbers).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from helpers import DEFAULT

from simulation.scenario import ScenarioError, load_scenario
from simulation.sweep.experiment import (
    REPLICATE,
    VARIANT,
    expand,
    expand_runs,
    experiment_from_dict,
    load_experiment,
    replicate_seeds,
    run_scenario,
)

BASE = load_scenario(DEFAULT)
SRC = "exp.toml"


def make(data: dict):
    data = {"base": "unused.toml", **copy.deepcopy(data)}
    return experiment_from_dict(data, source=SRC, base=BASE)


def error_of(data: dict) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        make(data)
    return info.value


GRID = {
    "seed": 5, "replicates": 4,
    "variants": [{"name": "lean", "set": {"channels.paid_social.daily_budget": 100.0}},
                 {"name": "bold", "set": {"channels": {"paid_social": {"daily_budget": 900.0}}}}],
    "sweep": [{"kind": "grid", "values": {"channels.search.daily_budget": [50, 100, 200],
                                          "product.price": [24.0, 30.0]}}],
}


# -- grid, zip and samples ---------------------------------------------------------


def test_grid_has_one_axis_per_parameter_and_every_combination():
    plan = expand(make(GRID))
    assert plan.dims == (VARIANT, "channels.search.daily_budget", "product.price", REPLICATE)
    assert plan.shape == (2, 3, 2, 4)
    assert len(plan.runs) == 2 * 3 * 2 * 4
    combos = {(r.labels[VARIANT], r.overrides["channels.search.daily_budget"],
               r.overrides["product.price"], r.replicate) for r in plan.runs}
    assert len(combos) == 48
    assert [r.index for r in plan.runs] == list(range(48))


def test_nested_override_tables_become_dotted_paths():
    runs = expand_runs(make(GRID))
    bold = next(r for r in runs if r.labels[VARIANT] == "bold")
    assert bold.overrides["channels.paid_social.daily_budget"] == 900.0
    assert run_scenario(make(GRID), bold).channels[0].daily_budget == 900.0


def test_runs_are_ordered_replicate_by_replicate():
    runs = expand_runs(make(GRID))
    assert [r.replicate for r in runs] == sorted(r.replicate for r in runs)


def test_zip_lists_vary_together_on_one_axis():
    exp = make({"replicates": 2, "sweep": [{"kind": "zip", "values": {
        "channels.paid_social.daily_budget": [100, 400, 1600],
        "channels.search.daily_budget": [50, 100, 200]}}]})
    plan = expand(exp)
    assert plan.dims == ("channels.paid_social.daily_budget", REPLICATE)
    assert plan.shape == (3, 2)
    pairs = {(r.overrides["channels.paid_social.daily_budget"],
              r.overrides["channels.search.daily_budget"]) for r in plan.runs}
    assert pairs == {(100, 50), (400, 100), (1600, 200)}
    named = expand(make({"sweep": [{"kind": "zip", "name": "scale", "values": {
        "channels.paid_social.daily_budget": [100, 400]}}]}))
    assert named.dims == ("scale", REPLICATE)
    assert named.axes[0].labels == (0, 1)


def test_zip_lists_of_different_lengths_are_refused():
    err = error_of({"sweep": [{"kind": "zip", "values": {"product.price": [20.0, 25.0],
                                                         "product.unit_cost": [5.0]}}]})
    assert "same length" in str(err) and str(err).startswith(f"{SRC}: sweep")


@pytest.mark.parametrize("kind", ["lhs", "random"])
def test_samples_lie_in_their_ranges(kind):
    exp = make({"seed": 3, "sweep": [{"kind": kind, "samples": 50, "ranges": {
        "product.price": [20.0, 40.0],
        "channels.search.daily_budget": {"low": 10, "high": 1000, "scale": "log"},
        "channels.marketplace.capacity": {"low": 5, "high": 9, "integer": True}}}]})
    axis = expand(exp).axes[0]
    assert axis.dim == "sample" and len(axis) == 50
    price = np.array(axis.params["product.price"])
    budget = np.array(axis.params["channels.search.daily_budget"])
    cap = axis.params["channels.marketplace.capacity"]
    assert ((price >= 20) & (price < 40)).all()
    assert ((budget >= 10) & (budget < 1000)).all()
    assert all(isinstance(c, int) and 5 <= c <= 9 for c in cap)
    assert set(cap) == {5, 6, 7, 8, 9}


def test_latin_hypercube_puts_one_sample_in_each_stratum():
    n = 40
    exp = make({"seed": 9, "sweep": [{"kind": "lhs", "samples": n, "ranges": {
        "product.price": [20.0, 40.0], "product.unit_cost": [0.0, 8.0],
        "channels.search.daily_budget": {"low": 10, "high": 1000, "scale": "log"}}}]})
    axis = expand(exp).axes[0]
    unit = {
        "product.price": (np.array(axis.params["product.price"]) - 20) / 20,
        "product.unit_cost": np.array(axis.params["product.unit_cost"]) / 8,
        "channels.search.daily_budget": np.log(np.array(
            axis.params["channels.search.daily_budget"]) / 10) / np.log(100),
    }
    for u in unit.values():
        assert sorted(np.floor(u * n).astype(int)) == list(range(n))
    # independent uniforms almost never stratify perfectly
    rnd = expand(make({"seed": 9, "sweep": [{"kind": "random", "samples": n,
                                             "ranges": {"product.price": [20.0, 40.0]}}]}))
    u = (np.array(rnd.axes[0].params["product.price"]) - 20) / 20
    assert sorted(np.floor(u * n).astype(int)) != list(range(n))


def test_samples_depend_on_the_experiment_seed_only():
    block = {"kind": "lhs", "samples": 5, "ranges": {"product.price": [20.0, 40.0]}}
    a = expand(make({"seed": 1, "replicates": 2, "sweep": [block]}))
    b = expand(make({"seed": 1, "replicates": 3, "sweep": [block]}))
    c = expand(make({"seed": 2, "sweep": [block]}))
    assert a.axes[0].params == b.axes[0].params
    assert a.axes[0].params != c.axes[0].params
    by_rep = {}
    for r in a.runs:
        by_rep.setdefault(r.replicate, []).append(r.overrides["product.price"])
    assert by_rep[0] == by_rep[1]  # every replicate runs the same sample points


# -- seeds and purity ---------------------------------------------------------------


def test_replicate_seeds_derive_from_the_experiment_seed():
    assert replicate_seeds(5, 4) == replicate_seeds(5, 4)
    assert replicate_seeds(5, 6)[:4] == replicate_seeds(5, 4)
    assert replicate_seeds(5, 4) != replicate_seeds(6, 4)
    seeds = replicate_seeds(5, 100)
    assert len(set(seeds)) == 100
    assert all(0 <= s < 2**63 for s in seeds)


def test_variants_of_a_replicate_share_its_seed():
    plan = expand(make(GRID))
    for rep, seed in enumerate(plan.replicate_seeds):
        assert {r.seed for r in plan.runs if r.replicate == rep} == {seed}
    assert run_scenario(make(GRID), plan.runs[0]).simulation.seed == plan.runs[0].seed


def test_expansion_is_pure_and_keys_identify_runs():
    a, b = expand(make(GRID)), expand(make(GRID))
    assert a == b
    assert a.fingerprint() == b.fingerprint()
    assert len({r.key for r in a.runs}) == len(a.runs)
    bigger = make({**GRID, "agents": 3000})
    assert expand(bigger).fingerprint() != a.fingerprint()
    assert expand(make(GRID).with_size(agents=3000)).fingerprint() == expand(
        bigger).fingerprint()


def test_no_variants_no_sweep_is_one_run_per_replicate():
    plan = expand(make({"replicates": 3}))
    assert plan.dims == (REPLICATE,)
    assert [r.overrides for r in plan.runs] == [{}, {}, {}]


def test_experiment_size_overrides_the_base():
    exp = make({"agents": 1234, "days": 17, "set": {"channels.email.fixed_daily_cost": 1.0}})
    assert exp.base.simulation.agents == 1234 and exp.base.simulation.days == 17
    assert exp.base.channels[3].fixed_daily_cost == 1.0
    assert exp.with_size(days=5).base.simulation.days == 5


# -- validation -----------------------------------------------------------------------


@pytest.mark.parametrize("data, field, words", [
    ({"replicate": 3}, "replicate", "unknown key"),
    ({"replicates": 0}, "replicates", "greater than or equal to 1"),
    ({"seed": -1}, "seed", "greater than or equal to 0"),
    ({"replicates": "3"}, "replicates", "valid integer"),
    ({"set": {"channels.tv.daily_budget": 5}}, "set.channels.tv", "no entry named 'tv'"),
    ({"set": {"product.pirce": 5.0}}, "set.product.pirce", "unknown key"),
    ({"variants": [{"name": "a", "set": {"channels.search.daily_budget": -5}}]},
     "variants.a.set.channels.search.daily_budget", "greater than or equal to 0"),
    ({"variants": [{"name": "a"}, {"name": "a"}]}, "", "unique"),
    ({"variants": [{"name": "a", "sett": {}}]}, "variants.a.sett", "unknown key"),
    ({"sweep": [{"kind": "grid", "values": {"product.price": [20.0, -1.0]}}]},
     "sweep[0].values.product.price[1]", "greater than 0"),
    ({"sweep": [{"kind": "grid", "values": {"product.price": [20.0, 20.0]}}]},
     "sweep[0].values.product.price", "distinct"),
    ({"sweep": [{"kind": "grid", "values": {"product.price": []}}]}, "sweep[0].values",
     "at least one value"),
    ({"sweep": [{"kind": "lhs", "ranges": {"product.price": [20.0, 40.0]}}]}, "sweep[0]",
     "needs 'samples'"),
    ({"sweep": [{"kind": "lhs", "samples": 4, "ranges": {"product.price": [40.0, 20.0]}}]},
     "sweep[0].ranges.product.price", "must be below"),
    ({"sweep": [{"kind": "random", "samples": 4, "ranges": {"product.return_rate": [0.5, 2.0]}}]},
     "sweep[0].ranges.product.return_rate", "less than or equal to 1"),
    ({"sweep": [{"kind": "cube", "values": {"product.price": [20.0]}}]}, "sweep[0].kind",
     "'grid'"),
    ({"set": {"simulation.seed": 3}}, "set.simulation.seed", "cannot be overridden"),
    ({"variants": [{"name": "a", "set": {"product.price": 3.0}}],
      "sweep": [{"kind": "grid", "values": {"product.price": [20.0, 30.0]}}]},
     "variants.a.set.product.price", "cannot also set it"),
    ({"sweep": [{"kind": "grid", "values": {"product.price": [20.0]}},
                {"kind": "grid", "values": {"product.price": [30.0]}}]},
     "sweep[1].product.price", "already swept"),
    ({"sweep": [{"kind": "zip", "name": "variant", "values": {"product.price": [20.0]}}]},
     "sweep", "reserved"),
    ({"sweep": [{"kind": "zip", "name": "s", "values": {"product.price": [20.0]}},
                {"kind": "lhs", "name": "s", "samples": 2, "ranges": {"product.unit_cost": [1.0, 2.0]}}]},
     "sweep", "two axes"),
    ({"sweep": [{"kind": "zip", "name": "product.unit_cost", "values": {"product.price": [20.0]}},
                {"kind": "grid", "values": {"product.unit_cost": [1.0, 2.0]}}]},
     "sweep", "two axes"),
    ({"sweep": [{"kind": "zip", "name": "day", "values": {"product.price": [20.0]}}]},
     "sweep", "reserved"),
    ({"objective": "happiness"}, "objective", "Input should be"),
    ({"objective": {"metric": "cac", "goal": "up"}}, "objective.goal", "Input should be"),
    ({"outputs": {"variables": "some"}}, "outputs.variables", ""),
])
def test_bad_experiments_name_the_file_and_field(data, field, words):
    err = error_of(data)
    assert err.source == SRC
    assert err.field == field
    assert words in err.message
    assert str(err).startswith(f"{SRC}: {field}" if field else SRC)


def test_a_combination_that_breaks_a_cross_field_rule_is_named():
    err = error_of({"sweep": [{"kind": "grid", "values": {
        "channels.search.launch_day": [0, 50], "channels.search.end_day": [30, 100]}}]})
    assert "end_day before launch_day" in err.message
    assert "channels.search.launch_day=50, channels.search.end_day=30" in err.message


def test_load_experiment_reads_the_base_relative_to_the_file(tmp_path):
    (tmp_path / "e.toml").write_text(
        f'name = "t"\nbase = "{DEFAULT}"\nreplicates = 2\n[[variants]]\nname = "a"\n'
        '[variants.set]\nchannels.search.daily_budget = 10\n')
    exp = load_experiment(tmp_path / "e.toml")
    assert exp.name == "t" and exp.text.startswith('name = "t"')
    assert len(expand_runs(exp)) == 2
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.toml").write_text(DEFAULT.read_text())
    (tmp_path / "sub" / "e.toml").write_text('base = "base.toml"\n')
    assert load_experiment(tmp_path / "sub" / "e.toml").base.name == "default"


@pytest.mark.parametrize("text, words", [
    ('base = "nowhere.toml"\n', "base: scenario file"),
    ("base = [\n", "malformed TOML"),
    ('replicates = 2\n', "base: required field missing"),
])
def test_bad_experiment_files(tmp_path, text, words):
    path = tmp_path / "e.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_experiment(path)
    assert str(info.value).startswith(str(path))
    assert words in str(info.value)


def test_missing_experiment_file(tmp_path):
    with pytest.raises(ScenarioError, match="file not found"):
        load_experiment(tmp_path / "nope.toml")


# -- assumptions: [[uncertain]] -----------------------------------------------------------

UNCERTAIN = [
    {"path": "channels.paid_social.effects.awareness", "distribution": "uniform",
     "low": 0.01, "high": 0.05},
    {"path": "product.unit_cost", "distribution": "triangular", "low": 8.0, "mode": 9.0,
     "high": 12.0},
    {"path": "health.decay", "distribution": "normal", "mean": 0.002, "sd": 0.0005,
     "low": 0.0},
    {"path": "word_of_mouth.q", "distribution": "lognormal", "median": 0.05, "sigma": 0.5},
]
DECIDED = {**GRID, "replicates": 3, "draws": 8, "uncertain": UNCERTAIN}


def test_assumptions_map_the_unit_interval_onto_their_distributions():
    from scipy import stats

    exp = make({"uncertain": UNCERTAIN})
    uniform, tri, normal, lognormal = exp.assumptions
    u = np.array([0.0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(uniform.value(u), [0.01, 0.02, 0.03, 0.05])
    np.testing.assert_allclose(tri.value(u), stats.triang.ppf(u, 1 / 4, loc=8, scale=4))
    # a normal cut at low = 0 (below it: 0.00003 of the mass) and at its 99.5% quantile
    lo = stats.norm.cdf(0, 0.002, 0.0005)
    np.testing.assert_allclose(normal.value(u), stats.norm.ppf(lo + u * (0.995 - lo), 0.002,
                                                                0.0005), atol=1e-12)
    assert normal.design_range[0] == 0.0
    # a lognormal over its central 99%, its median in the middle
    assert lognormal.value(0.5) == pytest.approx(0.05)
    np.testing.assert_allclose(lognormal.design_range, stats.lognorm.ppf([0.005, 0.995], 0.5,
                                                                         scale=0.05))
    assert uniform.describe() == "uniform(0.01, 0.05)"
    assert lognormal.describe() == "lognormal(median 0.05, sigma 0.5)"


def test_every_decision_runs_on_the_same_draws_and_seeds():
    plan = expand(make(DECIDED))
    assert plan.dims == (VARIANT, "channels.search.daily_budget", "product.price", "draw",
                         REPLICATE)
    assert plan.shape == (2, 3, 2, 8, 3) and len(plan.runs) == 2 * 3 * 2 * 8 * 3
    by_cell: dict = {}
    for run in plan.runs:
        draw = run.labels["draw"]
        assumed = {p: run.overrides[p] for p in (u["path"] for u in UNCERTAIN)}
        by_cell.setdefault((draw, run.replicate), set()).add(
            (run.seed, tuple(sorted(assumed.items()))))
    # one seed and one set of assumption values per (draw, replicate), whatever the decision
    assert all(len(v) == 1 for v in by_cell.values())
    seeds = [next(iter(v))[0] for v in by_cell.values()]
    assert len(set(seeds)) == 8 * 3  # each draw its own replicates
    assert np.array(plan.draw_seeds).shape == (8, 3)


def test_draws_are_a_latin_hypercube_over_the_quantiles():
    exp = make({"uncertain": UNCERTAIN, "draws": 10, "seed": 11})
    plan = expand(exp)
    draw = plan.axes[-1]
    awareness = np.array(draw.params["channels.paid_social.effects.awareness"])
    strata = np.floor((awareness - 0.01) / 0.04 * 10).astype(int)
    assert sorted(strata) == list(range(10))  # one draw in each tenth of the range
    again = expand(make({"uncertain": UNCERTAIN, "draws": 10, "seed": 11})).axes[-1]
    assert again.params == draw.params
    other = expand(make({"uncertain": UNCERTAIN, "draws": 10, "seed": 12})).axes[-1]
    assert other.params != draw.params
    with_more = make({"uncertain": UNCERTAIN, "draws": 10, "seed": 11}).with_size(draws=4,
                                                                                  seed=3)
    assert len(expand(with_more).axes[-1]) == 4 and with_more.spec.seed == 3


def test_no_uncertain_no_draw_axis():
    plan = expand(make(GRID))
    assert "draw" not in plan.dims and plan.draw_seeds is None
    assert make({"uncertain": UNCERTAIN}).spec.n_draws == 8  # the default


def fake_posterior(path, n=50):
    """A posterior.nc as distsim calibrate writes it: two correlated parameters."""
    import xarray as xr

    rng = np.random.default_rng(0)
    x = rng.uniform(0.01, 0.05, n)
    ds = xr.Dataset({"channels.paid_social.effects.awareness": ("sample", x),
                     "segments.casual.purchase_rate.mean_days": ("sample", 40.0 + 1000 * x),
                     "epsilon": ("generation", [2.0, 1.0])},
                    coords={"sample": np.arange(n)}, attrs={"kind": "calibration"})
    from simulation.io import write_netcdf

    write_netcdf(ds, path)
    return ds


def test_posterior_draws_are_whole_rows(tmp_path):
    post = fake_posterior(tmp_path / "posterior.nc")
    data = {"base": "unused.toml", "draws": 12, "uncertain": [{"posterior": "posterior.nc"}]}
    exp = experiment_from_dict(data, source=SRC, root=tmp_path, base=BASE)
    assert [a.path for a in exp.assumptions] == ["channels.paid_social.effects.awareness",
                                                 "segments.casual.purchase_rate.mean_days"]
    draw = expand(exp).axes[-1]
    x = np.array(draw.params["channels.paid_social.effects.awareness"])
    y = np.array(draw.params["segments.casual.purchase_rate.mean_days"])
    np.testing.assert_allclose(y, 40.0 + 1000 * x)  # the correlation kept: rows, not marginals
    assert set(x) <= set(post["channels.paid_social.effects.awareness"].values)
    assert len(set(x)) == 12  # without replacement while there are rows enough
    one = experiment_from_dict({**data, "uncertain": [{"posterior": "posterior.nc",
                                "parameters": ["segments.casual.purchase_rate.mean_days"]}]},
                               source=SRC, root=tmp_path, base=BASE)
    assert [a.path for a in one.assumptions] == ["segments.casual.purchase_rate.mean_days"]


@pytest.mark.parametrize("uncertain, extra, field, words", [
    ([{"path": "product.price", "distribution": "uniform", "low": 5.0}], {},
     "uncertain[0]", "needs 'high'"),
    ([{"path": "product.price", "distribution": "uniform", "low": 5.0, "high": 9.0,
       "sd": 1.0}], {}, "uncertain[0]", "not sd"),
    ([{"path": "product.price", "distribution": "beta", "low": 5.0, "high": 9.0}], {},
     "uncertain[0].distribution", "Input should be"),
    ([{"path": "product.price", "distribution": "triangular", "low": 5.0, "mode": 10.0,
       "high": 9.0}], {}, "uncertain[0]", "mode"),
    ([{"path": "product.price", "distribution": "uniform", "low": -5.0, "high": 9.0}], {},
     "uncertain[0]", "greater than 0"),
    ([{"path": "product.pirce", "distribution": "uniform", "low": 5.0, "high": 9.0}], {},
     "uncertain[0]", "unknown key"),
    ([{"path": "channels.paid_social.daily_budget", "distribution": "uniform", "low": 5.0,
       "high": 9.0}], {"variants": [{"name": "a", "set": {
           "channels.paid_social.daily_budget": 3.0}}]},
     "uncertain[0]", "is a decision in variant 'a'"),
    ([{"path": "product.price", "distribution": "uniform", "low": 5.0, "high": 9.0}],
     {"sweep": [{"kind": "grid", "values": {"product.price": [20.0, 30.0]}}]},
     "uncertain[0]", "either decided"),
    ([{"path": "simulation.seed", "distribution": "uniform", "low": 5.0, "high": 9.0}], {},
     "uncertain[0]", "not an assumption"),
    ([{"posterior": "p.nc", "distribution": "uniform"}], {}, "uncertain[0]",
     "takes 'parameters' only"),
    ([{"posterior": "missing.nc"}], {}, "uncertain[0].posterior", "not found"),
    ([], {"draws": 4}, "", "'draws' goes with [[uncertain]]"),
])
def test_bad_assumptions_name_the_field(uncertain, extra, field, words):
    err = error_of({"uncertain": uncertain, **extra})
    assert err.field == field, err
    assert words in err.message, err


def test_a_posterior_parameter_that_is_not_there_is_named(tmp_path):
    fake_posterior(tmp_path / "posterior.nc")
    data = {"base": "unused.toml", "uncertain": [{"posterior": "posterior.nc",
                                                  "parameters": ["product.price"]}]}
    with pytest.raises(ScenarioError, match="'product.price' is not a free parameter") as info:
        experiment_from_dict(data, source=SRC, root=tmp_path, base=BASE)
    assert info.value.field == "uncertain[0].parameters"
    (tmp_path / "other.nc").write_bytes((tmp_path / "posterior.nc").read_bytes()[:100])
    with pytest.raises(ScenarioError, match="not a readable posterior"):
        experiment_from_dict({**data, "uncertain": [{"posterior": "other.nc"}]}, source=SRC,
                             root=tmp_path, base=BASE)
