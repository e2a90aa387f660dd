"""``sensitivity.png``: the objective's tornado.

Morris: a bar per assumption, the largest mu* on top (the mean absolute change of the
outcome over the assumption's range), its 95% interval as a whisker, coloured by the
sign of the effect (mu against mu*: raises, lowers, either way), sigma (interactions,
non-linearity) as a diamond. Sobol: the total-order index ST as the bar, the
first-order S1 inside it, both with their intervals.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from simulation.analysis.common import size_text  # noqa: E402
from simulation.analysis.plots import MONEY, png_bytes  # noqa: E402

RAISES, LOWERS, MIXED = "#2b8cbe", "#e34a33", "#969696"
MONEY_OUTCOMES = ("profit", "revenue", "cac", "ltv")


def direction(mu: float, mu_star: float) -> str:
    """'raises', 'lowers' or 'either way': mostly one sign when |mu| is over half mu*."""
    if not np.isfinite(mu) or not np.isfinite(mu_star) or mu_star == 0:
        return "either way"
    share = mu / mu_star
    return "raises" if share > 0.5 else ("lowers" if share < -0.5 else "either way")


def tornado(ds: xr.Dataset, outcome: str | None = None):
    outcome = outcome or ds.attrs.get("objective", "profit")
    s = ds.sel(outcome=outcome)
    params = [str(p) for p in ds.parameter.values]
    morris = ds.attrs["method"] == "morris"
    size = max(3.2, 0.42 * len(params) + 1.9)
    fig, ax = plt.subplots(figsize=(9.5, size))
    if morris:
        value, conf = s.mu_star.values, s.mu_star_conf.values
    else:
        value, conf = s.ST.values, s.ST_conf.values
    order = np.argsort(np.where(np.isfinite(value), value, -np.inf), kind="stable")
    y = np.arange(len(params))
    labels = [f"{params[i]}\n{ds.distribution.values[i]}" for i in order]
    if morris:
        colours = [{"raises": RAISES, "lowers": LOWERS}.get(
            direction(float(s.mu.values[i]), float(value[i])), MIXED) for i in order]
        ax.barh(y, value[order], xerr=conf[order], color=colours, capsize=3,
                error_kw={"elinewidth": 1, "ecolor": "#333333"})
        ax.plot(s.sigma.values[order], y, "D", color="black", markersize=4, label="sigma")
        ax.legend(handles=[Patch(color=RAISES, label=f"raises {outcome}"),
                           Patch(color=LOWERS, label=f"lowers {outcome}"),
                           Patch(color=MIXED, label="either way"),
                           *ax.get_legend_handles_labels()[0]],
                  loc="lower right", fontsize=8)
        unit = "$" if outcome in MONEY_OUTCOMES else ""
        ax.set_xlabel(f"mu*: mean |change in {outcome}| over each assumption's range"
                      + (f" ({unit})" if unit else ""))
        if outcome in MONEY_OUTCOMES:
            ax.xaxis.set_major_formatter(MONEY)
    else:
        ax.barh(y, value[order], xerr=conf[order], color="#9ecae1", capsize=3,
                label="ST (total)")
        ax.barh(y, s.S1.values[order], height=0.4, xerr=s.S1_conf.values[order],
                color="#08519c", capsize=2, label="S1 (first order)")
        ax.set_xlabel(f"share of the variance of {outcome}")
        ax.set_xlim(0, max(1.0, float(np.nanmax(value + conf)) if np.isfinite(value).any()
                           else 1.0))
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.grid(axis="x", alpha=0.3)
    what = (f"Morris, {ds.attrs['samples']} trajectories" if morris
            else f"Sobol, N = {ds.attrs['samples']}")
    fig.suptitle(f"{ds.attrs['experiment_name']}: what drives {outcome}?  ({what}, "
                 f"{ds.attrs['rows']} rows x {ds.attrs['replicates']} replicate(s) on common "
                 "seeds)", fontsize=10)
    ax.set_title(f"{ds.attrs['scenario_name']}, {size_text(ds.attrs, int(ds.attrs['days']))}",
                 fontsize=9)
    fig.tight_layout()
    return fig


def tornado_png(ds: xr.Dataset, outcome: str | None = None) -> bytes:
    return png_bytes(tornado(ds, outcome))
