"""distsim calibrate: pyabc's ABC-SMC against closed forms, exact resumes, the figures read
off a result, bad input, and a reduced identifiability check on the model itself.

The fit is checked first on toy simulators whose posterior is known in closed form
(Gaussian observations of a location: the posterior is the likelihood under a flat
prior), then on the model: targets it made at known values must be found again
(``simulation/calibration/synthetic.py``), narrowly, and the calibrated scenario must
reproduce them.

pyabc spends about half a millisecond of its own per proposal and a fraction of a second
per generation on its database (the toy simulator costs nothing), so the toy fits are
smaller than the hand-written ABC-SMC's were: the Gaussian toy stops at a tolerance of
0.7 sd and is compared with the closed form of the ABC posterior at that tolerance, in
standard errors of the population's effective sample size.
"""

from __future__ import annotations

import logging
import tomllib

import numpy as np
import pytest
import xarray as xr
from helpers import PNG_MAGIC, ROOT, assert_one_clear_line, run_cli

import simulation
from simulation.calibration.fit import (
    Problem,
    create,
    last_population,
    read_state,
    resample,
    run_fit,
)
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
    """The toy simulator: one evaluation, from its own seed. It travels pickled (by
    reference to this class), so the kill is a class attribute: ``Toy.kill_at`` raises
    KeyboardInterrupt at that evaluation of the process (a kill mid-generation)."""

    calls = 0
    kill_at: int | None = None

    def __call__(self, values, seeds):
        Toy.calls += 1
        if Toy.calls == Toy.kill_at:
            raise KeyboardInterrupt
        noise = np.random.default_rng(int(seeds[0])).standard_normal(2)
        return np.array([values[0] + noise[0], values[1] + 0.2 * noise[1]])


def _fit(db, settings, seed, budget=100_000):
    """A toy fit in a new database ``db``: (problem, state)."""
    problem = _toy_problem()
    create(db, problem, settings, "toy", 1)
    return problem, run_fit(problem, settings, Toy(), db, seed=seed, budget=budget)


def _history(db):
    """Every generation's particles, weights and tolerance, as the database holds them."""
    from simulation.calibration.fit import pyabc, url

    history = pyabc.History(url(db), create=False)
    out = []
    for t in range(history.max_t + 1):
        frame, w = history.get_distribution(m=0, t=t)
        out.append((frame.to_numpy(), w))
    pops = history.get_all_populations()
    return out, pops[pops.t >= 0].epsilon.tolist(), pops[pops.t >= 0].samples.tolist()


def _abc_posterior(epsilon: float, n: int = 500):
    """Means and sds of (a, b) under the toy's ABC posterior at tolerance ``epsilon``:
    prior x P(distance <= epsilon), where the squared misses in sds add up to a
    noncentral chi-square with 2 degrees of freedom (distance^2 = their mean), on a grid
    of a and log b (both uniform under the prior)."""
    from scipy import stats

    a = np.linspace(-5.0, 5.0, n)[:, None]
    b = np.exp(np.linspace(np.log(0.1), np.log(10.0), n))[None, :]
    p = stats.ncx2.cdf(2 * epsilon ** 2, 2, (a - 1.3) ** 2 + ((b - 2.0) / 0.2) ** 2)
    p /= p.sum()
    mean = np.array([(p * a).sum(), (p * b).sum()])
    sd = np.sqrt([(p * (a - mean[0]) ** 2).sum(), (p * (b - mean[1]) ** 2).sum()])
    return mean, sd


def test_the_fit_finds_the_closed_form_posterior_of_a_gaussian_location(tmp_path):
    settings = FitSettings(population=200, generations=12, epsilon=0.7)
    problem, state = _fit(tmp_path / "fit.db", settings, seed=1)
    assert state.stopped == "epsilon"
    tolerances = [g.epsilon for g in state.generations]
    assert tolerances == sorted(tolerances, reverse=True) and tolerances[-1] == 0.7
    z, w = last_population(tmp_path / "fit.db", problem)
    x = problem.values(z)
    mean = w @ x
    sd = np.sqrt(w @ (x - mean) ** 2)
    ess = state.generations[-1].ess
    assert ess > 150
    exact_mean, exact_sd = _abc_posterior(0.7)  # a: 1.30 and 1.11; b: 1.97 and 0.22
    assert np.all(np.abs(mean - exact_mean) < 4 * exact_sd / np.sqrt(ess)), (mean, ess)
    assert np.all(np.abs(sd / exact_sd - 1) < 4 / np.sqrt(2 * ess)), (sd, ess)


def test_a_killed_fit_resumes_to_exactly_the_uninterrupted_posterior(tmp_path, monkeypatch):
    """pyabc keeps the finished generations; every generation starts from the database
    and draws from generators seeded by (seed, generation, proposal), so the resumed fit
    redoes the generation in progress and is bit for bit the uninterrupted one."""
    settings = FitSettings(population=30, generations=3, epsilon=0.5)
    _fit(tmp_path / "whole.db", settings, seed=5)
    whole, tolerances, samples = _history(tmp_path / "whole.db")
    monkeypatch.setattr(Toy, "calls", 0)
    monkeypatch.setattr(Toy, "kill_at", sum(samples[:2]) + 10)  # in generation 2
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "cut.db", settings, seed=5)
    assert len(_history(tmp_path / "cut.db")[0]) == 2  # generations 0 and 1 were kept
    monkeypatch.setattr(Toy, "kill_at", None)
    problem = _toy_problem()
    resumed = run_fit(problem, settings, Toy(), tmp_path / "cut.db", seed=5, budget=100_000)
    again, tolerances_again, samples_again = _history(tmp_path / "cut.db")
    assert resumed.evaluations == sum(samples) and samples_again == samples
    assert tolerances_again == tolerances
    for (z1, w1), (z2, w2) in zip(whole, again, strict=True):
        assert np.array_equal(z1, z2) and np.array_equal(w1, w2)
    assert logging.getLogger("ABC").getEffectiveLevel() > logging.ERROR  # pyabc is quiet


def test_the_budget_keeps_the_last_whole_generation(tmp_path):
    settings = FitSettings(population=20, generations=10, epsilon=0.1)
    problem, state = _fit(tmp_path / "fit.db", settings, seed=2, budget=120)
    assert state.stopped == "budget"
    assert state.evaluations <= 120
    assert all(g.accepted == 20 for g in state.generations)
    done = len(state.generations)
    assert read_state(tmp_path / "fit.db").evaluations == state.evaluations  # unfinished too
    more = run_fit(problem, settings, Toy(), tmp_path / "fit.db", seed=2, budget=240)
    assert more.evaluations > 120 and len(more.generations) > done  # --resume, more


def test_resampling_keeps_the_weighted_mean():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(400, 2))
    w = rng.random(400) ** 3
    w /= w.sum()
    x = resample(z, w, np.random.default_rng(2), 400)
    assert x.shape == (400, 2)
    assert np.allclose(x.mean(axis=0), w @ z, atol=0.03)
    assert np.allclose(x.std(axis=0), np.sqrt(w @ (z - w @ z) ** 2), rtol=0.05)


def test_priors_draw_within_their_ranges_and_know_their_quantiles():
    rng = np.random.default_rng(0)
    log = Prior(path="x", prior="log_uniform", low=1.0, high=100.0)
    x = log.value(log.distribution().rvs(size=20_000, random_state=rng))
    assert x.min() >= 1.0 and x.max() <= 100.0
    assert abs(np.median(x) - 10.0) < 0.5 and log.median() == pytest.approx(10.0)
    cut = Prior(path="x", prior="normal", mean=0.0, sd=1.0, low=0.0)
    z = cut.distribution().rvs(size=20_000, random_state=rng)
    assert z.min() >= 0.0 and abs(z.mean() - np.sqrt(2 / np.pi)) < 0.02  # half-normal
    assert np.isneginf(cut.distribution().logpdf(-0.1))
    assert cut.quantile(0.5) == pytest.approx(0.6744897501960817)  # the half-normal median


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
    real = evaluate.Evaluator.map

    def killed(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # generation 1's first round: generation 0 is in the database
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(evaluate.Evaluator, "map", killed)
    out = tmp_path / "cut"
    rc, _, err = run_cli([*args, "--out", out])
    assert rc == 130
    assert sorted(p.name for p in out.iterdir()) == ["history.db"]  # no output yet
    rc, _, err = run_cli([*args, "--out", out])
    assert rc == 2 and "--resume" in err
    rc, _, err = run_cli([*args, "--out", out, "--resume", "--seed", "9"])
    assert rc == 2
    assert_one_clear_line(err, "history.db", "another scenario")
    monkeypatch.setattr(evaluate.Evaluator, "map", real)
    rc, _, err = run_cli([*args, "--out", out, "--resume"])
    assert rc == 0 and err == ""  # nothing of pyabc's logging or warnings on the console
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
    """The reduced identifiability check (the benchmark does four and more parameters): at
    most 500 evaluations on two worker processes (the posterior is the one process's: see the
    test below), in make test, not make test-fast."""
    scenario = simulation.load_scenario(MARKET)
    observed = [{"variable": "conversions", "channel": "social"},
                {"variable": "conversions", "channel": "search"},
                {"variable": "orders_per_customer", "bins": 4, "cohorts": [0, 5]},
                {"variable": "orders"}]
    text = synthetic_targets(scenario, TRUTH, observed, PRIORS,
                             {"population": 40, "generations": 4, "replicates": 1},
                             runs=8, relative_sd=0.03)
    targets = tmp_path / "targets.toml"
    targets.write_text(text)
    out = tmp_path / "cal"
    rc, stdout, err = run_cli(["calibrate", MARKET, "--targets", targets, "--out", out,
                               "--evaluations", "500", "--jobs", "2"])
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
