"""``response.png``: each optimised channel's response curve.

A column per channel, two rows: the incremental new customers and the incremental
profit that the channel's daily budget brings, against the same run with its budget
at 0, the other channels held at the recommended split (mean and 95% interval over
paired fresh seeds). Dashed: the scenario's own budget; solid: the recommended one.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from simulation.analysis.common import channel_colours, size_text  # noqa: E402
from simulation.analysis.plots import MONEY, png_bytes  # noqa: E402


def response_figure(ds: xr.Dataset):
    names = [str(c) for c in ds.channel.values]
    colours = channel_colours(names)
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names) + 0.6, 7.2),
                             squeeze=False, sharex="col")
    title = (f"{ds.attrs['scenario_name']}: response to each channel's daily budget\n"
             f"({size_text(ds.attrs, int(ds.attrs['days']))})")
    fig.suptitle(title, fontsize=11)
    rows = (("customers", "incremental new customers"), ("profit", "incremental profit"))
    for j, name in enumerate(names):
        for i, (figure, label) in enumerate(rows):
            ax = axes[i, j]
            if "curve_budget" not in ds:
                ax.text(0.5, 0.5, "no curves (--curve-points 0)", ha="center",
                        va="center", transform=ax.transAxes)
                continue
            s = ds.sel(channel=name)
            x = s.curve_budget.values
            mean = s[f"incremental_{figure}_mean"].values
            low = s[f"incremental_{figure}_low"].values
            high = s[f"incremental_{figure}_high"].values
            ax.fill_between(x, np.where(np.isfinite(low), low, mean),
                            np.where(np.isfinite(high), high, mean),
                            color=colours[name], alpha=0.2, lw=0, label="95% interval")
            ax.plot(x, mean, "o-", color=colours[name], label="mean")
            ax.axhline(0, color="0.6", lw=0.8)
            ax.axvline(float(s.current_budget), color="0.3", ls="--", lw=1,
                       label=f"current {float(s.current_budget):,.0f}")
            ax.axvline(float(s.recommended_budget), color="k", lw=1.2,
                       label=f"recommended {float(s.recommended_budget):,.0f}")
            ax.yaxis.set_major_formatter(MONEY)
            ax.xaxis.set_major_formatter(MONEY)
            if i == 0:
                ax.set_title(name)
            if i == 1:
                ax.set_xlabel("daily budget (currency a day)")
            if j == 0:
                ax.set_ylabel(label + ("\n(currency, over the run)" if figure == "profit"
                                       else "\n(over the run)"))
            ax.legend(fontsize=7, loc="best")
    fig.text(0.5, 0.005, "against the channel at 0, the others at the recommended split; "
             f"mean and 95% interval over {ds.sizes.get('curve_replicate', 0)} paired seeds",
             ha="center", fontsize=8, color="0.3")
    fig.tight_layout(rect=(0, 0.02, 1, 0.96))
    return fig


def response_png(ds: xr.Dataset) -> bytes:
    return png_bytes(response_figure(ds))
