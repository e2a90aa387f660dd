"""A property of the whole command line, tried on generated input: whatever the scenario
and the arguments, ``distsim`` answers with status 0, 2 or 130, never a traceback, and
never leaves a partial file (a refused command writes nothing; a successful run writes
readable outputs). Run in-process through :func:`simulation.cli.main`, at a few hundred
customers, so that a hundred commands take well under a minute.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from helpers import DEFAULT, invoke, raw_toml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulation.io import read_netcdf


def _leaves(obj, path=()):
    """Every scalar field of the default scenario, as a path of keys and list positions."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(obj, list) and obj and isinstance(obj[0], dict):
        for i, v in enumerate(obj):
            yield from _leaves(v, (*path, i))
    else:
        yield path


BASE = raw_toml(DEFAULT)
LEAVES = list(_leaves(BASE))
nasty = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 0.5, 1e308, 2**63, "", "x", True, [], {}, [1, 2], {"a": 1}]),
    st.text(max_size=4),
)
set_values = st.sampled_from(["0", "1", "0.5", "2", "10", "0", "-1", "0.5", "1e400", "nan", "inf", "[]", "{}", "{a=1}",
                              "true", '"x"', "2e9", "99999999999999999999", "", "[1, 2]"])


def _mostly(valid: list, invalid: list):
    """Valid values 4 times in 5, so that most commands get as far as writing."""
    return st.integers(0, 4).flatmap(
        lambda i: st.sampled_from(invalid if i == 0 else valid))


@st.composite
def scenarios(draw) -> dict:
    """The default scenario with a few fields set to odd values, removed or added."""
    data = raw_toml(DEFAULT)
    for _ in range(draw(_mostly([0], [1, 2, 3]))):
        leaf = draw(st.sampled_from(LEAVES))
        parent = data
        for key in leaf[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["scale", "scale", "set", "set", "drop", "unknown"]))
        old = parent.get(leaf[-1])  # None once dropped
        if action == "scale" and isinstance(old, (int, float)) and not isinstance(old, bool):
            parent[leaf[-1]] = type(old)(old * draw(st.sampled_from([0, 0.5, 2, 10])))
        elif action in ("set", "scale"):
            parent[leaf[-1]] = draw(nasty)
        elif action == "drop":
            parent.pop(leaf[-1], None)
        else:
            parent["no_such_field"] = 1
    return data


def _set_path(leaf) -> str:
    """The ``--set`` path of a field: channels and segments are addressed by name."""
    parts = []
    for key in leaf:
        if isinstance(key, int):
            parts[-1] = f"{parts[-1]}.{BASE[leaf[0]][key]['name']}"
        else:
            parts.append(str(key))
    return ".".join(parts)


@st.composite
def commands(draw, where: Path, scenario: Path, result: Path) -> list[str]:
    command = draw(st.sampled_from(["run", "run", "run", "validate", "plot", "report"]))
    outputs = {"r.nc": where / "r.nc", "deep": where / "a" / "b" / "r.nc", "empty": "",
               "scenario": scenario, "dir": where, "png": where / "r.png",
               "result": result, "proc": "/proc/distsim/r.nc"}
    if command in ("plot", "report"):
        argv = [command, str(result)]
        if command == "plot":
            argv += ["--kind", draw(st.sampled_from(["funnel", "economics", "heatmap", "nope"]))]
        if draw(st.booleans()):
            argv += ["--out", str(outputs[draw(st.sampled_from(sorted(outputs)))])]
        return argv
    argv = [command, str(scenario)]
    for _ in range(draw(_mostly([0], [1, 2]))):
        argv += ["--set", f"{_set_path(draw(st.sampled_from(LEAVES)))}={draw(set_values)}"]
    if command == "validate":
        return argv
    argv += ["--agents", draw(_mostly(["40", "300", "1"], ["0", "-3", "many", "1e3"]))]
    argv += ["--days", draw(_mostly(["9", "20", "1"], ["0", "x"]))]
    if draw(st.booleans()):
        argv += ["--seed", draw(st.sampled_from(["0", "7", "-1", "18446744073709551616"]))]
    for flag, good, bad in (("--out", ["r.nc", "deep"], ["empty", "scenario", "dir", "proc"]),
                            ("--plot", ["png"], ["r.nc", "dir"]),
                            ("--events", ["deep", "png"], ["r.nc", "proc"])):
        if draw(st.booleans()):
            value = outputs[draw(_mostly(good, bad))]
            argv += [flag, str(value).replace("r.png", "e.parquet") if flag == "--events"
                     and value == outputs["png"] else str(value)]
    if draw(st.booleans()):
        argv += ["--backend", draw(_mostly(["numba", "mesa"], ["gpu"]))]
    return [*argv, "--quiet"]


@pytest.fixture(scope="module")
def result_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("result") / "r.nc"
    assert invoke(["run", DEFAULT, "--agents", 300, "--days", 15, "--quiet", "--out", path]) == 0
    return path


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), scenario=scenarios())
def test_any_command_is_answered_cleanly(data, scenario, result_file):
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        path = where / "s.toml"
        try:
            path.write_text(tomli_w.dumps(scenario))
        except (TypeError, ValueError):  # not expressible as TOML: nothing to try
            return
        result_before = result_file.read_bytes()
        argv = data.draw(commands(where, path, result_file))
        before = _files(where)
        err = io.StringIO()
        with (contextlib.chdir(where), contextlib.redirect_stderr(err),
              contextlib.redirect_stdout(io.StringIO())):
            rc = invoke(argv)  # the default --out, results/s.nc, lands in the temporary folder
        stderr = err.getvalue()
        assert rc in (0, 2, 130), (argv, rc, stderr)
        assert "Traceback" not in stderr, (argv, stderr)
        after = _files(where)
        assert not [name for name in after if name.endswith(".partial")], (argv, after)
        assert result_file.read_bytes() == result_before, argv
        if rc != 0:
            assert after == before, (argv, sorted(set(after) - set(before)))
            errors = [line for line in stderr.splitlines() if line.startswith("error")]
            assert len(errors) == 1, (argv, stderr)
        elif argv[0] == "run":
            out = argv[argv.index("--out") + 1] if "--out" in argv else "results/s.nc"
            assert np.isfinite(read_netcdf(where / out).stage_count).all()
