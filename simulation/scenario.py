"""The scenario: what a user writes in a TOML file, validated before anything runs.

A scenario that loads is one the engine can run: every probability lies in [0, 1],
money is never negative, segment shares sum to 1 and every name a field refers to
exists. Errors name the file and the dotted field path, because the person who
reads them is editing a TOML file, not reading a traceback.

``--set path=value`` overrides use the same dotted names as the TOML, with list
entries (segments, channels, plans) addressed by their ``name``:
``channels.search.daily_budget=500``. Values are parsed as TOML literals, never
evaluated as code. Scheduled changes (``[[changes]]``) are the same overrides with a
day: :func:`scheduled` turns them into the scenario in force from each change's day,
validated when the scenario loads.
"""

from __future__ import annotations

import copy
import datetime
import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
import tomli_w
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

STAGES = ("unaware", "aware", "considering", "active", "churned")
"""Journey stages, in the order of their integer codes in the customer state."""

WORD_OF_MOUTH = "word_of_mouth"

MAX_DAY = 65_000
"""The last day number a run can have (day numbers are stored as uint16); every day field
is bounded by it."""
MAX_AMOUNT = 1e12
"""Upper bound of money and other amounts: far beyond any business, and far enough below
float overflow that products of amounts (impressions, revenue) stay finite."""
MAX_COUNT = 1_000_000_000
"""Upper bound of whole counts a day (leads served, conversions to wait for)."""
MAX_MARKET = 10_000_000_000
"""Largest market a scenario can describe (the sample simulated is at most 200 million)."""
MIN_PRICE_OF_REACH = 0.01
"""Lowest cost per thousand impressions or per click: a price of 0 would make reach free
and infinite (the old way to switch a channel off; ``enabled = false`` is the way now)."""
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Money = Annotated[float, Field(ge=0.0, le=MAX_AMOUNT, allow_inf_nan=False)]
PriceOfReach = Annotated[float, Field(ge=MIN_PRICE_OF_REACH, le=MAX_AMOUNT, allow_inf_nan=False)]
PositiveFloat = Annotated[float, Field(gt=0.0, le=MAX_AMOUNT, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0.0, le=MAX_AMOUNT, allow_inf_nan=False)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=40)]


class ScenarioError(ValueError):
    """A scenario that cannot be run; the message names the file and the field."""

    def __init__(self, source: str, field: str, message: str):
        self.source = source
        self.field = field
        self.message = message
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {message}")


class Strict(BaseModel):
    """Base of every scenario table: unknown keys are errors, values are checked on assignment.

    A table's class is named after the table (``[brand]``: ``Brand``); where that name is
    already a class of the engine (``simulation.components.PostPurchase``,
    ``simulation.reference.model.Attribution``) the table's class ends in ``Config``, so
    that no class name has two homes (``tests/test_structure.py``).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True,
                              allow_inf_nan=False)


class Simulation(Strict):
    agents: int = Field(100_000, ge=1, le=200_000_000, description="addressable customers")
    days: int = Field(
        365, ge=1, le=MAX_DAY, description="days simulated (day numbers are stored as uint16)"
    )
    seed: int = Field(
        0, ge=0, le=2**63 - 1,
        description="random seed; a seed gives the same result on any thread count",
    )
    start_date: datetime.date | None = Field(
        None, strict=False,
        description="the date of day 0 (`2026-11-02`); the result's days carry their dates, "
                    "and `[seasonality]` reads their weekday and month",
    )


class Market(Strict):
    """The ``[market]`` table: the people the run stands for."""

    size: int = Field(
        None, ge=1, le=MAX_MARKET,
        description="people in the addressable market; unset: the file's own "
                    "`simulation.agents` (never a command-line or sweep override). Every "
                    "absolute quantity (budgets, visitors, capacities, counts) is in these "
                    "people, and so is every count and amount in the results; "
                    "`simulation.agents` is the sample simulated, each customer standing for "
                    "`size / agents` people",
    )


class Subscription(Strict):
    period_days: int = Field(30, ge=1, le=3650,
                             description="days between renewals (a plan may set its own)")
    churn: Probability = Field(0.05, description="probability of cancelling at a renewal (a plan "
                                                 "may set its own)")


class OneTime(Strict):
    lapse_rate: Probability = Field(
        0.01, description="daily probability that a one-time buyer stops being active"
    )


class Product(Strict):
    name: str = Field("product", description="label")
    archetype: Literal["commodity", "niche", "innovative"] = Field(
        "commodity", description="picks which `fit` value of each channel applies"
    )
    price: PositiveFloat = Field(
        20.0, description="price of one order, or of one subscription period (a segment on a "
                          "plan pays the plan's: `[[plans]]`)"
    )
    reference_price: PositiveFloat | None = Field(
        None,
        description="what customers compare against (unset: `price`); the price factor uses `price "
                    "/ reference_price` (a segment on a plan: the plan's)",
    )
    unit_cost: Money = Field(0.0, description="cost of goods per order")
    fulfilment_cost: Money = Field(
        0.0, description="fulfilment (shipping, payment processing) per order"
    )
    return_rate: Probability = Field(
        0.0,
        description="probability that an order is returned: its revenue is refunded, its costs "
                    "stay",
    )
    return_cost: Money = Field(0.0, description="extra cost of a return")
    business_model: Literal["one_time", "repeat", "subscription"] = Field(
        "repeat",
        description="how customers buy after the first order (see *Business models* below)",
    )
    positioning: Literal["budget", "mid", "premium"] = Field(
        "mid",
        description="the initial brand equity: 0.3 (`budget`), 0.5 (`mid`), 0.7 (`premium`), "
                    "unless `brand.initial_equity` is set",
    )
    subscription: Subscription = Subscription()
    one_time: OneTime = OneTime()


class PlanConfig(Strict):
    """A ``[[plans]]`` entry: a price point of the product that segments buy on (``Config``:
    ``Plan`` is a sweep's plan of runs).

    A segment names its plan (``segments.NAME.plan``); its customers then pay the plan's
    price on every order (times their acquisition channel's discount), compare it with the
    plan's reference price, and, for a subscription, renew on the plan's period and churn.
    Terms a plan leaves unset are the product's. Resolved per segment by
    :meth:`Scenario.segment_terms`, which every reader of a price uses."""

    name: Name = Field(
        description="letters, digits and `_`, starting with a letter; unique among the plans; "
                    "what `segments.NAME.plan` refers to"
    )
    price: PositiveFloat = Field(
        description="price of one order, or of one subscription period, on this plan"
    )
    reference_price: PositiveFloat | None = Field(
        None,
        description="what the plan's customers compare its price against (unset: the plan's "
                    "own `price`); the price factor uses `price / reference_price`",
    )
    period_days: int | None = Field(
        None, ge=1, le=3650,
        description="subscription: days between renewals on this plan (unset: "
                    "`product.subscription.period_days`)",
    )
    churn: Probability | None = Field(
        None,
        description="subscription: probability of cancelling at a renewal on this plan (unset: "
                    "`product.subscription.churn`)",
    )


class Terms(NamedTuple):
    """What a segment's customers pay and compare against, and how their subscription runs:
    the segment's plan's terms, or the product's (:meth:`Scenario.segment_terms`)."""

    price: float
    reference_price: float
    period_days: int
    churn: float


class GammaRate(Strict):
    """Heterogeneous purchase rate: lambda ~ Gamma(shape, scale) with mean 1 / mean_days."""

    shape: PositiveFloat = Field(
        2.0,
        description="repeat model: shape of the Gamma distribution of order rates across customers",
    )
    mean_days: PositiveFloat = Field(
        30.0,
        description="repeat model: the Gamma order rate has mean 1 / `mean_days` (mean days "
                    "between orders of an alive customer)",
    )


class BetaDropout(Strict):
    """Heterogeneous drop-out after each order: p ~ Beta(a, b) (the BG/NBD story)."""

    a: PositiveFloat = Field(
        1.0,
        description="repeat model: first parameter of the Beta drop-out probability per order "
                    "chance",
    )
    b: PositiveFloat = Field(
        9.0,
        description="repeat model: second parameter of the Beta drop-out probability per order "
                    "chance",
    )


class Segment(Strict):
    name: Name = Field(
        description="letters, digits and `_`, starting with a letter; unique among the segments"
    )
    share: Probability = Field(description="share of the market; the shares must sum to 1")
    price_sensitivity: NonNegFloat = Field(
        1.0,
        description="price elasticity: price factor `(price × (1 − discount) / reference_price) ** "
                    "−elasticity` on decisions and win-backs, with the segment's price and "
                    "reference price (its plan's, else the product's) and `elasticity = "
                    "price_sensitivity × max(0, 1 − brand_sensitivity × (equity − 0.5))`",
    )
    affinity: dict[str, NonNegFloat] = Field(
        default_factory=dict,
        description="relative reach weight per channel name (default 1; 0 = never reached)",
    )
    purchase_rate: GammaRate = GammaRate()
    dropout: BetaDropout = BetaDropout()
    churn_multiplier: NonNegFloat = Field(
        1.0, description="multiplies subscription churn, repeat drop-out and one-time lapse rate"
    )
    plan: Name | None = Field(
        None,
        description="the `[[plans]]` entry its customers buy on: the plan's price, reference "
                    "price and subscription terms instead of `[product]`'s; unset: the product's",
    )
    brand_sensitivity: NonNegFloat = Field(
        0.0,
        description="how much brand equity matters to the segment: decision and win-back effects × "
                    "`max(0, 1 + brand_sensitivity × (equity − 0.5))`, and price elasticity "
                    "softened (or sharpened) as in `price_sensitivity`",
    )


class Effects(Strict):
    """Stage effects of a channel: the chance that one exposure causes the transition.

    awareness: unaware -> aware; consideration: aware -> considering;
    decision: considering -> active (a first order); retention: churned -> active
    (a win-back) and, for active customers, a lift of their health.
    """

    awareness: Probability = Field(
        0.0,
        description="probability that one exposure makes an unaware customer aware (see *Effects* "
                    "below)",
    )
    consideration: Probability = Field(
        0.0, description="probability that one exposure makes an aware customer start considering"
    )
    decision: Probability = Field(
        0.0,
        description="probability that one exposure makes a considering customer place a first "
                    "order",
    )
    retention: Probability = Field(
        0.0,
        description="probability that one exposure wins back a churned customer, or lifts an "
                    "active customer's health",
    )


class Reach(Strict):
    """How a channel's budget turns into exposures.

    cpm: budget buys impressions, spread over the audience (Poisson reach that saturates).
    cpc: budget buys clicks from the audience that searches; each click is paid.
    fixed: a number of daily visitors (organic, marketplace browsing), no media cost.
    list: each contact in the audience is reached with probability ``frequency`` a day
    (email, a sales follow-up list), each contact paid ``cost_per_contact``. With a
    ``list`` table on the channel (:class:`ContactList`) the contacts are the people on
    the firm's list, who joined it; without one, everyone in the audience (a sales team
    following up prospects).
    """

    model: Literal["cpm", "cpc", "fixed", "list"] = Field(
        "cpm", description="how the budget turns into exposures (see the list below)"
    )
    cpm: PriceOfReach = Field(10.0, description="cost per thousand impressions (`cpm`)")
    cpc: PriceOfReach = Field(1.0, description="cost per click (`cpc`)")
    daily_visitors: NonNegFloat = Field(0.0, description="visitors a day (`fixed`)")
    frequency: Probability = Field(
        0.0, description="daily probability of contacting each audience member (`list`)"
    )
    cost_per_contact: Money = Field(0.0, description="cost of each contact made (`list`)")
    max_daily_reach: Probability = Field(
        1.0,
        description="cap on a customer's daily chance of being reached (search volume, list "
                    "fatigue)",
    )
    audience: list[Literal["unaware", "aware", "considering", "active", "churned"]] | None = Field(
        None,
        description="stages the channel can reach; unset: by model, `cpm` and `fixed` all five, "
                    "`cpc` `aware considering churned`, `list` `considering active churned` "
                    "(all five for a channel with a `list` table: the list is its audience)",
    )

    def audience_stages(self, keeps_list: bool = False) -> tuple[str, ...]:
        """The stages reached; ``keeps_list``: the channel sends to the firm's list (a
        ``list`` table), so by default whoever is on it, in any stage."""
        if self.audience is not None:
            return tuple(self.audience)
        if keeps_list:
            return STAGES
        return {
            "cpm": STAGES,
            "cpc": ("aware", "considering", "churned"),
            "fixed": STAGES,
            "list": ("considering", "active", "churned"),
        }[self.model]


class ContactList(Strict):
    """A channel's ``list`` table: the channel contacts only the people on the firm's list
    (email, SMS), who joined it by opting in, and leave it by unsubscribing.

    There is one list (a customer is on it or not: ``flags`` bit LISTED); at most one
    channel declares it. People join at a visit (a reach by one of the channels named in
    ``opt_in_visit``), when a channel moves them into consideration (a trial, a sign-up),
    and at each order; each contact by the list channel makes its receiver unsubscribe with
    chance ``unsubscribe × (1 + fatigue × reach.frequency)``: the more often the list is
    mailed, the more each mail costs in subscribers. A ``personalised`` list channel's list
    holds only customers who consented (``post_purchase.opt_out_share``): a customer who
    opted out never joins. ``initial.list_size`` puts people on it on day 0."""

    opt_in_visit: dict[str, Probability] = Field(
        default_factory=dict,
        description="per channel name: the chance that a customer the channel reaches (a "
                    "visit to the site, the shop) joins the list, e.g. `{ website = 0.03 }`; "
                    "channels not named sign no one up",
    )
    opt_in_consideration: Probability = Field(
        0.0, description="chance that a customer moved into consideration (a trial, a "
                         "sign-up) joins the list")
    opt_in_purchase: Probability = Field(
        0.0, description="chance that an order (first, repeat, renewal, win-back) of a "
                         "customer not on the list adds them to it (the checkout's box)")
    unsubscribe: Probability = Field(
        0.0, description="chance that a contact makes its receiver leave the list, at a "
                         "frequency of 0 (see `fatigue`)")
    fatigue: NonNegFloat = Field(
        0.0, description="per-contact unsubscribe chance `unsubscribe × (1 + fatigue × "
                         "reach.frequency)` (at most 1): frequent mailing costs subscribers")


class Schedule(Strict):
    """How a channel's daily budget moves over the days since its launch.

    constant: ``daily_budget`` every day. linear: from ``daily_budget`` to ``end_budget``
    over ``ramp_days``. exponential: ``daily_budget * (1 + growth) ** t``. steps:
    ``[[day, budget], ...]`` (days since launch), the last step reached applies.
    The result is capped at ``cap``.
    """

    kind: Literal["constant", "linear", "exponential", "steps"] = Field(
        "constant",
        description="`constant`: `daily_budget` every day; `linear`: from `daily_budget` to "
                    "`end_budget` over `ramp_days`, then `end_budget`; `exponential`: "
                    "`daily_budget × (1 + growth) ** t`; `steps`: the budget of the last step "
                    "reached",
    )
    end_budget: Money = Field(0.0, description="target of a `linear` ramp")
    ramp_days: int = Field(30, ge=1, le=MAX_DAY, description="length of a `linear` ramp")
    growth: float = Field(0.0, ge=-1.0, le=1.0, description="daily growth of an `exponential` ramp")
    steps: list[Annotated[list[NonNegFloat], Field(min_length=2, max_length=2)]] = Field(
        default_factory=list,
        description="`[[day since launch, budget], ...]` in increasing whole days; required for "
                    "`steps` (before the first step: `daily_budget`)",
    )
    cap: Money | None = Field(None, description="upper limit of the scheduled budget")

    @model_validator(mode="after")
    def _steps_sorted(self):
        days = [d for d, _ in self.steps]
        if any(d != int(d) for d in days):
            raise ValueError("step days must be whole days")
        if days != sorted(days):
            raise ValueError("steps must be in increasing day order")
        if self.kind == "steps" and not self.steps:
            raise ValueError("a 'steps' schedule needs at least one [day, budget] step")
        return self


class Novelty(Strict):
    """A new channel's effects start higher and fade: ``1 + boost * 0.5 ** (t / half_life_days)``."""

    boost: NonNegFloat = Field(
        0.0,
        description="a new channel's effects start higher and fade: × `1 + boost × 0.5 ** (days "
                    "since launch / half_life_days)`",
    )
    half_life_days: PositiveFloat = Field(30.0, description="days for the novelty boost to halve")


class Fit(Strict):
    commodity: Probability = Field(
        1.0,
        description="how well the channel carries a `commodity` product: multiplies its effects",
    )
    niche: Probability = Field(
        1.0, description="how well the channel carries a `niche` product: multiplies its effects"
    )
    innovative: Probability = Field(
        1.0,
        description="how well the channel carries an `innovative` product: multiplies its effects",
    )


class Channel(Strict):
    name: Name = Field(
        description="as for segments; unique among the channels; `word_of_mouth` is reserved"
    )
    kind: Literal[
        "paid_social", "search", "display", "marketplace", "retail_partner", "direct_sales",
        "partner", "affiliate", "email", "referral", "organic", "content",
    ] = Field(
        description="a label: what the channel does comes from the fields below"
    )
    stage: Literal["awareness", "consideration", "decision", "retention"] = Field(
        "awareness", description="the channel's natural stage; a label"
    )
    effects: Effects = Effects()
    reach: Reach = Field(Reach(), description="how the channel reaches customers")
    daily_budget: Money = Field(0.0, description="media budget a day (`cpm`, `cpc`)")
    commission: Probability = Field(
        0.0,
        description="share of revenue paid to the channel on every order of the customers it "
                    "acquired",
    )
    fee_per_order: Money = Field(0.0, description="fee per order of the customers it acquired")
    fixed_daily_cost: Money = Field(
        0.0,
        description="cost of running the channel (a sales team, tools), every day it runs: from "
                    "its launch to its `end_day` or a guardrail pause",
    )
    capacity: int | None = Field(
        None, ge=0, le=MAX_COUNT,
        description="leads handled a day (see *Capacity and leads*); unset: unlimited, no queue",
    )
    lead_decay: Probability = Field(
        0.1, description="daily probability that a waiting lead is lost"
    )
    intent: Probability = Field(
        1.0, description="share of reached customers in buying mode; scales `decision`"
    )
    fit: Fit = Fit()
    message_alignment: Probability = Field(
        1.0, description="1 = a message written for this channel; lower = one message everywhere"
    )
    positioning_signal: float = Field(
        0.0, ge=-1.0, le=1.0,
        description="−1 (discount) … +1 (premium): how the channel moves brand equity (see "
                    "`[brand]`)",
    )
    discount: Probability = Field(
        0.0,
        description="price reduction on every order of the customers acquired here (`price × (1 − "
                    "discount)`); it also enters the channel's price factor and erodes equity "
                    "(`brand.discount_erosion`)",
    )
    personalised: bool = Field(
        False,
        description="the channel reaches only customers who consented to personalised contact "
                    "(`post_purchase.opt_out_share`); a non-consenting customer it would reach is "
                    "skipped: not counted, no touch, no effect",
    )
    launch_day: int = Field(
        0, ge=0, le=MAX_DAY,
        description="first day the channel may run (a channel in `[rollout]` may start later)",
    )
    enabled: bool = Field(
        True,
        description="false keeps the channel off for the whole run: no reach, no media, "
                    "contact or fixed cost (a hold-out, or a variant without the channel)",
    )
    end_day: int | None = Field(
        None, ge=0, le=MAX_DAY,
        description="last day the channel runs (inclusive); unset: to the end; must be ≥ "
                    "`launch_day`",
    )
    schedule: Schedule = Field(
        Schedule(), description="how `daily_budget` moves with the days since launch"
    )
    dilution: NonNegFloat = Field(
        0.0,
        description="audience dilution: effects × `1 / (1 + dilution × exposures)`, where "
                    "exposures are the day's impressions (clicks, visitors, contacts) per "
                    "affinity-weighted audience member",
    )
    novelty: Novelty = Novelty()
    holdout_share: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="share of the market this channel never reaches, chosen per customer by "
                    "a keyed hash of (seed, customer, channel name): the same customers every "
                    "day, independent across channels; the in-run hold-out cell that "
                    "`credit = \"lift\"` measures the channel's lift on (its customers are "
                    "never reached by the channel: they are skipped as a non-consenting "
                    "customer of a personalised channel is). 0: no hold-out",
    )
    list: ContactList | None = Field(  # noqa: A003 (the TOML key; last, as it shadows list)
        None,
        description="the firm's list this channel sends to (`reach.model = \"list\"` only): "
                    "it then contacts only the people on the list; unset: everyone in its "
                    "audience (a sales team's prospects)",
    )

    @model_validator(mode="after")
    def _list_needs_list_reach(self):
        if self.list is not None and self.reach.model != "list":
            raise ValueError(f"a list table needs reach.model = 'list' (not "
                             f"'{self.reach.model}'): only a list channel sends to a list")
        return self

    @property
    def keeps_list(self) -> bool:
        """Whether the channel contacts only the people on the firm's list."""
        return self.list is not None


class WordOfMouth(Strict):
    """Bass-style diffusion: an unaware customer hears of the product with daily
    probability ``p + q * advocates / agents``; hearing moves them to ``adoption``."""

    enabled: bool = Field(True, description="switch")
    p: Probability = Field(
        0.0,
        description="innovation: daily probability that an unaware customer hears of the product "
                    "anyway",
    )
    q: NonNegFloat = Field(
        0.0, description="imitation: daily probability when everyone is an advocate (`p + q ≤ 1`)"
    )
    advocacy: Probability = Field(
        1.0, description="share of active customers who talk about the product"
    )
    adoption: Literal["aware", "considering", "active"] = Field(
        "aware",
        description="where hearing of it puts the customer; `active` is an immediate first order, "
                    "credited to `word_of_mouth`",
    )

    @model_validator(mode="after")
    def _q_is_a_rate(self):
        if self.p + self.q > 1.0:
            raise ValueError("p + q must be at most 1 (it is the daily hazard when everyone advocates)")
        return self


class Forgetting(Strict):
    aware: Probability = Field(0.0, description="daily probability aware → unaware")
    considering: Probability = Field(
        0.0, description="daily probability considering → aware (a waiting lead is dropped)"
    )


class Health(Strict):
    """Engagement of a customer in [0, 1]: sets the churn hazard, declines without care."""

    initial: Probability = Field(
        0.8,
        description="health at the first order (plus `onboarding.health_boost` if enrolled) and at "
                    "a win-back",
    )
    decay: Probability = Field(0.002, description="health lost per day since it was last set")
    order_boost: Probability = Field(
        0.1,
        description="health gained at each renewal or repeat order, and at each successful "
                    "retention touch",
    )
    churn_sensitivity: NonNegFloat = Field(
        0.0,
        description="churn and drop-out are multiplied by `exp(churn_sensitivity × (0.5 − "
                    "health))`",
    )


class AttributionConfig(Strict):
    """The ``[attribution]`` table."""

    half_life_days: PositiveFloat = Field(
        7.0, description="half-life of the time-decay attribution model, in days"
    )


class Economics(Strict):
    """The ``[economics]`` table: how the value of a customer is projected beyond the run."""

    horizon_days: int = Field(
        3 * 365, ge=1, le=MAX_DAY,
        description="days after acquisition that `ltv_projected` counts (a new customer's "
                    "expected margin over this horizon, at the run's observed rates)",
    )
    discount_rate: float = Field(
        0.10, ge=0.0, le=1.0,
        description="annual rate at which later margin is discounted in `ltv_projected` and "
                    "`payback_days` (0: undiscounted)",
    )


Credit = Literal["first_touch", "last_touch", "linear", "time_decay", "position_based", "lift"]
"""How a roll-out gate or a guardrail counts a channel's customers: a rule-based
attribution model (its credit is known day by day), or ``lift``, the incremental customers
measured against the channel's in-run hold-out cell (``channels.NAME.holdout_share``)."""


class Rollout(Strict):
    """Staged roll-out: channels in ``order`` launch one at a time, each once the previous
    one has passed its validation window (days and conversions) without a guardrail pausing it."""

    order: list[str] = Field(
        default_factory=list,
        description="channel names, in launch order; channels not named launch on their own "
                    "`launch_day`",
    )
    validation_days: int = Field(
        30, ge=0, le=MAX_DAY,
        description="days the previous channel must have run before the next launches"
    )
    validation_conversions: int = Field(
        0, ge=0, le=MAX_COUNT,
        description="customers the previous channel must have won before the next launches, "
                    "as `credit` counts them"
    )
    credit: Credit = Field(
        "last_touch",
        description="how a channel's customers are counted for the gate: an attribution model "
                    "(`last_touch` credits an awareness channel with almost none; "
                    "`first_touch`, `linear`, `time_decay` or `position_based` credit what it "
                    "started), or `lift`: the incremental customers measured on the channel's "
                    "in-run hold-out cell (every gated channel needs a `holdout_share`; see "
                    "*Lift gates*)",
    )


class Guardrail(Strict):
    """A rule evaluated every ``every_days`` on the trailing ``lookback_days``, once the
    channel has run ``validation_days`` and won ``validation_conversions`` customers.

    It fires when the metric is ``above`` or ``below`` its threshold; then it pauses the
    channel, holds its budget where it is (no further ramp), or scales it by ``factor``.
    """

    channel: str = Field("*", description="the channel the rule watches, or `*` for every channel")
    metric: Literal["cac", "conversion_rate", "ltv_cac"] = Field(
        description="what the rule watches over the trailing window (see below)"
    )
    above: float | None = Field(
        None,
        description="the rule fires when the metric is above this (`above` or `below` is required)",
    )
    below: float | None = Field(None, description="the rule fires when the metric is below this")
    action: Literal["pause", "hold", "scale"] = Field(
        "pause",
        description="`pause`: the channel stops for the rest of the run; `hold`: its budget stays "
                    "at today's scheduled level (no further ramp); `scale`: its budget is "
                    "multiplied by `factor`",
    )
    factor: PositiveFloat = Field(1.0, description="budget multiplier of `scale`")
    lookback_days: int = Field(
        28, ge=1, le=MAX_DAY, description="trailing window of the metric, today included"
    )
    validation_days: int = Field(
        30, ge=0, le=MAX_DAY,
        description="the rule is not checked before the channel has run this many days..."
    )
    validation_conversions: int = Field(
        100, ge=0, le=MAX_COUNT, description="...and won this many customers in all"
    )
    every_days: int = Field(
        7, ge=1, le=MAX_DAY,
        description="checked on every `every_days`-th day since the channel's launch"
    )
    credit: Credit = Field(
        "last_touch",
        description="how the channel's customers are counted (CAC, conversion rate and the "
                    "`validation_conversions`): an attribution model or `lift`, as for "
                    "`rollout.credit` (`lift` needs a `holdout_share` on every channel the "
                    "rule watches)",
    )

    @model_validator(mode="after")
    def _a_bound(self):
        if self.above is None and self.below is None:
            raise ValueError("a guardrail needs 'above' or 'below' (the threshold that fires it)")
        return self


class Brand(Strict):
    """Brand equity in [0, 1]: premium-signal channels raise it, discount channels erode it."""

    initial_equity: Probability | None = Field(
        None, description="unset: by `product.positioning`, 0.3 (budget), 0.5 (mid), 0.7 (premium)"
    )
    build_rate: NonNegFloat = Field(
        0.05, description="equity moved a day per unit of signal × share of the market reached"
    )
    decay: Probability = Field(0.002, description="daily pull back toward the initial equity")
    discount_erosion: NonNegFloat = Field(
        2.0, description="signal lost per unit of a channel's `discount`"
    )


class Messaging(Strict):
    strategy: Literal["uniform", "channel_specific"] = Field(
        "uniform",
        description="`uniform`: one message everywhere, each channel's `message_alignment` "
                    "applies; `channel_specific`: tailored creative, alignment 1 for every channel",
    )
    cost_per_channel_per_day: Money = Field(
        0.0,
        description="cost of the tailored creative, added to each running channel's `fixed_cost` "
                    "under `channel_specific`",
    )


class Onboarding(Strict):
    """A welcome programme for new customers: a healthier start and a lower churn hazard at
    the decisions to leave it shapes (``kernels.day._onboarding_covers``)."""

    enabled: bool = Field(False, description="switch")
    reach: Probability = Field(
        1.0, description="share of new customers enrolled (drawn at the first order)"
    )
    churn_reduction: Probability = Field(
        0.3,
        description="the churn hazard (renewal churn, drop-out, lapse) × `1 − churn_reduction` "
                    "within `effect_days` of the first order, and at the first renewal "
                    "(subscription) or first drop-out chance (repeat) wherever it falls",
    )
    effect_days: int = Field(
        30, ge=1, le=MAX_DAY,
        description="how long the reduction lasts after the first order (the programme's "
                    "length, e.g. 14; it always covers the first renewal or drop-out chance)",
    )
    health_boost: Probability = Field(
        0.1, description="added to the enrolled customer's initial health"
    )
    cost_per_customer: Money = Field(0.0, description="per enrolled customer")


class Delivery(Strict):
    satisfaction: Probability = Field(0.5, description="0.5 is ordinary; faster delivery is higher")
    cost_per_order: Money = Field(0.0, description="added to every order's fulfilment cost")


class Packaging(Strict):
    quality: Probability = Field(0.5, description="adds `0.5 × (quality − 0.5)` to satisfaction")
    share_rate: Probability = Field(
        0.0,
        description="chance that an order is shared (unboxing): each share adds `share_reach` "
                    "advocates for word of mouth the next day",
    )
    share_reach: NonNegFloat = Field(
        1.0,
        description="advocate-equivalents one share counts as the next day (a post seen by many)",
    )
    cost_per_order: Money = Field(0.0, description="added to every order's fulfilment cost")


class Returns(Strict):
    flexible: bool = Field(False, description="switch")
    conversion_lift: NonNegFloat = Field(
        0.1, description="decision effects × `1 + conversion_lift`"
    )
    extra_return_rate: Probability = Field(0.05, description="added to `product.return_rate`")


class Tracking(Strict):
    enabled: bool = Field(False, description="switch")
    satisfaction_bonus: Probability = Field(0.1, description="added to satisfaction")
    cost_per_order: Money = Field(0.0, description="added to every order's fulfilment cost")


class Reminders(Strict):
    """Replenishment reminders timed to each customer's expected run-out (repeat purchases)."""

    enabled: bool = Field(
        False, description="replenishment reminders (`repeat` business model only)"
    )
    cycle_days: int = Field(
        70, ge=1, le=MAX_DAY,
        description="days a purchase lasts: after an order, a consenting customer whose next order "
                    "chance would come later than `cycle_days` gets a reminder on that day instead",
    )
    response: Probability = Field(
        0.3,
        description="chance that a reminder brings the order chance forward to that day; otherwise "
                    "a new wait is drawn (and may end in another reminder)",
    )
    dropout_reduction: Probability = Field(
        0.3,
        description="drop-out of consenting customers × `1 − dropout_reduction` while reminders "
                    "are on",
    )
    cost_per_reminder: Money = Field(0.0, description="per reminder sent")


class Feedback(Strict):
    enabled: bool = Field(False, description="a survey at every order")
    response_rate: Probability = Field(0.2, description="chance a survey is answered")
    health_boost: Probability = Field(0.05, description="health gained by answering")
    cost_per_survey: Money = Field(0.0, description="per survey sent (every order)")


class Community(Strict):
    """Members churn less and advocate more; the value grows with size: ``m / (m + half_size)``."""

    enabled: bool = Field(False, description="switch")
    join_rate: Probability = Field(
        0.05,
        description="chance that an order makes a non-member join; members leave when they churn",
    )
    half_size: PositiveFloat = Field(
        1000.0,
        description="the community's value is `members / (members + half_size)` (members among "
                    "active customers, previous day)",
    )
    churn_reduction: Probability = Field(
        0.3, description="members' churn hazard × `1 − churn_reduction × value`"
    )
    advocacy_boost: NonNegFloat = Field(
        1.0, description="word of mouth gets `advocacy_boost × value × members` extra advocates"
    )
    fixed_daily_cost: Money = Field(0.0, description="a day")
    cost_per_member_day: Money = Field(0.0, description="per member a day")


class OutreachConfig(Strict):
    """At-risk outreach: the day a consenting customer's health falls below ``threshold``
    the firm contacts them, lifting their health by ``health_boost``. Health sets the churn
    hazard only through ``health.churn_sensitivity``: at 0, contacts cost without keeping
    anyone."""

    enabled: bool = Field(False, description="switch")
    threshold: Probability = Field(
        0.35, description="health below which a customer is at risk: a consenting customer is "
                          "contacted the day their health falls below it")
    health_boost: Probability = Field(
        0.2, description="health gained by a contact; it lowers churn only as far as "
                         "`health.churn_sensitivity` ties churn to health")
    cost_per_contact: Money = Field(0.0, description="per customer contacted (set it: the "
                                                     "default 0 prices contacts as free)")


class PostPurchaseConfig(Strict):
    """The ``[post_purchase]`` table: the programmes the post-purchase component runs."""

    opt_out_share: Probability = Field(
        0.3,
        description="customers who do not consent to personalised contact (drawn once per "
                    "customer): they get no reminders and no outreach, and no `personalised` "
                    "channel reaches them",
    )
    satisfaction_weight: NonNegFloat = Field(
        0.2,
        description="health moved at each order by `satisfaction_weight × (satisfaction − 0.5)`, "
                    "where `satisfaction = clip(delivery.satisfaction + 0.5 × (packaging.quality − "
                    "0.5) + tracking bonus, 0, 1)`",
    )
    onboarding: Onboarding = Onboarding()
    delivery: Delivery = Delivery()
    packaging: Packaging = Packaging()
    returns: Returns = Returns()
    tracking: Tracking = Tracking()
    reminders: Reminders = Reminders()
    feedback: Feedback = Feedback()
    community: Community = Community()
    outreach: OutreachConfig = OutreachConfig()


class Existing(Strict):
    """One ``[[initial.customers]]`` entry: the customers a channel acquired before day 0."""

    channel: str = Field(description="the channel that acquired them (a channel's name, or "
                                     "`word_of_mouth`)")
    segment: str | None = Field(
        None, description="the segment they belong to; unset: spread over the segments by "
                          "their shares")
    active: NonNegFloat = Field(0.0, description="customers still active on day 0 (people)")
    lapsed: NonNegFloat = Field(
        0.0, description="former customers, churned before day 0 (people); a retention channel "
                         "may win them back")
    tenure_days: int = Field(
        365, ge=1, le=MAX_DAY,
        description="they were acquired at an even pace over the `tenure_days` days before "
                    "day 0: a subscriber's next renewal and a repeat buyer's orders so far "
                    "follow from it")


class Initial(Strict):
    """The ``[initial]`` table: the market on day 0, for a strategy tested from today.

    Without it a run starts cold: no one aware, no customers. Shares are of the whole
    market; counts are people. Customers are drawn at random across segments; each
    existing customer's state is drawn from the scenario's own rules (a repeat buyer's
    purchase rate and drop-out from their segment's, orders so far from the rate and tenure;
    a one-time buyer's lapse and a subscriber's renewal phase from day 0 on)."""

    aware: Probability = Field(0.0, description="share of the market aware of the product, "
                                                 "neither considering nor a customer")
    considering: Probability = Field(0.0, description="share of the market considering it")
    customers: list[Existing] = Field(
        default_factory=list,
        description="`[[initial.customers]]` tables: customers by acquisition channel")
    brand_equity: Probability | None = Field(
        None, description="brand equity on day 0; unset: `brand.initial_equity` (the level it "
                          "decays toward either way)")
    community_members: NonNegFloat = Field(
        0.0, description="community members on day 0 (people), drawn among the active "
                         "customers; they count while `post_purchase.community.enabled`")
    list_size: NonNegFloat = Field(
        0.0, description="people on the firm's list on day 0 (a channel's `list` table), "
                         "drawn at random across the market (among the consenting for a "
                         "`personalised` list channel)")


Multiplier = Annotated[float, Field(ge=0.0, le=1000.0, allow_inf_nan=False)]


class Profile(Strict):
    """Multipliers by weekday and by month: a day's factor is ``weekly[weekday] ×
    monthly[month]`` of its date (``simulation.start_date``)."""

    weekly: list[Multiplier] = Field(
        default_factory=lambda: [1.0] * 7, min_length=7, max_length=7,
        description="Monday … Sunday")
    monthly: list[Multiplier] = Field(
        default_factory=lambda: [1.0] * 12, min_length=12, max_length=12,
        description="January … December")

    @property
    def flat(self) -> bool:
        return all(x == 1.0 for x in self.weekly + self.monthly)


class Seasonality(Strict):
    """The ``[seasonality]`` table: how demand, reach and media prices move with the
    calendar. Needs ``simulation.start_date``."""

    demand: Profile = Field(
        Profile(), description="decision and win-back effects (a first order, a return)")
    reach: Profile = Field(
        Profile(), description="organic visitors (`fixed`) and list contacts (`list`) a day")
    media_price: Profile = Field(
        Profile(), description="the price of reach: `cpm` and `cpc` (a budget buys less when "
                               "it is higher)")

    @model_validator(mode="after")
    def _prices_positive(self):
        if 0.0 in self.media_price.weekly + self.media_price.monthly:
            raise ValueError("seasonality.media_price multipliers must be above 0 (a free "
                             "impression would be infinite reach)")
        return self


class Change(Strict):
    """A scheduled change: from ``day`` on, the run behaves as if the scenario had the
    ``set`` values (``simulation/scenario.py``: :func:`scheduled`)."""

    day: int = Field(
        ge=0, le=MAX_DAY,
        description="first day simulated with the new values; the days before it are those of "
                    "the run without the change; a day after the run's last never comes",
    )
    set: dict[str, Any] = Field(
        min_length=1,
        description="dotted-path overrides, as for `--set` (list entries by name; a table value "
                    "merges into the table); a later change builds on the earlier ones; fields "
                    "fixed for the run are refused (see *Scheduled changes* in the README)",
    )

    @field_validator("set", mode="before")
    @classmethod
    def _dotted(cls, value: Any) -> Any:
        """``[changes.set]`` written as nested tables means the same dotted paths."""
        return flatten_overrides(value) if isinstance(value, dict) else value


class Scenario(Strict):
    name: str = Field("scenario", description="name shown in the summary and stored in the result")
    description: str = Field("", description="free text")
    simulation: Simulation = Simulation()
    market: Market = Market()
    product: Product = Product()
    plans: list[PlanConfig] = Field(
        default_factory=list,
        description="price points of the product, `[[plans]]` tables that segments name (see "
                    "*Plans*)",
    )
    segments: list[Segment] = Field(default_factory=lambda: [Segment(name="everyone", share=1.0)])
    channels: list[Channel] = Field(default_factory=list)
    word_of_mouth: WordOfMouth = WordOfMouth()
    forgetting: Forgetting = Forgetting()
    health: Health = Health()
    rollout: Rollout = Rollout()
    guardrails: list[Guardrail] = Field(default_factory=list)
    brand: Brand = Brand()
    messaging: Messaging = Messaging()
    post_purchase: PostPurchaseConfig = PostPurchaseConfig()
    attribution: AttributionConfig = AttributionConfig()
    economics: Economics = Economics()
    initial: Initial = Field(Initial(), description="the market on day 0 (see *A warm start*)")
    seasonality: Seasonality = Field(
        Seasonality(), description="weekly and monthly multipliers (see *Calendar and "
                                   "seasonality*)")
    changes: list[Change] = Field(
        default_factory=list,
        description="scheduled changes, `[[changes]]` tables of `day` and `set` (see *Scheduled "
                    "changes*)",
    )

    @model_validator(mode="before")
    @classmethod
    def _market_of_the_file(cls, data):
        """Without ``market.size``, the market is the sample the data describes."""
        if isinstance(data, dict):
            data = dict(data)
            fix_market_size(data)
        return data

    @property
    def scale(self) -> float:
        """People each simulated customer stands for: ``market.size / simulation.agents``."""
        return self.market.size / self.simulation.agents

    @model_validator(mode="after")
    def _cross_checks(self):
        if not self.segments:
            raise ValueError("at least one segment is needed")
        total = math.fsum(s.share for s in self.segments)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"segment shares must sum to 1 (they sum to {total:g})")
        _unique("segments", [s.name for s in self.segments])
        _unique("plans", [p.name for p in self.plans])
        plans = {p.name for p in self.plans}
        for s in self.segments:
            if s.plan is not None and s.plan not in plans:
                raise ValueError(f"segment '{s.name}' names unknown plan '{s.plan}' "
                                 f"(plans: {sorted(plans) or 'none'})")
        _unique("channels", [c.name for c in self.channels])
        names = {c.name for c in self.channels}
        if WORD_OF_MOUTH in names:
            raise ValueError(f"'{WORD_OF_MOUTH}' is reserved for the word-of-mouth channel")
        if len(self.channels) > 62:
            raise ValueError("at most 62 channels")
        if len(self.segments) > 255:
            raise ValueError("at most 255 segments")
        for name in self.rollout.order:
            if name not in names:
                raise ValueError(f"rollout.order names unknown channel '{name}'")
        _unique("rollout.order", self.rollout.order)
        for rule in self.guardrails:
            if rule.channel != "*" and rule.channel not in names:
                raise ValueError(f"guardrail for unknown channel '{rule.channel}'")
        self._check_lift()
        for c in self.channels:
            if c.end_day is not None and c.end_day < c.launch_day:
                raise ValueError(f"channel '{c.name}': end_day before launch_day")
        for s in self.segments:
            unknown = sorted(set(s.affinity) - names)
            if unknown:
                raise ValueError(
                    f"segment '{s.name}' has an affinity for unknown channel(s) {unknown}"
                )
        self._check_initial(names | {WORD_OF_MOUTH})
        seasonal = [name for name, p in self.seasonality if not p.flat]
        if seasonal and self.simulation.start_date is None:
            raise ValueError(f"seasonality.{seasonal[0]} needs simulation.start_date (the "
                             f"weekday and month of each day)")
        self._check_list(names)
        return self

    def _check_lift(self) -> None:
        """``credit = "lift"`` measures a channel against its hold-out cell: every channel a
        lift gate or guardrail judges needs one (without it there is nothing to compare)."""
        held = {c.name for c in self.channels if c.holdout_share > 0.0}
        if self.rollout.credit == "lift":
            for name in self.rollout.order[:-1]:  # each gates the launch of the next
                if name not in held:
                    raise ValueError(f"rollout.credit = 'lift' needs a hold-out on the gated "
                                     f"channel '{name}': set channels.{name}.holdout_share > 0")
        for rule in self.guardrails:
            if rule.credit != "lift":
                continue
            watched = [c.name for c in self.channels] if rule.channel == "*" else [rule.channel]
            for name in watched:
                if name not in held:
                    raise ValueError(f"a guardrail with credit = 'lift' watches channel "
                                     f"'{name}', which has no hold-out: set "
                                     f"channels.{name}.holdout_share > 0")

    def _check_list(self, names: set[str]) -> None:
        keepers = [c for c in self.channels if c.keeps_list]
        if len(keepers) > 1:
            raise ValueError(f"channels {[c.name for c in keepers]} each have a list table; "
                             f"the firm keeps one list, so at most one channel may")
        if not keepers:
            if self.initial.list_size > 0:
                raise ValueError("initial.list_size needs a channel with a list table")
            return
        lister = keepers[0]
        unknown = sorted(set(lister.list.opt_in_visit) - names)
        if unknown:
            raise ValueError(f"channels.{lister.name}.list.opt_in_visit names unknown "
                             f"channel(s) {unknown}")
        if lister.name in lister.list.opt_in_visit:
            raise ValueError(f"channels.{lister.name}.list.opt_in_visit names the list "
                             f"channel itself: it reaches only those already on the list")
        eligible = self.market.size * (
            1.0 - self.post_purchase.opt_out_share if lister.personalised else 1.0)
        if self.initial.list_size > eligible * (1.0 + 1e-9):
            who = "consenting people" if lister.personalised else "people in the market"
            raise ValueError(f"initial.list_size ({self.initial.list_size:g}) exceeds the "
                             f"{who} ({eligible:g})")

    def list_channel(self) -> int:
        """Index of the channel that keeps the firm's list, or -1."""
        return next((c for c, ch in enumerate(self.channels) if ch.keeps_list), -1)

    def _check_initial(self, names: set[str]) -> None:
        init = self.initial
        _unique("initial.customers", [f"{e.channel} in {e.segment}" for e in init.customers])
        segments = {s.name: s.share for s in self.segments}
        for e in init.customers:
            if e.channel not in names:
                raise ValueError(f"initial.customers names unknown channel '{e.channel}'")
            if e.segment is not None and e.segment not in segments:
                raise ValueError(f"initial.customers names unknown segment '{e.segment}'")
        size = self.market.size
        spread = math.fsum(e.active + e.lapsed for e in init.customers if e.segment is None)
        for name, share in segments.items():
            own = math.fsum(e.active + e.lapsed for e in init.customers if e.segment == name)
            taken = init.aware + init.considering + spread / size
            if own > 0:
                taken = math.inf if share == 0 else taken + own / (size * share)
            if taken > 1.0 + 1e-9:
                where = "" if len(segments) == 1 else f" in segment '{name}'"
                raise ValueError(
                    f"initial: aware + considering + customers is {taken:.4g} of the market"
                    f"{where}, more than all of it")
        active = math.fsum(e.active for e in init.customers)
        if init.community_members > active:
            raise ValueError(f"initial.community_members ({init.community_members:g}) exceeds "
                             f"the active customers ({active:g})")

    # -- views the engine uses -------------------------------------------------
    def segment_terms(self) -> list[Terms]:
        """Each segment's price, reference price and subscription terms, in segment order:
        its plan's, each unset term the product's (a plan without a reference price is
        compared with its own price). The one place a segment's price is decided: the
        kernels, the reference backend, the price factor and the economics read it here."""
        p = self.product
        plans = {plan.name: plan for plan in self.plans}
        product = Terms(p.price, p.reference_price or p.price, p.subscription.period_days,
                        p.subscription.churn)
        out = []
        for s in self.segments:
            plan = plans.get(s.plan) if s.plan is not None else None
            if plan is None:
                out.append(product)
                continue
            out.append(Terms(
                plan.price, plan.reference_price or plan.price,
                plan.period_days if plan.period_days is not None else product.period_days,
                plan.churn if plan.churn is not None else product.churn))
        return out

    @property
    def channel_names(self) -> list[str]:
        """Channels of the result dataset: the scenario's, then word of mouth."""
        return [c.name for c in self.channels] + [WORD_OF_MOUTH]

    def to_toml(self) -> str:
        return tomli_w.dumps(_drop_none(self.model_dump(mode="json")))


def inert_channels(scenario: Scenario) -> list[str]:
    """Why each enabled channel of ``scenario`` (as resolved) would reach no one in the
    run: one sentence per channel. Valid, but almost always a mistake, so the commands
    warn; ``enabled = false`` is the way to keep a channel off on purpose.

    With scheduled changes, a channel is inert when it reaches no one under every
    scenario in force during the run in which it is enabled: a channel switched on or
    given a budget by a change is not warned about."""
    days = scenario.simulation.days
    in_force = [scenario] + [sc for day, sc in scheduled(scenario) if day < days]
    reasons = []
    for i, c in enumerate(scenario.channels):
        whys = [_why_inert(sc, sc.channels[i], days) for sc in in_force if sc.channels[i].enabled]
        if whys and all(whys):
            reasons.append(f"channel '{c.name}' {whys[0]}, so it reaches no one; set "
                           f"channels.{c.name}.enabled = false to keep it off on purpose")
    return reasons


def _why_inert(scenario: Scenario, c: Channel, days: int) -> str | None:
    if c.launch_day >= days:
        return f"launches on day {c.launch_day}, after the run's last day ({days - 1})"
    if c.reach.model in ("cpm", "cpc") and c.daily_budget == 0:
        return f"has no daily_budget (its reach model '{c.reach.model}' buys reach with it)"
    if c.reach.model == "fixed" and c.reach.daily_visitors == 0:
        return "has reach.daily_visitors = 0"
    if c.reach.model == "list" and c.reach.frequency == 0:
        return "has reach.frequency = 0"
    if c.keeps_list and scenario.initial.list_size == 0 and not (
            any(v > 0 for v in c.list.opt_in_visit.values()) or c.list.opt_in_consideration > 0
            or c.list.opt_in_purchase > 0):
        return "sends to a list no one can join (no list.opt_in_* chance, no initial.list_size)"
    if not any(s.affinity.get(c.name, 1.0) > 0 for s in scenario.segments):
        return "has affinity 0 in every segment"
    return None


PROGRAMMES = ("onboarding", "reminders", "feedback", "community", "outreach")
"""Post-purchase programmes with an ``enabled`` switch (checked by :func:`inert_programmes`)."""


def inert_programmes(scenario: Scenario) -> list[str]:
    """Why each enabled post-purchase programme of ``scenario`` (as resolved) would change
    nothing in the run, or only cost: one sentence per programme. Valid, but almost always
    a mistake, so the commands warn (as for :func:`inert_channels`, a programme switched on
    or given an effect by a scheduled change is judged by every scenario in force while it
    is enabled)."""
    days = scenario.simulation.days
    in_force = [scenario] + [sc for day, sc in scheduled(scenario) if day < days]
    reasons = []
    for name in PROGRAMMES:
        whys = [_why_programme_inert(sc, name) for sc in in_force
                if getattr(sc.post_purchase, name).enabled]
        if whys and all(whys):
            reasons.append(f"post_purchase.{name} is enabled but {whys[0]}; set "
                           f"post_purchase.{name}.enabled = false to keep it off on purpose")
    return reasons


def _why_programme_inert(scenario: Scenario, name: str) -> str | None:
    pp = scenario.post_purchase
    model = scenario.product.business_model
    # health sets a renewal's or drop-out's hazard only through churn_sensitivity, and a
    # one-time buyer's lapse not at all
    health_idle = ("a one-time buyer's lapse does not depend on health" if model == "one_time"
                   else "health.churn_sensitivity is 0, so health does not change churn"
                   if scenario.health.churn_sensitivity == 0 else None)
    nobody_consents = ("no customer consents to personalised contact "
                       "(post_purchase.opt_out_share = 1)" if pp.opt_out_share >= 1.0 else None)
    if name == "onboarding":
        o = pp.onboarding
        if o.reach == 0:
            return "it enrols no one (reach = 0)"
        if o.churn_reduction == 0 and (o.health_boost == 0 or health_idle):
            because = "its health_boost is 0" if o.health_boost == 0 else health_idle
            return f"it changes no one's churn: churn_reduction is 0 and {because}"
    elif name == "reminders":
        r = pp.reminders
        if model != "repeat":
            return (f"reminders act only on repeat purchases (product.business_model is "
                    f"'{model}')")
        if nobody_consents:
            return f"it reaches no one: {nobody_consents}"
        if r.response == 0 and r.dropout_reduction == 0:
            return "it changes nothing: response and dropout_reduction are 0"
    elif name == "feedback":
        f = pp.feedback
        if f.response_rate == 0 or f.health_boost == 0:
            return "surveys cost without effect: response_rate or health_boost is 0"
        if health_idle:
            return f"surveys cost without keeping anyone: {health_idle}"
    elif name == "community":
        c = pp.community
        if c.join_rate == 0 and scenario.initial.community_members == 0:
            return "no one joins it (join_rate = 0 and no initial.community_members)"
        if c.churn_reduction == 0 and c.advocacy_boost == 0:
            return "it changes nothing: churn_reduction and advocacy_boost are 0"
    elif name == "outreach":
        o = pp.outreach
        if nobody_consents:
            return f"it contacts no one: {nobody_consents}"
        if o.threshold == 0 or scenario.health.decay == 0:
            return ("it contacts no one: health never falls below threshold = 0"
                    if o.threshold == 0 else
                    "it contacts no one: health.decay is 0, so health never falls below the "
                    "threshold")
        if o.health_boost == 0:
            return "contacts cost without effect: health_boost is 0"
        if health_idle:
            return f"contacts cost without keeping anyone: {health_idle}"
    return None


def late_changes(scenario: Scenario) -> list[str]:
    """A sentence for each scheduled change whose day the run never reaches (valid: the
    same scenario may run longer, but at this length the change does nothing)."""
    days = scenario.simulation.days
    return [f"changes[{i}] is on day {c.day}, after the run's last day ({days - 1}), so it "
            f"never takes effect" for i, c in enumerate(scenario.changes) if c.day >= days]


def scenario_warnings(scenario: Scenario) -> list[str]:
    """What ``run`` and ``validate`` warn about in a valid scenario (as resolved): channels
    that reach no one, programmes that change nothing, changes the run never reaches."""
    return inert_channels(scenario) + inert_programmes(scenario) + late_changes(scenario)


def _unique(what: str, names: list[str]) -> None:
    seen = set()
    for n in names:
        if n in seen:
            raise ValueError(f"{what} names must be unique ('{n}' appears twice)")
        seen.add(n)


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj


# -- loading and overrides -----------------------------------------------------


def parse_value(text: str) -> Any:
    """A ``--set`` value as a TOML literal; a bare word that is not one stays a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


NAMED_LISTS = ("channels", "segments", "plans")
"""Lists whose entries are addressed by name: an override changes an entry's fields, never
the list (which would silently drop or reorder channels and segments); a list that is
empty or absent may be set whole (``plans = [...]`` in a variant): nothing is dropped."""


def _merge(table: dict, value: dict) -> None:
    for k, v in value.items():
        if isinstance(v, dict) and isinstance(table.get(k), dict):
            _merge(table[k], v)
        else:
            table[k] = v


def apply_override(data: dict, path: str, value: Any, source: str = "--set") -> None:
    """Set ``path`` (dotted, list entries by name) in the raw scenario ``data``."""
    parts = path.split(".")
    if not path or any(p == "" for p in parts):
        raise ScenarioError(source, path, "empty path component")
    node: Any = data
    walked: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        walked.append(part)
        if isinstance(node, list):
            match = [item for item in node if isinstance(item, dict) and item.get("name") == part]
            if not match:
                names = [item.get("name") for item in node if isinstance(item, dict)]
                raise ScenarioError(
                    source, ".".join(walked), f"no entry named '{part}' (have {names})"
                )
            if last:
                raise ScenarioError(source, path, "cannot replace a whole list entry; set one of its fields")
            node = match[0]
            continue
        if not isinstance(node, dict):
            raise ScenarioError(source, ".".join(walked[:-1]), "is not a table")
        if last and i == 0 and part in NAMED_LISTS and node.get(part):
            raise ScenarioError(source, path, f"cannot replace every entry of {part}; set a "
                                f"field of one entry ({part}.NAME.FIELD=...)")
        if last and isinstance(value, dict) and isinstance(node.get(part), dict):
            _merge(node[part], value)  # a table merges: the fields it leaves out stay
        elif last:
            node[part] = value
        else:
            if part not in node:
                node[part] = {}
            node = node[part]


def _format_loc(loc: tuple, data: dict) -> str:
    """Turn pydantic's loc (with list indices) into the dotted names a user writes."""
    out: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list):
            entry = node[item] if item < len(node) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            if name:
                out.append(str(name))
            elif out:
                out[-1] += f"[{item}]"
            else:
                out.append(f"[{item}]")
            node = entry
        else:
            out.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(out)


REMOVED_FIELDS = {
    "post_purchase.onboarding.days": "removed: it had no effect; the programme's effect lasts "
                                     "`effect_days` (set that to the programme's length)",
}
"""Fields a scenario no longer has, by dotted name (channels and segments by name), with
what replaces them: a file that still sets one gets this line instead of "unknown key"."""


def scenario_from_dict(data: dict, source: str = "<scenario>") -> Scenario:
    """Validate raw scenario data, its scheduled changes included (:func:`scheduled`)."""
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _format_loc(tuple(err["loc"]), data)
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err["type"] == "extra_forbidden":
            msg = REMOVED_FIELDS.get(field, "unknown key")
        extra = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
        raise ScenarioError(source, field, msg + extra) from None
    if scenario.changes:
        scheduled(scenario, source)
    return scenario


def read_toml(path: str | Path) -> dict:
    p = Path(path)
    try:
        p.stat()
    except FileNotFoundError:
        raise ScenarioError(str(p), "", "file not found") from None
    except OSError as exc:  # a symlink loop, a name too long, no permission
        raise ScenarioError(str(p), "", f"cannot be read ({exc.strerror})") from None
    if p.is_dir():
        raise ScenarioError(str(p), "", "is a directory, not a TOML file")
    if not p.is_file():  # a FIFO or a device would hang or stream for ever
        raise ScenarioError(str(p), "", "is not a regular file")
    try:
        with p.open("rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ScenarioError(str(p), "", f"cannot be read ({exc.strerror})") from None
    return parse_toml(raw, str(p))


def parse_toml(raw: bytes, source: str) -> dict:
    """The tables of a TOML file's bytes (``source`` names it in messages)."""
    if not raw.strip():
        raise ScenarioError(source, "", "is empty")
    try:
        return tomllib.loads(raw.decode("utf-8-sig"))  # a byte-order mark is allowed
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, "", f"malformed TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ScenarioError(source, "", "not a UTF-8 text file") from None


def fix_market_size(data: dict) -> None:
    """A file without ``market.size`` describes a market of its own ``simulation.agents``:
    fixed here, before any override, so that ``--agents`` (or ``--set
    simulation.agents``, a sweep's size) changes the sample and never the market."""
    market = data.get("market") or {}
    if isinstance(market, Market):
        market = market.model_dump(exclude_none=True)
    if not isinstance(market, dict) or market.get("size") is not None:
        return  # a size given, or a value validation will refuse
    sim = data.get("simulation") or {}
    agents = sim.get("agents") if isinstance(sim, dict) else getattr(sim, "agents", None)
    if agents is None:
        agents = Simulation.model_fields["agents"].default
    data["market"] = {**market, "size": agents}


def load_scenario(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """Read, override and validate a scenario file.

    ``overrides`` are ``path=value`` strings, as given to ``--set``.
    """
    data = read_toml(path)
    fix_market_size(data)
    for item in overrides:
        if "=" not in item:
            raise ScenarioError("--set", item, "expected path=value")
        key, _, text = item.partition("=")
        if "\n" in text or "\r" in text:
            raise ScenarioError("--set", key.strip(), "a value must be on one line")
        apply_override(data, key.strip(), parse_value(text.strip()))
    return scenario_from_dict(data, str(path))


def scenario_from_toml(raw: bytes, source: str) -> Scenario:
    """A scenario from a TOML file's bytes (one uploaded, say), validated as
    :func:`load_scenario` validates a file."""
    data = parse_toml(raw, source)
    fix_market_size(data)
    return scenario_from_dict(data, source)


def with_overrides(scenario: Scenario, overrides: dict[str, Any], source: str = "<overrides>") -> Scenario:
    """A copy of ``scenario`` with dotted-path overrides (already parsed values) applied."""
    data = copy.deepcopy(scenario.model_dump(mode="json"))
    for key, value in overrides.items():
        apply_override(data, key, value, source)
    return scenario_from_dict(_drop_none(data), source)


def seasonal_factors(scenario: Scenario, days: int) -> dict[str, np.ndarray]:
    """Each day's multiplier of demand, reach and media prices (ones without a calendar)."""
    start = scenario.simulation.start_date
    out = {}
    for name, profile in scenario.seasonality:
        if start is None or profile.flat:
            out[name] = np.ones(days)
            continue
        dates = [start + datetime.timedelta(days=d) for d in range(days)]
        out[name] = np.array([profile.weekly[t.weekday()] * profile.monthly[t.month - 1]
                              for t in dates])
    return out


def resolve_size(scenario: Scenario, agents: int | None = None, days: int | None = None,
                 seed: int | None = None, source: str = "arguments") -> Scenario:
    """The scenario as it will run: ``[simulation]`` with the given size and seed, validated."""
    over = {f"simulation.{k}": v for k, v in (("agents", agents), ("days", days), ("seed", seed))
            if v is not None}
    return with_overrides(scenario, over, source) if over else scenario




# -- scheduled changes -----------------------------------------------------------------

FIXED_DURING_RUN: dict[str, str] = {
    "name": "the run's label",
    "description": "the run's label",
    "simulation": "the run's size, length and seed are fixed when it starts",
    "market": "the market's size is fixed when the run starts",
    "initial": "it is the market on day 0",
    "seasonality": "the calendar's multipliers are set for the whole run",
    "changes": "a change cannot schedule changes",
    "attribution": "the attribution rules credit the whole run",
    "segments.*.name": "names identify the segments in the result",
    "segments.*.share": "the population is drawn on day 0",
    "channels.*.name": "names identify the channels in the result",
    "channels.*.holdout_share": "the hold-out cell is drawn on day 0 and measured from it",
    "product.business_model": "the customers already acquired buy under it",
    "product.positioning": "it sets the brand equity of day 0",
    "product.subscription.period_days": "each renewal is scheduled a period ahead",
    "plans.*.name": "segments name their plan",
    "plans.*.period_days": "each renewal is scheduled a period ahead",
    "segments.*.plan": "it sets the segment's renewal period; change the plan's price instead",
    "brand.initial_equity": "it is the brand equity of day 0",
    "health.decay": "health declines from the day it was last set, so a new decay would "
                    "reach back before the change",
    "post_purchase.opt_out_share": "consent is drawn once per customer on day 0",
    "post_purchase.reminders.cycle_days": "a reminder is scheduled at the order, a cycle ahead",
}
"""Fields a scheduled change may not set, and why: they are fixed when the run starts,
or set per customer in a way a change could not undo (``*``: any entry of the list).
A channel's ``capacity`` may change its number, not appear: the leads already waiting
are the scenario's before the change."""


def flatten_overrides(table: dict, prefix: str = "", stop=lambda v: False) -> dict:
    """Nested override tables as dotted paths: ``{channels = {search = {x = 1}}}`` is
    ``{"channels.search.x" = 1}`` (``stop`` keeps a table it is true of whole)."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value and not stop(value):
            flat.update(flatten_overrides(value, path, stop))
        else:
            flat[path] = value
    return flat


def scheduled(scenario: Scenario, source: str = "<scenario>") -> list[tuple[int, Scenario]]:
    """``(day, the scenario in force from that day on)`` for each day with changes, in day
    order: ``scenario`` with every change up to that day applied (a later change builds on
    the earlier ones; changes of the same day apply in file order), without ``changes`` of
    its own. Every step is validated; an error names ``changes[i].set.PATH``."""
    order = sorted(range(len(scenario.changes)), key=lambda i: scenario.changes[i].day)
    data = _drop_none(copy.deepcopy(scenario.model_dump(mode="json")))
    data["changes"] = []
    out: list[tuple[int, Scenario]] = []
    for i in order:
        change = scenario.changes[i]
        where = f"changes[{i}].set"
        for path, value in change.set.items():
            before = copy.deepcopy(data)
            try:
                apply_override(data, path, value, source)
            except ScenarioError as exc:
                raise ScenarioError(source, f"{where}.{path}", exc.message) from None
            why = _fixed_during_run(path, before, data)
            if why:
                raise ScenarioError(source, f"{where}.{path}", why)
        try:
            in_force = scenario_from_dict(data, source)
        except ScenarioError as exc:
            raise ScenarioError(source, f"{where}.{exc.field}" if exc.field else where,
                                exc.message) from None
        if out and out[-1][0] == change.day:
            out[-1] = (change.day, in_force)
        else:
            out.append((change.day, in_force))
    return out


def _fixed_during_run(path: str, before: dict, after: dict) -> str | None:
    """Why setting ``path`` (which turned ``before`` into ``after``) cannot happen during a
    run, or None. The path itself is checked, and every field it changed (a table value
    merges, so ``post_purchase = {opt_out_share = 0.1}`` changes a fixed field too)."""
    changed = [(path.split("."), None, None), *_changed(before, after, [])]
    for parts, old, new in changed:
        for pattern, why in FIXED_DURING_RUN.items():
            pat = pattern.split(".")
            if len(parts) >= len(pat) and all(p in ("*", q) for p, q in zip(pat, parts, strict=False)):
                field = ".".join(parts[: len(pat)])
                what = "cannot" if field == path else f"{field} cannot"
                return f"{what} change during a run: {why}"
        if (len(parts) == 3 and parts[0] == "channels" and parts[2] == "capacity"
                and (old is None) != (new is None)):
            return ("a channel's capacity can change during a run, not be set where it was "
                    "unset (no queue of leads was kept)")
    return None


def _changed(before: Any, after: Any, parts: list[str]):
    """``(path parts, old, new)`` of every leaf that differs; entries of the named lists
    (channels, segments, plans) by name."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(before.keys() | after.keys()):
            if before.get(key) != after.get(key):
                yield from _changed(before.get(key), after.get(key), [*parts, key])
    elif (isinstance(before, list) and isinstance(after, list) and len(before) == len(after)
          and parts in [[name] for name in NAMED_LISTS]):
        for old, new in zip(before, after, strict=True):
            yield from _changed(old, new, [*parts, str(old.get("name"))])
    else:
        yield parts, before, after
