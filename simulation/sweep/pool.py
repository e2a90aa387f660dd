"""The worker processes of a sweep on one machine.

A worker needs numpy, xarray, pydantic, numba, Mesa and the model: about 1.3 s of
imports, which a fresh Python process pays before its first run. Two pools:

- **forked workers** (Linux, when it is safe): the parent imports the model once and
  forks the workers, which start with everything imported. Safe means this process
  has no other thread and numba has not started its thread pool here (a fork copies
  no threads, and GNU OpenMP cannot run in a child forked after it started). The
  command line is always in that state; so is a Python session that has not
  simulated yet. The workers live for one sweep.
- otherwise **joblib's loky pool** (``joblib.Parallel(backend="loky")`` runs on the
  same reusable executor): fresh processes, which import the model themselves. The
  pool outlives the sweep, so the next sweep in the process reuses its workers and
  their loaded kernels. The command line starts it before importing the runner
  (this module is kept free of heavy imports for that), so that the workers import
  while the parent does.

Either way the runner drives the pool with ``submit`` and ``wait``, so that it hands
each worker its next run when it finishes, chosen by what has been learnt
(``runner.LongestFirst``), and ends the workers at once when a command is about to
exit rather than wait for them at interpreter exit.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import threading

THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS")
"""Thread caps set in the workers before they import anything (as joblib's
``parallel_config(inner_max_num_threads=)`` does): ``simulation.run(threads=)`` can
lower numba's threads but never raise them above ``NUMBA_NUM_THREADS``."""

IDLE_TIMEOUT_S = 300
"""Idle workers exit after this long; the next sweep in the same process reuses live
ones with their kernels loaded."""


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads(jobs: int) -> int:
    """Numba threads per run so that ``jobs`` runs share the cores without oversubscribing."""
    return max(1, available_cores() // max(1, jobs))


def fork_is_safe() -> bool:
    """Whether worker processes may be forked from this process now."""
    if sys.platform != "linux" or threading.active_count() > 1:
        return False
    numba = sys.modules.get("numba")
    if numba is None:
        return True
    try:
        numba.threading_layer()
    except ValueError:  # "Threading layer is not initialized": no numba threads yet
        return True
    return False


class ForkedPool:
    """``jobs`` workers forked from this process, with loky's ``shutdown`` signature.
    Made by :func:`worker_pool`, once this process has run :func:`prepare` (a fork
    shares it, so it is done once rather than in each worker)."""

    def __init__(self, jobs: int):
        from concurrent.futures import ProcessPoolExecutor

        before = set(multiprocessing.active_children())
        self.executor = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"),
                                            initializer=_die_with_parent, initargs=(os.getpid(),))
        # the workers' garbage collections leave the objects they inherit alone (they
        # are frozen when forked): no time spent walking them and no copy-on-write of
        # their pages (the recipe of the gc.freeze documentation)
        gc.freeze()
        try:
            self.executor.submit(os.getpid).result()  # the first submit forks every worker
        finally:
            gc.unfreeze()
        self.processes = set(multiprocessing.active_children()) - before

    def submit(self, fn, /, *args, **kwargs):
        return self.executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, kill_workers: bool = False) -> None:
        """End the pool (again: nothing more to do); ``kill_workers`` ends runs under way."""
        if kill_workers:
            for process in self.processes:
                if process.is_alive():
                    process.kill()
        self.executor.shutdown(wait=wait, cancel_futures=True)


def _die_with_parent(parent: int) -> None:
    """In a forked worker: end when the sweep's process ends, however it ends.

    A forked worker holds its own copy of the task pipe, so it would never see the
    parent go and would wait for tasks for ever; a killed sweep (SIGKILL) must not
    leave workers behind. Linux's parent-death signal ends it with the parent; a run
    it was writing leaves only a temporary file, which ``--resume`` clears.
    """
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent ended before the signal was asked for
        os._exit(1)


def worker_pool(jobs: int, threads: int):
    """A pool of ``jobs`` worker processes for runs of ``threads`` numba threads each:
    forked when that is safe (a new pool, for this sweep: shut it down after), else
    loky's reusable pool (the live one when it was started with the same settings)."""
    if fork_is_safe():
        prepare()
        if fork_is_safe():  # still: preparing started no thread
            return ForkedPool(jobs)
    from joblib.externals.loky import get_reusable_executor

    env = {var: str(threads) for var in THREAD_VARIABLES}
    return get_reusable_executor(max_workers=jobs, timeout=IDLE_TIMEOUT_S, env=env)


def prepare() -> int:
    """Do what every worker does before its first run, once: import the model (numba,
    Mesa, xarray), let xarray look for dask (it imports ``dask.array`` the first time
    it builds a dataset), import h5netcdf (the run files) and let numba load its
    typing registries (done at the first kernel taken from the on-disk cache; a
    scalar kernel, so numba starts no threads). Loky workers call it as they start;
    forked workers inherit it from the parent, which needs most of it too (the
    combined dataset is built and written there).
    """
    import h5netcdf  # noqa: F401
    import xarray as xr

    import simulation.model  # noqa: F401
    import simulation.sweep.worker  # noqa: F401
    from simulation.rng import seed_key

    xr.Dataset({"x": ("d", [0])}, coords={"d": [0]})
    seed_key(0)
    return os.getpid()


def start_workers(jobs: int, threads: int) -> None:
    """Spawn loky's pool now and let each worker import the model in the background
    (nothing to do where the sweep will fork its workers: they start ready)."""
    if fork_is_safe():
        return
    pool = worker_pool(jobs, threads)
    for _ in range(jobs):
        pool.submit(prepare)


def release_workers() -> None:
    """End the pool's workers now, without waiting (a process about to exit would
    otherwise wait for them to shut down at interpreter exit)."""
    from joblib.externals.loky import reusable_executor

    pool = getattr(reusable_executor, "_executor", None)
    if pool is not None:
        pool.shutdown(wait=False, kill_workers=True)


class Workers:
    """Where a command's many small runs go: this process (one job), ``jobs`` worker
    processes here (:func:`worker_pool`, memory-checked for runs of ``base``) or the Dask
    cluster at ``scheduler``; a context manager that ends its workers on exit. Each run
    uses ``threads`` numba threads, one unless told otherwise: runs side by side use the
    cores far better than one run's threads, which wait for each other every day (5-9
    times slower on a busy machine)."""

    def __init__(self, base, *, jobs: int = 1, scheduler=None, threads: int | None = None):
        self.base = base
        self.jobs = jobs
        self.scheduler = scheduler
        self.threads = threads
        self.pool = None
        self.client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def per_run(self) -> int:
        """numba threads per run."""
        return self.threads or 1

    @property
    def workers(self) -> int:
        if self.client is not None:
            return max(1, len(self.client.scheduler_info().get("workers", {})))
        return self.jobs

    def start(self) -> None:
        """Connect to the cluster, or start this machine's workers: before a progress bar
        starts its thread, as workers may be forked from this process."""
        if self.scheduler is not None:
            if self.client is None:
                from simulation.cluster import connect

                self.client = connect(self.scheduler)
        elif self.jobs > 1 and self.pool is None:
            from simulation import memory

            sim = self.base.simulation
            memory.check(self.jobs * memory.run_bytes(self.base),
                         f"{self.jobs} run(s) at once of {sim.agents:,} customers x "
                         f"{sim.days:,} days", "--jobs")
            self.pool = worker_pool(self.jobs, self.per_run)

    def close(self) -> None:
        if isinstance(self.pool, ForkedPool):
            self.pool.shutdown(wait=False, kill_workers=True)
        elif self.pool is not None:
            release_workers()
        self.pool = None
        if self.client is not None and self.client is not self.scheduler:
            self.client.close()
        self.client = None
