"""The event log of sampled customers (``--events``): the buffers the kernels append to,
drained each day into the columns of the Parquet export (:mod:`simulation.io`).
The kernels' side is :mod:`simulation.kernels.events`."""

from __future__ import annotations

import numpy as np

from simulation.kernels.day import CHUNK
from simulation.kernels.events import COLUMNS, L_COUNT


def empty_log(n_chunks: int) -> tuple:
    """The event-log buffers when no events are exported: an empty sample mask."""
    return (np.zeros(0, np.uint8), np.zeros((n_chunks, 0), np.int64),
            np.zeros((n_chunks, 0), np.int32), np.zeros((n_chunks, 0), np.int8),
            np.zeros((n_chunks, 0), np.int16), np.zeros((n_chunks, 0), np.float64),
            np.zeros(n_chunks, np.int64))


def sample_mask(n: int, sample: int, key) -> np.ndarray:
    """Which of the market's ``n`` customers are in the export sample (1) or not (0):
    ``sample`` drawn uniformly from the run seed's ``key``, so the same seed exports the
    same customers however the market is split into shards."""
    sample = min(int(sample), n)
    gen = np.random.Generator(np.random.Philox(key=int(key)))
    chosen = np.sort(gen.choice(n, size=sample, replace=False)) if sample else np.zeros(0, int)
    mask = np.zeros(n, np.uint8)
    mask[chosen] = 1
    return mask


class EventLog:
    """Per-chunk buffers the kernels append sampled customers' events to, drained daily.

    ``mask`` is :func:`sample_mask`'s for the customers ``first``, ``first + 1``, ... (a
    shard of the market, or the whole with ``first`` 0); the kernels log a customer by
    their index in ``mask`` and the drained columns by their index in the market.
    """

    def __init__(self, mask: np.ndarray, n_chunks: int, n_channels: int, first: int = 0):
        chosen = np.flatnonzero(mask)
        per_chunk = np.bincount(chosen // CHUNK, minlength=n_chunks)
        # a customer's day has at most one touch per channel, two orders and a churn
        cap = int(per_chunk.max(initial=0)) * (n_channels + 4)
        self.first = int(first)
        self.sample = len(chosen)
        self.buffers = (mask, np.zeros((n_chunks, cap), np.int64), np.zeros((n_chunks, cap), np.int32),
                        np.zeros((n_chunks, cap), np.int8), np.zeros((n_chunks, cap), np.int16),
                        np.zeros((n_chunks, cap), np.float64), np.zeros(n_chunks, np.int64))
        self.parts: list[tuple[np.ndarray, ...]] = []

    def collect(self, log: tuple) -> None:
        """Drain the day's events from the buffers (which the next day overwrites)."""
        counts = log[L_COUNT]
        if counts.sum() == 0:
            return
        rows = [np.concatenate([log[k][ch, : counts[ch]] for ch in range(len(counts))])
                for k in COLUMNS]
        rows[0] = rows[0] + self.first  # the market's customer index
        self.parts.append(tuple(rows))
        counts.fill(0)

    def drained(self) -> tuple[np.ndarray, ...]:
        """customer, day, kind, channel, amount of every event drained so far, by day as
        collected (order them with :func:`in_order`)."""
        if not self.parts:
            return (np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int8),
                    np.zeros(0, np.int16), np.zeros(0, np.float64))
        return tuple(np.concatenate([p[k] for p in self.parts]) for k in range(5))


def in_order(parts: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """The drained columns of one or more logs (a market's shards, in market order) as one
    table ordered by day, then customer. The sort is stable, so a customer's events of a
    day keep the order they happened in: the same table however the market was split."""
    cols = tuple(np.concatenate([p[k] for p in parts]) for k in range(5))
    order = np.lexsort((cols[0], cols[1]))
    return tuple(c[order] for c in cols)
