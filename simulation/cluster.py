"""Connecting to a Dask cluster: the one place sweeps, lifts and sharded runs get their
``distributed.Client`` from ``--scheduler``.

Kept apart from the sweep runner and the sharded market so that neither imports the
other (and this module imports ``distributed`` only when called).
"""

from __future__ import annotations

from typing import Any

from simulation.scenario import ScenarioError


def connect(scheduler, direct: bool = False) -> Any:
    """A dask.distributed Client for an address (or a Client/cluster object as given).

    ``direct``: talk to the workers directly rather than through the scheduler (half the
    latency of each exchange, for a sharded run's daily calls; the workers must be
    reachable from here)."""
    from distributed import Client

    if isinstance(scheduler, Client):
        return scheduler
    if hasattr(scheduler, "scheduler_address"):  # a LocalCluster or other cluster object
        scheduler = scheduler.scheduler_address
    try:
        return Client(scheduler, timeout="15s", set_as_default=False,
                      direct_to_workers=direct or None)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ScenarioError("--scheduler", "", f"cannot connect to {scheduler}: {exc}") from None
