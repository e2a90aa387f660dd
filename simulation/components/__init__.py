"""Mechanisms that act on the market between days: one module each, the same hooks.

The customer-level rules live in the numba kernels; a component decides what the
kernels are given each day and reads what happened. Every :class:`Component`
subclass defined in a module of this package is one: the model finds them all
(:func:`component_classes`) and calls their hooks in ``order``. A new mechanism is a
new module here; where it needs per-customer work, its kernel helpers live in
``simulation/kernels/<mechanism>.py``, called from a hook point of the day kernel,
and :meth:`Component.customer_end_of_day` is the same rule for the Mesa reference
backend's customers.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import ClassVar


class Component:
    """The hooks of a mechanism; each does nothing unless the component needs it.

    The model keeps each component as an attribute named ``name`` (``model.scaling``),
    so the channels and other components can ask it for today's figures.
    """

    name: ClassVar[str] = ""
    order: ClassVar[int] = 100
    """When the hooks run, relative to the other components (lower first)."""

    def __init__(self, model) -> None:
        """Read the scenario (``model.scenario``)."""

    def configure(self, model, scenario, day: int) -> None:
        """Read what the component takes from ``scenario``, keeping the state the run has
        built: called on ``day`` when scheduled changes (``[[changes]]``) put ``scenario``
        in force, before ``before_day``. A component whose ``__init__`` reads the scenario
        reads it here too, so that a change takes effect from its day."""

    def before_day(self, model, day: int) -> None:
        """Set today's budgets, effects or kernel parameters."""

    def after_day(self, model, day: int) -> None:
        """Read the day's counters (``model.recorder``) and update the component's state."""

    def daily_cost(self, day: int) -> float:
        """Today's cost not tied to a channel's customers (booked by the firm)."""
        return 0.0

    def kernel_parameters(self):
        """A named tuple for the day kernel (``Mechanisms.<name>``), or None."""
        return None

    def customer_end_of_day(self, model, customer, day: int) -> None:
        """The component's per-customer rule at the end of an active customer's day, for
        the Mesa reference backend (the numba backend runs it in the day kernel)."""

    def results(self) -> dict:
        """Daily series kept by the component, for the result dataset."""
        return {}


def component_classes() -> list[type[Component]]:
    """Every component of this package, in hook order."""
    found: list[type[Component]] = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found += [v for v in vars(module).values() if isinstance(v, type)
                  and issubclass(v, Component) and v is not Component
                  and v.__module__ == module.__name__]
    return sorted(found, key=lambda c: (c.order, c.name))
