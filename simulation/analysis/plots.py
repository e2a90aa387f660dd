"""Plots of a result or a sweep, each readable on its own: a title naming the scenario
and size, labelled axes with units, and one colour per channel shared by every plot.
The kinds on offer are named in :mod:`simulation.analysis.kinds`.

matplotlib with the Agg backend (no screen needed); figures are closed after saving
and written atomically.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, PercentFormatter  # noqa: E402

from simulation.analysis.attribution import MODEL_LABELS, attributed_revenue  # noqa: E402
from simulation.analysis.common import (  # noqa: E402
    axis_parameters,
    channel_colours,
    channels,
    is_point_numbered,
    is_sweep,
    safe_div,
    sweep_dims,
    title_of,
    weekly,
)
from simulation.analysis.economics import (  # noqa: E402
    cac_over_time,
    cohort_retention,
    cohort_sizes,
    retention_curves,
    unit_economics,
)
from simulation.analysis.kinds import KINDS, KPIS, RUN_KINDS  # noqa: E402
from simulation.analysis.sweep import by_variant, interval, kpis  # noqa: E402
from simulation.outputs import write_file  # noqa: E402

STAGE_COLOURS = {
    "unaware": "#d9d9d9", "aware": "#9ecae1", "considering": "#4292c6",
    "active": "#31a354", "churned": "#de2d26",
}
MODEL_MARKERS = {"first_touch": "<", "last_touch": ">", "linear": "s", "time_decay": "v",
                 "position_based": "D", "markov": "o"}
DPI = 110
MAX_VARIANTS = 40


class PlotError(ValueError):
    """The result cannot give this kind of plot (e.g. a sweep plot of a single run)."""


def _money(x, _pos=None) -> str:
    a = abs(x)
    if a >= 1e6:
        return f"{x / 1e6:,.1f}M"
    if a >= 1e4:
        return f"{x / 1e3:,.0f}k"
    if a >= 1e3:
        return f"{x / 1e3:,.1f}k"
    return f"{x:,.0f}" if a >= 10 or a == 0 else f"{x:,.2f}"


MONEY = FuncFormatter(_money)


def _channel_legend(ax, names, colours, **kw):
    handles = [Line2D([], [], color=colours[n], lw=6, label=n) for n in names]
    return ax.legend(handles=handles, title="channel", **kw)


def _place_labels(ax, points, texts, fontsize: int = 8) -> None:
    """Annotate points without overlapping labels: each label takes the first of a few
    offsets around its point whose box is clear of the labels already placed."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    offsets = [(10, 8, "left", "bottom"), (10, -10, "left", "top"), (-10, 8, "right", "bottom"),
               (-10, -10, "right", "top"), (10, 26, "left", "bottom"), (10, -28, "left", "top")]
    placed = []
    order = sorted(range(len(points)), key=lambda k: -points[k][1])
    for k in order:
        for dx, dy, ha, va in offsets:
            ann = ax.annotate(texts[k], points[k], xytext=(dx, dy), textcoords="offset points",
                              fontsize=fontsize, ha=ha, va=va,
                              arrowprops={"arrowstyle": "-", "color": "#999999", "lw": 0.5})
            box = ann.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(b) for b in placed):
                placed.append(box)
                break
            ann.remove()
        else:
            ann = ax.annotate(texts[k], points[k], xytext=offsets[0][:2],
                              textcoords="offset points", fontsize=fontsize)
            placed.append(ann.get_window_extent(renderer))


def _suptitle(fig, text: str, ds: xr.Dataset, note: str = "") -> None:
    fig.suptitle(f"{text} — {title_of(ds)}", fontsize=13, fontweight="bold")
    if note:
        width = int(fig.get_figwidth() * 15)
        fig.text(0.5, 0.005, textwrap.fill(note, width), ha="center", va="bottom", fontsize=8,
                 color="#555555")


# -- single-run kinds ---------------------------------------------------------------


def funnel(ds: xr.Dataset, ax=None):
    """Stage occupancy over time: where the market's customers are in the journey."""
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(10, 5.5))
    days = ds.day.values
    stages = [str(s) for s in ds.stage.values]
    ax.stackplot(days, *[ds.stage_count.sel(stage=s).values for s in stages], labels=stages,
                 colors=[STAGE_COLOURS.get(s, "#999999") for s in stages])
    ax.set_xlim(days[0], max(days[-1], days[0] + 1))
    ax.set_ylim(0, float(ds.stage_count.isel(day=0).sum()))
    ax.set_xlabel("day")
    ax.set_ylabel("customers in the stage (count)")
    ax.yaxis.set_major_formatter(MONEY)
    ax.set_title(f"Journey funnel over time — {title_of(ds)}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="stage")
    # the stages that matter are thin next to 'unaware': show them on a second axis
    if own:
        inset = ax.inset_axes([0.08, 0.08, 0.42, 0.38])
        for s in ("considering", "active", "churned"):
            if s in stages:
                inset.plot(days, ds.stage_count.sel(stage=s).values, color=STAGE_COLOURS[s], lw=1.8,
                           label=s)
        inset.set_title("considering, active, churned on their own scale", fontsize=8)
        inset.legend(fontsize=7, loc="upper left")
        inset.tick_params(labelsize=7)
        inset.yaxis.set_major_formatter(MONEY)
        inset.set_facecolor("#ffffffdd")
        fig.tight_layout()
        return fig
    return ax.figure


def economics(ds: xr.Dataset):
    """CAC against LTV per acquisition channel, with contribution and payback."""
    econ = unit_economics(ds)
    names = channels(ds)
    colours = channel_colours(names)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.8), gridspec_kw={"width_ratios": [1.25, 1]})
    n = econ.customers.values
    cac = econ.cac_loaded.values
    ltv = econ.ltv_projected.values
    real = econ.ltv.values
    shown = [i for i, _ in enumerate(names) if n[i] > 0 and np.isfinite(cac[i]) and cac[i] > 0]
    free = [names[i] for i, _ in enumerate(names) if n[i] > 0 and cac[i] == 0]
    if shown:
        xs = np.array([cac[i] for i in shown])
        ys = np.array([v for i in shown for v in (ltv[i], real[i]) if np.isfinite(v) and v > 0]
                      or [1.0])
        lo = max(min(xs.min(), ys.min()) / 2, 0.01)
        hi = max(xs.max(), ys.max()) * 2
        log = hi / lo > 30
        grid = np.geomspace(lo, hi, 50) if log else np.linspace(0, hi, 50)
        ax.fill_between(grid, 0 if not log else lo, grid, color="#d62728", alpha=0.07,
                        label="LTV < CAC: loses money")
        ax.plot(grid, grid, color="#d62728", lw=1, ls="--", label="LTV = CAC (break-even)")
        ax.plot(grid, 3 * grid, color="#2ca02c", lw=1, ls=":", label="LTV = 3 x CAC")
        size = 60 + 900 * np.sqrt(n / max(n.max(), 1))
        for i in shown:
            c = colours[names[i]]
            if np.isfinite(real[i]) and np.isfinite(ltv[i]):
                ax.plot([cac[i], cac[i]], [max(real[i], lo), max(ltv[i], lo)], color=c, lw=1.2,
                        alpha=0.8)
                ax.scatter([cac[i]], [max(real[i], lo)], s=40, facecolors="white", edgecolors=c,
                           zorder=3)
            ax.scatter([cac[i]], [max(ltv[i], lo)], s=size[i], color=c, alpha=0.85,
                       edgecolors="black", linewidths=0.5, zorder=4)
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi * 1.5)
        _place_labels(ax, [(cac[i], max(ltv[i], lo)) for i in shown],
                      [f"{names[i]}\nLTV/CAC {econ.ltv_cac.values[i]:.2f}" for i in shown])
        ax.xaxis.set_major_formatter(MONEY)
        ax.yaxis.set_major_formatter(MONEY)
        handles, _ = ax.get_legend_handles_labels()
        years = econ.attrs["horizon_days"] / 365
        handles += [
            Line2D([], [], marker="o", ls="", color="#777777", markersize=9,
                   label=f"LTV projected over {years:g} years"),
            Line2D([], [], marker="o", ls="", markerfacecolor="white", color="#777777",
                   label="LTV realised in the run"),
        ]
        ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.95)
    else:
        ax.text(0.5, 0.5, "no channel acquired paid customers", ha="center", transform=ax.transAxes)
    ax.set_xlabel("loaded CAC: media + fixed cost + first-order fees and onboarding per new "
                  "customer (currency)")
    ax.set_ylabel("LTV per customer (currency)")
    ax.set_title("CAC versus LTV (bubble area ~ new customers)")
    ax.grid(True, alpha=0.3, which="both")

    contrib = econ.profit.values
    spent = econ.spend.values
    keep = [i for i in range(len(names)) if n[i] > 0 or spent[i] > 0]
    order = [i for i in np.argsort(contrib) if i in keep]
    y = np.arange(len(order))
    bx.barh(y, contrib[order], color=[colours[names[i]] for i in order], edgecolor="black",
            linewidth=0.4)
    bx.axvline(0, color="black", lw=0.8)
    bx.set_yticks(y, [names[i] for i in order])
    span = max(np.abs(contrib).max(), 1.0)
    horizon = int(econ.attrs["horizon_days"])
    for yi, i in zip(y, order, strict=True):
        pb = econ.payback_days.values[i]
        if n[i] == 0:
            txt = "no customers"
        elif not np.isfinite(pb) or pb > horizon:
            txt = f"payback beyond {horizon // 365} years"
        else:
            txt = f"payback {pb:,.0f} days"
        bx.text(max(contrib[i], 0) + 0.02 * span, yi, f"{_money(contrib[i])}\n{txt}",
                va="center", ha="left", fontsize=8)
    bx.set_xlim(min(contrib.min(), 0) - 0.05 * span, max(contrib.max(), 0) + 0.6 * span)
    bx.xaxis.set_major_formatter(MONEY)
    bx.set_xlabel("profit over the run (currency)")
    bx.set_title("Profit = gross margin - programme costs - spend")
    bx.grid(True, axis="x", alpha=0.3)
    note = ""
    if free:
        note += f"Free channels (CAC 0, not on the log scale): {', '.join(free)}. "
    if econ.attrs.get("estimated"):
        note += f"Estimated from the scenario: {econ.attrs['estimated']}."
    _suptitle(fig, "Channel economics", ds, note)
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    return fig


def cohorts(ds: xr.Dataset):
    """Retention curves by acquisition channel and the cohort triangle of all channels."""
    names = channels(ds)
    colours = channel_colours(names)
    curves = retention_curves(ds)
    ret = cohort_retention(ds)
    sizes = cohort_sizes(ds).reindex(cohort_week=ret.cohort_week.values, fill_value=0)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [1.1, 1]})
    weeks = curves.weeks_since.values
    total = sizes.sum("cohort_week")
    drawn = 0
    for name in names:
        if float(total.sel(channel=name)) <= 0:
            continue
        y = curves.sel(channel=name).values
        ax.plot(weeks, y, color=colours[name], lw=2, marker="o", ms=3,
                label=f"{name} ({int(total.sel(channel=name)):,} customers)")
        drawn += 1
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("weeks since acquisition")
    ax.set_ylabel("share of the cohort still a customer")
    ax.set_title("Retention by acquisition channel (weekly cohorts pooled)")
    ax.grid(True, alpha=0.3)
    if drawn:
        ax.legend(title="acquisition channel", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no customers acquired", ha="center", transform=ax.transAxes)

    w = sizes.where(ret.notnull(), 0.0)
    tri = safe_div((ret.fillna(0.0) * w).sum("channel"), w.sum("channel"))
    tri = tri.where(w.sum("channel") > 0)
    finite = tri.values[np.isfinite(tri.values)]
    vmin = math.floor(10 * finite.min()) / 10 if finite.size else 0.0
    im = bx.imshow(tri.values, aspect="auto", cmap="viridis", vmin=min(vmin, 0.9), vmax=1,
                   origin="upper", interpolation="nearest")
    bx.set_xlabel("weeks since acquisition")
    bx.set_ylabel("acquisition cohort (week of the run)")
    bx.set_title("Cohort retention, all channels")
    cb = fig.colorbar(im, ax=bx)
    cb.set_label("share of the cohort still a customer")
    cb.ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    note = "" if ret.attrs.get("method") == "measured" else (
        f"Retention {ret.attrs.get('method')}.")
    _suptitle(fig, "Cohort retention", ds, note)
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    return fig


def attribution(ds: xr.Dataset):
    """How each attribution model credits the same conversions (and their revenue)."""
    names = channels(ds)
    colours = channel_colours(names)
    conv = ds.attributed_conversions
    rev = attributed_revenue(ds)
    models = [str(m) for m in conv.attribution_model.values]
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.8 * len(names) + 3), sharey=True)
    y = np.arange(len(names))[::-1]
    offsets = np.linspace(0.3, -0.3, len(models))  # first model on top, as in the legend
    for ax, da, what in ((axes[0], conv, "conversions"), (axes[1], rev, "revenue (currency)")):
        for yi, name in zip(y, names, strict=True):
            vals = da.sel(channel=name).values
            ax.hlines(yi, vals.min(), vals.max(), color=colours[name], lw=8, alpha=0.25)
            for k, m in enumerate(models):
                ax.scatter(vals[k], yi + offsets[k], marker=MODEL_MARKERS.get(m, "o"), s=55,
                           color=colours[name], edgecolors="black", linewidths=0.5, zorder=3)
        ax.set_xlabel(f"{what} credited")
        ax.grid(True, axis="x", alpha=0.3)
        ax.set_xlim(-0.02 * max(float(da.max()), 1.0), 1.05 * max(float(da.max()), 1.0))
        ax.xaxis.set_major_formatter(MONEY)
    axes[0].set_yticks(y, names)
    for tick, name in zip(axes[0].get_yticklabels(), names, strict=True):
        tick.set_color(colours[name])
        tick.set_fontweight("bold")
    axes[0].set_title("Conversions credited per channel")
    method = rev.attrs.get("method", "measured")
    axes[1].set_title("Revenue of those conversions credited" + (
        " (estimated)" if method.startswith("estimated") else ""))
    handles = [Line2D([], [], marker=MODEL_MARKERS.get(m, "o"), ls="", color="#555555",
                      markersize=8, label=MODEL_LABELS.get(m, m)) for m in models]
    axes[1].legend(handles=handles, title="attribution model", loc="lower right", fontsize=8)
    total = float(ds.conversions.sum())
    note = (f"{total:,.0f} conversions; each model credits all of them (first touch and last 4 "
            "touches per journey). The bar spans the range across models.")
    if method.startswith("estimated"):
        note += " Revenue " + method + "."
    _suptitle(fig, "Attribution models compared", ds, note)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return fig


def saturation(ds: xr.Dataset, window: int = 28):
    """Cumulative spend against cumulative new customers (the response path, with iso-CAC
    diagonals: crossing them toward dearer CAC = diminishing returns) and marginal
    against average CAC over time."""
    names = channels(ds)
    colours = channel_colours(names)
    spend = ds.spend.sum("day")
    conv = ds.conversions.sum("day")
    paid = [n for n in names if float(spend.sel(channel=n)) > 0 and float(conv.sel(channel=n)) > 0]
    silent = [n for n in names if float(spend.sel(channel=n)) > 0 and float(conv.sel(channel=n)) == 0]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.8))
    window = min(window, ds.sizes["day"])
    over = cac_over_time(ds, window)
    cum_spend = ds.spend.cumsum("day")
    cum_conv = ds.conversions.cumsum("day")
    days = ds.day.values
    for name in paid:
        c = colours[name]
        xs = cum_spend.sel(channel=name).values
        ys = cum_conv.sel(channel=name).values
        ok = (xs > 0) & (ys > 0)
        ax.plot(xs[ok], ys[ok], color=c, lw=2, label=name)
        wk = np.arange(len(days)) % 7 == 6
        ax.scatter(xs[ok & wk], ys[ok & wk], color=c, s=10)
        m = over.marginal_cac.sel(channel=name).values.copy()
        m[:window - 1] = np.nan
        bx.plot(days, m, color=c, lw=2)
        bx.plot(days, over.average_cac.sel(channel=name).values, color=c, lw=1.2, ls="--")
    if paid:
        ax.set_xscale("log")
        ax.set_yscale("log")
        x0, x1 = ax.get_xlim()
        y0, y1 = ax.get_ylim()
        final = (cum_spend.isel(day=-1) / cum_conv.isel(day=-1)).sel(channel=paid).values
        kmin = int(np.floor(np.log10(max(np.nanmin(final), 1e-9)))) - 1
        kmax = int(np.ceil(np.log10(max(np.nanmax(final), 1e-9)))) + 1
        for k in range(kmin, kmax + 1):
            cac = 10.0 ** k
            xs = np.array([x0, x1])
            if xs[1] / cac < y0 or xs[0] / cac > y1:
                continue
            ax.plot(xs, xs / cac, color="#999999", lw=0.7, ls=":")
            xt = min(max(y1 * cac * 0.6, x0), x1 * 0.8)
            ax.text(xt, xt / cac, f"CAC {_money(cac)}", fontsize=7, color="#777777",
                    rotation=30, ha="center", va="bottom")
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.legend(title="channel", fontsize=8, loc="lower right")
        bx.legend(handles=[Line2D([], [], color="#555555", lw=2,
                                  label=f"marginal: last {window} days"),
                           Line2D([], [], color="#555555", lw=1.2, ls="--",
                                  label="average to date")], fontsize=8, loc="upper right")
    else:
        ax.text(0.5, 0.5, "no paid channel with customers", ha="center", transform=ax.transAxes)
    ax.xaxis.set_major_formatter(MONEY)
    ax.yaxis.set_major_formatter(MONEY)
    ax.set_xlabel("cumulative spend (currency, log scale)")
    ax.set_ylabel("cumulative new customers (count, log scale)")
    ax.set_title("Response path: spend versus new customers (dots weekly)")
    ax.grid(True, alpha=0.3, which="major")
    bx.set_xlabel("day")
    bx.set_ylabel("CAC (currency per new customer)")
    bx.set_title("Marginal versus average CAC (acquisition fees included)")
    bx.grid(True, alpha=0.3, which="both")
    finite = over.marginal_cac.sel(channel=paid).values if paid else np.array([])
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if finite.size and finite.max() / max(finite.min(), 1e-9) > 30:
        bx.set_yscale("log")
    bx.yaxis.set_major_formatter(MONEY)
    note = ("Paths crossing the dotted iso-CAC lines toward dearer CAC, or a marginal CAC "
            "above the average, mean each extra customer costs more: diminishing returns.")
    if silent:
        note += (f" Not shown, spend but no last-touch customers: {', '.join(silent)} "
                 "(see the attribution plot for the conversions they assist).")
    _suptitle(fig, "Spend versus conversions", ds, note)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    return fig


def dashboard(ds: xr.Dataset):
    """The weekly channel review: spend, new customers, CAC, ROAS, actives and churn, margin."""
    names = channels(ds)
    colours = channel_colours(names)
    wk_spend = weekly(ds.spend)
    wk_conv = weekly(ds.conversions)
    wk_rev = weekly(ds.revenue)
    wk_gm = weekly(ds.gross_margin)
    wk_churn = weekly(ds.churned).sum("channel")
    weeks = wk_spend.week.values
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    (a1, a2, a3), (a4, a5, a6) = axes

    bottom = np.zeros(len(weeks))
    for n in names:
        v = wk_spend.sel(channel=n).values
        if v.sum() > 0:
            a1.bar(weeks, v, bottom=bottom, color=colours[n], width=0.85)
            bottom += v
    a1.set_title("Spend per week")
    a1.set_ylabel("spend (currency)")
    bottom = np.zeros(len(weeks))
    for n in names:
        v = wk_conv.sel(channel=n).values
        a2.bar(weeks, v, bottom=bottom, color=colours[n], width=0.85)
        bottom += v
    a2.set_title("New customers per week (by acquisition channel)")
    a2.set_ylabel("new customers (count)")
    cac = safe_div(wk_spend, wk_conv)
    for n in names:
        if float(wk_spend.sel(channel=n).sum()) > 0:
            a3.plot(weeks, cac.sel(channel=n).values, color=colours[n], lw=2, marker="o", ms=3)
    blended = safe_div(wk_spend.sum("channel"), wk_conv.sum("channel"))
    a3.plot(weeks, blended.values, color="black", lw=1.5, ls="--", label="blended")
    a3.set_title("CAC per week (spend / new customers)")
    a3.set_ylabel("CAC (currency per customer)")
    a3.legend(fontsize=8)
    vals = cac.values[np.isfinite(cac.values) & (cac.values > 0)]
    if vals.size and vals.max() / vals.min() > 30:
        a3.set_yscale("log")
    roas = safe_div(wk_rev, wk_spend)
    for n in names:
        if float(wk_spend.sel(channel=n).sum()) > 0:
            a4.plot(weeks, roas.sel(channel=n).values, color=colours[n], lw=2, marker="o", ms=3)
    a4.axhline(1.0, color="#d62728", lw=1, ls="--", label="revenue = spend")
    a4.set_title("ROAS per week (revenue of the channel's customers / its spend)")
    a4.set_ylabel("ROAS (ratio)")
    a4.legend(fontsize=8)
    active = ds.stage_count.sel(stage="active")
    a5.plot(ds.day.values / 7.0, active.values, color=STAGE_COLOURS["active"], lw=2,
            label="active customers")
    a5.set_ylabel("active customers (count)")
    a5b = a5.twinx()
    a5b.bar(weeks, wk_churn.values, color=STAGE_COLOURS["churned"], alpha=0.5, width=0.85,
            label="churned in the week")
    a5b.set_ylabel("customers churned per week (count)")
    a5.set_title("Active customers and weekly churn")
    a5.legend(handles=[Line2D([], [], color=STAGE_COLOURS["active"], lw=2, label="active"),
                       Line2D([], [], color=STAGE_COLOURS["churned"], lw=6, alpha=0.5,
                              label="churned per week")], fontsize=8, loc="upper left")
    contribution = wk_gm.sum("channel") - wk_spend.sum("channel")
    if "programme_cost" in ds:
        contribution = contribution - weekly(ds.programme_cost).sum("channel")
    a6.bar(weeks, wk_rev.sum("channel").values, color="#9ecae1", width=0.85, label="revenue")
    a6.bar(weeks, wk_gm.sum("channel").values, color="#3182bd", width=0.5, label="gross margin")
    a6.plot(weeks, contribution.values, color="black", lw=2, marker="o", ms=3,
            label="contribution (margin - programmes - spend)")
    a6.axhline(0, color="black", lw=0.6)
    a6.set_title("Revenue, margin and contribution per week")
    a6.set_ylabel("currency per week")
    a6b = a6.twinx()
    a6b.plot(weeks, np.cumsum(contribution.values), color="#d62728", lw=1.5, ls="--")
    a6b.set_ylabel("cumulative contribution (currency)", color="#d62728")
    a6b.yaxis.set_major_formatter(MONEY)
    handles, _ = a6.get_legend_handles_labels()
    handles.append(Line2D([], [], color="#d62728", lw=1.5, ls="--",
                          label="cumulative contribution (right axis)"))
    a6.legend(handles=handles, fontsize=7, loc="upper left")
    for ax in axes.ravel():
        ax.set_xlabel("week of the run")
        ax.grid(True, alpha=0.3)
        ax.yaxis.set_major_formatter(MONEY)
    _channel_legend(fig, names, colours, loc="lower center", ncol=len(names), fontsize=9,
                    bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(f"Weekly channel dashboard — {title_of(ds)}", fontsize=13, fontweight="bold")
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return fig


# -- sweep kinds --------------------------------------------------------------------


def _need_sweep(ds: xr.Dataset, kind: str) -> None:
    if not is_sweep(ds):
        raise PlotError(f"--kind {kind} needs a sweep result (a combined dataset with "
                        "variant or swept-parameter dimensions); this is a single run")


def _sweep_title(ds: xr.Dataset) -> str:
    reps = ds.sizes.get("replicate", 1)
    dims = sweep_dims(ds)
    what = " x ".join(f"{d} ({ds.sizes[d]})" for d in dims) or "one variant"
    name = ds.attrs.get("scenario_name", "sweep")
    if ds.attrs.get("experiment_name"):
        name = f"{ds.attrs['experiment_name']} (base {name})"
    draws = f"{ds.sizes['draw']} assumption draws x " if "draw" in ds.dims else ""
    return f"{name}: {what}, {draws}{reps} replicate(s)"


def variants(ds: xr.Dataset, metrics: tuple[str, ...] = ("profit", "customers", "cac",
                                                          "ltv_cac")):
    """Each variant's mean with its 95% confidence interval over replicates."""
    _need_sweep(ds, "variants")
    k = kpis(ds)
    rows = len(metrics)
    first = by_variant(k[metrics[0]])
    labels = [str(v) for v in first.variant.values]
    shown = np.arange(len(labels))
    if len(labels) > MAX_VARIANTS:  # the best by mean profit, in their order
        profit = interval(by_variant(k["profit"]))["mean"].values
        shown = np.sort(np.argsort(-np.nan_to_num(profit, nan=-np.inf))[:MAX_VARIANTS])
        labels = [labels[i] for i in shown]
    fig, axes = plt.subplots(1, rows, figsize=(4.2 * rows + 2, 0.45 * len(labels) + 2.8),
                             sharey=True)
    axes = np.atleast_1d(axes)
    y = np.arange(len(labels))[::-1]
    drawn = "draw" in ds.dims and ds.sizes["draw"] > 1
    for ax, m in zip(axes, metrics, strict=True):
        ci = interval(by_variant(k[m])).isel(variant=shown)
        mean = ci["mean"].values
        lo = ci["low"].values
        hi = ci["high"].values
        best = np.nanargmax(mean) if m not in ("cac",) else np.nanargmin(mean)
        colours = ["#ff7f0e" if i == best else "#1f77b4" for i in range(len(labels))]
        ax.barh(y, mean, color=colours, alpha=0.75)
        if drawn:  # how far the assumptions move it: a grey band behind the whisker
            s_lo, s_hi = ci["spread_low"].values, ci["spread_high"].values
            ax.hlines(y, s_lo, s_hi, color="#7f7f7f", lw=7, alpha=0.35, zorder=3)
        err = np.vstack([mean - lo, hi - mean])
        if np.isfinite(err).any():
            ax.errorbar(mean, y, xerr=np.where(np.isfinite(err), err, 0), fmt="none",
                        ecolor="black", capsize=4, lw=1.2)
        ax.axvline(0, color="black", lw=0.6)
        label, units = KPIS[m]
        ax.set_title(label, fontsize=10)
        ax.set_xlabel(units)
        ax.grid(True, axis="x", alpha=0.3)
        if units.startswith("currency") or units == "customers":
            ax.xaxis.set_major_formatter(MONEY)
    axes[0].set_yticks(y, labels)
    n = int(ds.sizes.get("replicate", 1))
    note = (f"Bars: mean over {n} replicates; whiskers: 95% t interval; orange: best variant."
            if n > 1 else "One replicate per variant: no confidence interval.")
    if drawn:
        note = (f"Bars: mean over {ds.sizes['draw']} assumption draws x {n} replicate(s); "
                "whiskers: its 95% t interval over the draws; grey bands: the assumptions' "
                "range (5% to 95% of the draws' means); orange: best variant.")
    if len(shown) < len(first.variant):
        note += f" The {len(shown)} most profitable of {len(first.variant)} variants."
    fig.suptitle(textwrap.fill(f"Variant comparison — {_sweep_title(ds)}",
                               int(fig.get_figwidth() * 9)), fontsize=13, fontweight="bold")
    fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=8, color="#555555")
    fig.tight_layout(rect=(0, 0.04, 1, 0.94))
    return fig


def heatmap(ds: xr.Dataset, metric: str = "profit", dims: tuple[str, str] | None = None):
    """A key figure's replicate mean over two swept parameters."""
    _need_sweep(ds, "heatmap")
    swept = sweep_dims(ds)
    if metric not in KPIS:
        raise PlotError(f"unknown metric {metric!r} (available: {', '.join(KPIS)})")
    if dims is None:
        if len(swept) < 2:
            sampled = [d for d in swept if is_point_numbered(ds, d)
                       and len(axis_parameters(ds, d)) >= 2]
            if sampled:  # points drawn from ranges: no grid, a map of the points
                return _sampled_map(ds, sampled[0], metric)
            raise PlotError("--kind heatmap needs two swept parameters; this sweep has "
                            f"{len(swept)} ({', '.join(swept) or 'none'})")
        dims = (swept[0], swept[1])
    da = kpis(ds)[metric]
    other = [d for d in da.dims if d not in dims]
    grid = da.mean(other) if other else da
    grid = grid.transpose(dims[0], dims[1])
    spread = None
    if "draw" in da.dims and da.sizes["draw"] > 1:  # each cell's range over the assumptions
        per_draw = da.mean([d for d in other if d != "draw"])
        spread = per_draw.quantile([0.05, 0.95], dim="draw").transpose("quantile", *dims).values
    fig, ax = plt.subplots(figsize=(max(9.0, 1.3 * grid.sizes[dims[1]] + 5),
                                    max(5.0, 0.7 * grid.sizes[dims[0]] + 3)))
    vals = grid.values.astype(float)
    finite = vals[np.isfinite(vals)]
    span = max(abs(finite.min()), abs(finite.max())) if finite.size else 1.0
    diverging = finite.size and finite.min() < 0 < finite.max()
    im = ax.imshow(vals, cmap="RdYlGn" if metric != "cac" else "RdYlGn_r", aspect="auto",
                   origin="lower", vmin=-span if diverging else None,
                   vmax=span if diverging else None)
    label, units = KPIS[metric]
    for (i, j), v in np.ndenumerate(vals):
        r, g, b, _ = im.cmap(im.norm(v)) if math.isfinite(v) else (1, 1, 1, 1)
        dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
        text = "n/a" if not math.isfinite(v) else _money(v)
        if spread is not None and math.isfinite(v):
            text += f"\n{_money(spread[0, i, j])} to {_money(spread[1, i, j])}"
        ax.text(j, i, text, ha="center", va="center", fontsize=10 if spread is None else 9,
                color="white" if dark else "black", fontweight="bold")
    ax.set_xticks(range(grid.sizes[dims[1]]), [_tick(v) for v in grid[dims[1]].values])
    ax.set_yticks(range(grid.sizes[dims[0]]), [_tick(v) for v in grid[dims[0]].values])
    ax.set_xlabel(dims[1])
    ax.set_ylabel(dims[0])
    cb = fig.colorbar(im, ax=ax)
    cb.set_label(f"{metric} ({units})")
    cb.ax.yaxis.set_major_formatter(MONEY)
    n = int(ds.sizes.get("replicate", 1))
    averaged = [o for o in other if o not in ("replicate", "draw")]
    ax.set_title(textwrap.fill(
        f"{label}: mean over {n} replicate(s)"
        + (f" and {ds.sizes['draw']} assumption draws (under each: 5% to 95% of the draws)"
           if spread is not None else "")
        + (f", averaged over {', '.join(averaged)}" if averaged else ""),
        int(fig.get_figwidth() * 11)), fontsize=10)
    title = textwrap.fill(f"Sweep heat map — {_sweep_title(ds)}", int(fig.get_figwidth() * 9))
    fig.suptitle(title, fontsize=12, fontweight="bold")
    fig.tight_layout(rect=(0, 0, 1, 0.9 if "\n" in title else 0.94))
    return fig


def _sampled_map(ds: xr.Dataset, dim: str, metric: str):
    """A heat map of sampled points (a ``random`` or ``lhs`` block, a named zip): each point
    at its first two parameters' values, coloured by the metric's mean (over replicates,
    draws and any other axis); with assumption draws, the ring's size is the
    assumptions' range (5% to 95% of the draws' means)."""
    x_path, y_path = axis_parameters(ds, dim)[:2]
    da = kpis(ds)[metric]
    other = [d for d in da.dims if d != dim]
    mean = (da.mean(other) if other else da).values.astype(float)
    fig, ax = plt.subplots(figsize=(9.5, 6.5))
    finite = mean[np.isfinite(mean)]
    span = max(abs(finite.min()), abs(finite.max())) if finite.size else 1.0
    diverging = finite.size and finite.min() < 0 < finite.max()
    sizes = np.full(mean.shape, 90.0)
    note = ""
    if "draw" in da.dims and da.sizes["draw"] > 1:
        per_draw = da.mean([d for d in other if d != "draw"])
        q = per_draw.quantile([0.05, 0.95], dim="draw").transpose("quantile", dim).values
        width = q[1] - q[0]
        if np.isfinite(width).any() and np.nanmax(width) > 0:
            sizes = 60 + 600 * np.nan_to_num(width / np.nanmax(width))
            note = (f"; marker area: the range over {ds.sizes['draw']} assumption draws "
                    f"(largest {_money(float(np.nanmax(width)))})")
    sc = ax.scatter(ds[x_path].values, ds[y_path].values, c=mean, s=sizes,
                    cmap="RdYlGn" if metric != "cac" else "RdYlGn_r", edgecolors="black",
                    vmin=-span if diverging else None, vmax=span if diverging else None)
    best = int(np.nanargmax(mean) if metric != "cac" else np.nanargmin(mean))
    ax.scatter([ds[x_path].values[best]], [ds[y_path].values[best]], s=sizes[best] * 2.2,
               facecolors="none", edgecolors="#ff7f0e", linewidths=2.5)
    ax.legend(handles=[Line2D([], [], marker="o", linestyle="none", markersize=12,
                              markerfacecolor="none", markeredgecolor="#ff7f0e",
                              markeredgewidth=2.5, label="best mean")],
              loc="best", fontsize=8)
    label, units = KPIS[metric]
    cb = fig.colorbar(sc, ax=ax)
    cb.set_label(f"{metric} ({units})")
    cb.ax.yaxis.set_major_formatter(MONEY)
    ax.set_xlabel(x_path)
    ax.set_ylabel(y_path)
    ax.grid(alpha=0.3)
    ax.set_title(textwrap.fill(f"{label} at each of {ds.sizes[dim]} sampled points ({dim}), "
                               f"mean over replicates{note}", 100), fontsize=10)
    title = textwrap.fill(f"Sweep heat map — {_sweep_title(ds)}", int(fig.get_figwidth() * 9))
    fig.suptitle(title, fontsize=12, fontweight="bold")
    fig.tight_layout(rect=(0, 0, 1, 0.9 if "\n" in title else 0.94))
    return fig


def _tick(v) -> str:
    return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)


BUILDERS = {
    "funnel": funnel, "economics": economics, "cohorts": cohorts, "attribution": attribution,
    "saturation": saturation, "dashboard": dashboard, "variants": variants, "heatmap": heatmap,
}


_FLOWS = ("spend", "conversions", "revenue", "gross_margin", "churned", "stage_count")
REQUIRES = {
    "funnel": ("stage_count",),
    "economics": _FLOWS,
    "cohorts": _FLOWS,
    "attribution": ("attributed_conversions", "conversions"),
    "saturation": ("spend", "conversions"),
    "dashboard": _FLOWS,
    "variants": _FLOWS,
    "heatmap": _FLOWS,
}


def figure(ds: xr.Dataset, kind: str, **options):
    """The matplotlib figure of ``kind`` (the caller closes it)."""
    options = {k: v for k, v in options.items() if v is not None}
    if kind not in KINDS:
        raise PlotError(f"unknown plot kind {kind!r} (available: {', '.join(KINDS)})")
    missing = [v for v in REQUIRES[kind] if v not in ds]
    if missing:
        raise PlotError(f"--kind {kind} needs {', '.join(missing)}, which this result does not "
                        "keep (a sweep's outputs.variables may have left it out)")
    if kind in RUN_KINDS and is_sweep(ds):
        raise PlotError(f"--kind {kind} plots a single run; for a sweep use --kind variants or "
                        "heatmap, or plot one of its runs (DIR/runs/*.nc)")
    if kind == "heatmap":
        return heatmap(ds, **{k: v for k, v in options.items() if k in ("metric", "dims")})
    if kind == "variants" and options.get("metric"):
        return variants(ds, metrics=(options["metric"],))
    return BUILDERS[kind](ds)


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes; the figure is closed (pyplot keeps every open one)."""
    import io

    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=DPI, format="png")
    finally:
        plt.close(fig)
    return buf.getvalue()


def plot_bytes(ds: xr.Dataset, kind: str, **options) -> bytes:
    """Draw ``kind`` for ``ds``: the PNG's bytes."""
    return png_bytes(figure(ds, kind, **options))


def plot(ds: xr.Dataset, kind: str, out: str | Path, **options) -> Path:
    """Draw ``kind`` for ``ds`` and write it to ``out`` (PNG), all or nothing."""
    return write_file(out, plot_bytes(ds, kind, **options))
