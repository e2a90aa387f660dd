"""fit.png: every observed figure beside what the calibrated scenario simulates.

One panel per ``[[observed]]`` figure, read from the fit table in ``posterior.nc``
(:func:`simulation.calibration.command.fit_table`): the observed values with a band of
two sds (the check's pass mark), and the mean of the calibrated scenario's check runs
with the spread of those runs. A single figure is a pair of points; a weekly series or
a histogram is a pair of lines over its elements.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from simulation.analysis.plots import plt, png_bytes

OBSERVED = "#222222"
SIMULATED = "#1f77b4"


def fit_png(post: xr.Dataset) -> bytes:
    """The PNG of ``post``'s fit table."""
    figures = list(dict.fromkeys(post.figure.values.tolist()))
    cols = min(3, len(figures))
    rows = math.ceil(len(figures) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.2 * rows), squeeze=False)
    try:
        for ax, name in zip(axes.flat, figures, strict=False):
            _panel(ax, post.where(post.figure == name, drop=True), name)
        for ax in list(axes.flat)[len(figures):]:
            ax.axis("off")
        fig.suptitle(f"calibration of {post.attrs.get('scenario_name', '')}: observed "
                     "(band: 2 sds) vs the calibrated scenario (mean ± sd of "
                     f"{post.attrs.get('check_runs', '?')} runs)", fontsize=10)
        fig.tight_layout()
        return png_bytes(fig)
    finally:
        plt.close(fig)


def _panel(ax, rows: xr.Dataset, name: str) -> None:
    obs = rows.observed.values
    sd = rows.sd.values
    sim = rows.simulated.values
    spread = rows.simulated_sd.values
    x = np.arange(len(obs))
    if len(obs) == 1:
        ax.errorbar([0], obs, yerr=2 * sd, fmt="o", color=OBSERVED, capsize=6,
                    label="observed ± 2 sd")
        ax.errorbar([0.3], sim, yerr=spread, fmt="s", color=SIMULATED, capsize=6,
                    label="simulated")
        ax.set_xlim(-0.5, 0.8)
        ax.set_xticks([])
    else:
        ax.fill_between(x, obs - 2 * sd, obs + 2 * sd, color=OBSERVED, alpha=0.12, lw=0)
        ax.plot(x, obs, "o-", color=OBSERVED, ms=3, label="observed ± 2 sd")
        ax.plot(x, sim, "-", color=SIMULATED, label="simulated")
        ax.fill_between(x, sim - spread, sim + spread, color=SIMULATED, alpha=0.2, lw=0)
        ax.set_xlabel(str(rows.element_kind.values[0]))
        step = max(1, len(x) // 12)
        ax.set_xticks(x[::step])
        ax.set_xticklabels([str(e).removeprefix("week ") for e in rows.element.values[::step]],
                           fontsize=8)
    worst = float(np.nanmax(np.abs(rows.z.values)))
    ax.set_title(f"{name}\nworst miss {worst:.1f} sd", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
