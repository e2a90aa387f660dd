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


class EventLog:
    """Per-chunk buffers the kernels append sampled customers' events to, drained daily."""

    def __init__(self, n: int, n_chunks: int, n_channels: int, sample: int, key):
        sample = min(int(sample), n)
        gen = np.random.Generator(np.random.Philox(key=int(key)))
        chosen = np.sort(gen.choice(n, size=sample, replace=False)) if sample else np.zeros(0, int)
        mask = np.zeros(n, np.uint8)
        mask[chosen] = 1
        per_chunk = np.bincount(chosen // CHUNK, minlength=n_chunks)
        # a customer's day has at most one touch per channel, two orders and a churn
        cap = int(per_chunk.max(initial=0)) * (n_channels + 4)
        self.sample = sample
        self.buffers = (mask, np.zeros((n_chunks, cap), np.int64), np.zeros((n_chunks, cap), np.int32),
                        np.zeros((n_chunks, cap), np.int8), np.zeros((n_chunks, cap), np.int16),
                        np.zeros((n_chunks, cap), np.float64), np.zeros(n_chunks, np.int64))
        self.parts: list[tuple[np.ndarray, ...]] = []

    def collect(self, log: tuple) -> None:
        counts = log[L_COUNT]
        if counts.sum() == 0:
            return
        rows = [np.concatenate([log[k][ch, : counts[ch]] for ch in range(len(counts))])
                for k in COLUMNS]
        self.parts.append(tuple(rows))

    def columns(self) -> tuple[np.ndarray, ...]:
        """customer, day, kind, channel, amount, in the order the events happened."""
        if not self.parts:
            return (np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int8),
                    np.zeros(0, np.int16), np.zeros(0, np.float64))
        cols = tuple(np.concatenate([p[k] for p in self.parts]) for k in range(5))
        order = np.lexsort((cols[0], cols[1]))  # by day, then customer; stable within a customer
        return tuple(c[order] for c in cols)
