"""Bad input and odd files, tried as a hostile user would: one clear line, exit 2,
nothing written. (The reliability issue's first part: bounded fields, odd files,
one-line flag errors, and the documented way to keep a channel off.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
from helpers import DEFAULT, ROOT, assert_one_clear_line, error_lines, run_cli, simulate

import simulation

Q = ["--agents", "2000", "--days", "30"]
POSITIONING = ROOT / "experiments" / "positioning.toml"


def refused(tmp_path, *args, needles=()):
    out = tmp_path / "r.nc"
    rc, _, err = run_cli(["run", *map(str, args), *Q, "--out", str(out)])
    assert rc == 2, err
    assert_one_clear_line(err, *needles)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("override, field", [
    ("channels.search.daily_budget=1e308", "daily_budget"),   # impressions would be infinite
    ("product.price=1e308", "price"),                        # revenue would be infinite
    ("product.price=nan", "price"),
    ("channels.search.launch_day=1_000_000_000_000", "launch_day"),
    ("channels.search.capacity=99999999999999999999", "capacity"),  # above 2**63 - 1
    ("channels.search.end_day=70000", "end_day"),
    ("segments.casual.churn_multiplier=inf", "churn_multiplier"),
    ("post_purchase.reminders.cycle_days=100000", "cycle_days"),
    ("channels.paid_social.schedule.ramp_days=100000", "ramp_days"),
])
def test_out_of_range_values_are_one_line_and_nothing_is_written(tmp_path, override, field):
    refused(tmp_path, DEFAULT, "--set", override, needles=(field,))


def test_guardrail_thresholds_must_be_finite(tmp_path):
    scenario = tmp_path / "s.toml"
    scenario.write_text(DEFAULT.read_text() + '\n[[guardrails]]\nchannel = "search"\n'
                        'metric = "cac"\nabove = nan\naction = "pause"\n')
    refused(tmp_path, scenario, needles=("above",))


@pytest.mark.parametrize("make", ["empty", "blank", "fifo", "devnull"])
def test_empty_and_special_files_are_refused(tmp_path, make):
    path = tmp_path / "s.toml"
    if make == "empty":
        path.write_text("")
    elif make == "blank":
        path.write_text("  \n\n")
    elif make == "fifo":
        os.mkfifo(path)  # reading it would hang
    else:
        path = "/dev/null"
    refused(tmp_path, path, needles=("empty",) if make in ("empty", "blank") else ())


@pytest.mark.parametrize("argv, needle", [
    (["run", str(DEFAULT), "--agents", "0"], "--agents"),
    (["run", str(DEFAULT), "--days", "-5"], "--days"),
    (["run", str(DEFAULT), "--backend", "gpu"], "--backend"),
    (["frobnicate"], "frobnicate"),
    (["run"], "scenario"),
])
def test_bad_flags_get_one_line(argv, needle):
    rc, _, err = run_cli(argv)
    assert rc == 2
    assert_one_clear_line(err, needle)


@pytest.mark.parametrize("backend", ["numba", "mesa"])
def test_a_disabled_channel_has_no_reach_and_no_cost(backend):
    sc = simulation.load_scenario(DEFAULT, ["channels.search.enabled=false",
                                            "channels.search.fixed_daily_cost=50"])
    ds, _ = simulate(sc, agents=3000, days=40, backend=backend)
    search = ds.sel(channel="search")
    for v in ("reached", "spend", "media_spend", "fixed_cost", "running", "conversions"):
        assert float(search[v].sum()) == 0, v
    # the others run as before
    assert float(ds.reached.sel(channel="paid_social").sum()) > 0


def test_disabled_channels_keep_the_others_draws():
    """A channel switched off changes nothing for the customers no one else reaches."""
    base = simulation.run(simulation.load_scenario(DEFAULT), agents=5000, days=30, seed=2)
    off = simulation.run(simulation.load_scenario(DEFAULT, ["channels.email.enabled=false"]),
                         agents=5000, days=30, seed=2)
    # paid social reaches the unaware, whom email does not: its daily reach is unchanged
    # until the stages differ; on the first day it is identical
    np.testing.assert_array_equal(base.reached.sel(channel="paid_social").isel(day=0),
                                  off.reached.sel(channel="paid_social").isel(day=0))
    assert float(off.reached.sel(channel="email").sum()) == 0


@pytest.mark.parametrize("override, needle", [
    ('segments=[{name="a",share=1.0}]', "segments"),
    ("channels=[]", "channels"),
    ("product.price=5.0\nunit_cost = 99", "one line"),
])
def test_overrides_that_would_lose_entries_or_text_are_refused(tmp_path, override, needle):
    refused(tmp_path, DEFAULT, "--set", override, needles=(needle,))


def test_a_table_value_merges_into_the_table():
    base = simulation.load_scenario(DEFAULT)
    sc = simulation.load_scenario(DEFAULT, ["product={price=5.0}"])
    assert sc.product.price == 5.0
    assert sc.product.model_dump(exclude={"price"}) == base.product.model_dump(exclude={"price"})
    nested = simulation.load_scenario(DEFAULT, ["post_purchase={reminders={enabled=true}}"])
    assert nested.post_purchase.reminders.enabled
    assert nested.post_purchase.opt_out_share == base.post_purchase.opt_out_share
    assert (nested.post_purchase.reminders.cycle_days == base.post_purchase.reminders.cycle_days)



# -- outputs: checked before the work, written all or nothing (cases 1-4) -------------


@pytest.fixture
def runs(monkeypatch):
    """Count the simulations a command starts (an output refused must stop it first)."""
    calls = []
    real = simulation.run

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(simulation, "run", counted)
    return calls


def free_space(monkeypatch, free: int) -> None:
    from simulation import outputs

    usage = shutil._ntuple_diskusage(1 << 50, 0, free)
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda path: usage)


def leftovers(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_short_disk_space_is_refused_before_simulating(tmp_path, monkeypatch, runs):
    free_space(monkeypatch, 100_000)
    rc, _, err = run_cli(["run", DEFAULT, *Q, "--out", tmp_path / "r.nc"])
    assert rc == 2 and not runs
    assert_one_clear_line(err, "--out", "disk space", "free")
    rc, _, err = run_cli(["sweep", POSITIONING, "--agents", "500", "--days", "10",
                          "--out", tmp_path / "sweep"])
    assert rc == 2
    assert_one_clear_line(err, "--out", "disk space")
    assert leftovers(tmp_path) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MB file system (root only: a tmpfs mount), removed afterwards."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip("a full disk needs a tmpfs mount (root); the write failure itself is "
                    "covered by test_cli.py's failing_writes tests")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_leaves_nothing(tiny_disk, monkeypatch):
    """Case 1: the HDF5 library used to crash the process (a segmentation fault) and leave
    a hidden temporary. The estimate is fooled here so that the write itself fails."""
    free_space(monkeypatch, 1 << 40)
    rc, _, err = run_cli(["run", DEFAULT, "--agents", "2000", "--days", "365",
                          "--out", tiny_disk / "big.nc", "--quiet"])
    # a 365-day result is about 0.9 MB: it may fit once; a second copy does not
    if rc == 0:
        rc, _, err = run_cli(["run", DEFAULT, "--agents", "2000", "--days", "365",
                              "--out", tiny_disk / "r.nc", "--quiet"])
    assert rc == 2
    assert_one_clear_line(err, "No space left on device")
    assert not [p for p in leftovers(tiny_disk) if p.startswith(".")]
    assert "r.nc" not in leftovers(tiny_disk)
    rc, _, err = run_cli(["sweep", POSITIONING, "--agents", "500", "--days", "200",
                          "--out", tiny_disk / "sweep", "--quiet"])
    assert rc == 2
    assert_one_clear_line(err, "No space left on device")
    assert not [p for p in leftovers(tiny_disk) if Path(p).name.startswith(".")]


@pytest.mark.parametrize("flag", ["--out", "--plot", "--events"])
@pytest.mark.parametrize("where", ["/proc/distsim/x", "file/x"])
def test_unwritable_outputs_are_refused_before_simulating(tmp_path, runs, flag, where):
    """Case 2: each output is checked before the run, and a refused one leaves no other."""
    (tmp_path / "file").write_text("a file, not a directory")
    target = where if where.startswith("/") else tmp_path / where
    given = {"--out": tmp_path / "r.nc", "--plot": tmp_path / "r.png",
             "--events": tmp_path / "e.parquet", flag: target}
    argv = ["run", DEFAULT, *Q]
    for f, path in given.items():
        argv += [f, path]
    rc, _, err = run_cli(argv)
    assert rc == 2 and not runs
    assert_one_clear_line(err, flag)
    assert leftovers(tmp_path) == ["file"]


@pytest.mark.parametrize("make", ["same", "symlink", "hardlink"])
def test_an_output_onto_the_input_is_refused(tmp_path, runs, make):
    """Case 4: ``--out s.toml`` used to overwrite the scenario with HDF5."""
    scenario = tmp_path / "s.toml"
    scenario.write_text(DEFAULT.read_text())
    out = scenario
    if make == "symlink":
        out = tmp_path / "link.nc"
        out.symlink_to(scenario)
    elif make == "hardlink":
        out = tmp_path / "hard.nc"
        os.link(scenario, out)
    rc, _, err = run_cli(["run", scenario, *Q, "--out", out])
    assert rc == 2 and not runs
    assert_one_clear_line(err, "--out", "input")
    assert scenario.read_text() == DEFAULT.read_text()


@pytest.mark.parametrize("flag", ["--plot", "--events"])
def test_outputs_that_collide_are_refused(tmp_path, runs, flag):
    rc, _, err = run_cli(["run", DEFAULT, *Q, "--out", tmp_path / "r.nc",
                          flag, tmp_path / "." / "r.nc"])
    assert rc == 2 and not runs
    assert_one_clear_line(err, flag, "--out")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("command", ["plot", "report"])
def test_plot_and_report_do_not_overwrite_the_result(tmp_path, command):
    result = tmp_path / "r.nc"
    assert run_cli(["run", DEFAULT, *Q, "--quiet", "--out", result])[0] == 0
    before = result.read_bytes()
    rc, _, err = run_cli([command, result, "--out", result])
    assert rc == 2
    assert_one_clear_line(err, "input")
    assert result.read_bytes() == before


def test_an_empty_out_is_refused(tmp_path, runs):
    rc, _, err = run_cli(["run", DEFAULT, *Q, "--out", ""])
    assert rc == 2 and not runs
    assert_one_clear_line(err, "--out", "empty")


def test_stale_temporaries_of_dead_processes_are_cleared(tmp_path):
    """Case 3 (SIGKILL): a killed run leaves its temporary; the next write of that name
    removes it, and leaves a live process's temporary alone."""
    dead = tmp_path / ".r.nc.999999999-0badf00d.partial"  # above any pid_max
    alive = tmp_path / f".r.nc.{os.getppid()}-0badf00d.partial"
    legacy = tmp_path / ".r.nc.ab3_x9zq.nc"  # distsim 0.1's temporary name, an hour old
    for p in (dead, alive, legacy):
        p.write_bytes(b"half a file")
    os.utime(legacy, (0, 0))
    assert run_cli(["run", DEFAULT, *Q, "--quiet", "--out", tmp_path / "r.nc"])[0] == 0
    assert leftovers(tmp_path) == [alive.name, "r.nc"]


def _start(tmp_path, *extra):
    out = tmp_path / "r.nc"
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulation", "run", str(DEFAULT), "--agents", "400000",
         "--days", "365", "--out", str(out), "--events", str(tmp_path / "e.parquet"),
         "--plot", str(tmp_path / "r.png"), "--quiet", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    # the temporaries are made before the simulation starts: it is running now
    while len(list(tmp_path.glob(".*.partial"))) < 3:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_run_leaves_nothing(tmp_path, sig):
    proc = _start(tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert_one_clear_line(err, "interrupted")
    assert leftovers(tmp_path) == []


def test_a_stop_that_compiled_code_swallowed_still_stops_the_commit(tmp_path, monkeypatch):
    """Ctrl-C while numba calls back into Python (writing a compiled kernel to its cache)
    raises inside the callback, which prints the exception and goes on: the command must
    still not commit its outputs. Reproduced with a ctypes callback, as numba's is."""
    import ctypes

    from simulation.cli import _terminate_as_interrupt
    from simulation.outputs import OutputFiles

    def callback():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # the handler runs here, inside the callback

    swallowed = []
    monkeypatch.setattr(sys, "unraisablehook", swallowed.append)
    with _terminate_as_interrupt(), OutputFiles() as out:
        out.add("--out", tmp_path / "r.nc")
        out.write("--out", b"a result")
        ctypes.CFUNCTYPE(None)(callback)()
        assert [type(u.exc_value) for u in swallowed] == [KeyboardInterrupt]
        with pytest.raises(KeyboardInterrupt):
            out.commit()
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_a_killed_run_is_cleaned_up_by_the_next(tmp_path):
    proc = _start(tmp_path)
    proc.kill()
    proc.communicate(timeout=60)
    assert len(list(tmp_path.glob(".*.partial"))) == 3  # SIGKILL cannot be handled
    rc, _, _ = run_cli(["run", DEFAULT, *Q, "--quiet", "--out", tmp_path / "r.nc",
                        "--events", tmp_path / "e.parquet", "--plot", tmp_path / "r.png"])
    assert rc == 0
    assert leftovers(tmp_path) == ["e.parquet", "r.nc", "r.png"]


# -- the other cases: overflow in a sweep, unknown variables, messages, inert channels --


def _experiment(tmp_path, body: str) -> Path:
    path = tmp_path / "e.toml"
    path.write_text(f'name = "e"\nbase = "{DEFAULT}"\n' + body)
    return path


@pytest.mark.parametrize("body, needles", [
    ('[[variants]]\nname = "big"\n[variants.set]\n"channels.search.capacity" = '
     '99999999999999999999\n', ("capacity",)),                         # case 5, in a sweep
    ('[outputs]\nvariables = ["no_such_variable"]\n', ("no_such_variable",)),   # case 7
    ('[[sweep]]\nkind = "grid"\n' + "".join(
        f'values."channels.{c}.daily_budget" = [{", ".join(map(str, range(1, 11)))}]\n'
        for c in ("search", "paid_social", "email"))
     + 'values."product.price" = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]\n'
     + 'values."product.unit_cost" = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n'
     + 'values."forgetting.aware" = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, '
       '0.1]\n', ("1,000,000 runs",)),                                    # case 9
])
def test_bad_experiments_are_refused_and_leave_no_sweep(tmp_path, body, needles):
    rc, _, err = run_cli(["sweep", _experiment(tmp_path, body), "--agents", "300",
                          "--days", "5", "--out", tmp_path / "sweep"])
    assert rc == 2
    assert_one_clear_line(err, *needles)
    assert not (tmp_path / "sweep").exists()


def test_a_large_grid_of_independent_parameters_validates_each_group():
    """A grid of three channel budgets, a second field of one channel, and variants that
    touch segment shares: only parameters that a rule reads together are checked in
    combination (each value is checked alone before)."""
    from simulation.sweep.experiment import ExperimentSpec, _interacting, build_axes

    spec_text = "".join(f'values."channels.{c}.daily_budget" = [{", ".join(map(str, range(10)))}]\n'
                        for c in ("search", "paid_social", "email"))
    spec_text += 'values."channels.search.intent" = [0.5, 1.0]\n'
    spec = ExperimentSpec.model_validate(tomllib.loads(
        f'base = "x"\n[[sweep]]\nkind = "grid"\n{spec_text}'
        '[[variants]]\nname = "a"\n[variants.set]\n"segments.casual.share" = 0.5\n'
        '[[variants]]\nname = "b"\n'))
    groups = _interacting(build_axes(spec))
    dims = [[build_axes(spec)[a].dim for a in g] for g in groups]
    assert sorted(map(sorted, dims)) == sorted([
        ["variant"], ["channels.paid_social.daily_budget"], ["channels.email.daily_budget"],
        ["channels.search.daily_budget", "channels.search.intent"]])


def test_shares_that_fail_only_together_are_still_caught(tmp_path):
    body = ('[[sweep]]\nkind = "grid"\nvalues."segments.casual.share" = [0.3, 0.9]\n'
            'values."segments.loyal.share" = [0.3, 0.9]\n')
    rc, _, err = run_cli(["validate", DEFAULT])
    assert rc == 0
    rc, _, err = run_cli(["sweep", _experiment(tmp_path, body), "--agents", "300",
                          "--days", "5", "--out", tmp_path / "sweep"])
    assert rc == 2
    assert_one_clear_line(err, "sum to 1")


def test_plot_of_a_foreign_hdf5_file_is_one_line(tmp_path):
    import h5py

    path = tmp_path / "bare.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    for command in ("plot", "report"):
        rc, _, err = run_cli([command, path])
        assert rc == 2
        assert_one_clear_line(err, str(path))


def test_a_symlink_loop_and_a_byte_order_mark(tmp_path):
    loop = tmp_path / "a.toml"
    loop.symlink_to(tmp_path / "b.toml")
    (tmp_path / "b.toml").symlink_to(loop)
    rc, _, err = run_cli(["validate", loop])
    assert rc == 2
    assert_one_clear_line(err, "symbolic links")
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + DEFAULT.read_bytes())
    assert run_cli(["validate", bom])[0] == 0


@pytest.mark.parametrize("override", ["channels.paid_social.reach.cpm=0",
                                      "channels.search.reach.cpc=1e-300"])
def test_a_free_price_of_reach_is_refused(tmp_path, override):
    refused(tmp_path, DEFAULT, "--set", override, needles=("reach.cp",))


@pytest.mark.parametrize("override, needle", [
    ("channels.search.launch_day=40", "launches on day 40"),
    ("channels.paid_social.daily_budget=0", "no daily_budget"),
    ("segments.casual.affinity={email=0.0}", None),
])
def test_channels_that_would_reach_no_one_are_warned_about(override, needle):
    rc, _, err = run_cli(["validate", DEFAULT, "--set", override, "--set", "simulation.days=30"])
    assert rc == 0
    warnings = [line for line in error_lines(err) if line.startswith("warning")]
    if needle is None:  # other segments still value email
        assert warnings == []
    else:
        assert len(warnings) == 1 and needle in warnings[0] and "enabled = false" in warnings[0]
    off = override.split(".")[1]
    rc, _, err = run_cli(["validate", DEFAULT, "--set", override, "--set", "simulation.days=30",
                          "--set", f"channels.{off}.enabled=false"] if needle else ["validate",
                                                                                   DEFAULT])
    assert rc == 0 and not error_lines(err)
