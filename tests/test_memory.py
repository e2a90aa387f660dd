"""The memory a run needs is estimated before it starts; a run that would not fit is
refused in one line, with nothing written."""

from __future__ import annotations

import os

import pytest
from helpers import DEFAULT, EXPERIMENTS, assert_one_clear_line, run_cli

import simulation
from simulation import memory
from simulation.scenario import resolve_size
from simulation.state import BYTES_PER_CUSTOMER


def test_the_estimate_grows_with_customers_and_backend():
    sc = simulation.load_scenario(DEFAULT)
    small, big = (memory.run_bytes(resolve_size(sc, n, 365)) for n in (1_000_000, 2_000_000))
    per_customer = (big - small) / 1_000_000
    assert BYTES_PER_CUSTOMER <= per_customer < 4 * BYTES_PER_CUSTOMER
    mesa = memory.run_bytes(resolve_size(sc, 1_000_000, 365), "mesa")
    assert mesa > small + 1_000_000 * 1_000
    # the documented size limit at numba's 55 bytes a customer: tens of gigabytes
    assert memory.run_bytes(resolve_size(sc, 200_000_000, 1)) > 10 * 2**30


def test_a_run_that_does_not_fit_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 500 * 2**20)
    out = tmp_path / "r.nc"
    rc, _, err = run_cli(["run", DEFAULT, "--agents", "2000000", "--days", "30",
                          "--out", out])
    assert rc == 2
    assert_one_clear_line(err, "memory", "--agents")
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_counts_its_runs_at_once(tmp_path, monkeypatch):
    sc = simulation.load_scenario(DEFAULT)
    one = memory.run_bytes(resolve_size(sc, 20_000, 30))
    monkeypatch.setattr(memory, "available_bytes", lambda: int(1.5 * one))
    experiment = next(p for p in EXPERIMENTS if p.stem == "scaling_strategies")
    saved = dict(os.environ)  # the sweep command sets the thread caps of its workers
    try:
        rc, _, err = run_cli(["sweep", experiment, "--agents", "20000", "--days", "30",
                              "--jobs", "2", "--out", tmp_path / "sw"])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert rc == 2
    assert_one_clear_line(err, "2 run(s) at once", "--jobs")
    assert not (tmp_path / "sw").exists()


def test_unknown_available_memory_does_not_block(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: None)
    memory.check(10**15, "anything")
    with pytest.raises(simulation.ScenarioError):
        monkeypatch.setattr(memory, "available_bytes", lambda: 10)
        memory.check(11, "a run")
