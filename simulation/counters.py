"""The counters of a day, and every result variable, declared once.

The kernels count into one row per chunk of customers; the row's layout, the
kernels' indices, the result dataset's variables with their units and descriptions,
and the README's table of result variables all come from the tables below. A new
counter is one line here, or in a mechanism's kernel module (see :func:`register`),
then counted in a kernel as ``cnt[CH.<name> * nch + c]``. Read ``CH`` where the table
is complete: as ``counters.CH`` at call time, or from :mod:`simulation.kernels.day`,
which imports every mechanism first.

Layout of a counter row: one block of ``n_channels`` values per channel counter,
then ``stage x segment`` occupancy at the end of the day, then the market counters, then
the day's orders by acquisition channel and weekly cohort (:func:`cohort_offset`).
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, replace
from typing import Literal

Aggregate = Literal["sum", "last", "mean", "none"]


@dataclass(frozen=True)
class Variable:
    """One result variable: its name in the dataset, unit, meaning, and how it aggregates
    over days (``sum``: a flow; ``last``: a stock, read at the end; ``mean``: a level;
    ``none``: already a whole-run figure)."""

    name: str
    unit: str
    description: str
    aggregate: Aggregate = "sum"
    stored: bool = True
    """False for a counter that only feeds a derived variable."""
    dims: tuple[str, ...] = ()
    """Dimensions in the dataset; counters: (day, channel) or (day,) by their table."""

    @property
    def is_count(self) -> bool:
        """Counted in whole customers, orders or events (stored as integers)."""
        return self.unit not in MONEY_UNITS and self.unit not in REAL_UNITS


RULE_MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
"""The rule-based attribution models, in the order the kernels and counters keep them."""
MONEY_UNITS = ("currency",)
REAL_UNITS = ("health units summed over churners", "credited conversions")

# -- counted by the kernels, per acquisition (or reaching) channel and day ------------
CHANNEL_COUNTERS: tuple[Variable, ...] = (
    Variable("reached", "customers", "customers reached by the channel that day"),
    *(Variable(f"credit_{model}", "credited conversions",
               f"conversions credited to the channel by {model.replace('_', ' ')} attribution "
               f"(for roll-out gates and guardrails; the run's totals are "
               f"attributed_conversions)", stored=False)
      for model in RULE_MODELS),
    Variable(
        "conversions",
        "customers",
        "new customers (first orders) by acquisition channel = last touch",
    ),
    Variable(
        "orders", "orders", "orders (first, repeat, renewals, win-backs) by acquisition channel"
    ),
    Variable(
        "revenue", "currency", "net revenue (returned orders refunded) by acquisition channel"
    ),
    Variable("cogs", "currency", "cost of goods of the orders"),
    Variable(
        "fulfilment_cost",
        "currency",
        "fulfilment of the orders, with delivery, packaging and tracking costs",
    ),
    Variable("return_cost", "currency", "handling cost of returned orders"),
    Variable("commission", "currency", "the channel's commission on the orders' revenue"),
    Variable("order_fees", "currency", "the channel's fee per order"),
    Variable("returns", "orders", "orders returned"),
    Variable("refunds", "currency", "revenue refunded on returned orders"),
    Variable("churned", "customers", "customers lost, by acquisition channel"),
    Variable("winbacks", "customers", "churned customers won back, by winning channel"),
    Variable("leads_new", "leads", "prospects queued at a capacity-limited channel"),
    Variable("leads_lost", "leads", "queued leads that decayed before being served"),
    Variable("leads_served", "leads", "queued leads handled within capacity"),
    Variable("moved_aware", "customers", "unaware customers made aware, by channel"),
    Variable("moved_considering", "customers", "customers moved into consideration, by channel"),
    Variable(
        "programme_cost",
        "currency",
        "post-purchase programme costs of the channel's "
        "customers (onboarding, reminders, surveys, outreach)",
    ),
    Variable("reminders", "reminders", "replenishment reminders sent, by acquisition channel"),
    Variable("reminder_orders", "orders", "orders brought forward by a reminder"),
    Variable("shares", "orders", "orders shared by customers (unboxing), feeding word of mouth"),
    Variable("community_joins", "customers", "customers joining the community"),
    Variable("community_leaves", "customers", "members lost to churn"),
    Variable("feedback", "answers", "survey answers"),
    Variable("onboarded", "customers", "new customers enrolled in onboarding"),
    Variable("repeaters", "customers", "customers placing their second order"),
    Variable(
        "health_at_churn",
        "health units summed over churners",
        "sum of churners' health on the day they churned",
    ),
    Variable(
        "first_order_revenue", "currency", "net revenue of first orders, by acquisition channel"
    ),
    Variable(
        "first_order_margin", "currency", "gross margin of first orders (after the channel's fees)"
    ),
    Variable("acquisition_fees", "currency", "commission and fees paid on first orders"),
    Variable(
        "acquisition_programme_cost",
        "currency",
        "programme costs of a customer's first order (onboarding), by acquisition channel; "
        "part of programme_cost",
    ),
    Variable(
        "active",
        "customers",
        "active customers at the end of the day, by acquisition channel",
        "last",
    ),
    Variable(
        "base_margin",
        "currency",
        "gross margin of the orders of customers acquired before day 0 (`[initial]`); part "
        "of gross_margin",
    ),
    Variable(
        "base_programme_cost",
        "currency",
        "programme costs of customers acquired before day 0; part of programme_cost",
    ),
    Variable(
        "base_churned", "customers", "customers acquired before day 0 lost; part of churned"
    ),
    Variable(
        "base_active",
        "customers",
        "active customers acquired before day 0, at the end of the day; part of active",
        "last",
    ),
)

# -- counted by the kernels for the whole market, per day -----------------------------
MARKET_COUNTERS: tuple[Variable, ...] = (
    Variable("forgot_aware", "customers", "aware customers who forgot the product"),
    Variable("forgot_considering", "customers", "considering customers who fell back to aware"),
    Variable(
        "health_sum",
        "health",
        "sum of active customers' health (for mean_health)",
        "none",
        stored=False,
    ),
    Variable(
        "promoters",
        "customers",
        "active customers with health >= 0.7 (for nps)",
        "none",
        stored=False,
    ),
    Variable(
        "detractors",
        "customers",
        "active customers with health < 0.4 (for nps)",
        "none",
        stored=False,
    ),
    Variable(
        "members",
        "customers",
        "community members among active customers (for community_size)",
        "none",
        stored=False,
    ),
)

# -- computed from the counters, the channels' books and the components ---------------
DAY, CHANNEL, DAY_CHANNEL = ("day",), ("channel",), ("day", "channel")
DERIVED: tuple[Variable, ...] = (
    Variable(
        "stage_count",
        "customers",
        "customers in each journey stage at the end of the day",
        "last",
        dims=("day", "stage"),
    ),
    Variable(
        "stage_count_by_segment",
        "customers",
        "stage_count by segment",
        "last",
        dims=("day", "segment", "stage"),
    ),
    Variable("spend", "currency", "marketing spend: media plus fixed daily cost", dims=DAY_CHANNEL),
    Variable(
        "media_spend",
        "currency",
        "media bought (CPM budget, paid clicks, paid contacts)",
        dims=DAY_CHANNEL,
    ),
    Variable("fixed_cost", "currency", "fixed daily cost of running the channel", dims=DAY_CHANNEL),
    Variable(
        "gross_margin",
        "currency",
        "revenue - cogs - fulfilment - return cost - commission - order fees",
        dims=DAY_CHANNEL,
    ),
    Variable(
        "contribution",
        "currency",
        "gross margin - media spend - programme cost (of the channel's customers): "
        "margin after the variable costs",
        dims=DAY_CHANNEL,
    ),
    Variable("profit", "currency", "contribution - the channel's fixed cost", dims=DAY_CHANNEL),
    Variable(
        "mean_health",
        "health",
        "mean health of active customers at the end of the day",
        "mean",
        dims=DAY,
    ),
    Variable(
        "nps",
        "points",
        "NPS proxy: % active customers with health >= 0.7 minus % below 0.4",
        "mean",
        dims=DAY,
    ),
    Variable(
        "community_size", "customers", "community members among active customers", "last", dims=DAY
    ),
    Variable(
        "repeat_purchase_rate",
        "share",
        "share of customers acquired so far who have ordered twice",
        "last",
        dims=DAY,
    ),
    Variable(
        "brand_equity", "index", "brand equity at the start of the day, in [0, 1]", "mean", dims=DAY
    ),
    Variable(
        "budget",
        "currency",
        "planned daily budget (after schedule, roll-out and guardrails)",
        dims=DAY_CHANNEL,
    ),
    Variable(
        "guardrail_action",
        "code",
        "guardrail fired that day: 0 none, 1 pause, 2 hold, 3 scale",
        "none",
        dims=DAY_CHANNEL,
    ),
    Variable(
        "running",
        "days",
        "1 on the days the channel ran (launched, not paused, not ended)",
        dims=DAY_CHANNEL,
    ),
    Variable(
        "programme_fixed_cost",
        "currency",
        "post-purchase costs not tied to a channel (community)",
        dims=DAY,
    ),
    Variable(
        "attributed_conversions",
        "customers",
        "conversions credited to each channel under each attribution model",
        "none",
        dims=("attribution_model", "channel"),
    ),
    Variable(
        "attributed_revenue",
        "currency",
        "first-order revenue credited to each channel under each attribution model",
        "none",
        dims=("attribution_model", "channel"),
    ),
    Variable(
        "journey_transitions",
        "journeys",
        "first-order journey transitions (start, "
        "channels, conversion, no_conversion) over every step of all journeys (first touch "
        "to first purchase, or to the end of the run), for Markov attribution",
        "none",
        dims=("from_state", "to_state"),
    ),
    Variable(
        "unique_reached",
        "customers",
        "customers reached at least once during the run",
        "none",
        dims=CHANNEL,
    ),
    Variable("customers", "customers", "customers acquired during the run", "none", dims=CHANNEL),
    Variable(
        "conversion_rate",
        "share",
        "customers acquired / customers ever reached",
        "none",
        dims=CHANNEL,
    ),
    Variable(
        "cac",
        "currency per customer",
        "customer acquisition cost: (media spend + fixed cost) / customers acquired; inf: "
        "spent and won no one",
        "none",
        dims=CHANNEL,
    ),
    Variable(
        "cac_loaded",
        "currency per customer",
        "cac plus first-order commissions, fees and programme costs (onboarding) per customer",
        "none",
        dims=CHANNEL,
    ),
    Variable(
        "ltv",
        "currency per customer",
        "margin realised in the run per customer: gross margin - programme costs, with the "
        "first-order costs of cac_loaded added back",
        "none",
        dims=CHANNEL,
    ),
    Variable(
        "ltv_projected",
        "currency per customer",
        "expected discounted margin of a new customer over [economics] horizon_days, at "
        "the run's observed margin and churn rates",
        "none",
        dims=CHANNEL,
    ),
    Variable("ltv_cac", "ratio", "ltv_projected / cac_loaded", "none", dims=CHANNEL),
    Variable(
        "payback_days",
        "days",
        "age at which a new customer's expected discounted margin covers cac_loaded "
        "(inf: never)",
        "none",
        dims=CHANNEL,
    ),
    Variable(
        "churn_rate",
        "share",
        "share of acquired customers churned by the end",
        "none",
        dims=CHANNEL,
    ),
    Variable(
        "holdout_size",
        "customers",
        "customers in the channel's hold-out cell (`holdout_share`), never reached by it: "
        "counted on day 0; 0 without a hold-out",
        "none",
        dims=CHANNEL,
    ),
    Variable(
        "stage_count_start",
        "customers",
        "customers in each journey stage at the start of day 0: all unaware, or the warm "
        "start's (`[initial]`)",
        "none",
        dims=("stage",),
    ),
    Variable(
        "standard_error",
        "as the figure",
        "the sample's standard error of each channel's whole-run customers, revenue and gross "
        "margin (customers as independent draws: scale x sqrt(agents) x sd per customer)",
        "none",
        dims=("figure", "channel"),
    ),
    Variable(
        "standard_error_total",
        "as the figure",
        "the sample's standard error of the market's whole-run customers, revenue and gross "
        "margin (profit's is about gross margin's: the costs are the market's)",
        "none",
        dims=("figure",),
    ),
    Variable(
        "cohort_retention",
        "share",
        "share of a weekly acquisition cohort still a "
        "customer k weeks later, by acquisition channel",
        "none",
        dims=("channel", "cohort_week", "weeks_since"),
    ),
    Variable(
        "orders_per_customer",
        "customers",
        "customers of a weekly acquisition cohort by the orders they placed by the end of the "
        "run (first order included; the top bin counts that many or more), by acquisition "
        "channel",
        "none",
        dims=("channel", "cohort_week", "orders_placed"),
    ),
    Variable(
        "cohort_orders",
        "orders",
        "orders placed in each week by the customers a weekly acquisition cohort won in the "
        "run (first orders included), by acquisition channel: a cohort's weekly orders",
        "none",
        dims=("channel", "cohort_week", "week"),
    ),
)


def register(*variables: Variable) -> None:
    """Add a mechanism's channel counters (call at import of its kernel module, before the
    day kernel is compiled: :mod:`simulation.kernels.day` imports every mechanism first)."""
    global CHANNEL_COUNTERS, CH
    known = {v.name for v in CHANNEL_COUNTERS}
    CHANNEL_COUNTERS += tuple(v for v in variables if v.name not in known)
    CH = _index(CHANNEL_COUNTERS)


def _index(table: tuple[Variable, ...]):
    return namedtuple("Index", [v.name for v in table])(*range(len(table)))


CH = _index(CHANNEL_COUNTERS)
"""Block of each channel counter: ``cnt[CH.orders * n_channels + c]``."""
MK = _index(MARKET_COUNTERS)
"""Position of each market counter after the occupancy block."""

N_STAGES = 5


def width(n_channels: int, n_segments: int, weeks: int) -> int:
    """Counters in a row: the channel blocks, stage x segment occupancy, the market counters,
    then the cohort block (:func:`cohort_offset`)."""
    return cohort_offset(n_channels, n_segments) + n_channels * weeks


def weeks(days: int) -> int:
    """Weeks of a run of ``days`` (the last one may be partial): its weekly cohorts."""
    return (days + 6) // 7


def occupancy_offset(n_channels: int) -> int:
    return len(CHANNEL_COUNTERS) * n_channels


def market_offset(n_channels: int, n_segments: int) -> int:
    return occupancy_offset(n_channels) + N_STAGES * n_segments


def cohort_offset(n_channels: int, n_segments: int) -> int:
    """Start of the cohort block: the day's orders by acquisition channel and weekly
    acquisition cohort, ``[offset + channel * weeks + cohort_week]``, of the customers won
    in the run. A day's block summed over a week is that week's orders of every cohort:
    ``cohort_orders`` (a row keeps it because only a day's orders tell when each was
    placed; the customer's state at the end keeps only how many)."""
    return market_offset(n_channels, n_segments) + len(MARKET_COUNTERS)


def variables() -> dict[str, Variable]:
    """Every result variable by name, with its dimensions: the counters, then the derived
    figures."""
    out = {v.name: replace(v, dims=DAY_CHANNEL) for v in CHANNEL_COUNTERS if v.stored}
    out.update({v.name: replace(v, dims=DAY) for v in MARKET_COUNTERS if v.stored})
    out.update({v.name: v for v in DERIVED})
    return out
