"""The outcome figures, one definition each, and cohort retention.

Every figure a command shows (the dataset's per-channel variables, the console summary,
the diagnostics, the plots, the report, the sweep summary) comes from
:func:`unit_economics`, per acquisition channel (the last touch before the first order)
or, with ``market=True``, for the whole market as one channel:

- ``cac`` = (media spend + fixed cost) / new customers.
- ``cac_loaded`` = ``cac`` plus the first-order commissions and fees and the programme
  costs of the first order (onboarding), per new customer.
- ``ltv`` = margin realised in the run per new customer: gross margin less programme
  costs, with the first-order commissions, fees and programme costs added back (they
  count once, in ``cac_loaded``). So ``ltv - cac_loaded`` is the profit per customer.
- ``ltv_projected`` = first-order margin + margin per active customer-day x the
  discounted days a new customer is expected to stay active within
  ``[economics] horizon_days`` (the observed daily churn hazard, a geometric lifetime,
  ``discount_rate`` a year).
- ``ltv_cac`` = ``ltv_projected`` / ``cac_loaded``.
- ``payback_days``: the age at which a new customer's expected discounted margin covers
  ``cac_loaded`` (inf: never, at the observed rates).
- ``contribution`` = gross margin - media spend - programme costs (the variable costs)
  of all the channel's customers, those it acquired before day 0 (``[initial]``)
  included; every figure per new customer above reads the customers acquired in the
  run only;
  ``profit`` = ``contribution`` - fixed costs (the channel's; the market's also counts
  the programme costs tied to no channel, which are no acquisition cost and no part of
  a customer's LTV).

A channel that spends and wins no one has ``cac`` = inf (it sorts last; no aggregation
drops it); a channel that neither spends nor wins has NaN (nothing to say).

Where a result lacks a counter the kernel does not (yet) record, the figure is
estimated from the stored scenario and named in ``attrs["estimated"]``: first-order
revenue and margin (the segments' prices weighted by the channel's reach, return rate,
unit costs and the channel's fees), and
active customers by acquisition channel (net acquisitions, scaled each day to the
exact total of active customers).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from simulation.analysis.common import WORD_OF_MOUTH, channels, per_channel, safe_div, scenario_of
from simulation.scenario import ScenarioError, scenario_from_dict

BASE = ("base_margin", "base_programme_cost", "base_active", "base_churned")
"""The books of the customers acquired before day 0 (``[initial]``): in the channel's
contribution and profit (its customers' money), not in the figures per new customer."""
DEFAULT_HORIZON_DAYS = 3 * 365
DEFAULT_DISCOUNT_RATE = 0.10
"""``[economics]`` defaults (simulation/scenario.py), for results stored without them."""
MIN_CUSTOMERS = 20


def _product(ds: xr.Dataset) -> dict:
    return scenario_of(ds).get("product", {})


def first_order_revenue(ds: xr.Dataset) -> tuple[xr.DataArray, bool]:
    """Revenue of a first order per new customer, by acquisition channel; (value, estimated)."""
    if "first_order_revenue" in ds:
        return safe_div(ds.first_order_revenue.sum("day"), ds.conversions.sum("day")), False
    rr = float(_product(ds).get("return_rate", 0.0))
    discount = per_channel(ds, "discount")
    return list_price(ds) * (1.0 - rr) * (1.0 - discount), True


def list_price(ds: xr.Dataset) -> xr.DataArray | float:
    """Price before discounts of the customers each channel acquires, estimated from the
    stored scenario: the segments' prices (their plans', else the product's) averaged with
    the weights the channel's reach gives them, share x affinity (word of mouth: share).

    A stored scenario that no longer validates (an older format) gives the product's price."""
    data = scenario_of(ds)
    try:
        sc = scenario_from_dict(data) if data else None
    except ScenarioError:
        sc = None
    if sc is None:
        return float(data.get("product", {}).get("price", 0.0))
    prices = np.array([t.price for t in sc.segment_terms()])
    share = np.array([s.share for s in sc.segments])
    values = []
    for name in channels(ds):
        w = share if name == WORD_OF_MOUTH else share * np.array(
            [s.affinity.get(name, 1.0) for s in sc.segments])
        w = w if w.sum() > 0 else share
        values.append(float((w * prices).sum() / w.sum()))
    return xr.DataArray(np.array(values), coords={"channel": ds.channel}, dims="channel")


def acquisition_fees(ds: xr.Dataset) -> tuple[xr.DataArray, bool]:
    """Commission and order fees paid on first orders, (day, channel); (value, estimated)."""
    if "acquisition_fees" in ds:
        return ds.acquisition_fees, False
    rev1, _ = first_order_revenue(ds)
    fee = per_channel(ds, "fee_per_order") + per_channel(ds, "commission") * rev1
    return ds.conversions * fee, True


def first_order_margin(ds: xr.Dataset) -> tuple[xr.DataArray, bool]:
    """Margin of a first order before acquisition fees, per new customer; (value, estimated)."""
    if "first_order_margin" in ds:
        fees, _ = acquisition_fees(ds)
        m = ds.first_order_margin.sum("day") + fees.sum("day")
        return safe_div(m, ds.conversions.sum("day")), False
    p = _product(ds)
    rev1, _ = first_order_revenue(ds)
    cost = (float(p.get("unit_cost", 0.0)) + float(p.get("fulfilment_cost", 0.0))
            + float(p.get("return_rate", 0.0)) * float(p.get("return_cost", 0.0)))
    return rev1 - cost, True


def active_by_channel(ds: xr.Dataset) -> tuple[xr.DataArray, bool]:
    """Active customers at the end of each day by acquisition channel; (value, estimated).

    Without the kernel's ``active`` counter: acquisitions minus churn by channel, scaled
    each day so the channels add up to the exact ``stage_count`` of active customers
    (win-backs are booked by winning channel, so they are spread pro rata).
    """
    if "active" in ds:
        return ds.active, False
    net = (ds.conversions - ds.churned).cumsum("day").clip(min=0)
    total = ds.stage_count.sel(stage="active", drop=True)
    scale = safe_div(total, net.sum("channel")).fillna(0.0)
    return net * scale, True


def unit_economics(ds: xr.Dataset, market: bool = False) -> xr.Dataset:
    """The outcome figures over ``channel`` (sweep dimensions come along); with
    ``market``, the whole market as one channel named ``market``."""
    econ = scenario_of(ds).get("economics", {})
    horizon_days = int(econ.get("horizon_days", DEFAULT_HORIZON_DAYS))
    discount_rate = float(econ.get("discount_rate", DEFAULT_DISCOUNT_RATE))
    fees_daily, est_fees = acquisition_fees(ds)
    m1, est_m1 = first_order_margin(ds)
    active, est_active = active_by_channel(ds)
    zero = 0.0 * ds.conversions
    book = xr.Dataset({
        "customers": ds.conversions,
        "media_spend": ds.media_spend if "media_spend" in ds else ds.spend,
        "fixed_cost": ds.fixed_cost if "fixed_cost" in ds else zero,
        "acquisition_fees": fees_daily,
        "acquisition_programme_cost": ds.get("acquisition_programme_cost", zero),
        "revenue": ds.revenue,
        "gross_margin": ds.gross_margin,
        "programme_cost": ds.get("programme_cost", zero),
        "active": active,
        "churned": ds.churned,
        **{name: ds.get(name, zero) for name in BASE},
    })
    first_margin = m1.fillna(0.0) * ds.conversions.sum("day")
    overhead = 0.0  # fixed costs tied to no channel: in the market's profit only
    if market:
        book = book.sum("channel").expand_dims(channel=["market"])
        first_margin = first_margin.sum("channel").expand_dims(channel=["market"])
        if "programme_fixed_cost" in ds:
            overhead = ds.programme_fixed_cost.sum("day")
    active_days = (book.active - book.base_active).sum("day")  # the run's customers'
    book = book.drop_vars(["active", "base_active"]).sum("day")
    customers = book.customers
    spend = book.media_spend + book.fixed_cost
    acquisition = book.acquisition_fees + book.acquisition_programme_cost
    cac = _per_customer(spend, customers)
    cac_loaded = _per_customer(spend + acquisition, customers)
    margin = (book.gross_margin - book.base_margin - (book.programme_cost - book.base_programme_cost)
              + acquisition)
    ltv = safe_div(margin, customers)
    m1 = safe_div(first_margin, customers)
    m1 = xr.where(customers > 0, np.minimum(m1, ltv), m1)
    repeat = (margin - m1 * customers).clip(min=0.0)
    rate = safe_div(repeat, active_days).fillna(0.0)  # margin per active customer-day
    hazard = safe_div(book.churned - book.base_churned, active_days).clip(max=1.0).fillna(0.0)
    kept = (1.0 - hazard) * (1.0 + discount_rate) ** (-1.0 / 365.0)  # survival x discount
    with np.errstate(divide="ignore", invalid="ignore"):
        expected_days = xr.where(kept < 1.0, kept * (1.0 - kept ** horizon_days) / (1.0 - kept),
                                 float(horizon_days))
    ltv_projected = xr.where(customers > 0, m1 + rate * expected_days, np.nan)
    payback = _payback_days(cac_loaded, m1, rate, kept)
    contribution = book.gross_margin - book.media_spend - book.programme_cost

    out = xr.Dataset({
        "customers": customers,
        "spend": spend,
        "media_spend": book.media_spend,
        "fixed_cost": book.fixed_cost,
        "acquisition_fees": book.acquisition_fees,
        "acquisition_programme_cost": book.acquisition_programme_cost,
        "cac": cac,
        "cac_loaded": cac_loaded,
        "revenue": book.revenue,
        "gross_margin": book.gross_margin,
        "programme_cost": book.programme_cost,
        "first_order_margin": xr.where(customers > 0, m1, np.nan),
        "margin_per_active_day": xr.where(customers > 0, rate, np.nan),
        "churn_hazard": xr.where(customers > 0, hazard, np.nan),
        "monthly_churn": xr.where(customers > 0, 1.0 - (1.0 - hazard) ** 30, np.nan),
        "ltv": ltv,
        "ltv_projected": ltv_projected,
        "ltv_cac": _ratio(ltv_projected, cac_loaded),
        "payback_days": xr.where(customers > 0, payback, np.nan),
        "contribution": contribution,
        "profit": contribution - book.fixed_cost - overhead,
        "profit_per_customer": safe_div(contribution - book.fixed_cost - overhead, customers),
        "contribution_margin": safe_div(contribution, book.revenue),
        "roas": safe_div(book.revenue, spend),
    })
    if not market:
        out["active_at_end"] = active.isel(day=-1, drop=True)
    estimated = [name for name, flag in (("acquisition fees", est_fees),
                                        ("first-order margin", est_m1),
                                        ("active customers by channel", est_active)) if flag]
    out.attrs["estimated"] = ", ".join(estimated)
    out.attrs["horizon_days"] = horizon_days
    out.attrs["discount_rate"] = discount_rate
    return out


def ltv_cac_rank(ltv_cac, ltv_projected, cac_loaded):
    """The order of LTV/CAC figures, higher is better, that never ranks a cheaper channel
    (or variant) below a dearer one.

    With a negative projected LTV no ratio can do that (ltv / cac grows towards 0 as the
    CAC grows), so those rank below every non-negative one, among themselves by the
    loss per customer ``cac_loaded - ltv_projected`` (a smaller loss ranks higher),
    mapped into (-2, -1) by ``-1 - loss / (loss + 1)``, which keeps the order.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = np.asarray(cac_loaded, dtype=float) - np.asarray(ltv_projected, dtype=float)
        negative = -1.0 - loss / (loss + 1.0)
        return np.where(np.asarray(ltv_projected, dtype=float) >= 0,
                        np.asarray(ltv_cac, dtype=float), negative)


def _per_customer(cost: xr.DataArray, customers: xr.DataArray) -> xr.DataArray:
    """cost / customers; inf for a cost that won no one, NaN for neither."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return xr.where(customers > 0, cost / customers, xr.where(cost > 0, np.inf, np.nan))


def _ratio(num: xr.DataArray, den: xr.DataArray) -> xr.DataArray:
    """num / den with inf for a free channel that has customers (den == 0, num > 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return xr.where(den > 0, num / den, xr.where((num > 0) & (den == 0), np.inf, np.nan))


def _payback_days(cac, m1, rate, kept):
    """Smallest age t (days) with m1 + rate * sum_{k=1..t} kept^k >= CAC; inf if never.
    ``kept`` is a day's survival times its discount factor."""
    with np.errstate(divide="ignore", invalid="ignore"):
        need = cac - m1
        linear = np.ceil(need / rate)
        x = need * (1.0 - kept) / (rate * kept)
        geometric = np.ceil(np.log1p(-x) / np.log(kept))
        t = xr.where(kept < 1.0, xr.where(x < 1.0, geometric, np.inf), linear)
        t = xr.where(rate > 0, t, np.inf)
        t = xr.where(need <= 0, 0.0, t)
        return xr.where(np.isfinite(cac), t, np.nan)


# -- cohort retention ------------------------------------------------------------


def cohort_sizes(ds: xr.Dataset) -> xr.DataArray:
    """New customers by weekly acquisition cohort (week = day // 7) and channel."""
    cohort = xr.DataArray(ds.day.values // 7, coords={"day": ds.day}, dims="day",
                          name="cohort_week")
    return ds.conversions.groupby(cohort).sum()


def cohort_retention(ds: xr.Dataset) -> xr.DataArray:
    """Share of each weekly acquisition cohort still a customer ``weeks_since`` weeks after
    acquisition, by acquisition channel: (channel, cohort_week, weeks_since).

    The result's ``cohort_retention`` when it has one (measured on the population);
    otherwise estimated from each channel's daily churn hazard, ``(1 - h) ** (7 k)``
    (``attrs["method"]`` says which). Cells the run did not reach are NaN.
    """
    days = ds.sizes["day"]
    if "cohort_retention" in ds:
        ret = ds.cohort_retention
        method = "measured"
    else:
        sizes = cohort_sizes(ds)
        weeks = np.arange(sizes.sizes["cohort_week"])
        hazard = unit_economics(ds).churn_hazard.fillna(0.0)
        w = xr.DataArray(weeks, coords={"weeks_since": weeks}, dims="weeks_since")
        ret = (1.0 - hazard) ** (7 * w) * xr.where(sizes > 0, 1.0, np.nan)
        method = "estimated from each channel's daily churn hazard"
    # only cells every customer of the cohort has reached: the cohort's last day
    # (7c + 6) plus 7k days is still inside the run
    k = xr.DataArray(ret.cohort_week.values, coords={"cohort_week": ret.cohort_week},
                     dims="cohort_week")
    w = xr.DataArray(ret.weeks_since.values, coords={"weeks_since": ret.weeks_since},
                     dims="weeks_since")
    ret = ret.where(7 * k + 6 + 7 * w <= days - 1)
    ret = ret.transpose(..., "channel", "cohort_week", "weeks_since").rename("retention")
    ret.attrs = {"method": method, "units": "share of the cohort",
                 "description": "share of a weekly acquisition cohort still a customer "
                                "weeks_since weeks after acquisition, by acquisition channel"}
    return ret


def retention_curves(ds: xr.Dataset, min_customers: int = MIN_CUSTOMERS) -> xr.DataArray:
    """Retention by weeks since acquisition per channel, cohorts pooled by size (a week is
    pooled over the cohorts the run observed that long; NaN where those hold fewer than
    ``min_customers`` or a tenth of the channel's customers)."""
    ret = cohort_retention(ds)
    sizes = cohort_sizes(ds).reindex(cohort_week=ret.cohort_week.values, fill_value=0)
    weight = sizes.where(ret.notnull(), 0.0)
    total = weight.sum("cohort_week")
    curve = safe_div((ret.fillna(0.0) * weight).sum("cohort_week"), total)
    # late weeks rest on the few earliest cohorts: show them only while they hold a tenth
    # of the channel's customers (and at least ``min_customers``)
    floor = np.maximum(min_customers, 0.1 * sizes.sum("cohort_week"))
    curve = curve.where(total >= floor)
    curve.attrs.update(ret.attrs)
    return curve


# -- marginal versus average CAC ---------------------------------------------------


def cac_over_time(ds: xr.Dataset, window: int = 28) -> xr.Dataset:
    """Average CAC to date and marginal CAC over the trailing ``window`` days, by day.

    Marginal CAC is what the last customers cost: the window's acquisition cost over
    the window's new customers. Above the average, each extra customer is dearer than
    the ones before (diminishing returns: audience saturating, spend scaling up).
    """
    fees, _ = acquisition_fees(ds)
    cost = (ds.spend + fees).cumsum("day")
    customers = ds.conversions.cumsum("day")
    average = safe_div(cost, customers)
    lag_cost = cost.shift(day=window, fill_value=0.0)
    lag_customers = customers.shift(day=window, fill_value=0.0)
    marginal = safe_div(cost - lag_cost, customers - lag_customers)
    return xr.Dataset({"average_cac": average, "marginal_cac": marginal,
                       "window_customers": customers - lag_customers,
                       "window_cost": cost - lag_cost})


def marginal_cac(ds: xr.Dataset, window: int = 28) -> xr.Dataset:
    """Run-average CAC and the marginal CAC of the last ``window`` days, by channel."""
    window = min(window, ds.sizes["day"])
    return cac_over_time(ds, window).isel(day=-1, drop=True)
