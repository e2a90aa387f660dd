"""Regenerate the README pictures (docs/images/*.png) from the example scenarios.

    .venv/bin/python docs/make_pictures.py

Single-run pictures come from 100,000-customer runs of a year; the two sweep pictures
from small sweeps built here run by run (the same layout ``distsim sweep`` writes to
``DIR/combined.nc``: a dimension per variant or swept parameter, plus ``replicate``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import xarray as xr

import simulation
from simulation.analysis.plots import plot
from simulation.scenario import with_overrides

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"
AGENTS = 100_000


def combine(runs: dict[tuple, list[xr.Dataset]], dims: tuple[str, ...]) -> xr.Dataset:
    stacked = {}
    for key, reps in runs.items():
        rep = xr.DataArray(np.arange(len(reps)), dims="replicate", name="replicate")
        stacked[key] = xr.concat(reps, dim=rep, coords="minimal", compat="override",
                                 combine_attrs="drop_conflicts")

    def nest(d: dict, k: int):
        if k == len(dims) - 1:
            return list(d.values())
        firsts = list(dict.fromkeys(key[0] for key in d))
        return [nest({key[1:]: v for key, v in d.items() if key[0] == f}, k + 1) for f in firsts]

    ds = xr.combine_nested(nest(stacked, 0), concat_dim=list(dims), coords="minimal",
                           compat="override", combine_attrs="drop_conflicts")
    labels = [list(dict.fromkeys(key[k] for key in runs)) for k in range(len(dims))]
    return ds.assign_coords(dict(zip(dims, labels, strict=True)))


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    default = simulation.load_scenario(ROOT / "scenarios" / "default.toml")
    saas = simulation.load_scenario(ROOT / "scenarios" / "saas_case.toml")
    d = simulation.run(default, agents=AGENTS)
    s = simulation.run(saas, agents=AGENTS)
    for kind, ds in (("funnel", d), ("attribution", d), ("saturation", d), ("dashboard", d),
                     ("economics", s), ("cohorts", s)):
        plot(ds, kind, OUT / f"{kind}.png")
        print(f"{kind}.png", flush=True)

    variants = {
        "as is": {},
        "no sales team": {"channels.direct_sales.fixed_daily_cost": 0.0,
                          "channels.direct_sales.reach.frequency": 0.0},
        "sales capacity x2": {"channels.direct_sales.fixed_daily_cost": 2400.0,
                              "channels.direct_sales.capacity": 18},
    }
    runs = {(name,): [simulation.run(with_overrides(saas, over), agents=50_000, seed=seed)
                      for seed in (1, 2, 3)] for name, over in variants.items()}
    plot(combine(runs, ("variant",)), "variants", OUT / "variants.png")
    print("variants.png", flush=True)

    grid = {}
    for search in (50.0, 150.0, 400.0):
        for social in (0.0, 125.0, 250.0, 500.0):
            sc = with_overrides(default, {"channels.search.daily_budget": search,
                                          "channels.paid_social.daily_budget": social})
            grid[(search, social)] = [simulation.run(sc, agents=30_000, seed=seed)
                                      for seed in (1, 2)]
    sweep = combine(grid, ("channels.search.daily_budget", "channels.paid_social.daily_budget"))
    plot(sweep, "heatmap", OUT / "heatmap.png", metric="profit")
    print("heatmap.png", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
