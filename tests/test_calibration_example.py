"""The shipped calibration example (``calibration/``) is what its README says it is."""

import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import simulation
from simulation.calibration.targets import load_targets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import calibration_example as example  # noqa: E402


def test_the_targets_are_the_books_of_the_true_market():
    """Every KPI in the shipped targets is read off one run of the market at the true
    values (the run the example stands on), with the stated sd rule."""
    shipped = tomllib.loads(example.TARGETS.read_text())
    books = example.books(364)
    assert [o["name"] for o in shipped["observed"]] == [b["name"] for b in books]
    for o, b in zip(shipped["observed"], books, strict=True):
        np.testing.assert_allclose(o["value"], b["value"], rtol=1e-9, err_msg=o["name"])
        assert o["sd"] == pytest.approx([example.stated_sd(v) for v in o["value"]])
    assert shipped["parameters"] == example.PRIORS


def test_the_shipped_files_load_and_the_calibrated_scenario_runs():
    scenario = simulation.load_scenario(example.SCENARIO)
    targets = load_targets(example.TARGETS, scenario)
    assert [p.path for p in targets.parameters] == list(example.TRUTH)
    for p in targets.parameters:  # the truth is within the firm's priors
        assert p.quantile(0.0) < example.TRUTH[p.path] < p.quantile(1.0)
    calibrated = simulation.load_scenario(example.CALIBRATED)
    ds = simulation.run(calibrated, agents=1000, days=28)
    assert ds.customers.sum() > 0
