"""Daily accumulators of a run and the result dataset built from them.

The kernels fill one row of counters per chunk of customers; the recorder sums
the rows in a fixed order (so figures do not depend on the thread count) and
keeps one row per day. At the end the rows become the xarray dataset whose
names are the contract of ``docs/contracts.md``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from simulation.analysis.markov import markov_credit
from simulation.kernels.day import (
    ATTR_MODELS,
    BLOCK_NAMES,
    CHURNED_BY,
    COGS,
    COMMISSION,
    CONVERSIONS,
    FULFILMENT,
    N_BLOCKS,
    N_SCALARS,
    ORDER_FEES,
    PROGRAMME_COST,
    REPEATERS,
    RETURN_COST,
    REVENUE,
    SC_DETRACTORS,
    SC_FORGOT_AWARE,
    SC_FORGOT_CONSIDERING,
    SC_HEALTH_SUM,
    SC_MEMBERS,
    SC_PROMOTERS,
)
from simulation.scenario import STAGES

ATTRIBUTION_MODELS = ATTR_MODELS + ("markov",)

UNITS = {
    "spend": "currency", "media_spend": "currency", "fixed_cost": "currency",
    "revenue": "currency", "gross_margin": "currency", "cogs": "currency",
    "fulfilment_cost": "currency", "return_cost": "currency", "commission": "currency",
    "order_fees": "currency", "refunds": "currency", "contribution": "currency",
    "cac": "currency per customer", "ltv": "currency per customer",
    "programme_cost": "currency", "programme_fixed_cost": "currency", "budget": "currency",
    "health_at_churn": "health units summed over churners",
    "first_order_revenue": "currency", "first_order_margin": "currency",
    "acquisition_fees": "currency", "attributed_revenue": "currency",
}
MARGIN_COSTS = (COGS, FULFILMENT, RETURN_COST, COMMISSION, ORDER_FEES)

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
    "contribution": "gross margin - spend - programme cost (of the channel's customers)",
    "programme_cost": "post-purchase programme costs of the channel's customers "
                      "(onboarding, reminders, surveys)",
    "programme_fixed_cost": "post-purchase costs not tied to a channel (community)",
    "reminders": "replenishment reminders sent, by acquisition channel",
    "reminder_orders": "orders brought forward by a reminder",
    "shares": "orders shared by customers (unboxing), feeding word of mouth",
    "community_joins": "customers joining the community",
    "community_leaves": "members lost to churn",
    "feedback": "survey answers",
    "onboarded": "new customers enrolled in onboarding",
    "repeaters": "customers placing their second order",
    "health_at_churn": "sum of churners' health on the day they churned",
    "mean_health": "mean health of active customers at the end of the day",
    "nps": "NPS proxy: % active customers with health >= 0.7 minus % below 0.4",
    "community_size": "community members among active customers",
    "repeat_purchase_rate": "share of customers acquired so far who have ordered twice",
    "brand_equity": "brand equity at the start of the day, in [0, 1]",
    "budget": "planned daily budget (after schedule, roll-out and guardrails)",
    "guardrail_action": "guardrail fired that day: 0 none, 1 pause, 2 hold, 3 scale",
    "first_order_revenue": "net revenue of first orders, by acquisition channel",
    "first_order_margin": "gross margin of first orders (after the channel's fees)",
    "acquisition_fees": "commission and fees paid on first orders",
    "active": "active customers at the end of the day, by acquisition channel",
    "attributed_revenue": "first-order revenue credited to each channel under each attribution model",
    "running": "1 on the days the channel ran (launched, not paused, not ended)",
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
    "ltv": "realised lifetime value: gross margin less programme costs of acquired customers "
           "/ customers",
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

    def scalars(self, day: int) -> np.ndarray:
        lo = N_BLOCKS * self.nch + 5 * self.nseg
        return self.daily[day, lo : lo + N_SCALARS]

    def gross_margin(self) -> np.ndarray:
        """(day, channel) revenue minus the costs of orders, so far."""
        return self.block(REVENUE) - sum(self.block(b) for b in MARGIN_COSTS)

    def occupancy(self, day: int) -> np.ndarray:
        lo = N_BLOCKS * self.nch
        return self.daily[day, lo : lo + 5 * self.nseg].reshape(self.nseg, 5)

    def dataset(self, channels: list[str], attr: np.ndarray, trans: np.ndarray,
                unique_reached: np.ndarray, attrs: dict, extras: dict) -> xr.Dataset:
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
        data.update(extras)
        data["media_spend"] = (dc, self.media.copy())
        data["fixed_cost"] = (dc, self.fixed.copy())
        spend = self.media + self.fixed
        data["spend"] = (dc, spend)
        gm = self.gross_margin()
        data["gross_margin"] = (dc, gm)
        data["contribution"] = (dc, gm - spend - self.block(PROGRAMME_COST))
        sc = self.daily[:, lo + 5 * self.nseg :]
        data["forgot_aware"] = (("day",), sc[:, SC_FORGOT_AWARE].round().astype(np.int64))
        data["forgot_considering"] = (("day",),
                                      sc[:, SC_FORGOT_CONSIDERING].round().astype(np.int64))
        active = occ.sum(axis=1)[:, 3]
        with np.errstate(all="ignore"):
            data["mean_health"] = (("day",), np.where(active > 0, sc[:, SC_HEALTH_SUM] / active, np.nan))
            data["nps"] = (("day",), np.where(
                active > 0, 100.0 * (sc[:, SC_PROMOTERS] - sc[:, SC_DETRACTORS]) / active, np.nan))
            won = np.cumsum(self.block(CONVERSIONS).sum(axis=1))
            again = np.cumsum(self.block(REPEATERS).sum(axis=1))
            data["repeat_purchase_rate"] = (("day",), np.where(won > 0, again / won, np.nan))
        data["community_size"] = (("day",), sc[:, SC_MEMBERS].round().astype(np.int64))

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
        customers = self.block(CONVERSIONS).sum(axis=0)
        total_spend = spend.sum(axis=0)
        total_gm = gm.sum(axis=0) - self.block(PROGRAMME_COST).sum(axis=0)
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
        half_life = attrs.get("time_decay_half_life_days")
        if half_life is not None:
            ds["attributed_conversions"].attrs["time_decay_half_life_days"] = half_life
            ds["attributed_revenue"].attrs["time_decay_half_life_days"] = half_life
        return ds

