"""Interleaved rounds for a fair torch-vs-JAX ratio (`--interleave`), over the gate's statistics.

In a benchmark with a partner (the same combination in the other framework), the partner's
call runs before the timed call in even rounds and after it in odd ones (pytest-benchmark's
untimed `setup` and `teardown`), so the two frameworks alternate A B, B A, ... like the
gate's rounds and a machine's drift lands on both alike. Per round the log of the ratio of
the two calls (`reports.gate_stats.log_ratios`); the record carries their median as the
throughput ratio torch / JAX with a bootstrap 95% interval (`median_ratio_interval`).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from reports.gate_stats import log_ratios, median_ratio_interval


class PartnerRounds:
    """The partner's calls for pytest-benchmark's `pedantic`: before the timed call in even rounds, after it in odd ones."""

    def __init__(self, partner_run: Callable[[], Any], timer: Callable[[], float] = time.perf_counter) -> None:
        self._run = partner_run
        self._timer = timer
        self._round = 0
        self.samples_s: list[float] = []

    def _call(self) -> None:
        start = self._timer()
        self._run()
        self.samples_s.append(self._timer() - start)

    def setup(self) -> None:
        """pedantic's setup: the partner goes first in even rounds."""
        if self._round % 2 == 0:
            self._call()

    def teardown(self, *args: Any, **kwargs: Any) -> None:
        """pedantic's teardown: the partner goes second in odd rounds."""
        if self._round % 2 == 1:
            self._call()
        self._round += 1


def torch_over_jax(torch_samples_s: Sequence[float], jax_samples_s: Sequence[float]) -> dict[str, Any]:
    """Throughput ratio torch / JAX from paired per-round call times: median, 95% interval, whether it excludes 1."""
    # log(JAX time / torch time) per round: the log of torch img/s over JAX img/s.
    d = log_ratios([[t] for t in torch_samples_s], [[j] for j in jax_samples_s])
    ratio, low, high = median_ratio_interval(d)
    return {
        "ratio_torch_over_jax": ratio,
        "ratio_ci95": [low, high],
        "ratio_rounds": len(d),
        "ratio_excludes_1": bool(low > 1.0 or high < 1.0),
        "ratio_log_rounds": [float(x) for x in d],
    }
