"""The customer population: a struct-of-arrays declared once.

Every per-customer array is named here with its dtype and meaning; the
population allocates them all up front and the kernels step them in place.
Nothing is appended or reallocated during a run. Dtypes are the smallest that
are honest: stages and channel ids fit a byte, day numbers fit uint16 (runs
are at most 65,000 days; 65535 means "never"), money per customer is float32
because it is only read for distributions (the run's totals are accumulated in
float64 by the kernels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RING = 4
"""Recent touches kept per customer (channel and day) for attribution."""

NEVER = np.uint16(65535)
"""Day value meaning "no such day" (no scheduled event, no touch yet)."""

NO_CHANNEL = np.uint8(255)

# Stage codes (order of simulation.scenario.STAGES).
UNAWARE, AWARE, CONSIDERING, ACTIVE, CHURNED = range(5)


@dataclass(frozen=True)
class Field:
    name: str
    dtype: np.dtype
    per_customer: int
    meaning: str
    fill: float | int = 0

    @property
    def nbytes(self) -> int:
        return np.dtype(self.dtype).itemsize * self.per_customer


CUSTOMER_FIELDS: tuple[Field, ...] = (
    Field("segment", np.uint8, 1, "segment index"),
    Field("stage", np.uint8, 1, "journey stage code (unaware..churned)"),
    Field("acq_channel", np.uint8, 1, "acquisition channel (last touch at first order); 255 none", 255),
    Field("first_channel", np.uint8, 1, "channel of the first touch; 255 none", 255),
    Field("first_day", np.uint16, 1, "day of the first touch", 65535),
    Field("ring_channel", np.uint8, RING, "recent touches: channel (ring buffer)", 255),
    Field("ring_day", np.uint16, RING, "recent touches: day (ring buffer)", 65535),
    Field("ring_head", np.uint8, 1, "next ring slot to write"),
    Field("touches", np.uint8, 1, "touches since the last conversion, saturating at 255"),
    Field("lead", np.uint8, 1, "capacity-limited channel the customer waits for, +1; 0 none"),
    Field("health", np.uint8, 1, "engagement 0..255 at health_day; declines with time"),
    Field("health_day", np.uint16, 1, "day health was last set", 65535),
    Field("acquired_day", np.uint16, 1, "day of the first order", 65535),
    Field("next_day", np.uint16, 1, "active: next scheduled event (renewal, order chance, "
          "reminder, lapse); churned: the day of churn", 65535),
    Field("orders", np.uint16, 1, "orders placed, saturating at 65535"),
    Field("purchase_rate", np.float32, 1, "orders per day while alive (Gamma across customers)"),
    Field("dropout", np.float32, 1, "probability of dropping out after an order (Beta across customers)"),
    Field("revenue", np.float32, 1, "cumulative net revenue"),
    Field("margin", np.float32, 1, "cumulative gross margin"),
    Field("reached_mask", np.uint64, 1, "bit c set once channel c has reached the customer"),
    Field("flags", np.uint8, 1, "bits: consent, onboarded, community member, reminder "
          "pending, acquired before day 0, on the firm's list"),
)

# Bits of ``flags``. EXISTING: a customer of the business before day 0 (``[initial]``),
# whose money and churn the books keep apart from the customers the run acquires.
# LISTED: on the firm's list (a channel's ``list`` table), which the list channel mails.
CONSENT, ONBOARDED, MEMBER, REMINDER, EXISTING, LISTED = 1, 2, 4, 8, 16, 32

BYTES_PER_CUSTOMER = sum(f.nbytes for f in CUSTOMER_FIELDS)

# Positions of the fields in ``Population.arrays()``: the kernels receive the population
# as one plain tuple and index it with these compile-time constants. Not a named tuple:
# numba 0.68 can silently drop writes made through a named tuple's fields inside
# ``prange`` (``pop.health[i] = h``), and through a literal-index overload in an inlined
# helper; a constant index into a plain tuple always lands (tests/test_rng_state.py).
(
    F_SEGMENT, F_STAGE, F_ACQ_CHANNEL, F_FIRST_CHANNEL, F_FIRST_DAY, F_RING_CHANNEL, F_RING_DAY,
    F_RING_HEAD, F_TOUCHES, F_LEAD, F_HEALTH, F_HEALTH_DAY, F_ACQUIRED_DAY, F_NEXT_DAY, F_ORDERS,
    F_PURCHASE_RATE, F_DROPOUT, F_REVENUE, F_MARGIN, F_REACHED_MASK, F_FLAGS,
) = range(21)
assert [globals()["F_" + f.name.upper()] for f in CUSTOMER_FIELDS] == list(range(21)), \
    "the F_* constants must follow CUSTOMER_FIELDS, one per field, in order"


class Population:
    """The arrays of N customers, allocated once, attributes named as declared."""

    def __init__(self, n: int):
        self.n = int(n)
        for f in CUSTOMER_FIELDS:
            shape = (self.n,) if f.per_customer == 1 else (self.n, f.per_customer)
            setattr(self, f.name, np.full(shape, f.fill, dtype=f.dtype))

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in CUSTOMER_FIELDS)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays in declaration order: the kernels' first argument (index them with
        the ``F_*`` constants)."""
        return tuple(getattr(self, f.name) for f in CUSTOMER_FIELDS)


def describe() -> str:
    """A table of the customer state, for the README and ``distsim`` help."""
    lines = [f"{'field':<16}{'dtype':<9}{'bytes':>6}  meaning"]
    for f in CUSTOMER_FIELDS:
        lines.append(f"{f.name:<16}{np.dtype(f.dtype).name:<9}{f.nbytes:>6}  {f.meaning}")
    lines.append(f"{'total':<25}{BYTES_PER_CUSTOMER:>6}  bytes per customer")
    return "\n".join(lines)
