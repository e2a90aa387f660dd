"""Post-purchase programmes: what they cost, whom they reach, what they change.

The customer-level effects run in the kernels (health, churn hazard, reminders,
community membership, shares); this component turns the scenario's programmes into
kernel parameters, adds the per-order costs to fulfilment, and each day works out
the community's network value and the word of mouth that shares and members add.

- onboarding: enrolled new customers start healthier and churn less within
  ``effect_days`` and at their first renewal or drop-out chance (``kernels.day``);
- delivery and packaging: satisfaction moves health at every order; packaging quality
  makes orders shared (unboxing), which feeds word of mouth;
- flexible returns: decision effects lift, more orders come back (refund + return cost);
- tracking: adds satisfaction;
- replenishment reminders: at each consenting repeat buyer's expected run-out;
- feedback: surveys at each order; answering lifts health;
- community: joining at orders; value ``m / (m + half_size)`` cuts members' churn and
  makes them advocates.
"""

from __future__ import annotations

import numpy as np

from simulation.components import Component
from simulation.scenario import Scenario


class PostPurchase(Component):
    name = "post_purchase"
    order = 30

    def __init__(self, model):
        sc: Scenario = model.scenario
        self.cfg = sc.post_purchase
        self.members = 0.0  # simulated customers; each stands for ``scale`` people
        self.scale = model.scale
        self.fixed_cost = np.zeros(model.days)
        self.shares_yesterday = 0.0

    def configure(self, model, sc: Scenario, day: int) -> None:
        """The programmes in force from ``day`` on; the community keeps its members (they
        count only while the community is enabled) and yesterday's shares still spread."""
        self.cfg = sc.post_purchase

    def satisfaction(self) -> float:
        pp = self.cfg
        s = pp.delivery.satisfaction + 0.5 * (pp.packaging.quality - 0.5)
        if pp.tracking.enabled:
            s += pp.tracking.satisfaction_bonus
        return float(np.clip(s, 0.0, 1.0))

    def per_order_cost(self) -> float:
        pp = self.cfg
        return (pp.delivery.cost_per_order + pp.packaging.cost_per_order
                + (pp.tracking.cost_per_order if pp.tracking.enabled else 0.0))

    def return_rate(self, base: float) -> float:
        r = self.cfg.returns
        return min(1.0, base + (r.extra_return_rate if r.flexible else 0.0))

    def decision_lift(self) -> float:
        r = self.cfg.returns
        return 1.0 + (r.conversion_lift if r.flexible else 0.0)

    def community_value(self) -> float:
        c = self.cfg.community
        members = self.members * self.scale  # in people, as half_size is
        return members / (members + c.half_size) if c.enabled else 0.0

    def extra_advocates(self) -> float:
        """Advocate-equivalents beyond active customers: yesterday's shares and members."""
        c = self.cfg.community
        extra = self.cfg.packaging.share_reach * self.shares_yesterday
        if c.enabled:
            extra += c.advocacy_boost * self.community_value() * self.members
        return extra

    def before_day(self, model, day: int) -> None:
        c = self.cfg.community
        if c.enabled:
            model.par["community_churn_cut"] = c.churn_reduction * self.community_value()
            self.fixed_cost[day] = (c.fixed_daily_cost
                                    + c.cost_per_member_day * self.members * self.scale)

    def after_day(self, model, day: int) -> None:
        self.members = model.recorder.market("members", day)
        self.shares_yesterday = model.recorder.channel("shares", day).sum()

    def daily_cost(self, day: int) -> float:
        return float(self.fixed_cost[day])

    def results(self) -> dict:
        return {"programme_fixed_cost": (("day",), self.fixed_cost)}
