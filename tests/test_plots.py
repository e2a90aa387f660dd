"""Every plot kind and the report, from a small run and a small sweep.

Each PNG is read back and checked to be a real, non-blank image; the HTML report must
be self-contained (no external scripts, styles, links or images) with every plot
embedded as a base64 PNG that decodes to a non-blank image.
"""

from __future__ import annotations

import base64
import functools
import re

import pytest
from helpers import SCENARIOS, assert_one_clear_line, combine_runs
from helpers import assert_png as _assert_png

import simulation
from simulation.analysis.kinds import KINDS, RUN_KINDS, SWEEP_KINDS
from simulation.analysis.plots import PlotError, plot
from simulation.analysis.sweep import variant_labels
from simulation.cli import main
from simulation.io import write_netcdf
from simulation.scenario import with_overrides

# a full-size figure, not a blank or tiny one
assert_png = functools.partial(_assert_png, min_shape=(200, 300), min_std=0.02)


@pytest.fixture(scope="module")
def run_result(tmp_path_factory, saas_scenario):
    ds = simulation.run(saas_scenario, agents=8000, days=120, seed=2)
    path = tmp_path_factory.mktemp("run") / "saas.nc"
    write_netcdf(ds, path)
    return ds, path


@pytest.fixture(scope="module")
def sweep_result(tmp_path_factory, default_scenario):
    """Two swept parameters (2 x 2) x 2 replicates, written as DIR/combined.nc."""
    runs = {}
    for search in (50.0, 300.0):
        for social in (0.0, 250.0):
            s = with_overrides(default_scenario, {
                "channels.search.daily_budget": search, "channels.paid_social.daily_budget": social})
            runs[(search, social)] = [simulation.run(s, agents=2500, days=42, seed=r)
                                      for r in (1, 2)]
    ds = combine_runs(runs, ("channels.search.daily_budget", "channels.paid_social.daily_budget"))
    directory = tmp_path_factory.mktemp("sweep")
    write_netcdf(ds, directory / "combined.nc")
    return ds, directory


@pytest.fixture(scope="module")
def variant_sweep(default_scenario):
    runs = {}
    for name, budget in (("lean", 50.0), ("base", 150.0), ("push", 400.0)):
        s = with_overrides(default_scenario, {"channels.search.daily_budget": budget})
        runs[(name,)] = [simulation.run(s, agents=2500, days=42, seed=r) for r in (1, 2, 3)]
    return combine_runs(runs, ("variant",))


def test_kinds_are_listed():
    assert set(RUN_KINDS) == {"funnel", "economics", "cohorts", "attribution", "saturation",
                              "dashboard"}
    assert set(SWEEP_KINDS) == {"variants", "heatmap"}
    assert KINDS == RUN_KINDS + SWEEP_KINDS


@pytest.mark.parametrize("kind", RUN_KINDS)
def test_every_run_plot_kind_through_the_cli(kind, run_result, tmp_path, capsys):
    _, path = run_result
    out = tmp_path / f"{kind}.png"
    rc = main(["plot", str(path), "--kind", kind, "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert_png(out.read_bytes())
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{kind}.png"]


@pytest.mark.parametrize("kind", SWEEP_KINDS)
@pytest.mark.slow  # needs the 2 x 2 x 2 sweep
def test_every_sweep_plot_kind_through_the_cli(kind, sweep_result, tmp_path, capsys):
    _, directory = sweep_result
    out = tmp_path / f"{kind}.png"
    rc = main(["plot", str(directory), "--kind", kind, "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert_png(out.read_bytes())


@pytest.mark.slow  # needs both sweeps
def test_variants_of_named_variants_and_a_heatmap_metric(variant_sweep, sweep_result, tmp_path):
    assert variant_labels(variant_sweep) == ["lean", "base", "push"]
    plot(variant_sweep, "variants", tmp_path / "v.png")
    assert_png((tmp_path / "v.png").read_bytes())
    plot(sweep_result[0], "heatmap", tmp_path / "h.png", metric="customers")
    assert_png((tmp_path / "h.png").read_bytes())
    with pytest.raises(PlotError, match="two swept parameters"):
        plot(variant_sweep, "heatmap", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow  # needs the 2 x 2 x 2 sweep
def test_wrong_kind_for_the_result_is_one_clear_error(run_result, sweep_result, tmp_path, capsys):
    _, run_path = run_result
    rc = main(["plot", str(run_path), "--kind", "variants", "--out", str(tmp_path / "a.png")])
    err = capsys.readouterr().err
    assert rc == 2 and "sweep" in err and "Traceback" not in err
    _, directory = sweep_result
    rc = main(["plot", str(directory), "--kind", "economics", "--out", str(tmp_path / "b.png")])
    err = capsys.readouterr().err
    assert rc == 2 and "single run" in err
    assert list(tmp_path.iterdir()) == []


def test_a_result_without_a_needed_variable_is_one_clear_error(run_result, tmp_path, capsys):
    ds, _ = run_result
    path = tmp_path / "thin.nc"
    write_netcdf(ds.drop_vars(["churned", "attributed_conversions"]), path)
    for argv in (["plot", str(path), "--kind", "economics", "--out", str(tmp_path / "e.png")],
                 ["plot", str(path), "--kind", "attribution", "--out", str(tmp_path / "a.png")],
                 ["report", str(path), "--out", str(tmp_path / "r.html")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert_one_clear_line(err)
        assert "churned" in err or "attributed_conversions" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thin.nc"]
    assert main(["plot", str(path), "--kind", "funnel", "--out", str(tmp_path / "f.png")]) == 0


@pytest.mark.slow  # a run and four plots of its own
def test_plots_with_a_channel_that_never_converts(tmp_path, default_scenario):
    sc = with_overrides(default_scenario, {"channels.search.daily_budget": 0.0})
    ds = simulation.run(sc, agents=1500, days=15, seed=1)
    for kind in ("economics", "cohorts", "saturation", "attribution"):
        plot(ds, kind, tmp_path / f"{kind}.png")
        assert_png((tmp_path / f"{kind}.png").read_bytes())


def embedded_images(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in
            re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)]


def assert_self_contained(text: str) -> None:
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"<(script|link|iframe)\b", text, re.I)
    assert not re.search(r"\bhref\s*=", text, re.I)
    sources = re.findall(r'\bsrc\s*=\s*"([^"]*)"', text, re.I)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "url(" not in text and "@import" not in text


@pytest.mark.slow  # renders every plot into the report
def test_run_report_is_self_contained_and_complete(run_result, tmp_path, capsys):
    ds, path = run_result
    out = tmp_path / "report.html"
    rc = main(["report", str(path), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    images = embedded_images(text)
    assert len(images) == len(RUN_KINDS)
    for data in images:
        assert_png(data)
    for needle in ("Diagnostics", "Unit economics", "Attribution", "direct_sales",
                   "CPA above LTV", "Capacity losses", "LTV projected"):
        assert needle in text, needle
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


@pytest.mark.slow  # renders every plot into the report
def test_sweep_report_is_self_contained(sweep_result, tmp_path, capsys):
    _, directory = sweep_result
    rc = main(["report", str(directory)])  # default name beside the combined result
    assert rc == 0, capsys.readouterr().err
    out = directory / f"{directory.name}_report.html"
    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    images = embedded_images(text)
    assert len(images) == 2 + len(RUN_KINDS)  # variants, heatmap, the best variant's plots
    for data in images:
        assert_png(data)
    assert "Variants" in text and "Diagnostics by variant" in text and "replicate" in text


def test_run_prints_diagnostics(tmp_path, capsys):
    rc = main(["run", str(SCENARIOS / "saas_case.toml"), "--agents", "4000", "--days", "60", "--out",
               str(tmp_path / "r.nc")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Diagnostics" in out and "direct_sales" in out


def test_report_of_a_missing_file_is_one_clear_error(tmp_path, capsys):
    rc = main(["report", str(tmp_path / "nope.nc")])
    err = capsys.readouterr().err
    assert rc == 2
    assert_one_clear_line(err, "nope.nc")
    assert list(tmp_path.iterdir()) == []
