"""One progress bar for the command line: days of a run, runs of a sweep."""

from __future__ import annotations

import time

from rich.console import Console


class ProgressBar:
    """A rich progress bar with the time left, shown once ``delay`` seconds have passed
    (a run shorter than that prints nothing). Call it with (done, total); close it."""

    def __init__(self, console: Console, label: str, unit: str, enabled: bool = True,
                 delay: float = 0.0):
        self.console = console
        self.label = label
        self.unit = unit
        self.enabled = enabled
        self.delay = delay
        self.start = time.perf_counter()
        self.bar = None
        self.task = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if time.perf_counter() - self.start < self.delay:
                return
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TextColumn(self.unit), TimeElapsedColumn(),
                                TextColumn("left"), TimeRemainingColumn(),
                                console=self.console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total, completed=done)
            return
        self.bar.update(self.task, completed=done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
