"""The plain-Mesa reference backend (``--backend mesa``): one agent per customer.

Independent of the numba kernels in its per-customer rules, identical in its scenario
and result format, so that the two backends can be docked (tests/test_docking.py).
"""

from simulation.reference.customer import Customer
from simulation.reference.model import ReferenceMarketModel

__all__ = ["Customer", "ReferenceMarketModel"]
