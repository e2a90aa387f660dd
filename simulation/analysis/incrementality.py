"""Reading a lift result (:mod:`simulation.lift`): the table and the plot.

Each figure is a mean over paired replicates with a 95% t interval. An incremental
CAC is shown only when the interval of incremental customers excludes 0: a channel
whose customers may all have bought anyway has no acquisition cost to speak of.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import xarray as xr
from rich.markup import escape
from rich.table import Table

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from simulation.analysis.common import size_text  # noqa: E402

LEVEL = 0.95


def figures(ds: xr.Dataset) -> list[dict]:
    """One row per target: mean, low and high of each incremental figure, the replicates
    they rest on, and the incremental CAC and ROAS of the means (NaN where they mean
    nothing). The table, the plot, the report and the diagnostics' verdicts read these."""
    from simulation.sweep.combine import t_interval

    rows = []
    for target in map(str, ds.target.values):
        sel = ds.sel(target=target)
        row = {"target": target, "kind": str(sel.kind.values),
               "replicates": t_interval(sel.incremental_profit.values, LEVEL)[3]}
        for name in [v for v in ds.data_vars if str(v).startswith("incremental_")]:
            row[name] = t_interval(sel[name].values, LEVEL)[:3]
        customers, low, high = row["incremental_customers"]
        cost = row["incremental_cost"][0]
        revenue = row["incremental_revenue"][0]
        caused = customers > 0 and (low > 0 if math.isfinite(low) else True)
        row["icac"] = cost / customers if caused else math.nan
        r_low = row["incremental_revenue"][1]
        earned = revenue > 0 and (r_low > 0 if math.isfinite(r_low) else True)
        row["iroas"] = revenue / cost if cost > 0 and earned else math.nan
        credit = sel.attributed_conversions.values
        row["credit_low"] = float(np.nanmin(credit)) if np.isfinite(credit).any() else math.nan
        row["credit_high"] = float(np.nanmax(credit)) if np.isfinite(credit).any() else math.nan
        rows.append(row)
    return rows


def _pm(mean: float, low: float, high: float) -> str:
    text = f"{mean:,.0f}"
    if math.isfinite(low) and math.isfinite(high):
        text += f" ± {(high - low) / 2:,.0f}"
    return text


def lift_table(ds: xr.Dataset) -> Table:
    """The console table of ``distsim lift``."""
    reps = int(ds.attrs.get("replicates", ds.sizes.get("replicate", 1)))
    start = int(ds.attrs.get("lift_from_day", 0))
    spread = ("mean ± 95% CI" if reps > 1
              else "one replicate: no intervals (run --replicates 3 or more)")
    title = (f"{escape(str(ds.attrs.get('scenario_name', 'scenario')))}: lift of each "
             f"hold-out from day {start}, {size_text(ds.attrs, int(ds.attrs['days']))}, "
             f"{reps} paired replicate(s); {spread}")
    table = Table(title=title)
    for header in ("target", "customers", "orders", "revenue", "profit", "profit projected",
                   "iCAC", "iROAS", "attributed customers"):
        table.add_column(header, justify="left" if header == "target" else "right",
                         no_wrap=header == "target")
    for row in figures(ds):
        icac = row["icac"]
        credit = ("–" if not math.isfinite(row["credit_low"]) else
                  f"{row['credit_low']:,.0f} – {row['credit_high']:,.0f}")
        table.add_row(
            escape(row["target"]),
            _pm(*row["incremental_customers"]), _pm(*row["incremental_orders"]),
            _pm(*row["incremental_revenue"]), _pm(*row["incremental_profit"]),
            _pm(*row["incremental_profit_projected"]),
            "none" if not math.isfinite(icac) else f"{icac:,.2f}",
            "–" if not math.isfinite(row["iroas"]) else f"{row['iroas']:.2f}",
            credit)
    table.caption = (
        "incremental = base - hold-out, whole market and run, on the same seeds; profit "
        "counts the target's own costs; projected adds the value beyond the run of the "
        "customers it caused; iCAC = incremental cost (media, fixed, programme costs, "
        "commissions and fees) / incremental customers ('none': the interval of incremental "
        "customers includes 0), iROAS = incremental revenue / that cost; attributed "
        "customers: lowest – highest credit of the attribution models in the base run. "
        "Hold-outs overlap (word of mouth, shared customers): single lifts need not add up "
        "to all_channels'")
    return table


def lift_figure(ds: xr.Dataset):
    """Incremental profit per target with its interval, beside incremental customers and
    what the attribution models credit."""
    rows = figures(ds)
    names = [r["target"] for r in rows]
    y = np.arange(len(rows))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 0.6 * len(rows) + 2.5), sharey=True)
    for axis, key, title in ((ax, "incremental_profit", "incremental profit (currency)"),
                             (bx, "incremental_customers", "incremental customers")):
        mean = np.array([r[key][0] for r in rows])
        low = np.array([r[key][1] for r in rows])
        high = np.array([r[key][2] for r in rows])
        colours = ["#2ca02c" if lo > 0 else "#d62728" if hi < 0 else "#999999"
                   for lo, hi in zip(np.nan_to_num(low, nan=-np.inf),
                                     np.nan_to_num(high, nan=np.inf), strict=True)]
        axis.barh(y, mean, color=colours, alpha=0.8, edgecolor="black", linewidth=0.4)
        ok = np.isfinite(low) & np.isfinite(high)
        axis.errorbar(mean[ok], y[ok], xerr=[mean[ok] - low[ok], high[ok] - mean[ok]],
                      fmt="none", ecolor="black", capsize=3)
        axis.axvline(0, color="black", lw=0.8)
        axis.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:,.0f}"))
        axis.set_xlabel(title)
        axis.grid(True, axis="x", alpha=0.3)
    projected = np.array([r["incremental_profit_projected"][0] for r in rows])
    ax.scatter(projected, y, marker="D", facecolors="white", edgecolors="black", zorder=4,
               label="projected, with the value beyond the run")
    ax.legend(loc="lower right", fontsize=8)
    lo = np.array([r["credit_low"] for r in rows])
    hi = np.array([r["credit_high"] for r in rows])
    has = np.isfinite(lo)
    bx.hlines(y[has], lo[has], hi[has], color="#1f77b4", lw=4, alpha=0.6,
              label="attributed customers (range over models)")
    if has.any():
        bx.legend(loc="lower right", fontsize=8)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    fig.suptitle(f"What each hold-out caused: {ds.attrs.get('scenario_name', '')} "
                 f"(from day {int(ds.attrs.get('lift_from_day', 0))}, "
                 f"{int(ds.attrs.get('replicates', 1))} paired replicates, 95% CI; green: "
                 "interval above 0, red: below, grey: includes 0)", fontsize=10)
    fig.tight_layout()
    return fig


def lift_png(ds: xr.Dataset) -> bytes:
    from simulation.analysis.plots import png_bytes

    return png_bytes(lift_figure(ds))
