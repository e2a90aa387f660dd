"""Plots of results. matplotlib with the Agg backend: no screen needed, figures closed after saving."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import xarray as xr  # noqa: E402

from simulation.io import atomic_path  # noqa: E402

STAGE_COLOURS = {
    "unaware": "#d9d9d9", "aware": "#9ecae1", "considering": "#4292c6",
    "active": "#31a354", "churned": "#de2d26",
}
KINDS = ("funnel",)


def funnel(ds: xr.Dataset, ax=None):
    """Stage occupancy over time: where the market's customers are in the journey."""
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(9, 5))
    days = ds.day.values
    stages = [str(s) for s in ds.stage.values]
    ax.stackplot(days, *[ds.stage_count.sel(stage=s).values for s in stages], labels=stages,
                 colors=[STAGE_COLOURS[s] for s in stages])
    ax.set_xlim(days[0], days[-1])
    ax.set_xlabel("day")
    ax.set_ylabel("customers")
    ax.set_title(f"Journey funnel over time: {ds.attrs.get('scenario_name', '')} "
                 f"({int(ds.attrs['agents']):,} customers)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="stage")
    if own:
        fig.tight_layout()
        return fig
    return ax.figure


def plot(ds: xr.Dataset, kind: str, out: str | Path) -> Path:
    """Draw ``kind`` for ``ds`` and write it to ``out`` (PNG) atomically."""
    if kind not in KINDS:
        raise ValueError(f"unknown plot kind {kind!r} (available: {', '.join(KINDS)})")
    fig = {"funnel": funnel}[kind](ds)
    try:
        with atomic_path(out, ".png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return Path(out)
