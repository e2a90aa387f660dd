"""Command-line arguments that several ``distsim`` sub-commands share: the integer
types, the size of a run (``--agents --days --seed --set``), where many runs go
(``--jobs --scheduler --threads``) and ``--quiet``. One definition each, so that a flag
means the same and reads the same in every command; a command passes only the help text
that says what the flag means for it."""

from __future__ import annotations

import argparse


def integer_at_least(low: int, what: str | None = None):
    """An argparse type: an integer (underscores allowed) of at least ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            value = low - 1
        if value < low:
            wanted = f"a {what} integer" if what else f"an integer of at least {low}"
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value
    return parse


positive = integer_at_least(1, "positive")
non_negative = integer_at_least(0, "non-negative")


def size(p: argparse.ArgumentParser, *, agents: str = "override simulation.agents",
         seed: str = "override simulation.seed", days: str = "override simulation.days",
         overrides: str | None = "override a scenario field, as for run") -> None:
    """``--agents --days --seed`` and (unless ``overrides`` is None) ``--set``."""
    p.add_argument("--agents", type=positive, help=agents)
    p.add_argument("--days", type=positive, help=days)
    p.add_argument("--seed", type=non_negative, help=seed)
    if overrides is not None:
        p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                       help=overrides)


def workers(p: argparse.ArgumentParser, *, threads: str = "numba threads per run",
            cluster: bool = True) -> None:
    """``--jobs``, ``--scheduler`` (unless ``cluster`` is false) and ``--threads``."""
    p.add_argument("--jobs", type=positive, default=1, help="parallel runs on this machine")
    if cluster:
        p.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on the Dask cluster at ADDRESS instead (--jobs is ignored)")
    p.add_argument("--threads", type=positive, help=threads)


def quiet(p: argparse.ArgumentParser, tables: str = "table") -> None:
    p.add_argument("--quiet", action="store_true", help=f"no progress bar or {tables}")
