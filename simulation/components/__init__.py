"""Strategy mechanisms that act on the market between days.

The customer-level rules live in the numba kernels; these components decide what the
kernels are given each day, and read what happened. Each has the same small lifecycle:

- ``__init__(model)``: read the scenario;
- ``before_day(model, day)``: set today's budgets, effects or kernel parameters;
- ``after_day(model, day, row)``: read the day's reduced counters and update state.

``MarketModel`` calls them in a fixed order: scaling, positioning, post-purchase.
"""

from simulation.components.positioning import Positioning
from simulation.components.post_purchase import PostPurchase
from simulation.components.scaling import Scaling

__all__ = ["Scaling", "Positioning", "PostPurchase"]
