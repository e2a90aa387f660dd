"""Running a sweep: workers, the run store, the manifest, resuming.

Runs go to worker processes on this machine (``simulation.sweep.pool``: forked from
this process, or joblib's loky pool), longest first once timed (:class:`LongestFirst`),
or to a Dask cluster. A worker gets a small task (the base scenario, the run's
overrides, its seed), simulates, shrinks the result to the variables the experiment
keeps and sends back only that (``simulation.sweep.worker``): the customer population
never leaves the worker.
Kernels are loaded once per worker process (numba takes them from the on-disk cache),
not once per run.

Nothing is lost: each result is written to its own file in ``DIR/runs/`` the moment
the run finishes (atomically: a crash leaves the whole file or none; by the worker on
this machine, by this process for a cluster), then ``DIR/manifest.json`` is updated. The run files are the truth: each carries its run's key (a hash
of the scenario, seed and outputs), so ``resume`` keeps every file whose key matches
and computes only the rest. The combined dataset is built from the files alone, so an
interrupted and resumed sweep gives exactly the dataset of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xarray as xr

from simulation import memory
from simulation.cluster import connect
from simulation.io import read_netcdf, write_netcdf
from simulation.outputs import OutputError, check_directory, write_file
from simulation.scenario import ScenarioError
from simulation.sweep.experiment import Experiment, Plan, RunSpec, expand
from simulation.sweep.pool import ForkedPool, default_threads, release_workers, worker_pool
from simulation.sweep.worker import Task, simulate, unmatched
from simulation.version import __version__

MANIFEST_FORMAT = "distsim-sweep/1"
MANIFEST_EVERY_S = 1.0


# -- executors -------------------------------------------------------------------


class LongestFirst:
    """The order in which runs go to the workers: the longest expected first.

    With a few runs per worker, the sweep ends when its last run does; handing out the
    runs in plan order can leave one worker finishing a long run while the others sit
    idle. Runs of the same point of the grid (same variant and parameter values, any
    replicate) take about the same time, so each finished run teaches its point's time:
    a point never timed goes first (in plan order, to learn it), then the point with
    the longest time, so the short runs fill in at the end (the classic
    longest-processing-time rule). The order changes nothing in the results: each run
    is its own seed and scenario, and the combined dataset is built in plan order.
    """

    def __init__(self, tasks: Iterable[Task]):
        self.pending = list(tasks)
        self.seconds: dict[str, list[float]] = {}
        self.cold: set[str] = set()  # points timed only by a process's first run

    @staticmethod
    def point(task: Task) -> str:
        return json.dumps(task.labels, sort_keys=True, default=str)

    def record(self, task: Task, info: dict) -> None:
        """Learn from a finished run (a process's first run also loads the kernels: a
        warm run's time replaces it)."""
        point = self.point(task)
        warm = info.get("warm", True)
        if point not in self.seconds or (warm and point in self.cold):
            self.seconds[point] = []
            self.cold.discard(point)
            if not warm:
                self.cold.add(point)
        elif not warm:
            return
        self.seconds[point].append(info["sim_seconds"])

    def expected(self, task: Task) -> float:
        times = self.seconds.get(self.point(task))
        return math.inf if not times else sum(times) / len(times)

    def __len__(self) -> int:
        return len(self.pending)

    def pop(self) -> Task:
        best = max(range(len(self.pending)), key=lambda i: (self.expected(self.pending[i]), -i))
        return self.pending.pop(best)


def run_local(tasks: Iterable[Task], jobs: int, threads: int, pool=None,
              work: Callable[[Task], tuple] = simulate) -> Iterator[tuple]:
    """Results as they finish, from ``jobs`` worker processes (this process for 1 job).

    Exactly one run per worker is in flight, and the next run is chosen when one
    finishes (:class:`LongestFirst`), with what has been learnt by then. ``work`` is what
    a worker does with a task (default :func:`~simulation.sweep.worker.simulate`; any
    module-level function returning ``(index, result, info)`` with ``info`` as
    ``simulate``'s, e.g. one that shrinks the run to a few figures).
    """
    from concurrent.futures import FIRST_COMPLETED, wait

    if jobs == 1:
        for task in tasks:
            yield work(task)
        return
    order = LongestFirst(tasks)
    pool = pool or worker_pool(jobs, threads)
    running: dict = {}
    try:
        while order or running:
            while order and len(running) < jobs:
                task = order.pop()
                running[pool.submit(work, task)] = task
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                task = running.pop(future)
                result = future.result()
                order.record(task, result[2])
                yield result
    finally:
        if running:  # interrupted: end the runs under way (their files are written
            # atomically, so a run cut short leaves only a temporary that resume clears)
            pool.shutdown(wait=False, kill_workers=True)


def run_dask(tasks: Iterable[Task], client,
             work: Callable[[Task], tuple] = simulate) -> Iterator[tuple]:
    """Results as they finish, from the workers of a Dask cluster (``work`` as for
    :func:`run_local`)."""
    from distributed import as_completed

    futures = client.map(work, list(tasks), pure=False)
    try:
        for fut in as_completed(futures, loop=client.loop):
            result = fut.result()
            fut.release()
            yield result
    finally:
        client.cancel(futures)


def workers_kind(client, jobs: int, pool) -> str:
    """Where the runs of this call ran, for the manifest."""
    if client is not None:
        return "dask"
    if jobs == 1:
        return "this process"
    if pool is None:
        return "none (every run was on disk)"
    return "forked" if isinstance(pool, ForkedPool) else "loky"


# -- the run store -----------------------------------------------------------------


class RunStore:
    """``DIR/runs/<index>.nc``, ``DIR/manifest.json`` and ``DIR/combined.nc``."""

    def __init__(self, out: str | Path, plan: Plan):
        self.out = Path(out)
        self.runs_dir = self.out / "runs"
        self.manifest_path = self.out / "manifest.json"
        self.combined_path = self.out / "combined.nc"
        self.plan = plan
        self.width = max(5, len(str(len(plan.runs) - 1)))
        self.entries: list[dict] = []
        self.written_at = 0.0

    def run_path(self, index: int) -> Path:
        return self.runs_dir / f"{index:0{self.width}d}.nc"

    # before anything is written
    def check(self, resume: bool, run_size: int) -> dict | None:
        """Refuse an output directory that would be clobbered, cannot be written or lacks
        the space for every run of ``run_size`` bytes (and their combination); return
        the old manifest."""
        check_directory("--out", self.out, 2 * len(self.plan.runs) * run_size)
        if not self.manifest_path.exists():
            return None
        try:
            old = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ScenarioError(str(self.manifest_path), "", "unreadable sweep manifest") from None
        if not resume:
            raise ScenarioError(str(self.out), "", "already holds a sweep (manifest.json); "
                                "add --resume to finish it, or choose another --out")
        made_by = old.get("simulation_version", "0.1.0")
        if made_by != __version__:
            raise ScenarioError(str(self.out), "", f"holds runs made by distsim {made_by}, "
                                f"which can give other numbers than this {__version__}; "
                                "start the sweep again with another --out")
        if old.get("fingerprint") != self.plan.fingerprint():
            raise ScenarioError(str(self.out), "", "holds a sweep of a different experiment "
                                "(or other --agents/--days/--replicates); it cannot be resumed "
                                "with this one")
        return old

    def start(self, experiment: Experiment, old: dict | None) -> dict[int, xr.Dataset]:
        """Create the directory, clear stale temporaries, load the complete runs."""
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"--out {self.out}: cannot write ({exc.strerror})") from None
        for stale in [*self.runs_dir.glob(".*"), *self.out.glob(".*.tmp"),
                      *self.out.glob(".*.nc"), *self.out.glob(".*.json")]:
            with contextlib.suppress(OSError):
                if stale.is_file():
                    stale.unlink()
        previous = {e["index"]: e for e in (old or {}).get("runs", [])}
        done: dict[int, xr.Dataset] = {}
        self.entries = []
        for run in self.plan.runs:
            entry = {
                "index": run.index, "file": str(self.run_path(run.index).relative_to(self.out)),
                "replicate": run.replicate, "seed": run.seed, "labels": run.labels,
                "key": run.key, "status": "pending", "computed": 0,
            }
            before = previous.get(run.index)
            if before and before.get("key") == run.key:
                entry["computed"] = before.get("computed", 0)
                for k in ("sim_seconds", "write_seconds", "warm", "worker", "finished"):
                    if k in before:
                        entry[k] = before[k]
            ds = self.load_complete(run)
            if ds is not None:
                entry["status"] = "done"
                entry["computed"] = max(1, entry["computed"])
                done[run.index] = ds
            self.entries.append(entry)
        self.header = {
            "format": MANIFEST_FORMAT,
            "experiment": experiment.name,
            "experiment_file": experiment.source,
            "fingerprint": self.plan.fingerprint(),
            "simulation_version": __version__,
            "dims": list(self.plan.dims),
            "shape": list(self.plan.shape),
            "runs_total": len(self.plan.runs),
        }
        self.write_manifest("running")
        return done

    def load_complete(self, run: RunSpec) -> xr.Dataset | None:
        """The run's result if its file is there and is this run's (its key matches)."""
        path = self.run_path(run.index)
        if not path.is_file():
            return None
        try:
            ds = read_netcdf(path)
        except Exception:  # a file we did not write, or damaged after the fact
            return None
        if ds.attrs.get("sweep_run_key") != run.key:
            return None
        check_version(ds, path)
        return ds

    def save(self, run: RunSpec, ds: xr.Dataset, info: dict, written: bool) -> None:
        """Record a finished run, writing its file first unless the worker did."""
        if not written:
            write_netcdf(ds, self.run_path(run.index))
        entry = self.entries[run.index]
        entry.update(info)
        entry["status"] = "done"
        entry["computed"] += 1
        entry["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        # the run files are the truth; the manifest follows at most a second behind (so a
        # sweep of many short runs does not rewrite it thousands of times)
        if time.monotonic() - self.written_at >= MANIFEST_EVERY_S:
            self.write_manifest("running")

    def write_manifest(self, status: str, **extra) -> None:
        self.written_at = time.monotonic()
        done = sum(e["status"] == "done" for e in self.entries)
        body = {**self.header, "status": status, "runs_done": done, **extra,
                "runs": self.entries}
        write_file(self.manifest_path, json.dumps(body, indent=1, default=str))


# -- the sweep -------------------------------------------------------------------


@dataclass
class SweepResult:
    combined: xr.Dataset
    out: Path
    computed: int  # runs simulated by this call
    reused: int  # runs found complete on disk
    wall_seconds: float
    sim_seconds: float  # simulation time of the runs computed by this call
    jobs: int  # 0 on a Dask cluster
    threads: int | None
    summary: Any = None  # simulation.sweep.combine.Summary


def run_sweep(experiment: Experiment, out: str | Path, *, jobs: int = 1, scheduler=None,
              resume: bool = False, threads: int | None = None,
              progress: Callable[[int, int], None] | None = None,
              objective=None, keep_workers: bool = True) -> SweepResult:
    """Run every run of ``experiment`` not already in ``out`` and write the combined result.

    ``jobs`` processes on this machine, or the Dask cluster at ``scheduler`` (an address,
    a ``Client`` or a cluster object). ``threads``: numba threads per run (default: the
    cores shared between the jobs; 1 per run on a cluster). ``progress(done, total)``
    is called at the start and after each run is saved. ``objective`` (default: the
    experiment's) picks the best variant in ``DIR/summary.csv`` and ``summary.json``.
    ``keep_workers=False`` ends loky's worker processes as soon as the last run is in
    (the command line does, as it exits next); by default the next sweep reuses them.
    Workers forked for the sweep (``simulation.sweep.pool``) always end with it.
    """
    from simulation.sweep.combine import combine, summarise

    t_start = time.perf_counter()
    plan = expand(experiment)
    ran = run_plan(experiment, plan, out, jobs=jobs, scheduler=scheduler, resume=resume,
                   threads=threads, progress=progress, keep_workers=keep_workers)
    store = ran.store
    combined = combine(experiment, plan, ran.datasets)
    write_netcdf(combined, store.combined_path)
    summary = summarise(combined, objective or experiment.spec.objective)
    write_file(store.out / "summary.csv", summary.to_frame().to_csv())
    write_file(store.out / "summary.json", summary.to_json())
    if summary.channel_rows:
        write_file(store.out / "summary_channels.csv", summary.channel_frame().to_csv())
    store.write_manifest("complete", combined=store.combined_path.name)
    return SweepResult(combined, store.out, ran.computed, ran.reused,
                       time.perf_counter() - t_start, ran.sim_seconds,
                       ran.jobs, ran.threads, summary)


@dataclass
class PlanRuns:
    """What :func:`run_plan` returns: every run's dataset, in plan order, and how they came."""

    store: RunStore
    datasets: list[xr.Dataset]
    computed: int
    reused: int
    sim_seconds: float
    jobs: int  # 0 on a Dask cluster
    threads: int | None


def run_plan(experiment: Experiment, plan: Plan, out: str | Path, *, jobs: int = 1,
             scheduler=None, resume: bool = False, threads: int | None = None,
             progress: Callable[[int, int], None] | None = None,
             keep_workers: bool = True, reduce: str | None = None) -> PlanRuns:
    """Run the runs of ``plan`` (of ``experiment``'s base) not already in ``out``: the
    sweep's machinery (run files, manifest, resume, workers or a Dask cluster) for any
    list of runs, a sweep's grid or a sensitivity design. The manifest is left
    ``running``; the caller writes what the runs add up to, then marks it complete.
    ``reduce`` (``"outcomes"``): each worker keeps only the run's key outcomes
    (:data:`simulation.sweep.worker.REDUCERS`), for designs of thousands of runs."""
    store = RunStore(out, plan)
    unknown = unmatched(experiment.spec.outputs)
    if unknown:
        raise ScenarioError(experiment.source, "outputs.variables",
                            f"{', '.join(map(repr, unknown))} names no result variable (the "
                            "README's result variables lists them)")
    old = store.check(resume, memory.result_bytes(experiment.base))
    if jobs < 1:
        raise ScenarioError("--jobs", "", "must be at least 1")
    if scheduler is None:  # a cluster's workers have their own memory
        at_once = min(jobs, len(plan.runs))
        sim = experiment.base.simulation
        memory.check(at_once * memory.run_bytes(experiment.base),
                     f"{at_once} run(s) at once of {sim.agents:,} customers x {sim.days:,} days",
                     experiment.source)
    client = connect(scheduler) if scheduler is not None else None
    own_client = client is not None and client is not scheduler
    pool = None
    try:
        done = store.start(experiment, old)
        total = len(plan.runs)
        if client is not None:
            per_run = threads or 1
        else:
            per_run = threads or default_threads(jobs)
        # before the progress bar starts its thread: workers may be forked
        pool = (worker_pool(jobs, per_run)
                if client is None and jobs > 1 and len(done) < total else None)
        store.header["workers"] = workers_kind(client, jobs, pool)
        if pool is not None:
            # this process waits while the workers run: import what the summary needs
            # now rather than after the last run
            threading.Thread(target=importlib.import_module, args=("scipy.special",),
                             daemon=True).start()
        if progress:
            progress(len(done), total)
        tasks = (Task(r.index, r.key, r.replicate, r.seed, experiment.base, r.overrides,
                      experiment.spec.outputs, per_run, r.labels,
                      None if client is not None else str(store.run_path(r.index)), reduce)
                 for r in plan.runs if r.index not in done)
        results = run_dask(tasks, client) if client is not None else run_local(
            tasks, jobs, per_run, pool)
        computed, sim_seconds, finished = 0, 0.0, len(done)
        reused = len(done)
        try:
            for index, ds, info in results:
                store.save(plan.runs[index], ds, info, written=client is None)
                done[index] = ds
                computed += 1
                finished += 1
                sim_seconds += info["sim_seconds"]
                if progress:
                    progress(finished, total)
        except BaseException as exc:
            store.write_manifest("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
            raise
        finally:
            close = getattr(results, "close", None)
            if close:
                close()
            if isinstance(pool, ForkedPool):  # this sweep's own workers, idle by now
                pool.shutdown(wait=False, kill_workers=True)
            elif pool is not None and not keep_workers:
                release_workers()
        datasets = [done[r.index] for r in plan.runs]
    finally:
        if isinstance(pool, ForkedPool):  # however this call ends, its workers end
            pool.shutdown(wait=False, kill_workers=True)
        if own_client:
            client.close()
    return PlanRuns(store, datasets, computed, reused, sim_seconds,
                    jobs if client is None else 0, per_run)


def check_version(ds: xr.Dataset, path) -> None:
    """Refuse a run file made by another version of the model: mixed into one sweep, its
    numbers would not be comparable with this version's."""
    made_by = ds.attrs.get("simulation_version", "unknown")
    if made_by != __version__:
        raise ScenarioError(str(path), "", f"was made by distsim {made_by}, which can give "
                            f"other numbers than this {__version__}; start the sweep again "
                            "with another --out")
