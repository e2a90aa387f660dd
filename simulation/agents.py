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


class ChannelAgent(mesa.Agent):
    """A distribution channel: reach model, stage effects and cost structure."""

    def __init__(self, model: mesa.Model, config: Channel, index: int):
        super().__init__(model)
        self.index = index
        self.name = config.name
        scenario: Scenario = model.scenario
        nseg = len(scenario.segments)
        self.reach = np.zeros((nseg, len(STAGES)))
        self.effects = np.zeros((nseg, len(STAGES)))
        self.media_spend = 0.0
        self.budget = 0.0
        self.price_factor = 1.0
        self.running = False
        self.configure(scenario)

    def configure(self, scenario: Scenario) -> None:
        """Read the channel's configuration, its affinities and the product's fit from
        ``scenario``: at the start, and on the day scheduled changes put another in force."""
        config = scenario.channels[self.index]
        self.config = config
        self.affinity = np.array([s.affinity.get(config.name, 1.0) for s in scenario.segments])
        self.audience = np.array([st in config.reach.audience_stages(config.keeps_list)
                                  for st in STAGES])
        self.fit = getattr(config.fit, scenario.product.archetype)

    def _effects(self, model, exposures: float, days_live: int) -> np.ndarray:
        """Probability that one exposure moves a customer of segment g in stage s on.

        The configured effect, times channel-product fit and message alignment; decision
        effects also times intent, the price factor, brand equity's lift and a returns
        policy's lift; all of it times novelty (fading since launch) and audience dilution
        (the more exposures per audience member, the less aligned the marginal one).
        """
        cfg = self.config
        pos = model.positioning
        align = pos.alignment(cfg.message_alignment)
        base = self.fit * align
        scale = 1.0 / (1.0 + cfg.dilution * exposures)
        if cfg.novelty.boost > 0.0 and days_live >= 0:
            scale *= 1.0 + cfg.novelty.boost * 0.5 ** (days_live / cfg.novelty.half_life_days)
        pf = pos.price_factor(self.index)
        brand = pos.conversion_multiplier()
        eff = self.effects
        eff[:, UNAWARE] = cfg.effects.awareness * base * scale
        eff[:, AWARE] = cfg.effects.consideration * base * scale
        eff[:, CONSIDERING] = (cfg.effects.decision * base * cfg.intent * scale * pf * brand
                               * model.post_purchase.decision_lift())
        eff[:, ACTIVE] = cfg.effects.retention * align * scale
        eff[:, CHURNED] = cfg.effects.retention * base * scale * pf * brand
        demand = model.season["demand"][model.day]  # the calendar's demand
        eff[:, CONSIDERING] *= demand
        eff[:, CHURNED] *= demand
        np.minimum(eff, 1.0, out=eff)
        return eff

    def plan(self, day: int, occupancy: np.ndarray) -> np.ndarray:
        """Today's reach probability per (segment, stage), from budget and audience.

        ``occupancy[g, s]`` is yesterday's number of customers of segment g in stage s.
        Impressions (or clicks, or visitors) spread over the audience in proportion to
        segment affinity, so a customer's expected exposures are ``lam`` and the chance of
        at least one is ``1 - exp(-lam)``: reach saturates with spend.
        """
        model = self.model
        cfg = self.config
        r = cfg.reach
        scaling = model.scaling
        self.reach[:] = 0.0
        self.media_spend = 0.0
        self.running = scaling.running(self.index, day)
        self.budget = scaling.budget[day, self.index]
        # the audience, affinity-weighted, in people: each simulated customer stands for
        # ``scale`` of them, and budgets, visitors and contact counts are the market's
        weight = self.model.scale * float(
            (occupancy[:, self.audience].sum(axis=1) * self.affinity).sum())
        organic = model.season["reach"][day]  # the calendar's multipliers
        self.price_factor = model.season["media_price"][day]
        frequency = r.frequency * organic
        if r.model == "list":
            contacts = frequency * weight
        elif r.model == "cpm":
            contacts = self.budget / (r.cpm * self.price_factor) * 1000.0
        elif r.model == "cpc":
            contacts = self.budget / (r.cpc * self.price_factor)
        else:
            contacts = r.daily_visitors * organic
        exposures = contacts / weight if weight > 0 else 0.0
        self._effects(model, exposures, scaling.days_since_launch(self.index, day))
        if not self.running or contacts <= 0.0 or weight <= 0.0:
            return self.reach
        if r.model == "list":
            p = np.minimum(1.0, frequency * self.affinity)
        else:
            p = -np.expm1(-contacts * self.affinity / weight)
        self.reach[:, self.audience] = np.minimum(p, r.max_daily_reach)[:, None]
        if r.model == "cpm":
            self.media_spend = self.budget
        return self.reach

    def book(self, reached: float) -> tuple[float, float]:
        """Media spend and fixed cost of the day, now that the reached count is known."""
        r = self.config.reach
        people = reached * self.model.scale  # simulated customers reached, in market people
        if r.model == "cpc":
            self.media_spend = people * r.cpc * self.price_factor
        elif r.model == "list":
            self.media_spend = people * r.cost_per_contact
        if not self.running:
            return self.media_spend, 0.0
        return self.media_spend, self.config.fixed_daily_cost + self.model.positioning.creative_cost


class WordOfMouthAgent(mesa.Agent):
    """Advocates telling the unaware: the Bass hazard ``p + q * advocates / N``.

    Advocates are the advocating share of active customers, plus what post-purchase
    programmes add: yesterday's unboxing shares and community members.
    """

    name = "word_of_mouth"

    def __init__(self, model: mesa.Model):
        super().__init__(model)
        scenario: Scenario = model.scenario
        nseg = len(scenario.segments)
        self.reach = np.zeros((nseg, len(STAGES)))
        self.effects = np.zeros((nseg, len(STAGES)))
        self.effects[:, UNAWARE] = 1.0
        self.configure(scenario)

    def configure(self, scenario: Scenario) -> None:
        self.config = scenario.word_of_mouth
        self.target = {"aware": AWARE, "considering": CONSIDERING, "active": ACTIVE}[
            self.config.adoption
        ]

    def plan(self, day: int, occupancy: np.ndarray) -> np.ndarray:
        self.reach[:] = 0.0
        if not self.config.enabled:
            return self.reach
        n = occupancy.sum()
        advocates = (self.config.advocacy * occupancy[:, ACTIVE].sum()
                     + self.model.post_purchase.extra_advocates())
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
        self.programmes = 0.0

    def book(self, revenue: float, gross_margin: float, marketing: float, programmes: float) -> None:
        self.revenue += revenue
        self.gross_margin += gross_margin
        self.marketing += marketing
        self.programmes += programmes

    @property
    def profit(self) -> float:
        return self.gross_margin - self.marketing - self.programmes

