"""The few Mesa agents of the market: one per channel, word of mouth, and the firm.

They are rich and readable because they are few. Each day a channel turns its
budget and the current audience into a per-(segment, stage) probability of
reaching a customer, and a per-(segment, stage) probability that one exposure
moves the customer on; the kernels apply them to millions of customers. After
the day, the channel books what it spent.
"""

from __future__ import annotations

import mesa
import numpy as np

from simulation.scenario import STAGES, Channel, Scenario
from simulation.state import ACTIVE, AWARE, CHURNED, CONSIDERING, UNAWARE


def price_factor(scenario: Scenario) -> np.ndarray:
    """Per segment: how the price moves conversion, ``(price / reference) ** -sensitivity``."""
    ratio = scenario.product.price_ratio
    return np.array([ratio ** (-s.price_sensitivity) for s in scenario.segments])


class ChannelAgent(mesa.Agent):
    """A distribution channel: reach model, stage effects and cost structure."""

    def __init__(self, model: mesa.Model, config: Channel, index: int):
        super().__init__(model)
        self.config = config
        self.index = index
        self.name = config.name
        scenario: Scenario = model.scenario
        self.affinity = np.array([s.affinity.get(config.name, 1.0) for s in scenario.segments])
        self.audience = np.array([st in config.reach.audience_stages() for st in STAGES])
        self.effects = self._effects(scenario)
        self.reach = np.zeros((len(scenario.segments), len(STAGES)))
        self.media_spend = 0.0

    def _effects(self, scenario: Scenario) -> np.ndarray:
        """Probability that one exposure moves a customer of segment g in stage s on."""
        cfg = self.config
        fit = getattr(cfg.fit, scenario.product.archetype.value)
        base = fit * cfg.message_alignment
        pf = price_factor(scenario)
        eff = np.zeros((len(scenario.segments), len(STAGES)))
        eff[:, UNAWARE] = cfg.effects.awareness * base
        eff[:, AWARE] = cfg.effects.consideration * base
        eff[:, CONSIDERING] = np.minimum(1.0, cfg.effects.decision * base * cfg.intent * pf)
        eff[:, ACTIVE] = cfg.effects.retention * cfg.message_alignment
        eff[:, CHURNED] = np.minimum(1.0, cfg.effects.retention * base * pf)
        return eff

    def plan(self, day: int, occupancy: np.ndarray) -> np.ndarray:
        """Today's reach probability per (segment, stage), from budget and audience.

        ``occupancy[g, s]`` is yesterday's number of customers of segment g in stage s.
        Impressions (or clicks, or visitors) spread over the audience in proportion to
        segment affinity, so a customer's expected exposures are ``lam`` and the chance of
        at least one is ``1 - exp(-lam)``: reach saturates with spend.
        """
        cfg = self.config
        r = cfg.reach
        self.reach[:] = 0.0
        self.media_spend = 0.0
        weight = float((occupancy[:, self.audience].sum(axis=1) * self.affinity).sum())
        if r.model == "list":
            p = np.minimum(1.0, r.frequency * self.affinity)
            self.reach[:, self.audience] = np.minimum(p, r.max_daily_reach)[:, None]
            return self.reach
        if r.model == "cpm":
            contacts = cfg.daily_budget / r.cpm * 1000.0 if r.cpm > 0 else 0.0
        elif r.model == "cpc":
            contacts = cfg.daily_budget / r.cpc if r.cpc > 0 else 0.0
        else:
            contacts = r.daily_visitors
        if contacts <= 0.0 or weight <= 0.0:
            return self.reach
        lam = contacts * self.affinity / weight
        p = np.minimum(-np.expm1(-lam), r.max_daily_reach)
        self.reach[:, self.audience] = p[:, None]
        if r.model == "cpm":
            self.media_spend = cfg.daily_budget
        return self.reach

    def book(self, reached: float) -> tuple[float, float]:
        """Media spend and fixed cost of the day, now that the reached count is known."""
        r = self.config.reach
        if r.model == "cpc":
            self.media_spend = reached * r.cpc
        elif r.model == "list":
            self.media_spend = reached * r.cost_per_contact
        return self.media_spend, self.config.fixed_daily_cost


class WordOfMouthAgent(mesa.Agent):
    """Advocates telling the unaware: the Bass hazard ``p + q * advocates / N``."""

    name = "word_of_mouth"

    def __init__(self, model: mesa.Model):
        super().__init__(model)
        scenario: Scenario = model.scenario
        self.config = scenario.word_of_mouth
        nseg = len(scenario.segments)
        self.reach = np.zeros((nseg, len(STAGES)))
        self.effects = np.zeros((nseg, len(STAGES)))
        self.effects[:, UNAWARE] = 1.0
        self.target = {"aware": AWARE, "considering": CONSIDERING, "active": ACTIVE}[
            self.config.adoption
        ]

    def plan(self, day: int, occupancy: np.ndarray) -> np.ndarray:
        self.reach[:] = 0.0
        if not self.config.enabled:
            return self.reach
        n = occupancy.sum()
        advocates = self.config.advocacy * occupancy[:, ACTIVE].sum()
        hazard = self.config.p + self.config.q * advocates / n
        self.reach[:, UNAWARE] = min(1.0, hazard)
        return self.reach

    def book(self, reached: float) -> tuple[float, float]:
        return 0.0, 0.0


class Firm(mesa.Agent):
    """The company selling the product: keeps the running profit and loss."""

    def __init__(self, model: mesa.Model):
        super().__init__(model)
        self.product = model.scenario.product
        self.revenue = 0.0
        self.gross_margin = 0.0
        self.marketing = 0.0

    def book(self, revenue: float, gross_margin: float, marketing: float) -> None:
        self.revenue += revenue
        self.gross_margin += gross_margin
        self.marketing += marketing

    @property
    def profit(self) -> float:
        return self.gross_margin - self.marketing
