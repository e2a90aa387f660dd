"""Fixtures the test modules share (plain builders are in ``helpers.py``).

Markers (registered in pyproject.toml): ``slow`` marks what ``make test-fast``
(``pytest -m "not slow"``) leaves out: real processes, sweeps, docking, the larger
validation runs. ``make test`` runs everything.
"""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")  # no display in tests; set before matplotlib loads

import pytest  # noqa: E402
from helpers import example, own_market  # noqa: E402

import simulation  # noqa: E402


@pytest.fixture(scope="session")
def default_scenario():
    """``scenarios/default.toml`` (treat as read-only: it is shared by the whole session)."""
    return example("default")


@pytest.fixture(scope="session")
def saas_scenario():
    """``scenarios/saas_case.toml`` (read-only)."""
    return example("saas_case")


# Real runs of the two main examples over 13 weeks, shared by the analysis and attribution
# tests: a few hundred conversions, every channel converts, saas_case's sales team loses
# leads, and the default's search channel is far from saturated (the diagnostics tests
# rely on it at this size). Read-only: copy before changing.


@pytest.fixture(scope="session")
def default_run(default_scenario):
    return simulation.run(own_market(default_scenario, 6000), days=91, seed=4)


@pytest.fixture(scope="session")
def saas_run(saas_scenario):
    return simulation.run(own_market(saas_scenario, 8000), days=91, seed=4)
