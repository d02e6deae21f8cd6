"""Latency statistics and validity verdicts, on plain numbers."""

import math

import numpy as np
import pytest

from benchmarks import stats


def test_percentiles_of_known_samples():
    samples_s = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    summary = stats.latency_summary(samples_s, batch_size=4)
    assert summary["latency_p50_ms"] == pytest.approx(50.5)
    assert summary["latency_p90_ms"] == pytest.approx(90.1)
    assert summary["latency_p95_ms"] == pytest.approx(95.05)
    assert summary["latency_p99_ms"] == pytest.approx(99.01)
    assert summary["latency_min_ms"] == pytest.approx(1.0)
    assert summary["latency_max_ms"] == pytest.approx(100.0)
    assert summary["latency_mean_ms"] == pytest.approx(50.5)
    assert summary["n_samples"] == 100


def test_throughput_is_batch_over_median():
    summary = stats.latency_summary([0.010, 0.020, 0.030], batch_size=8)
    assert summary["throughput_ips"] == pytest.approx(8 / 0.020)


def test_std_and_cv_use_sample_standard_deviation():
    summary = stats.latency_summary([0.001, 0.003], batch_size=1)
    assert summary["latency_std_ms"] == pytest.approx(math.sqrt(2))
    assert summary["latency_cv"] == pytest.approx(math.sqrt(2) / 2)


@pytest.mark.parametrize("bad", [[], [0.0, 0.1], [-0.1, 0.1], [float("nan"), 0.1], [float("inf")]])
def test_bad_samples_are_rejected(bad):
    with pytest.raises(ValueError):
        stats.latency_summary(bad, batch_size=1)


def test_steady_samples_are_valid():
    rng = np.random.default_rng(0)
    samples = list(0.05 * (1 + 0.01 * rng.standard_normal(20)))
    assert stats.validity(samples, resolution_s=1e-9) == []


def test_too_few_samples_are_invalid():
    (reason,) = stats.validity([0.05, 0.05], resolution_s=1e-9)
    assert "only 2 samples" in reason


def test_noisy_samples_are_invalid():
    (reason,) = stats.validity([0.01, 0.05, 0.01, 0.05], resolution_s=1e-9)
    assert "coefficient of variation" in reason


def test_calls_near_timer_resolution_are_invalid():
    (reason,) = stats.validity([2e-6, 2e-6, 2e-6], resolution_s=1e-8)
    assert "timer ticks" in reason
