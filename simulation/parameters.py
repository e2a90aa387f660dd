"""The customer-level rules of a scenario, by name, built once: both backends read them.

:class:`Rules` is what a customer's day obeys (prices, costs, purchase cycle, health,
programmes), read from the scenario and the post-purchase component once. The Mesa
reference backend reads it as it is; :func:`kernel_parameters` lays the same values
out as named records for the numba kernels (``par.unit_cost``, ``segp[g].price``,
``chp[c].commission``). The mechanisms added through the component protocol bring
their own parameters (``Component.kernel_parameters``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from simulation.scenario import Scenario
from simulation.state import ACTIVE, AWARE, CONSIDERING

if TYPE_CHECKING:
    from simulation.components.post_purchase import PostPurchase

BUSINESS_MODELS = ("one_time", "repeat", "subscription")
"""Business models in the order of their codes in the kernels."""
BM_ONE_TIME, BM_REPEAT, BM_SUBSCRIPTION = range(3)


class Rules(NamedTuple):
    """The scenario's customer-level rules, by name, read once from the scenario.

    Per-channel tuples list the scenario's channels, then word of mouth; per-segment
    tuples the segments; ``forget`` the stages. A customer's price and subscription terms
    are their segment's (its plan's, else the product's: ``Scenario.segment_terms``)."""

    business_model: str
    price: tuple[float, ...]              # per segment: an order's price before discounts
    unit_cost: float
    fulfilment_cost: float
    return_rate: float
    return_cost: float
    price_multiplier: tuple[float, ...]   # per channel: 1 - discount
    commission: tuple[float, ...]
    fee_per_order: tuple[float, ...]
    lead_decay: tuple[float, ...]
    capacity: tuple[int | None, ...]      # per channel: leads served a day, None unlimited
    personalised: tuple[bool, ...]        # per channel: reaches consenting customers only
    period: tuple[int, ...]               # per segment: days between renewals
    subscription_churn: tuple[float, ...]  # per segment: probability of cancelling at a renewal
    lapse_rate: float
    purchase_rate: tuple[tuple[float, float], ...]  # per segment: gamma (shape, scale)
    dropout: tuple[tuple[float, float], ...]        # per segment: beta (a, b)
    churn_multiplier: tuple[float, ...]
    forget: tuple[float, ...]                       # per stage
    word_of_mouth_target: int
    initial_health: float
    health_decay: float
    order_boost: float
    health_sensitivity: float
    satisfaction_boost: float
    share_rate: float
    onboarding_reach: float
    onboarding_churn_cut: float
    onboarding_days: int
    onboarding_boost: float
    onboarding_cost: float
    reminders: bool
    reminder_cycle: int
    reminder_response: float
    reminder_dropout_cut: float
    reminder_cost: float
    feedback_rate: float
    feedback_boost: float
    feedback_cost: float
    join_rate: float
    half_life: float                      # time-decay attribution, days
    list_channel: int                     # the channel sending to the firm's list; -1 none
    opt_in_visit: tuple[float, ...]       # per channel: chance a reach by it joins the list
    list_opt_in_consideration: float
    list_opt_in_purchase: float
    list_unsubscribe: float               # per contact of the list channel, fatigue included
    list_needs_consent: bool              # a personalised list: only the consenting join

    @classmethod
    def from_scenario(cls, sc: Scenario, post_purchase: PostPurchase) -> Rules:
        p, h, pp = sc.product, sc.health, sc.post_purchase
        free = (0.0,)  # word of mouth: no commission, fee or discount
        terms = sc.segment_terms()
        return cls(
            business_model=p.business_model,
            price=tuple(t.price for t in terms),
            unit_cost=p.unit_cost,
            fulfilment_cost=p.fulfilment_cost + post_purchase.per_order_cost(),
            return_rate=post_purchase.return_rate(p.return_rate),
            return_cost=p.return_cost,
            price_multiplier=tuple(1.0 - c.discount for c in sc.channels) + (1.0,),
            commission=tuple(c.commission for c in sc.channels) + free,
            fee_per_order=tuple(c.fee_per_order for c in sc.channels) + free,
            lead_decay=tuple(c.lead_decay for c in sc.channels) + free,
            capacity=tuple(c.capacity for c in sc.channels) + (None,),
            personalised=tuple(c.personalised for c in sc.channels) + (False,),
            period=tuple(t.period_days for t in terms),
            subscription_churn=tuple(t.churn for t in terms),
            lapse_rate=p.one_time.lapse_rate,
            # a mean of one order per mean_days: rate ~ Gamma(shape, 1 / (shape * mean_days))
            purchase_rate=tuple((s.purchase_rate.shape,
                                 1.0 / (s.purchase_rate.shape * s.purchase_rate.mean_days))
                                for s in sc.segments),
            dropout=tuple((s.dropout.a, s.dropout.b) for s in sc.segments),
            churn_multiplier=tuple(s.churn_multiplier for s in sc.segments),
            forget=(0.0, sc.forgetting.aware, sc.forgetting.considering, 0.0, 0.0),
            word_of_mouth_target={"aware": AWARE, "considering": CONSIDERING,
                                  "active": ACTIVE}[sc.word_of_mouth.adoption],
            initial_health=h.initial,
            health_decay=h.decay,
            order_boost=h.order_boost,
            health_sensitivity=h.churn_sensitivity,
            satisfaction_boost=pp.satisfaction_weight * (post_purchase.satisfaction() - 0.5),
            share_rate=pp.packaging.share_rate,
            onboarding_reach=pp.onboarding.reach if pp.onboarding.enabled else 0.0,
            onboarding_churn_cut=pp.onboarding.churn_reduction if pp.onboarding.enabled else 0.0,
            onboarding_days=pp.onboarding.effect_days,
            onboarding_boost=pp.onboarding.health_boost,
            onboarding_cost=pp.onboarding.cost_per_customer,
            reminders=pp.reminders.enabled,
            reminder_cycle=pp.reminders.cycle_days,
            reminder_response=pp.reminders.response,
            reminder_dropout_cut=pp.reminders.dropout_reduction,
            reminder_cost=pp.reminders.cost_per_reminder,
            feedback_rate=pp.feedback.response_rate if pp.feedback.enabled else 0.0,
            feedback_boost=pp.feedback.health_boost,
            feedback_cost=pp.feedback.cost_per_survey,
            join_rate=pp.community.join_rate if pp.community.enabled else 0.0,
            half_life=sc.attribution.half_life_days,
            **list_rules(sc),
        )


def list_rules(sc: Scenario) -> dict:
    """The firm's list (a channel's ``list`` table) as customer-level rules: who joins at
    a visit, a consideration step and an order, and the unsubscribe chance per contact,
    ``unsubscribe × (1 + fatigue × frequency)``. No list: every chance 0."""
    c = sc.list_channel()
    none = (0.0,) * (len(sc.channels) + 1)
    if c < 0:
        return dict(list_channel=-1, opt_in_visit=none, list_opt_in_consideration=0.0,
                    list_opt_in_purchase=0.0, list_unsubscribe=0.0, list_needs_consent=False)
    ch = sc.channels[c]
    cfg = ch.list
    return dict(
        list_channel=c,
        opt_in_visit=tuple(cfg.opt_in_visit.get(x.name, 0.0) for x in sc.channels) + (0.0,),
        list_opt_in_consideration=cfg.opt_in_consideration,
        list_opt_in_purchase=cfg.opt_in_purchase,
        list_unsubscribe=min(1.0, cfg.unsubscribe * (1.0 + cfg.fatigue * ch.reach.frequency)),
        list_needs_consent=ch.personalised,
    )


MARKET = np.dtype([(name, np.float64) for name in (
    "business_model", "unit_cost", "fulfilment_cost", "return_rate", "return_cost",
    "lapse_rate", "word_of_mouth_target", "initial_health",
    "health_decay", "order_boost", "health_sensitivity", "satisfaction_boost", "share_rate",
    "onboarding_reach", "onboarding_churn_cut", "onboarding_days", "onboarding_boost",
    "onboarding_cost", "reminders", "reminder_cycle", "reminder_response",
    "reminder_dropout_cut", "reminder_cost", "feedback_rate", "feedback_boost", "feedback_cost",
    "join_rate", "half_life", "list_channel", "list_opt_in_consideration",
    "list_opt_in_purchase", "list_unsubscribe", "list_needs_consent", "community_churn_cut")])
"""The kernels' market record: the scalar rules, the business model as its code, and
``community_churn_cut``, which the post-purchase component sets each day."""
SEGMENT = np.dtype([(name, np.float64) for name in (
    "gamma_shape", "gamma_scale", "beta_a", "beta_b", "churn_multiplier", "price", "period",
    "subscription_churn")])
"""The kernels' record per segment: purchase cycle, churn multiplier, and the price and
subscription terms of the segment's plan (or the product's)."""
CHANNEL = np.dtype([(name, np.float64) for name in (
    "commission", "fee_per_order", "capacity", "lead_decay", "price_multiplier", "personalised",
    "opt_in_visit")])


def kernel_parameters(rules: Rules) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rules as the kernels read them: the market record (a one-element array), a
    record per segment and a record per channel (``capacity`` is 1 where limited)."""
    market = np.zeros(1, MARKET)
    for name in MARKET.names:
        if name == "business_model":
            market[name] = BUSINESS_MODELS.index(rules.business_model)
        elif name != "community_churn_cut":
            market[name] = float(getattr(rules, name))
    segments = np.zeros(len(rules.churn_multiplier), SEGMENT)
    segments["gamma_shape"], segments["gamma_scale"] = np.array(rules.purchase_rate).T
    segments["beta_a"], segments["beta_b"] = np.array(rules.dropout).T
    for name in ("churn_multiplier", "price", "period", "subscription_churn"):
        segments[name] = getattr(rules, name)
    channels = np.zeros(len(rules.commission), CHANNEL)
    for name in CHANNEL.names:
        values = getattr(rules, name)
        channels[name] = ([v is not None for v in values] if name == "capacity" else values)
    return market, segments, channels
