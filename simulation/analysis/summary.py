"""The per-channel summary of a run: the table ``distsim run`` prints.

Computed from the result dataset alone, so it can be printed again for any saved
result and means the same thing everywhere.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr
from rich.markup import escape
from rich.table import Table

from simulation.analysis.common import size_text

COLUMNS = (
    ("channel", "channel"),
    ("spend", "spend"),
    ("reached", "reached"),
    ("customers", "customers"),
    ("conv. rate", "conversion_rate"),
    ("CAC", "cac"),
    ("CAC loaded", "cac_loaded"),
    ("revenue", "revenue"),
    ("LTV", "ltv"),
    ("LTV proj.", "ltv_projected"),
    ("LTV/CAC", "ltv_cac"),
    ("profit", "profit"),
    ("churn", "churn_rate"),
)


def channel_summary(ds: xr.Dataset) -> list[dict]:
    """One dict per channel with the summary figures (plain Python numbers)."""
    rows = []
    for ch in ds.channel.values:
        sel = ds.sel(channel=ch)
        rows.append({
            "channel": str(ch),
            "spend": float(sel.spend.sum()),
            "reached": int(sel.unique_reached),
            "customers": int(sel.customers),
            "conversion_rate": float(sel.conversion_rate),
            "cac": float(sel.cac),
            "cac_loaded": float(sel.cac_loaded),
            "revenue": float(sel.revenue.sum()),
            "ltv": float(sel.ltv),
            "ltv_projected": float(sel.ltv_projected),
            "ltv_cac": float(sel.ltv_cac),
            "profit": float(sel.profit.sum()),
            "churn_rate": float(sel.churn_rate),
        })
    return rows


def totals(ds: xr.Dataset) -> dict:
    spend = float(ds.spend.sum())
    gm = float(ds.gross_margin.sum())
    programmes = sum(float(ds[v].sum()) for v in ("programme_cost", "programme_fixed_cost") if v in ds)
    return {
        "revenue": float(ds.revenue.sum()),
        "gross_margin": gm,
        "spend": spend,
        "programmes": programmes,
        "profit": gm - spend - programmes,
        "customers": int(ds.customers.sum()),
        "active_at_end": int(ds.stage_count.isel(day=-1).sel(stage="active")),
    }


def format_figure(key: str, value) -> str:
    """A summary figure as the table prints it (money, shares, ratios, counts)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        if key in ("cac", "cac_loaded"):  # spent, won no one
            return "no customers"
        return "free" if key == "ltv_cac" else "∞"
    if key in ("conversion_rate", "churn_rate"):
        return f"{100 * value:.1f}%"
    if key == "ltv_cac":
        return f"{value:.2f}"
    if key in ("cac", "cac_loaded", "ltv", "ltv_projected"):
        return f"{value:,.2f}"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    return f"{value:,.0f}"


def summary_table(ds: xr.Dataset) -> Table:
    """A rich table of :func:`channel_summary` with a totals caption."""
    name = ds.attrs.get("scenario_name", "run")
    table = Table(title=f"{escape(str(name))}: {size_text(ds.attrs, int(ds.attrs['days']))} "
                        f"(seed {ds.attrs['seed']})")
    names = [str(c) for c in ds.channel.values]
    for header, key in COLUMNS:
        if key == "channel":  # names whole; the figures wrap instead
            table.add_column(header, justify="left", no_wrap=True,
                             min_width=max(map(len, names), default=7))
        else:
            table.add_column(header, justify="right")
    for row in channel_summary(ds):
        table.add_row(*[escape(format_figure(key, row[key])) for _, key in COLUMNS])
    t = totals(ds)
    se = {f: "" for f in ("customers", "revenue", "gross_margin")}
    if "standard_error_total" in ds:
        se = {str(f): f" ± {float(v):,.0f}" for f, v in
              zip(ds.figure.values, ds.standard_error_total.values, strict=True)}
    table.caption = (f"revenue {t['revenue']:,.0f}{se['revenue']} · gross margin "
                     f"{t['gross_margin']:,.0f}{se['gross_margin']} · "
                     f"spend {t['spend']:,.0f} · programmes {t['programmes']:,.0f} · "
                     f"profit {t['profit']:,.0f}{se['gross_margin']} · "
                     f"customers {t['customers']:,}{se['customers']} "
                     f"({t['active_at_end']:,} active at the end)"
                     + (" (± the sample's standard error)" if se['revenue'] else "") + "\n"
                     + definitions(ds))
    return table


def definitions(ds: xr.Dataset) -> str:
    """The one line that says what the figures are (simulation/analysis/economics.py)."""
    from simulation.analysis.common import scenario_of
    from simulation.analysis.economics import DEFAULT_DISCOUNT_RATE, DEFAULT_HORIZON_DAYS

    econ = scenario_of(ds).get("economics", {})
    horizon = int(econ.get("horizon_days", DEFAULT_HORIZON_DAYS))
    rate = float(econ.get("discount_rate", DEFAULT_DISCOUNT_RATE))
    line = ("CAC = (media + fixed cost) / new customers; CAC loaded adds first-order "
            "commissions, fees and onboarding; LTV = margin realised in the run per customer; "
            f"LTV proj. = over {horizon} days at {100 * rate:g}%/year; "
            "LTV/CAC = LTV proj. / CAC loaded; profit = margin - all its costs")
    existing = scenario_of(ds).get("initial", {}).get("customers", [])
    active = sum(float(e.get("active", 0.0)) for e in existing)
    lapsed = sum(float(e.get("lapsed", 0.0)) for e in existing)
    if active or lapsed:
        line += (f"\nWarm start: {active:,.0f} active and {lapsed:,.0f} lapsed customers on day 0;"
                 " their orders are in revenue and profit, while customers, CAC, LTV and churn"
                 " are of the customers the run acquired")
    return line
