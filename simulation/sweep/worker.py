"""What a sweep's worker process does with one run: simulate it, keep what the
experiment keeps, write the run file.

The runner (:mod:`simulation.sweep.runner`) sends :class:`Task` objects to
:func:`simulate` in the worker processes (:mod:`simulation.sweep.pool`), which import
this module before their first run; neither module is needed here, so a worker loads
no more than a run needs.
"""

from __future__ import annotations

import fnmatch
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import xarray as xr

from simulation.io import write_netcdf
from simulation.scenario import Scenario, with_overrides
from simulation.sweep.experiment import Outputs

REQUIRED = frozenset({
    "spend", "media_spend", "fixed_cost", "revenue", "gross_margin", "contribution", "profit",
    "programme_cost", "programme_fixed_cost", "acquisition_fees", "acquisition_programme_cost",
    "first_order_margin", "active", "conversions", "customers", "churned", "stage_count",
    "brand_equity", "cac", "cac_loaded", "ltv", "ltv_projected", "ltv_cac", "payback_days",
})
"""Variables the summary needs: kept whatever the experiment's ``outputs`` say."""


def shrink(ds: xr.Dataset, outputs: Outputs) -> xr.Dataset:
    """The run variables the experiment keeps, and only the coordinates they use.

    default: everything but per-day per-segment arrays; all: everything; a list:
    those names (``fnmatch`` patterns) plus what the summary needs.
    """
    sel = outputs.variables
    if sel == "all":
        keep = list(ds.data_vars)
    elif sel == "default":
        keep = [v for v in ds.data_vars if not {"day", "segment"} <= set(ds[v].dims)]
    else:
        keep = [v for v in ds.data_vars
                if v in REQUIRED or any(fnmatch.fnmatchcase(v, pat) for pat in sel)]
    out = ds[keep]
    used = {d for v in out.data_vars.values() for d in v.dims}
    unused = [c for c in out.coords if not set(out[c].dims) <= used]
    return out.drop_vars(unused)


def unmatched(outputs: Outputs) -> list[str]:
    """The names (patterns) of ``outputs.variables`` that match no result variable."""
    from simulation import counters
    from simulation.kernels import day  # noqa: F401  (registers every mechanism's counters)

    if isinstance(outputs.variables, str):
        return []
    known = list(counters.variables())
    return [p for p in outputs.variables
            if not any(fnmatch.fnmatchcase(k, p) for k in known)]


def key_outcomes(ds: xr.Dataset) -> xr.Dataset:
    """A run's key outcomes alone (one number each: profit, customers, CAC, ...), its
    attributes kept: what a sensitivity design needs of each of its thousands of runs."""
    from simulation.sweep.combine import outcomes

    out = outcomes(ds)
    out.attrs = dict(ds.attrs)
    return out


REDUCERS = {"outcomes": key_outcomes}
"""What a task may keep of its run instead of the experiment's outputs."""


@dataclass(frozen=True)
class Task:
    """What a worker receives: small and picklable (no population, no model)."""

    index: int
    key: str
    replicate: int
    seed: int
    base: Scenario
    overrides: dict[str, Any]
    outputs: Outputs
    threads: int | None
    labels: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # where the worker writes the result (None: send it back)
    reduce: str | None = None  # a name of REDUCERS: what of the run to keep (None: outputs)


_runs_in_this_process = 0


def simulate(task: Task) -> tuple[int, xr.Dataset, dict]:
    """Run one task in a worker: (index, shrunk dataset, timings).

    With ``task.path`` (workers that share the sweep's disk: this machine) the worker also
    writes the run file, atomically, so writing is as parallel as simulating; otherwise
    (a Dask cluster) the parent writes what comes back.
    """
    global _runs_in_this_process
    import simulation

    scenario = with_overrides(task.base, {**task.overrides, "simulation.seed": task.seed},
                              source=f"run {task.index}")
    warm = _runs_in_this_process > 0
    started = time.time()
    t0 = time.perf_counter()
    ds = simulation.run(scenario, threads=task.threads)
    sim_seconds = time.perf_counter() - t0
    _runs_in_this_process += 1
    ds = shrink(ds, task.outputs)
    if task.reduce is not None:
        ds = REDUCERS[task.reduce](ds)
    ds.attrs.update({
        "sweep_run": task.index,
        "sweep_run_key": task.key,
        "sweep_replicate": task.replicate,
        "sweep_labels": json.dumps(task.labels, default=str),
        "sweep_overrides": json.dumps(task.overrides, default=str),
    })
    t1 = time.perf_counter()
    if task.path is not None:
        write_netcdf(ds, task.path)
    info = {"sim_seconds": round(sim_seconds, 4), "write_seconds":
            round(time.perf_counter() - t1, 4) if task.path else 0.0, "warm": warm,
            "worker": f"{os.uname().nodename}:{os.getpid()}",
            "started": round(started, 3), "ended": round(time.time(), 3)}
    return task.index, ds, info
