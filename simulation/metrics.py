"""Daily accumulators of a run and the result dataset built from them.

The kernels fill one row of counters per chunk of customers; the recorder sums
the rows in a fixed order (so figures do not depend on the thread count) and
keeps one row per day. At the end the rows become the xarray dataset whose
names are the contract of ``shared/MODEL.md``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from simulation.attribution import markov_credit
from simulation.kernels.day import (
    ATTR_MODELS,
    BLOCK_NAMES,
    CHURNED_BY,
    COGS,
    COMMISSION,
    CONVERSIONS,
    FULFILMENT,
    N_BLOCKS,
    ORDER_FEES,
    RETURN_COST,
    REVENUE,
)
from simulation.scenario import STAGES

ATTRIBUTION_MODELS = ATTR_MODELS + ("markov",)

UNITS = {
    "spend": "currency", "media_spend": "currency", "fixed_cost": "currency",
    "revenue": "currency", "gross_margin": "currency", "cogs": "currency",
    "fulfilment_cost": "currency", "return_cost": "currency", "commission": "currency",
    "order_fees": "currency", "refunds": "currency", "contribution": "currency",
    "cac": "currency per customer", "ltv": "currency per customer",
}

DESCRIPTIONS = {
    "stage_count": "customers in each journey stage at the end of the day",
    "spend": "marketing spend: media plus fixed daily cost",
    "media_spend": "media bought (CPM budget, paid clicks, paid contacts)",
    "fixed_cost": "fixed daily cost of running the channel",
    "reached": "customers reached by the channel that day",
    "conversions": "new customers (first orders) by acquisition channel = last touch",
    "orders": "orders (first, repeat, renewals, win-backs) by acquisition channel",
    "revenue": "net revenue (returned orders refunded) by acquisition channel",
    "gross_margin": "revenue - cogs - fulfilment - return cost - commission - order fees",
    "contribution": "gross margin - spend",
    "churned": "customers lost, by acquisition channel",
    "winbacks": "churned customers won back, by winning channel",
    "moved_aware": "unaware customers made aware, by channel",
    "moved_considering": "customers moved into consideration, by channel",
    "leads_new": "prospects queued at a capacity-limited channel",
    "leads_lost": "queued leads that decayed before being served",
    "leads_served": "queued leads handled within capacity",
    "attributed_conversions": "conversions credited to each channel under each attribution model",
    "unique_reached": "customers reached at least once during the run",
    "customers": "customers acquired during the run",
    "conversion_rate": "customers acquired / customers ever reached",
    "cac": "customer acquisition cost: spend / customers acquired",
    "ltv": "realised lifetime value: gross margin of acquired customers / customers",
    "ltv_cac": "ltv / cac",
    "churn_rate": "share of acquired customers churned by the end",
    "journey_transitions": "first-order journey transitions (start, channels, conversion, "
                           "no_conversion) over all journeys, for Markov attribution",
}


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

    def block(self, b: int, day: int | None = None) -> np.ndarray:
        lo = b * self.nch
        rows = self.daily if day is None else self.daily[day]
        return rows[..., lo : lo + self.nch]

    def occupancy(self, day: int) -> np.ndarray:
        lo = N_BLOCKS * self.nch
        return self.daily[day, lo : lo + 5 * self.nseg].reshape(self.nseg, 5)

    def dataset(self, channels: list[str], attr: np.ndarray, trans: np.ndarray,
                unique_reached: np.ndarray, attrs: dict) -> xr.Dataset:
        days = np.arange(self.days, dtype=np.int32)
        dc = ("day", "channel")
        lo = N_BLOCKS * self.nch
        occ = self.daily[:, lo : lo + 5 * self.nseg].reshape(self.days, self.nseg, 5)
        data: dict[str, tuple] = {
            "stage_count": (("day", "stage"), occ.sum(axis=1).round().astype(np.int64)),
            "stage_count_by_segment": (("day", "segment", "stage"), occ.round().astype(np.int64)),
        }
        for b, name in enumerate(BLOCK_NAMES):
            values = self.block(b)
            if name not in UNITS:
                values = values.round().astype(np.int64)
            data[name] = (dc, values)
        data["media_spend"] = (dc, self.media.copy())
        data["fixed_cost"] = (dc, self.fixed.copy())
        spend = self.media + self.fixed
        data["spend"] = (dc, spend)
        gm = self.block(REVENUE) - sum(
            self.block(b) for b in (COGS, FULFILMENT, RETURN_COST, COMMISSION, ORDER_FEES)
        )
        data["gross_margin"] = (dc, gm)
        data["contribution"] = (dc, gm - spend)
        fo = lo + 5 * self.nseg
        data["forgot_aware"] = (("day",), self.daily[:, fo].round().astype(np.int64))
        data["forgot_considering"] = (("day",), self.daily[:, fo + 1].round().astype(np.int64))

        markov = markov_credit(trans, attr[0].sum())[None, :]
        data["attributed_conversions"] = (
            ("attribution_model", "channel"), np.concatenate([attr, markov], axis=0)
        )
        customers = self.block(CONVERSIONS).sum(axis=0)
        total_spend = spend.sum(axis=0)
        total_gm = gm.sum(axis=0)
        with np.errstate(all="ignore"):
            cac = np.where(customers > 0, total_spend / customers, np.nan)
            ltv = np.where(customers > 0, total_gm / customers, np.nan)
            ltv_cac = np.where(cac > 0, ltv / cac, np.where(customers > 0, np.inf, np.nan))
            conv = np.where(unique_reached > 0, customers / unique_reached, np.nan)
            churn = np.where(customers > 0, self.block(CHURNED_BY).sum(axis=0) / customers, np.nan)
        states = ["start", *channels, "conversion", "no_conversion"]
        data["journey_transitions"] = (("from_state", "to_state"), trans)
        data["unique_reached"] = (("channel",), unique_reached.astype(np.int64))
        data["customers"] = (("channel",), customers.round().astype(np.int64))
        data["conversion_rate"] = (("channel",), conv)
        data["cac"] = (("channel",), cac)
        data["ltv"] = (("channel",), ltv)
        data["ltv_cac"] = (("channel",), ltv_cac)
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
            },
            attrs=attrs,
        )
        for name, text in DESCRIPTIONS.items():
            if name in ds:
                ds[name].attrs["description"] = text
        for name, unit in UNITS.items():
            if name in ds:
                ds[name].attrs["units"] = unit
        return ds

