"""The worker processes of a sweep on one machine: joblib's loky process pool.

Kept free of heavy imports so that the command line can start the workers first
thing: they spawn and import numpy, xarray, numba and the model while the parent
process is still importing its own modules and reading the experiment, instead of
after it. On a 2-core machine that overlap is most of the start-up a parallel sweep
pays over a serial one.

The pool is loky's reusable executor, the one ``joblib.Parallel(backend="loky")``
runs on. The runner drives it directly (``submit`` and ``wait``) so that it can hand
each worker its next run when it finishes, chosen by what has been learnt
(``runner.LongestFirst``), and so that a command about to exit can end the workers at
once rather than wait for them at interpreter exit.
"""

from __future__ import annotations

import os

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


def worker_pool(jobs: int, threads: int):
    """The pool of ``jobs`` worker processes running ``threads`` numba threads each
    (the live one when it was started with the same settings)."""
    from joblib.externals.loky import get_reusable_executor

    env = {var: str(threads) for var in THREAD_VARIABLES}
    return get_reusable_executor(max_workers=jobs, timeout=IDLE_TIMEOUT_S, env=env)


def _prepare() -> int:
    """In a worker: import what a run needs (the model pulls in numba and Mesa)."""
    import simulation.model  # noqa: F401
    import simulation.sweep.runner  # noqa: F401

    return os.getpid()


def start_workers(jobs: int, threads: int | None = None) -> None:
    """Spawn the pool now and let each worker import the model in the background."""
    pool = worker_pool(jobs, threads or default_threads(jobs))
    for _ in range(jobs):
        pool.submit(_prepare)


def release_workers() -> None:
    """End the pool's workers now, without waiting (a process about to exit would
    otherwise wait for them to shut down at interpreter exit)."""
    from joblib.externals.loky import reusable_executor

    pool = getattr(reusable_executor, "_executor", None)
    if pool is not None:
        pool.shutdown(wait=False, kill_workers=True)
