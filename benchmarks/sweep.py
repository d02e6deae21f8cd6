"""`--batch-sizes auto`: double the batch from 1 until out of memory or until throughput stops improving.

The matrix holds every power of two up to a ceiling; this module decides, per model x
framework x device x dtype x size x mode x config (a *line*), when the line stops, so the
larger batches skip with the reason. Each measured point is its own record; the sweep's
summary (largest batch that fit, best throughput and its batch) goes into the JSON.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from reports.vocabulary import Combination

MIN_GAIN = 0.05  # a doubling that adds less than 5% img/s ends the line
CEILING = {"cpu": 256, "cuda": 4096}  # largest batch tried; an OOM usually ends the line first


def auto_batch_sizes(device: str) -> list[int]:
    """The powers of two from 1 up to the device's ceiling."""
    sizes, batch = [], 1
    while batch <= CEILING.get(device, CEILING["cuda"]):
        sizes.append(batch)
        batch *= 2
    return sizes


def line_of(combo: Combination) -> Combination:
    """The sweep line `combo` belongs to: the combination without its batch size."""
    return dataclasses.replace(combo, batch_size=0)


@dataclasses.dataclass
class Line:
    """One line's progress: the best point so far and why it stopped, if it did."""

    best_ips: float = 0.0
    best_batch: int | None = None
    largest_fit: int | None = None
    stopped: str | None = None


@dataclasses.dataclass
class Sweep:
    """Every line of a run; `reason_to_skip` before a point, `record_*` after it."""

    lines: dict[Combination, Line] = dataclasses.field(default_factory=dict)

    def reason_to_skip(self, combo: Combination) -> str | None:
        """Why `combo` is past the end of its line, or None if it should run."""
        line = self.lines.get(line_of(combo))
        if line is None or line.stopped is None:
            return None
        return f"batch sweep of {line_of(combo).id.replace('-bs0', '')} ended: {line.stopped}"

    def record_measured(self, combo: Combination, throughput_ips: float) -> None:
        """A point was measured: extend the line, or end it when the doubling gained under MIN_GAIN."""
        line = self.lines.setdefault(line_of(combo), Line())
        line.largest_fit = max(line.largest_fit or 0, combo.batch_size)
        if line.best_batch is not None and throughput_ips < line.best_ips * (1 + MIN_GAIN):
            line.stopped = (f"bs{combo.batch_size} gave {throughput_ips:,.1f} img/s, under {1 + MIN_GAIN:.2f}x the best "
                            f"({line.best_ips:,.1f} img/s at bs{line.best_batch})")
        if throughput_ips > line.best_ips:
            line.best_ips, line.best_batch = throughput_ips, combo.batch_size

    def record_failed(self, combo: Combination, reason: str) -> None:
        """A point ran out of memory or failed: the line ends there."""
        line = self.lines.setdefault(line_of(combo), Line())
        line.stopped = f"bs{combo.batch_size} failed: {reason}"

    def summary(self) -> list[dict[str, Any]]:
        """One entry per line: largest batch that fit, best throughput and its batch, why it stopped."""
        return [
            {"line": key.id.replace("-bs0", ""), "largest_batch_fit": line.largest_fit, "best_batch": line.best_batch,
             "best_throughput_ips": line.best_ips or None, "stopped": line.stopped or "reached the ceiling"}
            for key, line in self.lines.items()
        ]
