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


@pytest.fixture(autouse=True)
def _thread_caps_stay_the_sessions():
    """Commands run in this process with ``--jobs`` set the thread caps their workers
    inherit (``sweep.command.start_local_workers``); a cap left behind would make numba
    re-read its configuration at the next compilation and refuse to change its thread
    count. Each test leaves them as it found them."""
    from simulation.sweep.pool import THREAD_VARIABLES

    saved = {var: os.environ.get(var) for var in THREAD_VARIABLES}
    yield
    for var, value in saved.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value


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
