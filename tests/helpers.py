"""Builders the tests share: paths, scenarios, small runs, the command line, checks.

Plain functions, imported as ``from helpers import ...`` (pytest puts ``tests/`` on the
path; a conftest cannot be imported). The fixtures built on them are in ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import tomli_w
import xarray as xr

import simulation
from simulation.scenario import Scenario, scenario_from_dict, with_overrides

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
DEFAULT = SCENARIOS / "default.toml"
EXAMPLE_SCENARIOS = sorted(SCENARIOS.glob("*.toml"))
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.toml"))
STAGES = list(simulation.scenario.STAGES)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- scenarios ----------------------------------------------------------------------------


def example(name: str = "default") -> Scenario:
    """The example scenario ``scenarios/<name>.toml``, loaded and validated."""
    return simulation.load_scenario(SCENARIOS / f"{name}.toml")


def raw_toml(path: Path = DEFAULT) -> dict:
    """A TOML file's raw data (read independently of the code under test)."""
    with Path(path).open("rb") as fh:
        return tomllib.load(fh)


def write_toml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def market(**over) -> dict:
    """A controlled market to build on (a dict as in TOML): one segment that ignores the
    price, a one-time product at 10 that nobody lapses from, no channels, no word of mouth.
    Keyword arguments replace whole top-level tables."""
    data = {
        "name": "controlled",
        "product": {"price": 10.0, "business_model": "one_time", "one_time": {"lapse_rate": 0.0}},
        "segments": [{"name": "all", "share": 1.0, "price_sensitivity": 0.0}],
        "channels": [],
        "word_of_mouth": {"enabled": False},
    }
    data.update(over)
    return data


def everyone_buys_on_day_0(**product) -> dict:
    """Word of mouth with p = 1 and immediate adoption: the whole market buys on day 0."""
    return market(product={"price": 10.0, **product},
                  word_of_mouth={"enabled": True, "p": 1.0, "q": 0.0, "adoption": "active"})


def list_channel(name: str, freq: float, audience=STAGES, **effects) -> dict:
    """An email-like channel reaching each customer of ``audience`` with daily probability
    ``freq``: reach independent of the population's state, so customers stay independent."""
    return {"name": name, "kind": "email", "effects": effects,
            "reach": {"model": "list", "frequency": freq, "audience": list(audience)}}


# -- runs ---------------------------------------------------------------------------------


def own_market(scenario: Scenario | dict, agents: int) -> Scenario:
    """``scenario`` as a market of exactly ``agents`` people (scale 1): a mechanism test
    counts the simulated customers' events by hand, and keeps the example's budgets per
    simulated customer, as when the sample was the market."""
    if isinstance(scenario, dict):
        scenario = scenario_from_dict(scenario)
    return with_overrides(scenario, {"market.size": agents, "simulation.agents": agents})


def simulate(scenario: Scenario | dict, agents: int, days: int, seed: int = 1,
             backend: str = "numba"):
    """Run ``scenario`` (or a dict as in TOML) on ``backend`` as a market of ``agents``
    people (:func:`own_market`): (dataset, model), the model for its population and
    ledgers."""
    from simulation.model import MarketModel
    from simulation.reference import ReferenceMarketModel

    scenario = own_market(scenario, agents)
    model_cls = {"numba": MarketModel, "mesa": ReferenceMarketModel}[backend]
    model = model_cls(scenario, agents=agents, days=days, seed=seed)
    model.run_model()
    return model.results(), model


def combine_runs(runs: dict[tuple, list[xr.Dataset]], dims: tuple[str, ...]) -> xr.Dataset:
    """{(label per dim): [replicates]} -> one dataset with ``dims`` and ``replicate``,
    the layout of a sweep's combined.nc."""
    stacked = {}
    for key, reps in runs.items():
        rep = xr.DataArray(np.arange(len(reps)), dims="replicate", name="replicate")
        stacked[key] = xr.concat(reps, dim=rep, coords="minimal", compat="override",
                                 combine_attrs="drop_conflicts")
    ds = xr.combine_nested(_nest(stacked, dims), concat_dim=list(dims), coords="minimal",
                           compat="override", combine_attrs="drop_conflicts")
    labels = [list(dict.fromkeys(key[k] for key in runs)) for k in range(len(dims))]
    return ds.assign_coords(dict(zip(dims, labels, strict=True)))


def _nest(stacked: dict, dims: tuple[str, ...]):
    if len(dims) == 1:
        return [stacked[k] for k in stacked]
    firsts = list(dict.fromkeys(k[0] for k in stacked))
    return [_nest({k[1:]: v for k, v in stacked.items() if k[0] == f}, dims[1:]) for f in firsts]


# -- the command line ---------------------------------------------------------------------


def invoke(argv: list) -> int:
    """``distsim argv`` in this process, as the shell sees it: argparse's SystemExit
    becomes the status."""
    from simulation.cli import main

    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:
        return exc.code


def run_cli(argv: list) -> tuple[int, str, str]:
    """``distsim argv`` in this process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = invoke(argv)
    return rc, out.getvalue(), err.getvalue()


def distsim(*args, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    """``python -m simulation args`` as a real process, its output captured as text."""
    kwargs.setdefault("timeout", 300)
    return subprocess.run([sys.executable, "-m", "simulation", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, **kwargs)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def assert_one_clear_line(stderr: str, *needles: str) -> None:
    """An error a person can act on: one line, no traceback, naming every needle."""
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# -- checks -------------------------------------------------------------------------------


def z_bound(observed, n, p, z=5.0, slack=0.0):
    """|observed - n p| within z binomial standard deviations (plus ``slack`` customers)."""
    sd = np.sqrt(n * p * (1 - p))
    return np.abs(observed - n * p) <= z * sd + slack + 1e-9


def assert_png(data: bytes | Path, min_shape: tuple[int, int] = (100, 100),
               min_std: float = 0.0) -> None:
    """A real, non-blank PNG image of at least ``min_shape`` (rows, columns) pixels whose
    colours vary by more than ``min_std``."""
    import matplotlib.image

    if isinstance(data, Path):
        data = data.read_bytes()
    assert data[:8] == PNG_MAGIC
    image = matplotlib.image.imread(io.BytesIO(data), format="png")
    assert image.ndim == 3 and image.shape[0] > min_shape[0] and image.shape[1] > min_shape[1]
    assert float(np.asarray(image[..., :3], dtype=float).std()) > min_std, "the image is blank"


def differing(a, b, allowed=()) -> list[str]:
    """Variables of two results that differ (NaN equal to NaN), other than ``allowed``."""
    assert set(a.data_vars) == set(b.data_vars)
    return [v for v in a.data_vars if v not in set(allowed)
            and not np.array_equal(a[v].values, b[v].values, equal_nan=True)]
