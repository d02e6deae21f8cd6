"""Progress lines for long calls (an epoch, an evaluation pass), shown even while pytest captures output.

`Progress` rewrites one terminal line at most twice a second: `resnet50-torch-...-train@cifar10
epoch 2: 37/390 batches, 812 img/s, data wait 12%`, and ends it with a newline. The writer
is stderr by default; the benchmark conftest installs one that suspends pytest's capture
for the write (`set_writer`), so the line reaches the terminal as the run goes.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

_writer: Callable[[str], None] | None = None


def set_writer(writer: Callable[[str], None] | None) -> None:
    """Where progress text goes (None: standard error)."""
    global _writer
    _writer = writer


def _write(text: str) -> None:
    if _writer is not None:
        _writer(text)
    else:
        sys.stderr.write(text)
        sys.stderr.flush()


class Progress:
    """One updating line for `total` batches of one call labelled `label`."""

    def __init__(self, label: str, total: int, interval_s: float = 0.5, clock: Callable[[], float] = time.perf_counter) -> None:
        self.label = label
        self.total = total
        self.interval_s = interval_s
        self.clock = clock
        self.start = clock()
        self._last = float("-inf")

    def line(self, done: int, images: int, wait_s: float) -> str:
        """The text of the line after `done` batches and `images` images, `wait_s` of it waiting for data."""
        elapsed = max(self.clock() - self.start, 1e-9)
        return (f"{self.label}: {done}/{self.total} batches, {images / elapsed:.0f} img/s, "
                f"data wait {wait_s / elapsed:.0%}")

    def update(self, done: int, images: int, wait_s: float) -> None:
        """Redraw the line if `interval_s` passed since the last redraw (and always on the last batch)."""
        now = self.clock()
        if done < self.total and now - self._last < self.interval_s:
            return
        self._last = now
        _write("\r" + self.line(done, images, wait_s))

    def close(self, done: int, images: int, wait_s: float) -> None:
        """The final figures and a newline."""
        _write("\r" + self.line(done, images, wait_s) + "\n")
