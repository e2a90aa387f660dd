"""Daily accumulators of a run and the result dataset built from them.

The kernels fill one row of counters per chunk of customers; the recorder sums
the rows in a fixed order (so figures do not depend on the thread count) and
keeps one row per day. At the end the rows become the xarray dataset whose
names are the contract of ``docs/contracts.md``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from simulation import counters
from simulation.analysis.economics import unit_economics
from simulation.analysis.markov import markov_credit
from simulation.counters import MK
from simulation.kernels.day import ATTR_MODELS, MOMENTS
from simulation.scenario import STAGES

ATTRIBUTION_MODELS = ATTR_MODELS + ("markov",)
OUTCOMES = ("cac", "cac_loaded", "ltv", "ltv_projected", "ltv_cac", "payback_days")
"""Per-channel outcome figures stored in the result, as defined in
:mod:`simulation.analysis.economics` (the one definition every command shows)."""
MARGIN_COSTS = ("cogs", "fulfilment_cost", "return_cost", "commission", "order_fees")
"""Costs of an order that gross margin takes off its revenue."""


class Recorder:
    """Per-day reductions of the kernels' chunk counters."""

    def __init__(self, days: int, n_channels: int, n_segments: int, width: int):
        self.days = days
        self.nch = n_channels
        self.nseg = n_segments
        self.daily = np.zeros((days, width))
        self.media = np.zeros((days, n_channels))
        self.fixed = np.zeros((days, n_channels))

    def record(self, day: int, chunk_counters: np.ndarray) -> np.ndarray:
        row = chunk_counters.sum(axis=0)
        self.daily[day] = row
        return row

    def channel(self, name: str, day: int | None = None) -> np.ndarray:
        """A channel counter: (day, channel) over the run so far, or (channel) of one day."""
        lo = getattr(counters.CH, name) * self.nch
        rows = self.daily if day is None else self.daily[day]
        return rows[..., lo : lo + self.nch]

    def market(self, name: str, day: int | None = None) -> np.ndarray | float:
        """A market counter: by day, or of one day."""
        k = counters.market_offset(self.nch, self.nseg) + getattr(MK, name)
        return self.daily[:, k] if day is None else float(self.daily[day, k])

    def cohort_orders(self) -> np.ndarray:
        """Orders by acquisition channel, weekly acquisition cohort and the week they were
        placed in: (channel, cohort_week, week), the days' cohort blocks summed by week."""
        weeks = counters.weeks(self.days)
        lo = counters.cohort_offset(self.nch, self.nseg)
        block = self.daily[:, lo : lo + self.nch * weeks].reshape(self.days, self.nch, weeks)
        by_week = np.add.reduceat(block, np.arange(0, self.days, 7), axis=0)
        return by_week.transpose(1, 2, 0)

    def gross_margin(self) -> np.ndarray:
        """(day, channel) revenue minus the costs of orders, so far."""
        return self.channel("revenue") - sum(self.channel(b) for b in MARGIN_COSTS)

    def occupancy(self, day: int) -> np.ndarray:
        lo = counters.occupancy_offset(self.nch)
        return self.daily[day, lo : lo + 5 * self.nseg].reshape(self.nseg, 5)

    def dataset(self, channels: list[str], attr: np.ndarray, trans: np.ndarray,
                unique_reached: np.ndarray, attrs: dict, extras: dict,
                scale: float = 1.0) -> xr.Dataset:
        """The result dataset. Every count and amount of the simulated customers is
        multiplied by ``scale`` (the people each stands for), so the result is in market
        units; media and fixed costs are the market's already. At scale 1 counts stay
        whole numbers (int64); otherwise they are estimates of the market's (float64)."""
        days = np.arange(self.days, dtype=np.int32)
        dc = ("day", "channel")

        def count(values):
            values = np.asarray(values)
            return values.round().astype(np.int64) if scale == 1.0 else values * scale

        lo = counters.occupancy_offset(self.nch)
        occ = self.daily[:, lo : lo + 5 * self.nseg].reshape(self.days, self.nseg, 5)
        data: dict[str, tuple] = {
            "stage_count": (("day", "stage"), count(occ.sum(axis=1))),
            "stage_count_by_segment": (("day", "segment", "stage"), count(occ)),
        }
        for v in counters.CHANNEL_COUNTERS:
            if not v.stored:
                continue
            values = self.channel(v.name)
            data[v.name] = (dc, count(values) if v.is_count else values * scale)
        data.update(extras)
        data["media_spend"] = (dc, self.media.copy())
        data["fixed_cost"] = (dc, self.fixed.copy())
        spend = self.media + self.fixed
        data["spend"] = (dc, spend)
        gm = self.gross_margin() * scale
        programme = self.channel("programme_cost") * scale
        data["gross_margin"] = (dc, gm)
        data["contribution"] = (dc, gm - self.media - programme)
        data["profit"] = (dc, data["contribution"][1] - self.fixed)
        for v in counters.MARKET_COUNTERS:
            if v.stored:
                values = self.market(v.name)
                data[v.name] = (("day",), count(values) if v.is_count else values * scale)
        active = occ.sum(axis=1)[:, 3]
        with np.errstate(all="ignore"):
            data["mean_health"] = (("day",), np.where(
                active > 0, self.market("health_sum") / active, np.nan))
            data["nps"] = (("day",), np.where(active > 0, 100.0 * (
                self.market("promoters") - self.market("detractors")) / active, np.nan))
            won = np.cumsum(self.channel("conversions").sum(axis=1))
            again = np.cumsum(self.channel("repeaters").sum(axis=1))
            data["repeat_purchase_rate"] = (("day",), np.where(won > 0, again / won, np.nan))
        data["community_size"] = (("day",), count(self.market("members")))
        data["cohort_orders"] = (("channel", "cohort_week", "week"), count(self.cohort_orders()))
        attr = attr * scale
        trans = trans * scale
        attrs = {**attrs, "scale": float(scale)}

        if attr.ndim == 2:  # a backend that credits conversions only: no revenue twin
            attr = np.stack([attr, np.full_like(attr, np.nan)])
        markov = markov_credit(trans, attr[0, 0].sum())[None, :]
        data["attributed_conversions"] = (
            ("attribution_model", "channel"), np.concatenate([attr[0], markov], axis=0)
        )
        markov_rev = (markov_credit(trans, attr[1, 0].sum())[None, :]
                      if np.isfinite(attr[1]).all() else np.full((1, self.nch), np.nan))
        data["attributed_revenue"] = (
            ("attribution_model", "channel"), np.concatenate([attr[1], markov_rev], axis=0)
        )
        customers = self.channel("conversions").sum(axis=0)
        with np.errstate(all="ignore"):
            conv = np.where(unique_reached > 0, customers / unique_reached, np.nan)
            lost = self.channel("churned").sum(axis=0) - self.channel("base_churned").sum(axis=0)
            churn = np.where(customers > 0, lost / customers, np.nan)
        customers = count(customers)
        unique_reached = count(unique_reached)
        states = ["start", *channels, "conversion", "no_conversion"]
        data["journey_transitions"] = (("from_state", "to_state"), trans)
        data["unique_reached"] = (("channel",), unique_reached)
        data["customers"] = (("channel",), customers)
        data["conversion_rate"] = (("channel",), conv)
        data["churn_rate"] = (("channel",), churn)

        ds = xr.Dataset(
            data,
            coords={
                "day": days,
                "channel": np.array(channels, dtype=object),
                "stage": np.array(STAGES, dtype=object),
                "attribution_model": np.array(ATTRIBUTION_MODELS, dtype=object),
                "segment": np.array(attrs.pop("segments"), dtype=object),
                "from_state": np.array(states, dtype=object),
                "to_state": np.array(states, dtype=object),
                "cohort_week": np.arange(counters.weeks(self.days)),
                "week": np.arange(counters.weeks(self.days)),
            },
            attrs=attrs,
        )
        economics = unit_economics(ds)
        for name in OUTCOMES:
            ds[name] = economics[name]
        describe(ds)
        half_life = attrs.get("time_decay_half_life_days")
        if half_life is not None:
            ds["attributed_conversions"].attrs["time_decay_half_life_days"] = half_life
            ds["attributed_revenue"].attrs["time_decay_half_life_days"] = half_life
        return ds



SE_FIGURES = ("customers", "revenue", "gross_margin")
"""The whole-run figures whose standard error of the sample a result carries."""


def standard_errors(moments: np.ndarray, n: int, scale: float, channels: list[str]) -> dict:
    """The sample's standard errors of the whole-run figures (``SE_FIGURES``), per channel
    (``standard_error``) and for the market (``standard_error_total``), in market units.

    ``moments`` are :func:`simulation.kernels.day.sample_moments`' sums over the sample
    (by acquisition channel). A figure is ``scale`` times a sum of ``n`` per-customer
    values ``x_i`` (1 for a new customer of the channel, their revenue, their gross
    margin; 0 for the channel's figures of anyone else), so its standard error is
    ``scale * sqrt(n) * sd(x)``, treating customers as independent draws (word of mouth
    and capacities couple them; replicates with other seeds measure that too)."""
    m = dict(zip(MOMENTS, moments, strict=True))
    sums = {"customers": (m["new_customers"], m["new_customers"]),
            "revenue": (m["revenue"], m["revenue_squared"]),
            "gross_margin": (m["margin"], m["margin_squared"])}

    def se(s1, s2):
        if n < 2:
            return np.full_like(np.asarray(s1, dtype=float), np.nan)
        var = np.maximum(0.0, (s2 - s1 * s1 / n) / (n - 1))
        return scale * np.sqrt(n * var)

    per_channel = np.array([se(*sums[f]) for f in SE_FIGURES])
    total = np.array([se(sums[f][0].sum(), sums[f][1].sum()) for f in SE_FIGURES])
    figure = np.array(SE_FIGURES, dtype=object)
    return {
        "standard_error": xr.DataArray(per_channel, dims=("figure", "channel"),
                                       coords={"figure": figure,
                                               "channel": np.array(channels, dtype=object)}),
        "standard_error_total": xr.DataArray(total, dims=("figure",), coords={"figure": figure}),
    }


def describe(ds: xr.Dataset) -> None:
    """Each variable's description, units and aggregation over days, from the tables of
    :mod:`simulation.counters`."""
    for name, v in counters.variables().items():
        if name in ds:
            ds[name].attrs.update(description=v.description, units=v.unit, aggregate=v.aggregate)
