"""At-risk outreach: a unified customer view lets the firm contact customers whose
health falls below a threshold, at a cost per contact, lifting their health.

Personalised, so it reaches only customers who consented
(``post_purchase.opt_out_share`` opt out). Declining health is the leading indicator
of churn: with ``health.churn_sensitivity`` above 0, a contact lowers the churn
hazard of the customers it reaches. The per-customer rule runs in the day kernel
(:mod:`simulation.kernels.outreach`); :meth:`Outreach.customer_end_of_day` is the same
rule for the Mesa reference backend's customers.
"""

from __future__ import annotations

from simulation import counters
from simulation.components import Component
from simulation.jit import record
from simulation.kernels.outreach import Parameters


class Outreach(Component):
    name = "outreach"
    order = 40

    def __init__(self, model):
        self.configure(model, model.scenario, 0)

    def configure(self, model, scenario, day: int) -> None:
        cfg = scenario.post_purchase.outreach
        self.params = Parameters(
            on=bool(cfg.enabled),
            threshold=cfg.threshold if cfg.enabled else 0.0,
            health_boost=cfg.health_boost,
            cost_per_contact=cfg.cost_per_contact,
        )

    def kernel_parameters(self):
        return record(self.params)

    def customer_end_of_day(self, model, customer, day: int) -> None:
        """The kernel's rule for one reference customer (float health, no rounding)."""
        o = self.params
        if not o.on or not customer.consented or customer.health_day >= day:
            return
        decay = model.rules.health_decay
        h = customer.health_on(day)
        yesterday = customer.health - decay * (day - 1 - customer.health_day)
        if h < o.threshold <= yesterday:
            a = customer.acquired_by
            model.ledger.add(counters.CH.outreach_contacts, a)
            customer.programme_cost(o.cost_per_contact)
            if o.health_boost > 0.0:
                customer._set_health(day, h + o.health_boost)
