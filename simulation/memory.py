"""How much memory a run needs, checked before it starts.

A run that does not fit would otherwise end, after minutes, in a MemoryError traceback
(or the kernel's out-of-memory killer). Every command that simulates asks
:func:`check` first with :func:`run_bytes` of what it will run (a sweep: its workers
times one run), and refuses with one line when the machine's available memory is short.
"""

from __future__ import annotations

from pathlib import Path

from simulation.scenario import Scenario, ScenarioError

BASE_BYTES = 400 * 2**20
"""A process with numpy, numba, xarray and Mesa imported and the kernels loaded."""
MESA_BYTES_PER_CUSTOMER = 2_000
"""One Mesa customer agent: the object, its attribute dict, its journey, Mesa's weak
references (measured at about 1.2-1.6 kB; rounded up)."""
RESULT_BYTES_PER_CUSTOMER = 48
"""The cohort table's per-customer int64 columns, at most one row per customer."""
RESULT_VARIABLES = 80
"""Daily variables a result may hold, each (day, channel) of float64, with copies made
while the dataset is built."""


def run_bytes(scenario: Scenario, backend: str = "numba", events_sample: int = 0) -> int:
    """Memory one run of ``scenario`` (as resolved: its own agents and days) needs."""
    from simulation import counters
    from simulation.kernels import day as K
    from simulation.state import BYTES_PER_CUSTOMER

    n = scenario.simulation.agents
    nch, nseg = len(scenario.channels) + 1, len(scenario.segments)
    width = counters.width(nch, nseg, counters.weeks(scenario.simulation.days))
    chunks = (n + K.CHUNK - 1) // K.CHUNK
    per_customer = BYTES_PER_CUSTOMER + RESULT_BYTES_PER_CUSTOMER
    if backend == "mesa":  # the agents, and their final state copied into arrays
        per_customer += MESA_BYTES_PER_CUSTOMER
    population = n * per_customer
    chunk_rows = chunks * (width + 2 * len(K.ATTR_MODELS) * nch + (nch + 3) ** 2) * 8
    events = 2 * events_bytes(scenario, events_sample)  # buffers and the drained columns
    return BASE_BYTES + population + result_bytes(scenario) + chunk_rows + events


def result_bytes(scenario: Scenario) -> int:
    """Size of one run's result dataset, in memory or as a NetCDF file (an upper bound:
    a 365-day run of the default scenario estimates 1.3 MB and writes 0.86 MB)."""
    from simulation import counters

    days, nch = scenario.simulation.days, len(scenario.channels) + 1
    width = counters.width(nch, len(scenario.segments), counters.weeks(days))
    return days * width * 8 + RESULT_VARIABLES * days * nch * 8


def events_bytes(scenario: Scenario, events_sample: int) -> int:
    """Size of the event table of ``events_sample`` customers (an upper bound)."""
    n = min(events_sample, scenario.simulation.agents)
    return n * (len(scenario.channels) + 5) * 23


def available_bytes() -> int | None:
    """Memory available to new allocations (Linux ``MemAvailable``), or None if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check(needed: int, what: str, source: str = "arguments") -> None:
    """Refuse, in one line, a run that would not fit in the available memory."""
    free = available_bytes()
    if free is not None and needed > free:
        raise ScenarioError(source, "", f"{what} needs about {_gb(needed)} of memory and "
                            f"{_gb(free)} is available: simulate fewer customers (--agents) "
                            "or fewer runs at once (--jobs)")


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB"
