"""Positioning: brand equity, price tier and discounts, channel-product fit, messaging.

Brand equity ``E`` in [0, 1] is model state. Every day each channel moves it by its
positioning signal times the share of the market it reached: premium signals pull
``E`` up toward 1, discount signals (and a channel's price discount, weighted by
``brand.discount_erosion``) pull it down toward 0; without signals it relaxes
toward its initial level. Equity acts on segments that value it
(``brand_sensitivity`` b): decision and win-back effects are multiplied by
``1 + b (E - 0.5)``, and the price elasticity by ``1 - b (E - 0.5)`` (price
tolerance). The price factor compares each segment's own price with its own reference
(its plan's, else the product's: a segment on an enterprise plan is not measured against
the small teams' price). Channel-product fit and message alignment multiply a channel's
effects; a channel-specific message makes alignment 1 at a creative cost.
"""

from __future__ import annotations

import numpy as np

from simulation.components import Component
from simulation.scenario import Scenario

INITIAL_EQUITY = {"budget": 0.3, "mid": 0.5, "premium": 0.7}


class Positioning(Component):
    name = "positioning"
    order = 20

    def __init__(self, model):
        sc: Scenario = model.scenario
        self.n = model.n
        b = sc.brand
        self.initial = b.initial_equity if b.initial_equity is not None else INITIAL_EQUITY[
            sc.product.positioning]
        today = sc.initial.brand_equity  # [initial]: the equity of a market already running
        self.equity = self.initial if today is None else today
        self.history = np.zeros(model.days)
        self.configure(model, sc, 0)

    def configure(self, model, sc: Scenario, day: int) -> None:
        """Signals, sensitivities, prices and messaging from ``day`` on; the equity built so
        far stays (its initial level is day 0's, fixed for the run)."""
        b = sc.brand
        self.build_rate = b.build_rate
        self.decay = b.decay
        self.signal = np.array(
            [float(np.clip(c.positioning_signal - b.discount_erosion * c.discount, -1.0, 1.0))
             for c in sc.channels] + [0.0])
        self.sensitivity = np.array([s.brand_sensitivity for s in sc.segments])
        self.elasticity = np.array([s.price_sensitivity for s in sc.segments])
        # (channel, segment): each segment pays and compares its own plan's price (or the
        # product's); a channel's discount lowers what it pays, word of mouth gives none
        terms = sc.segment_terms()
        self.price_ratio = np.array(
            [[t.price * (1.0 - c.discount) / t.reference_price for t in terms]
             for c in sc.channels] + [[t.price / t.reference_price for t in terms]])
        self.uniform_message = sc.messaging.strategy == "uniform"
        self.creative_cost = 0.0 if self.uniform_message else sc.messaging.cost_per_channel_per_day

    def alignment(self, message_alignment: float) -> float:
        return message_alignment if self.uniform_message else 1.0

    def conversion_multiplier(self) -> np.ndarray:
        """Per segment: how today's equity moves decision and win-back effects."""
        return np.maximum(0.0, 1.0 + self.sensitivity * (self.equity - 0.5))

    def price_factor(self, c: int) -> np.ndarray:
        """Per segment: ``(price × (1 − discount) / reference) ** -elasticity`` on channel c,
        with the segment's price and reference (its plan's, else the product's), elasticity
        softened by equity for segments that value the brand."""
        eps = self.elasticity * np.maximum(0.0, 1.0 - self.sensitivity * (self.equity - 0.5))
        return self.price_ratio[c] ** (-eps)

    def before_day(self, model, day: int) -> None:
        self.history[day] = self.equity

    def after_day(self, model, day: int) -> None:
        share = model.recorder.channel("reached", day) / self.n
        pull = np.where(self.signal > 0, self.signal * (1.0 - self.equity), self.signal * self.equity)
        d = self.build_rate * float((share * pull).sum()) - self.decay * (self.equity - self.initial)
        self.equity = float(np.clip(self.equity + d, 0.0, 1.0))

    def results(self) -> dict:
        return {"brand_equity": (("day",), self.history)}
