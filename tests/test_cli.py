"""The ``distsim`` command line: validate, run, plot.

Contract (docs/contracts.md): bad input gets one clear line naming the file and
the field, exit status 2, no traceback and no output file; results are written
atomically. Most cases call ``simulation.cli.main`` in-process; a few run
``python -m simulation`` to see the real exit status and stderr.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from helpers import (
    DEFAULT,
    STAGES,
    assert_one_clear_line,
    assert_png,
    distsim,
    error_lines,
    invoke,
    raw_toml,
    run_cli,
    write_toml,
)

import simulation
from simulation.cli import main
from simulation.io import read_netcdf, write_netcdf
from simulation.outputs import OutputError
from simulation.scenario import load_scenario

CHANNELS = ["paid_social", "search", "marketplace", "email", "word_of_mouth"]
ATTRIBUTION_MODELS = ["first_touch", "last_touch", "linear", "time_decay", "position_based",
                      "markov"]
AGENTS, DAYS = 2000, 20

# variable -> dimensions, as docs/contracts.md fixes them
CONTRACT_VARIABLES = {
    "stage_count": ("day", "stage"),
    "spend": ("day", "channel"),
    "reached": ("day", "channel"),
    "conversions": ("day", "channel"),
    "orders": ("day", "channel"),
    "revenue": ("day", "channel"),
    "gross_margin": ("day", "channel"),
    "churned": ("day", "channel"),
    "attributed_conversions": ("attribution_model", "channel"),
    "cac": ("channel",),
    "ltv": ("channel",),
    "ltv_cac": ("channel",),
}


# -- helpers -------------------------------------------------------------------


def with_unknown_channel_key(path: Path) -> Path:
    data = raw_toml(DEFAULT)
    next(c for c in data["channels"] if c["name"] == "search")["budgett"] = 500
    return write_toml(path, data)


def listing(directory: Path) -> list[str]:
    """Every entry under ``directory``, hidden temporary files included."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


# -- one real run shared by the output checks ------------------------------------


@pytest.fixture(scope="module")
def cli_run_result(tmp_path_factory):
    """``distsim run default.toml --agents 2000 --days 20 --out r.nc --plot r.png`` once."""
    out_dir = tmp_path_factory.mktemp("cli_run")
    out, png = out_dir / "r.nc", out_dir / "r.png"
    rc, stdout, stderr = run_cli(["run", DEFAULT, "--agents", AGENTS, "--days", DAYS,
                                  "--out", out, "--plot", png])
    return {"rc": rc, "stdout": stdout, "stderr": stderr, "out": out, "png": png,
            "dir": out_dir}


def test_run_succeeds(cli_run_result):
    assert cli_run_result["rc"] == 0, cli_run_result["stderr"]
    assert "Traceback" not in cli_run_result["stderr"]


def test_run_writes_only_the_result_and_the_plot(cli_run_result):
    assert listing(cli_run_result["dir"]) == ["r.nc", "r.png"], "no temporary files left over"


def test_run_prints_a_row_per_channel(cli_run_result):
    table = cli_run_result["stdout"]
    for name in CHANNELS:
        assert name in table
    for header in ("spend", "CAC", "LTV"):
        assert header in table
    assert str(cli_run_result["out"]) in table.replace("\n", "")


def test_result_has_the_contract_coordinates(cli_run_result):
    ds = read_netcdf(cli_run_result["out"])
    assert ds.day.values.tolist() == list(range(DAYS))
    assert [str(c) for c in ds.channel.values] == CHANNELS
    assert [str(s) for s in ds.stage.values] == list(STAGES)
    assert [str(m) for m in ds.attribution_model.values] == ATTRIBUTION_MODELS


def test_result_has_the_contract_variables(cli_run_result):
    ds = read_netcdf(cli_run_result["out"])
    for name, dims in CONTRACT_VARIABLES.items():
        assert name in ds, name
        assert ds[name].dims == dims, name
    # each day every person of the market is in exactly one stage
    assert ds.attrs["market_size"] == 200_000 and ds.attrs["scale"] == 200_000 / AGENTS
    np.testing.assert_allclose(ds.stage_count.sum("stage"), 200_000)
    assert float(ds.spend.sum()) > 0
    assert int(ds.reached.sum()) > 0


def test_result_has_the_contract_attributes(cli_run_result):
    ds = read_netcdf(cli_run_result["out"])
    attrs = ds.attrs
    assert int(attrs["seed"]) == 42
    assert int(attrs["agents"]) == AGENTS
    assert int(attrs["days"]) == DAYS
    assert attrs["backend"] == "numba"
    assert attrs["simulation_version"] == simulation.__version__
    resolved = tomllib.loads(attrs["scenario"])
    assert resolved["name"] == "default"
    assert [c["name"] for c in resolved["channels"]] == CHANNELS[:-1]
    path = cli_run_result["dir"].parent / "resolved_scenario.toml"
    path.write_text(attrs["scenario"], encoding="utf-8")
    assert load_scenario(path).channels == load_scenario(DEFAULT).channels


def test_stored_scenario_is_the_one_that_ran(cli_run_result):
    ds = read_netcdf(cli_run_result["out"])
    resolved = tomllib.loads(ds.attrs["scenario"])
    assert resolved["simulation"]["agents"] == int(ds.attrs["agents"])
    assert resolved["simulation"]["days"] == int(ds.attrs["days"])
    assert resolved["simulation"]["seed"] == int(ds.attrs["seed"])


def test_run_plot_is_a_real_png(cli_run_result):
    assert_png(cli_run_result["png"])


def test_quiet_run_prints_nothing_and_writes_the_result(tmp_path, capsys):
    out = tmp_path / "quiet.nc"
    rc = invoke(["run", DEFAULT, "--agents", 500, "--days", 5, "--seed", 3, "--out", out,
                 "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.out == ""
    ds = read_netcdf(out)
    assert int(ds.attrs["seed"]) == 3 and ds.sizes["day"] == 5
    assert listing(tmp_path) == ["quiet.nc"]


def test_run_set_override_reaches_the_result(tmp_path, capsys):
    out = tmp_path / "set.nc"
    rc = invoke(["run", DEFAULT, "--agents", 500, "--days", 5, "--out", out, "--quiet",
                 "--set", "channels.search.daily_budget=0",
                 "--set", "channels.paid_social.daily_budget=0"])
    assert rc == 0, capsys.readouterr().err
    ds = read_netcdf(out)
    assert float(ds.spend.sel(channel="search").sum()) == 0.0
    assert float(ds.spend.sel(channel="paid_social").sum()) == 0.0
    stored = tomllib.loads(ds.attrs["scenario"])
    assert next(c for c in stored["channels"] if c["name"] == "search")["daily_budget"] == 0.0


def test_run_without_out_writes_under_results(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = invoke(["run", DEFAULT, "--agents", 300, "--days", 3, "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert listing(tmp_path) == ["results", "results/default.nc"]


# -- plot --------------------------------------------------------------------


def test_plot_command_writes_a_png(cli_run_result, tmp_path, capsys):
    out = tmp_path / "x.png"
    rc = invoke(["plot", cli_run_result["out"], "--out", out])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert_png(out)
    assert str(out) in captured.out.replace("\n", "")
    assert listing(tmp_path) == ["x.png"]


def test_plot_missing_result(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = invoke(["plot", "missing.nc"])
    assert rc == 2
    assert_one_clear_line(capsys.readouterr().err, "missing.nc")
    assert listing(tmp_path) == []


def test_plot_file_that_is_not_netcdf(tmp_path, capsys):
    bogus = tmp_path / "notes.nc"
    bogus.write_text("just text\n")
    rc = invoke(["plot", bogus, "--out", tmp_path / "p.png"])
    assert rc == 2
    assert_one_clear_line(capsys.readouterr().err, str(bogus))
    assert listing(tmp_path) == ["notes.nc"]


def test_plot_netcdf_that_is_not_a_result(tmp_path, capsys):
    other = tmp_path / "other.nc"
    xr.Dataset({"x": ("a", np.arange(3))}).to_netcdf(other, engine="h5netcdf")
    rc = invoke(["plot", other, "--out", tmp_path / "p.png"])
    assert rc == 2
    assert_one_clear_line(capsys.readouterr().err, str(other))
    assert listing(tmp_path) == ["other.nc"]


def test_plot_directory_as_result(tmp_path, capsys):
    rc = invoke(["plot", tmp_path])
    assert rc == 2
    assert_one_clear_line(capsys.readouterr().err, str(tmp_path))


# -- validate ----------------------------------------------------------------


def test_validate_ok(capsys):
    rc = invoke(["validate", DEFAULT])
    captured = capsys.readouterr()
    assert rc == 0
    assert "ok" in captured.out
    assert "default" in captured.out
    assert captured.err == ""


def test_validate_with_set(capsys):
    rc = invoke(["validate", DEFAULT, "--set", "simulation.agents=1234"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "1,234" in captured.out


def test_version(capsys):
    assert invoke(["--version"]) == 0
    assert simulation.__version__ in capsys.readouterr().out


def _malformed(path: Path) -> Path:
    path.write_text("name = 'x'\n[simulation\nagents = 5\n")
    return path


def _wrong_type(path: Path) -> Path:
    data = raw_toml(DEFAULT)
    data["simulation"]["agents"] = "many"
    return write_toml(path, data)


def _negative_price(path: Path) -> Path:
    data = raw_toml(DEFAULT)
    data["product"]["price"] = -3.0
    return write_toml(path, data)


def _bad_shares(path: Path) -> Path:
    data = raw_toml(DEFAULT)
    data["segments"][0]["share"] = 0.9
    return write_toml(path, data)


BAD_FILES = {
    "unknown-key": (with_unknown_channel_key, ["channels.search.budgett", "unknown key"]),
    "malformed": (_malformed, ["malformed TOML"]),
    "wrong-type": (_wrong_type, ["simulation.agents"]),
    "negative-price": (_negative_price, ["product.price"]),
    "shares": (_bad_shares, ["sum to 1"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_validate_bad_file(tmp_path, capsys, case):
    make, needles = BAD_FILES[case]
    path = make(tmp_path / "bad.toml")
    rc = invoke(["validate", path])
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.out == ""
    assert_one_clear_line(captured.err, str(path), *needles)


def test_validate_missing_file(tmp_path, capsys):
    path = tmp_path / "nope.toml"
    assert invoke(["validate", path]) == 2
    assert_one_clear_line(capsys.readouterr().err, str(path), "not found")


def test_validate_directory(tmp_path, capsys):
    assert invoke(["validate", tmp_path]) == 2
    assert_one_clear_line(capsys.readouterr().err, str(tmp_path), "directory")


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ("channels.search.daily_budget=-5", [str(DEFAULT), "channels.search.daily_budget"]),
        ("channels.tiktok.daily_budget=5", ["channels.tiktok"]),
        ("channels.search.daily_budget", ["path=value"]),
        ("simulation.agents=lots", [str(DEFAULT), "simulation.agents"]),
    ],
)
def test_validate_bad_set(capsys, override, needles):
    assert invoke(["validate", DEFAULT, "--set", override]) == 2
    assert_one_clear_line(capsys.readouterr().err, *needles)


def test_error_shows_file_name_with_brackets(tmp_path, capsys):
    path = with_unknown_channel_key(tmp_path / "plan[v2].toml")
    assert invoke(["validate", path]) == 2
    assert_one_clear_line(capsys.readouterr().err, str(path), "channels.search.budgett")


def test_validate_prints_names_literally(capsys):
    rc = invoke(["validate", DEFAULT, "--set", 'name="draft [/x]"'])
    assert rc == 0
    assert "draft [/x]" in capsys.readouterr().out


# -- run: bad input writes nothing --------------------------------------------


def _bad_run_args(case: str, inputs: Path) -> tuple[list, list[str]]:
    """argv after ``run`` and the texts the error must contain."""
    if case == "bad-set-value":
        return [DEFAULT, "--set", "channels.search.daily_budget=-5"], [
            str(DEFAULT), "channels.search.daily_budget"]
    if case == "set-unknown-channel":
        return [DEFAULT, "--set", "channels.tiktok.daily_budget=5"], ["channels.tiktok"]
    if case == "set-not-toml-number":
        return [DEFAULT, "--set", "simulation.agents=__import__('os')"], ["simulation.agents"]
    if case == "malformed-file":
        path = _malformed(inputs / "broken.toml")
        return [path], [str(path), "malformed TOML"]
    if case == "unknown-key":
        path = with_unknown_channel_key(inputs / "typo.toml")
        return [path], [str(path), "channels.search.budgett"]
    if case == "missing-file":
        return [inputs / "nope.toml"], [str(inputs / "nope.toml")]
    if case == "days-0":
        return [DEFAULT, "--days", "0"], ["--days"]
    if case == "days-too-many":
        return [DEFAULT, "--days", "70000"], ["--days"]
    if case == "agents-negative":
        return [DEFAULT, "--agents", "-1"], ["--agents"]
    if case == "agents-not-a-number":
        return [DEFAULT, "--agents", "many"], ["--agents"]
    if case == "seed-negative":
        return [DEFAULT, "--seed", "-1"], ["--seed"]
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    ["bad-set-value", "set-unknown-channel", "set-not-toml-number", "malformed-file",
     "unknown-key", "missing-file", "days-0", "days-too-many", "agents-negative",
     "agents-not-a-number", "seed-negative"],
)
def test_run_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, monkeypatch, case):
    inputs, out_dir = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    out_dir.mkdir()
    monkeypatch.chdir(out_dir)  # the default results/ folder would land here too
    args, needles = _bad_run_args(case, inputs)
    size = [*(["--agents", "200"] if "--agents" not in args else []),
            *(["--days", "2"] if "--days" not in args else [])]
    rc = invoke(["run", *args, *size, "--out", out_dir / "r.nc", "--plot", out_dir / "r.png"])
    captured = capsys.readouterr()
    assert rc == 2
    assert "Traceback" not in captured.err
    last = error_lines(captured.err)[-1]
    for needle in needles:
        assert needle in last, (needle, last)
    assert listing(out_dir) == [], "no output and no temporary file"


def test_run_out_is_a_directory(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    rc = invoke(["run", DEFAULT, "--agents", 200, "--days", 2, "--out", tmp_path])
    assert rc == 2
    assert_one_clear_line(capsys.readouterr().err, "--out", str(tmp_path))
    assert listing(tmp_path) == ["keep.txt"]


def test_run_plot_is_a_directory(tmp_path, capsys):
    rc = invoke(["run", DEFAULT, "--agents", 200, "--days", 2, "--out", tmp_path / "r.nc",
                 "--plot", tmp_path])
    assert rc == 2
    assert_one_clear_line(capsys.readouterr().err, "--plot")
    assert listing(tmp_path) == []


def test_run_days_beyond_engine_limit_through_set(tmp_path, capsys):
    rc = invoke(["run", DEFAULT, "--agents", 10, "--set", "simulation.days=65500",
                 "--out", tmp_path / "r.nc", "--quiet"])
    assert rc == 2
    assert_one_clear_line(capsys.readouterr().err, "simulation.days")
    assert listing(tmp_path) == []


def _refuse_to_run(*args, **kwargs):
    raise AssertionError("bad input reached simulation.run")


def test_run_seed_beyond_schema_limit(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(simulation, "run", _refuse_to_run)
    rc = invoke(["run", DEFAULT, "--seed", 2**64, "--out", tmp_path / "r.nc"])
    assert rc == 2
    assert_one_clear_line(capsys.readouterr().err, "seed")
    assert listing(tmp_path) == []


def test_run_agents_beyond_schema_limit(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(simulation, "run", _refuse_to_run)
    rc = invoke(["run", DEFAULT, "--agents", 10**10, "--out", tmp_path / "r.nc"])
    assert rc == 2
    assert_one_clear_line(capsys.readouterr().err, "agents")
    assert listing(tmp_path) == []


def test_run_out_under_a_regular_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    try:
        rc = invoke(["run", DEFAULT, "--agents", 200, "--days", 2, "--quiet",
                     "--out", tmp_path / "afile" / "r.nc"])
    except OSError as exc:
        pytest.fail(f"traceback instead of a clear message: {exc!r}")
    assert rc == 2
    assert_one_clear_line(capsys.readouterr().err, "--out")
    assert listing(tmp_path) == ["afile"]


# -- atomic writes -----------------------------------------------------------


@pytest.fixture
def failing_writes(monkeypatch):
    """Make every output write put a few bytes on disk and then fail, like a full disk."""
    import builtins

    from simulation import outputs

    calls = []

    class HalfFile:
        def __init__(self, path, mode):
            self.path = Path(path)
            self.fh = builtins.open(path, mode)

        def write(self, data):
            calls.append(self.path)
            self.fh.write(data[:10])
            self.fh.flush()
            raise OSError(28, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(outputs, "open", HalfFile, raising=False)
    return calls


def _small_dataset() -> xr.Dataset:
    return xr.Dataset({"stage_count": (("day", "stage"), np.ones((2, 5), dtype=np.int64))},
                      coords={"day": [0, 1], "stage": list(STAGES)})


def test_write_netcdf_round_trips(tmp_path):
    dest = tmp_path / "sub" / "r.nc"
    write_netcdf(_small_dataset(), dest)
    assert listing(tmp_path) == ["sub", "sub/r.nc"]
    assert read_netcdf(dest).identical(_small_dataset())


def test_failed_write_leaves_no_file(tmp_path, failing_writes):
    dest = tmp_path / "r.nc"
    with pytest.raises(OutputError, match="No space left on device"):
        write_netcdf(_small_dataset(), dest)
    assert failing_writes, "the write was attempted"
    assert failing_writes[0] != dest, "written under a temporary name"
    assert failing_writes[0].parent == tmp_path, "the temporary file sits beside the result"
    assert listing(tmp_path) == []


def test_failed_write_keeps_the_older_file(tmp_path, failing_writes):
    dest = tmp_path / "r.nc"
    dest.write_bytes(b"an older result")
    with pytest.raises(OutputError):
        write_netcdf(_small_dataset(), dest)
    assert dest.read_bytes() == b"an older result"
    assert listing(tmp_path) == ["r.nc"]


def test_failed_write_during_run_keeps_the_older_file(tmp_path, failing_writes, capsys):
    dest = tmp_path / "r.nc"
    dest.write_bytes(b"an older result")
    rc = invoke(["run", DEFAULT, "--agents", 300, "--days", 3, "--quiet", "--out", dest,
                 "--plot", tmp_path / "r.png"])
    assert rc == 2
    assert_one_clear_line(capsys.readouterr().err, "--out", "No space left on device")
    assert failing_writes
    assert dest.read_bytes() == b"an older result"
    assert listing(tmp_path) == ["r.nc"], "no temporary file and no plot of a failed run"


def test_failed_plot_leaves_no_file(tmp_path, cli_run_result, failing_writes):
    from simulation.analysis.plots import plot

    dest = tmp_path / "f.png"
    dest.write_bytes(b"older plot")
    with pytest.raises(OutputError):
        plot(read_netcdf(cli_run_result["out"]), "funnel", dest)
    assert failing_writes
    assert dest.read_bytes() == b"older plot"
    assert listing(tmp_path) == ["f.png"]


def test_written_result_has_ordinary_permissions(cli_run_result):
    """mkstemp creates 0600; the finished result gets what open() would give (0666 & ~umask)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in (cli_run_result["out"], cli_run_result["png"]):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


# -- as a real process -------------------------------------------------------


@pytest.mark.slow  # a real process
def test_subprocess_validate_ok(tmp_path):
    proc = distsim("validate", DEFAULT, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # a real process
def test_subprocess_validate_bad_file(tmp_path):
    path = with_unknown_channel_key(tmp_path / "typo.toml")
    proc = distsim("validate", path, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert_one_clear_line(proc.stderr, str(path), "channels.search.budgett")


@pytest.mark.slow  # a real process
def test_subprocess_run_bad_set_writes_nothing(tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = distsim("run", DEFAULT, "--agents", 200, "--days", 2,
                    "--set", "channels.search.daily_budget=-5", "--out", out_dir / "r.nc",
                    cwd=out_dir)
    assert proc.returncode == 2
    assert_one_clear_line(proc.stderr, str(DEFAULT), "channels.search.daily_budget")
    assert listing(out_dir) == []


@pytest.mark.parametrize("command", ["run", "validate", "plot", "report", "sweep", "validate-model"])
def test_every_subcommand_has_working_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: distsim" in capsys.readouterr().out
