"""Latency statistics and the validity verdict of a set of per-call samples (no pytest here)."""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from reports.schema import MAX_CV, MIN_TICKS

PERCENTILES = (50, 90, 95, 99)
MIN_SAMPLES = 3


def timer_resolution_s() -> float:
    """The resolution of the clock pytest-benchmark times with (perf_counter)."""
    return time.get_clock_info("perf_counter").resolution


def latency_summary(samples_s: Sequence[float], batch_size: int) -> dict[str, float]:
    """Percentiles, mean, spread and throughput of per-call wall times given in seconds."""
    if len(samples_s) == 0:
        raise ValueError("no samples: at least one timed call is needed")
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    if not np.all(np.isfinite(ms)) or np.any(ms <= 0):
        raise ValueError(f"samples must be finite and positive, got {ms.tolist()}")
    summary = {f"latency_p{p}_ms": float(np.percentile(ms, p)) for p in PERCENTILES}
    mean = float(ms.mean())
    std = float(ms.std(ddof=1)) if len(ms) > 1 else 0.0
    summary.update(
        latency_mean_ms=mean,
        latency_std_ms=std,
        latency_min_ms=float(ms.min()),
        latency_max_ms=float(ms.max()),
        latency_cv=std / mean,
        throughput_ips=batch_size / (summary["latency_p50_ms"] / 1e3),
        n_samples=len(ms),
    )
    return summary


def validity(samples_s: Sequence[float], resolution_s: float | None = None) -> list[str]:
    """Reasons these samples cannot be trusted; an empty list means valid."""
    resolution = timer_resolution_s() if resolution_s is None else resolution_s
    reasons = []
    if len(samples_s) < MIN_SAMPLES:
        reasons.append(f"only {len(samples_s)} samples (need >= {MIN_SAMPLES}; raise --rounds)")
    ms = np.asarray(samples_s, dtype=np.float64)
    if len(ms) > 1:
        cv = float(ms.std(ddof=1) / ms.mean())
        if cv > MAX_CV:
            reasons.append(f"coefficient of variation {cv:.0%} > {MAX_CV:.0%} (noisy machine?)")
    if len(ms) and ms.min() < MIN_TICKS * resolution:
        reasons.append(f"fastest call {ms.min():.2e} s is under {MIN_TICKS} timer ticks of {resolution:.1e} s")
    return reasons
