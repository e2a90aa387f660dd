"""distsim calibrate: the ABC-SMC against closed forms, exact resumes, the figures read off
a result, bad input, and a reduced identifiability check on the model itself.

The fit is checked first on toy simulators whose posterior is known in closed form
(Gaussian observations of a location: the posterior is the likelihood under a flat
prior), then on the model: targets it made at known values must be found again
(``simulation/calibration/synthetic.py``), narrowly, and the calibrated scenario must
reproduce them.
"""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
import xarray as xr
from helpers import PNG_MAGIC, ROOT, assert_one_clear_line, run_cli

import simulation
from simulation.calibration.fit import FitState, Problem, resample, run_fit
from simulation.calibration.priors import Prior
from simulation.calibration.synthetic import synthetic_targets
from simulation.calibration.targets import FitSettings, Observed, figure

MARKET = ROOT / "tests" / "data" / "calibration_market.toml"


# -- the fit on toy simulators ------------------------------------------------------------


def _toy_problem():
    """y1 = a + N(0, 1), y2 = b + N(0, 0.2), observed (1.3, 2.0); a ~ U(-5, 5),
    b ~ log-U(0.1, 10). Posterior: a ~ N(1.3, 1); b ∝ N(2.0, 0.2) / b, whose mean is
    about 2.0 - 0.2^2 / 2.0 = 1.98 and sd about 0.2."""
    priors = (Prior(path="a", prior="uniform", low=-5.0, high=5.0),
              Prior(path="b", prior="log_uniform", low=0.1, high=10.0))
    return Problem(priors, np.array([1.3, 2.0]), np.array([1.0, 0.2]), np.array([0, 1]))


class Toy:
    """The toy simulator, each row from its own seed; ``fail_at`` raises
    KeyboardInterrupt at that call (a kill in the middle of a round)."""

    def __init__(self, fail_at: int | None = None):
        self.calls = 0
        self.fail_at = fail_at

    def __call__(self, values, seeds, progress=None):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        out = np.empty((len(values), 2))
        for i, (v, s) in enumerate(zip(values, seeds, strict=True)):
            noise = np.random.default_rng(int(s[0])).standard_normal(2)
            out[i] = (v[0] + noise[0], v[1] + 0.2 * noise[1])
        return out


def test_the_fit_finds_the_closed_form_posterior_of_a_gaussian_location():
    problem = _toy_problem()
    settings = FitSettings(population=800, generations=12, epsilon=0.2)
    state = run_fit(problem, settings, Toy(), FitState("toy", 1), seed=1, budget=200_000)
    assert state.stopped in ("epsilon", "acceptance")
    tolerances = [g.epsilon for g in state.generations]
    assert tolerances == sorted(tolerances, reverse=True)
    draws = problem.values(resample(state.generations[-1], np.random.default_rng(0), 800))
    mean, sd = draws.mean(axis=0), draws.std(axis=0)
    assert abs(mean[0] - 1.3) < 0.12 and 0.85 < sd[0] < 1.15
    assert abs(mean[1] - 1.98) < 0.03 and 0.17 < sd[1] < 0.23


def test_a_killed_fit_resumes_to_exactly_the_uninterrupted_posterior():
    problem = _toy_problem()
    settings = FitSettings(population=100, generations=4, epsilon=0.5)
    whole = run_fit(problem, settings, Toy(), FitState("toy", 1), seed=5, budget=10_000)
    saved = []
    with pytest.raises(KeyboardInterrupt):  # killed in generation 2's second round or so
        run_fit(problem, settings, Toy(fail_at=4), FitState("toy", 1), seed=5,
                budget=10_000, save=lambda s: saved.append(s.to_bytes()))
    state = FitState.from_bytes(saved[-1])
    assert 0 < len(state.generations) < len(whole.generations)
    resumed = run_fit(problem, settings, Toy(), state, seed=5, budget=10_000)
    assert resumed.evaluations == whole.evaluations
    for a, b in zip(resumed.generations, whole.generations, strict=True):
        assert np.array_equal(a.z, b.z) and np.array_equal(a.weights, b.weights)
        assert a.epsilon == b.epsilon


def test_the_budget_keeps_the_last_whole_generation():
    problem = _toy_problem()
    settings = FitSettings(population=50, generations=10, epsilon=0.1)
    state = run_fit(problem, settings, Toy(), FitState("toy", 1), seed=2, budget=300)
    assert state.stopped == "budget"
    assert state.evaluations <= 300
    assert all(len(g.z) == 50 for g in state.generations)
    done = len(state.generations)
    more = run_fit(problem, settings, Toy(), state, seed=2, budget=600)  # --resume, more
    assert more.evaluations > 300 and len(more.generations) > done


def test_resampling_keeps_the_weighted_mean():
    problem = _toy_problem()
    state = run_fit(problem, FitSettings(population=400, generations=3), Toy(),
                    FitState("toy", 1), seed=3, budget=20_000)
    g = state.generations[-1]
    draws = resample(g, np.random.default_rng(1), 400)
    assert np.allclose(draws.mean(axis=0), g.weights @ g.z, atol=0.05)


def test_priors_draw_within_their_ranges_and_know_their_quantiles():
    rng = np.random.default_rng(0)
    log = Prior(path="x", prior="log_uniform", low=1.0, high=100.0)
    x = log.value(log.sample(rng, 20_000))
    assert x.min() >= 1.0 and x.max() <= 100.0
    assert abs(np.median(x) - 10.0) < 0.5 and log.median() == pytest.approx(10.0)
    cut = Prior(path="x", prior="normal", mean=0.0, sd=1.0, low=0.0)
    z = cut.sample(rng, 20_000)
    assert z.min() >= 0.0 and abs(z.mean() - np.sqrt(2 / np.pi)) < 0.02  # half-normal
    assert np.isneginf(cut.log_density(np.array([-0.1])))[0]


# -- figures read off a result -------------------------------------------------------------


@pytest.fixture(scope="module")
def market_run():
    return simulation.run(simulation.load_scenario(MARKET), seed=3)


def test_figures_of_a_run_add_up(market_run):
    ds = market_run
    total = figure(ds, Observed(variable="conversions", channel="social", value=1.0, sd=1.0))
    weekly = figure(ds, Observed(variable="conversions", channel="social", weekly=True,
                                 value=[1.0] * 12, sd=1.0))
    assert weekly.sum() == total[0] == ds.conversions.sel(channel="social").sum()
    hist = figure(ds, Observed(variable="orders_per_customer", value=[1.0] * 3, sd=1.0))
    full = ds.orders_per_customer.sum(("channel", "cohort_week"))
    assert hist[:2].tolist() == full[:2].values.tolist() and hist[2] == full[2:].sum()
    # every customer acquired in the run is in one bin, and the bins hold every order
    assert full.sum() == ds.conversions.sum()
    assert (full * full.orders_placed).sum() == ds.orders.sum()
    active = figure(ds, Observed(variable="stage_count", stage="active", days=[0, 41],
                                 value=1.0, sd=1.0))
    assert active[0] == ds.stage_count.sel(stage="active").isel(day=41)
    cac = figure(ds, Observed(variable="cac", channel="search", value=1.0, sd=1.0))
    assert cac[0] == pytest.approx(float(ds.cac.sel(channel="search")))


def test_the_reference_backend_counts_orders_per_customer_too():
    scenario = simulation.load_scenario(MARKET)
    ds = simulation.run(scenario, agents=400, days=42, seed=1, backend="mesa")
    full = ds.orders_per_customer.sum(("channel", "cohort_week"))
    assert full.sum() == ds.conversions.sum() > 0
    assert (full * full.orders_placed).sum() == ds.orders.sum()


# -- the command ----------------------------------------------------------------------------

TARGETS = """
[fit]
population = 10
generations = 2
replicates = 1
check_runs = 2

[[parameters]]
path = "channels.social.effects.awareness"
low = 0.02
high = 0.07

[[observed]]
variable = "conversions"
channel = "social"
value = 2700.0
sd = 200.0
"""


@pytest.mark.parametrize("change, needle", [
    (("value = 2700.0", "value = 2700.0\ncolour = 1"), "unknown key"),
    (('channel = "social"', 'channel = "tv"'), "no channel named 'tv'"),
    (("channels.social.effects.awareness", "channels.social.effects.charm"), "no such field"),
    (("high = 0.07", "high = 1.5"), "not a valid scenario"),
    (("low = 0.02", 'prior = "log_uniform"\nlow = -1.0'), "needs low > 0"),
    (('variable = "conversions"', 'variable = "happiness"'), "neither a result variable"),
    (("sd = 200.0", "sd = 0.0"), "sd: must be > 0"),
    (("value = 2700.0", "weekly = true\nvalue = [1.0, 2.0]"), "2 values for the 12 whole"),
    (("replicates = 1", "replicates = 0"), "fit.replicates"),
])
def test_bad_targets_are_one_line_and_write_nothing(tmp_path, change, needle):
    targets = tmp_path / "targets.toml"
    targets.write_text(TARGETS.replace(*change))
    out = tmp_path / "cal"
    rc, _, err = run_cli(["calibrate", MARKET, "--targets", targets, "--out", out])
    assert rc == 2
    assert_one_clear_line(err, needle)
    assert not out.exists()


def test_a_calibration_killed_mid_fit_resumes_to_the_same_outputs(tmp_path, monkeypatch):
    from simulation.calibration import evaluate

    targets = tmp_path / "targets.toml"
    targets.write_text(TARGETS)
    args = ["calibrate", MARKET, "--targets", targets, "--agents", "500", "--quiet"]
    rc, _, _ = run_cli([*args, "--out", tmp_path / "whole"])
    assert rc == 0
    calls = {"n": 0}
    real = evaluate.Evaluator.__call__

    def killed(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # generation 1's first round: generation 0 is checkpointed
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(evaluate.Evaluator, "__call__", killed)
    out = tmp_path / "cut"
    rc, _, err = run_cli([*args, "--out", out])
    assert rc == 130
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz"]  # no output yet
    rc, _, err = run_cli([*args, "--out", out])
    assert rc == 2 and "--resume" in err
    monkeypatch.setattr(evaluate.Evaluator, "__call__", real)
    rc, _, _ = run_cli([*args, "--out", out, "--resume"])
    assert rc == 0
    with xr.open_dataset(tmp_path / "whole" / "posterior.nc", engine="h5netcdf") as a, \
            xr.open_dataset(out / "posterior.nc", engine="h5netcdf") as b:
        assert a.attrs["total_evaluations"] == b.attrs["total_evaluations"]
        xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    assert (out / "calibrated.toml").read_text() == (tmp_path / "whole" /
                                                      "calibrated.toml").read_text()


TRUTH = {"channels.social.effects.awareness": 0.04,
         "segments.everyone.purchase_rate.mean_days": 20.0}
PRIORS = [  # at least +-50% of each true value, the truth off-centre
    {"path": "channels.social.effects.awareness", "prior": "uniform", "low": 0.02,
     "high": 0.07},
    {"path": "segments.everyone.purchase_rate.mean_days", "prior": "log_uniform",
     "low": 8.0, "high": 40.0},
]


@pytest.mark.slow
def test_two_parameters_the_model_made_are_found_again(tmp_path):
    """The reduced identifiability check (the benchmark does four parameters): about 500
    evaluations on two worker processes (the posterior is the one process's: see the
    test below), in make test, not make test-fast."""
    scenario = simulation.load_scenario(MARKET)
    observed = [{"variable": "conversions", "channel": "social"},
                {"variable": "conversions", "channel": "search"},
                {"variable": "orders_per_customer", "bins": 4, "cohorts": [0, 5]},
                {"variable": "orders"}]
    text = synthetic_targets(scenario, TRUTH, observed, PRIORS,
                             {"population": 40, "generations": 5, "replicates": 1},
                             runs=8, relative_sd=0.03)
    targets = tmp_path / "targets.toml"
    targets.write_text(text)
    out = tmp_path / "cal"
    rc, stdout, err = run_cli(["calibrate", MARKET, "--targets", targets, "--out", out,
                               "--evaluations", "700", "--jobs", "2"])
    assert rc == 0, err
    post = xr.open_dataset(out / "posterior.nc", engine="h5netcdf").load()
    for p in PRIORS:
        draws = post[p["path"]]
        assert draws.dims == ("sample",) and draws.sizes["sample"] == 40
        lo, hi = np.quantile(draws, [0.05, 0.95])
        prior = Prior(**p)
        assert lo <= TRUTH[p["path"]] <= hi, (p["path"], lo, hi)
        assert hi - lo <= 0.5 * prior.width(), (p["path"], hi - lo, prior.width())
    assert np.all(np.abs(post.z) <= 2), post.z.values  # the calibrated scenario fits
    calibrated = simulation.load_scenario(out / "calibrated.toml")
    estimate = calibrated.channels[0].effects.awareness
    assert estimate == post["channels.social.effects.awareness"].attrs["estimate"]
    assert calibrated.market.size == scenario.market.size
    assert (out / "fit.png").read_bytes().startswith(PNG_MAGIC)
    table = (out / "fit.csv").read_text().splitlines()
    assert len(table) == 1 + 1 + 1 + 4 + 1
    assert "observed vs simulated" in stdout
    assert tomllib.loads(post.attrs["targets"]) == tomllib.loads(text)
    rc, _, err = run_cli(["report", out])  # distsim report DIR: the calibration's page
    assert rc == 0, err
    page = (out / "report.html").read_text()
    assert "Calibration report" in page and all(p["path"] in page for p in PRIORS)


@pytest.mark.slow
def test_workers_and_a_dask_cluster_give_the_posterior_of_one_process(tmp_path):
    from distributed import LocalCluster

    targets = tmp_path / "targets.toml"
    targets.write_text(TARGETS)
    args = ["calibrate", MARKET, "--targets", targets, "--agents", "500", "--quiet"]
    assert run_cli([*args, "--out", tmp_path / "one"])[0] == 0
    assert run_cli([*args, "--out", tmp_path / "jobs", "--jobs", "2"])[0] == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        rc, _, err = run_cli([*args, "--out", tmp_path / "dask", "--scheduler",
                              cluster.scheduler_address])
    assert rc == 0, err
    with xr.open_dataset(tmp_path / "one" / "posterior.nc", engine="h5netcdf") as one:
        for other in ("jobs", "dask"):
            with xr.open_dataset(tmp_path / other / "posterior.nc", engine="h5netcdf") as ds:
                xr.testing.assert_identical(one.drop_attrs(), ds.drop_attrs())
