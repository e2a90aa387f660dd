"""One definition per figure: a channel's CAC, loaded CAC, LTV, LTV/CAC and profit are
the same numbers in the dataset, the console summary, the report and the sweep summary
(simulation/analysis/economics.py defines them; everything else reads them)."""

from __future__ import annotations

import html
import json
import math

import pandas as pd
import pytest
from helpers import DEFAULT, run_cli

from simulation.analysis.report import _num
from simulation.analysis.summary import format_figure
from simulation.io import read_netcdf

FIGURES = ("cac", "cac_loaded", "ltv", "ltv_projected", "ltv_cac", "profit")
SIZE = ["--agents", "3000", "--days", "60"]


def _figure(ds, name: str, channel: str) -> float:
    da = ds[name].sel(channel=channel)
    return float(da.sum("day") if "day" in da.dims else da)


@pytest.mark.slow
def test_every_command_shows_the_same_figures(tmp_path):
    experiment = tmp_path / "one.toml"
    experiment.write_text(f'name = "one"\nbase = "{DEFAULT}"\nseed = 5\n')
    sweep = tmp_path / "sweep"
    rc, _, err = run_cli(["sweep", experiment, *SIZE, "--out", sweep, "--quiet"])
    assert rc == 0, err
    seed = json.loads((sweep / "manifest.json").read_text())["runs"][0]["seed"]

    result = tmp_path / "r.nc"
    rc, console, err = run_cli(["run", DEFAULT, *SIZE, "--seed", seed, "--out", result])
    assert rc == 0, err
    ds = read_netcdf(result)
    rc, _, err = run_cli(["report", result, "--out", tmp_path / "r.html"])
    assert rc == 0, err
    report = html.unescape((tmp_path / "r.html").read_text())
    by_channel = pd.read_csv(sweep / "summary_channels.csv").set_index("channel")

    lines = console.splitlines()
    for channel in map(str, ds.channel.values):
        row = next(line for line in lines if line.startswith(f"│ {channel} "))
        cells = [c.strip() for c in row.strip("│").split("│")]
        report_row = next(r for r in report.split("<tr>") if r.startswith(f"<td>{channel}<"))
        for name in FIGURES:
            value = _figure(ds, name, channel)
            # console: the table's cell is the dataset's figure, formatted
            if name != "profit" or math.isfinite(value):
                assert format_figure(name, value) in cells, (channel, name, value, row)
            # report: the unit-economics row shows the same figure
            if name != "ltv_cac" or math.isfinite(value):
                assert f">{_num(value, 'ratio' if name == 'ltv_cac' else 'money')}<" in (
                    report_row), (channel, name)
            # sweep summary: the run's own figure (one replicate: its mean)
            swept = float(by_channel.loc[channel, name])
            assert swept == pytest.approx(value, rel=1e-12, nan_ok=True), (channel, name)


def test_the_console_names_its_definitions(tmp_path):
    rc, console, _ = run_cli(["run", DEFAULT, "--agents", "500", "--days", "20",
                              "--out", tmp_path / "r.nc"])
    assert rc == 0
    text = " ".join(console.split())
    assert "CAC = (media + fixed cost) / new customers" in text
    assert "LTV/CAC = LTV proj. / CAC loaded" in text
