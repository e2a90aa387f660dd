"""``distsim sensitivity``: SALib designs over an experiment's [[uncertain]] parameters,
run on the sweep runner on common seeds.

The contract (docs/contracts.md): ``DIR/sensitivity.nc`` with indices over
(``parameter``, ``outcome``). The test scenario has a parameter that cannot matter (the
commission of a channel that is switched off) and one that dominates profit (the unit
cost): under common random numbers every elementary effect of the first is exactly 0,
and the second ranks first.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from helpers import DEFAULT, assert_one_clear_line, assert_png, run_cli

from simulation.io import read_netcdf
from simulation.sensitivity.design import analyse, design, run_design
from simulation.sweep.experiment import OUTCOMES, load_experiment

INERT = "channels.marketplace.commission"
DOMINANT = "product.unit_cost"

SCREEN = f"""
name = "screen"
base = "{DEFAULT}"
seed = 3
replicates = 2
agents = 2000
days = 30

[set]
initial.considering = 0.02          # prospects on day 0: a month wins customers
channels.marketplace.enabled = false

[[uncertain]]                       # cannot matter: the marketplace is off
path = "{INERT}"
distribution = "uniform"
low = 0.05
high = 0.3

[[uncertain]]                       # dominates profit
path = "{DOMINANT}"
distribution = "triangular"
low = 5.0
mode = 9.0
high = 15.0

[[uncertain]]
path = "forgetting.aware"
distribution = "normal"
mean = 0.01
sd = 0.003
low = 0.0
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def screen(tmp_path_factory):
    return write(tmp_path_factory.mktemp("sens") / "screen.toml", SCREEN)


@pytest.fixture(scope="module")
def morris(screen, tmp_path_factory):
    out = tmp_path_factory.mktemp("morris") / "out"
    rc, stdout, stderr = run_cli(["sensitivity", str(screen), "--method", "morris",
                                  "--samples", "2", "--threads", "1", "--out", str(out)])
    assert rc == 0, stderr
    return out, stdout


def test_inert_parameter_has_mu_star_exactly_0_and_the_dominant_ranks_first(morris):
    out, stdout = morris
    ds = read_netcdf(out / "sensitivity.nc")
    assert ds.attrs["kind"] == "sensitivity" and ds.attrs["method"] == "morris"
    assert ds.mu_star.dims == ("parameter", "outcome")
    assert list(ds.parameter.values) == [INERT, DOMINANT, "forgetting.aware"]
    assert list(ds.outcome.values) == list(OUTCOMES)
    # common random numbers: every run of every row on the same seeds, so a parameter
    # that changes nothing moves no outcome by even a cent
    inert = ds.sel(parameter=INERT)
    assert (inert.mu_star.fillna(0).values == 0).all()
    assert float(inert.mu_star.sel(outcome="profit")) == 0.0
    assert int(ds["rank"].sel(parameter=DOMINANT, outcome="profit")) == 1
    assert int(ds["rank"].sel(parameter=INERT, outcome="profit")) == 3
    # a dearer unit lowers profit in every step of the design (mu = -mu*)
    dom = ds.sel(parameter=DOMINANT, outcome="profit")
    assert float(dom.mu) == pytest.approx(-float(dom.mu_star))
    assert ds.attrs["survivors"].split(",")[0] == DOMINANT and INERT not in ds.attrs["survivors"]
    # 2 trajectories x (3 + 1) rows, 2 replicates each; the response is their mean
    assert ds.sizes["row"] == 8 and ds.sizes["replicate"] == 2
    np.testing.assert_array_equal(ds.response, ds.runs.mean("replicate"))
    assert float(ds.design.sel(parameter=DOMINANT).min()) >= 5.0
    assert float(ds.design.sel(parameter=DOMINANT).max()) <= 15.0
    assert_png(out / "sensitivity.png")
    assert (out / "sensitivity.csv").read_text().startswith("parameter,outcome,mu_star")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["runs_done"] == 16
    assert "survive the screening" in stdout and "--method sobol --parameters" in stdout


def test_every_row_of_a_replicate_runs_on_its_seed(screen):
    from simulation.sensitivity.design import design_plan

    experiment = load_experiment(screen)
    d = design(experiment, "morris", 2)
    plan = design_plan(experiment, d)
    seeds = {}
    for run in plan.runs:
        seeds.setdefault(run.replicate, set()).add(run.seed)
    assert [len(s) for s in seeds.values()] == [1, 1]
    assert seeds[0] != seeds[1]
    assert d.unit.shape == (8, 3) and ((d.unit >= 0) & (d.unit <= 1)).all()


def test_sobol_indices_of_a_known_function(screen):
    """Sobol on a closed form (no simulation): y = 10 x1 + x2 + 0 x0 over the design's
    unit values gives S1 near 100/101 and 1/101, an inert factor's ST near 0."""
    experiment = load_experiment(screen)
    d = design(experiment, "sobol", 256)
    assert d.rows == 256 * (3 + 2)
    u = d.unit
    y = 10 * u[:, 1] + u[:, 2]
    runs = np.repeat(y[:, None, None], len(OUTCOMES), axis=2)
    idx = analyse(d, runs)
    s1, st = idx["S1"][:, 0], idx["ST"][:, 0]
    assert abs(s1[0]) < 0.02 and abs(st[0]) < 0.02
    assert s1[1] == pytest.approx(100 / 101, abs=0.05)
    assert st[2] == pytest.approx(1 / 101, abs=0.02)


def test_a_killed_design_resumes_to_the_same_indices(screen, morris, tmp_path):
    reference = read_netcdf(morris[0] / "sensitivity.nc")
    out = tmp_path / "cut"
    experiment = load_experiment(screen)
    d = design(experiment, "morris", 2)

    def stop_after_five(done, total):
        if done >= 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_design(experiment, d, out, threads=1, progress=stop_after_five)
    assert len(list((out / "runs").glob("*.nc"))) == 5
    rc, _, err = run_cli(["sensitivity", str(screen), "--samples", "2", "--threads", "1",
                          "--out", str(out)])
    assert rc == 2 and "--resume" in err
    rc, stdout, _ = run_cli(["sensitivity", str(screen), "--samples", "2", "--threads", "1",
                             "--out", str(out), "--resume"])
    assert rc == 0 and "11 run(s) computed, 5 reused" in stdout
    xr.testing.assert_identical(read_netcdf(out / "sensitivity.nc"), reference)


@pytest.mark.parametrize("extra, args, words", [
    ("", ["--method", "sobol", "--samples", "100"], "--samples: Sobol's base sample must "
     "be a power of two"),
    ("", ["--parameters", "product.price"], "--parameters: 'product.price' is not uncertain"),
    ("", ["--variant", "bold"], "--variant: 'bold' is not a variant"),
    ("", ["--agents", "0"], "--agents"),
    ("[[uncertain]]\npath = \"product.price\"\ndistribution = \"uniform\"\nlow = 5\n",
     [], "uncertain[3]: a uniform distribution needs 'high'"),
    ("[[uncertain]]\npath = \"product.unit_cost\"\ndistribution = \"uniform\"\nlow = 5\n"
     "high = 6\n", [], "uncertain[3]: 'product.unit_cost' is already uncertain"),
    ("[[uncertain]]\npath = \"product.return_rate\"\ndistribution = \"uniform\"\nlow = 0.5\n"
     "high = 2\n", [], "uncertain[3]"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, extra, args, words):
    exp = write(tmp_path / "bad.toml", SCREEN + extra)
    out = tmp_path / "out"
    rc, _, err = run_cli(["sensitivity", str(exp), "--out", str(out), *args])
    assert rc == 2
    assert_one_clear_line(err, words)
    assert not out.exists()


def test_an_experiment_without_assumptions_is_refused(tmp_path):
    exp = write(tmp_path / "none.toml", f'base = "{DEFAULT}"\n')
    rc, _, err = run_cli(["sensitivity", str(exp), "--out", str(tmp_path / "out")])
    assert rc == 2
    assert_one_clear_line(err, "uncertain", "at least one [[uncertain]]")
    assert not (tmp_path / "out").exists()

