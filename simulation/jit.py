"""Where numba keeps the compiled kernels: a folder named after the kernels' sources.

numba's on-disk cache notices an edit to a kernel's own file, but not to what the
kernel inlines or freezes from other files: the random streams, the state layout,
the counter table. An edit there would leave stale machine code running with the old
constants, silently. Naming the cache folder after a digest of every source the
kernels depend on makes any such edit start a fresh cache. Imported by
:mod:`simulation.rng`, before any kernel is declared; ``NUMBA_CACHE_DIR``, when set,
still wins.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba
import numpy as np

PACKAGE = Path(__file__).parent
SOURCES = ("rng.py", "state.py", "counters.py", "parameters.py", "kernels")
"""Files and folders (of ``.py`` files) whose contents name the cache."""


def sources_digest() -> str:
    h = hashlib.blake2b(digest_size=8)
    for name in SOURCES:
        path = PACKAGE / name
        for f in sorted(path.glob("*.py")) if path.is_dir() else [path]:
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


if not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = str(PACKAGE / "__pycache__" / f"numba-{sources_digest()}")


def record(params) -> np.ndarray:
    """A named tuple of numbers as a one-element structured array, fields as named: how a
    mechanism's parameters reach the kernels (numba passes arrays into parallel loops,
    not tuples of scalars). Kernels read ``params[0].threshold``."""
    dtype = np.dtype([(name, np.float64) for name in params._fields])
    return np.array([tuple(float(v) for v in params)], dtype=dtype)
