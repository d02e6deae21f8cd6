"""The benchmark record schema: each figure's name, unit and better direction, defined once.

A record is one pytest-benchmark entry; the suite's own fields live in its `extra_info`.
Writers (`benchmarks/`) and readers (`reports/`) both use this module, which imports
neither torch nor jax.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

SCHEMA_VERSION = 1
SCHEMA_NAME = "visionbench.record"
# Versions `reports` can read; a file of any other version is refused, never guessed at.
SUPPORTED_SCHEMA_VERSIONS = (1,)

Better = Literal["lower", "higher", "equal"]
Bound = Literal["two_sided", "upper"]


@dataclasses.dataclass(frozen=True)
class Metric:
    """One figure of a record: its unit, which direction is better, and whether it is a timing.

    Timings vary between runs and machines and are never gated against a stored baseline;
    deterministic figures (`deterministic=True`) are compared to the baseline's value within
    `max(rel_tol * |baseline|, abs_tol)`: on both sides (`bound="two_sided"`), or only
    above it (`bound="upper"`, a figure that may improve freely).
    """

    unit: str
    better: Better
    description: str
    deterministic: bool = False
    rel_tol: float = 0.0
    abs_tol: float = 0.0
    bound: Bound = "two_sided"

    def within(self, baseline: float, current: float) -> bool:
        """Whether `current` is close enough to `baseline` for this figure."""
        slack = max(self.rel_tol * abs(baseline), self.abs_tol)
        if self.bound == "upper":
            return current <= baseline + slack
        return abs(current - baseline) <= slack


METRICS: dict[str, Metric] = {
    "latency_p50_ms": Metric("ms", "lower", "median wall time of one synchronised call"),
    "latency_p90_ms": Metric("ms", "lower", "90th percentile of per-call wall time"),
    "latency_p95_ms": Metric("ms", "lower", "95th percentile of per-call wall time"),
    "latency_p99_ms": Metric("ms", "lower", "99th percentile of per-call wall time"),
    "latency_mean_ms": Metric("ms", "lower", "mean per-call wall time"),
    "latency_std_ms": Metric("ms", "lower", "standard deviation of per-call wall time"),
    "latency_min_ms": Metric("ms", "lower", "fastest call"),
    "latency_max_ms": Metric("ms", "lower", "slowest call"),
    "latency_cv": Metric("ratio", "lower", "coefficient of variation of per-call time"),
    "throughput_ips": Metric("img/s", "higher", "batch size / median call time"),
    "compile_ms": Metric("ms", "lower", "cold compile (jit lower+compile, or first torch.compile call)"),
    "compile_warm_ms": Metric("ms", "lower", "the same compile again in the same process"),
    "first_call_ms": Metric("ms", "lower", "first call after build, untimed by the benchmark"),
    "torch_cuda_allocated_peak_mb": Metric("MiB", "lower", "torch.cuda.max_memory_allocated during the test"),
    "torch_cuda_reserved_peak_mb": Metric("MiB", "lower", "torch.cuda.max_memory_reserved during the test"),
    "jax_device_peak_mb": Metric("MiB", "lower", "JAX device memory_stats peak_bytes_in_use (process lifetime)"),
    "xla_argument_mb": Metric("MiB", "lower", "XLA buffer assignment: the compiled program's argument buffers"),
    "xla_output_mb": Metric("MiB", "lower", "XLA buffer assignment: the compiled program's output buffers"),
    "xla_temp_mb": Metric("MiB", "lower", "XLA buffer assignment: the compiled program's temporary buffers"),
    "rss_mb": Metric("MiB", "lower", "process resident set size after the test"),
    "rss_peak_mb": Metric("MiB", "lower", "process peak resident set size (process lifetime)"),
    "params": Metric("count", "equal", "parameters of the model", deterministic=True),
    "trainable_params": Metric("count", "equal", "parameters a train step trains (after --freeze)", deterministic=True),
    "flops": Metric("FLOP", "lower", "floating-point operations of one forward of the batch, 2 per multiply-add", deterministic=True, rel_tol=0.02),
    # Float rounding differs between CPUs and library builds, so the bound is loose (10x the
    # baseline, at least 1e-5) yet far below what a broken port gives (1e-2 and up).
    "parity_max_abs": Metric("abs", "lower", "max |torch - flax| of the logits", deterministic=True,
                             rel_tol=9.0, abs_tol=1e-5, bound="upper"),
}

# Timings every "ok" record carries; each must be a finite number > 0.
TIMING_FIELDS = (
    "latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms",
    "latency_mean_ms", "latency_min_ms", "latency_max_ms", "throughput_ips",
)
# Spreads of an "ok" record; each must be a finite number >= 0.
SPREAD_FIELDS = ("latency_std_ms", "latency_cv")

# The peak-memory figure a report shows, first present wins: the accelerator's own peak,
# else the process's peak resident set (CPU runs).
PEAK_MEMORY_FIELDS = ("torch_cuda_allocated_peak_mb", "jax_device_peak_mb", "rss_peak_mb")
# A JAX program's own buffers (XLA memory_analysis); on an accelerator their sum is shown
# before jax_device_peak_mb, which is a process-lifetime peak.
XLA_PROGRAM_FIELDS = ("xla_argument_mb", "xla_output_mb", "xla_temp_mb")

# Identity of a record: one per combination. `data` is the dataset's name ("synthetic" for
# synthetic tensors, and in records written before datasets existed).
KEY_FIELDS = ("model", "framework", "device", "batch_size", "dtype", "mode", "input_size", "config", "data")

# Every record's extra_info has these; a file whose records lack them is not ours.
REQUIRED_FIELDS = (
    "schema",
    "schema_version",
    *(f for f in KEY_FIELDS if f not in ("input_size", "config", "data")),  # absent from records before they existed
    "family",
    "device_name",
    "status",
)

# Record statuses. Only "ok" records carry timings.
STATUSES = ("ok", "error", "oom", "unsupported")

# Parity statuses carried in `parity.status`.
PARITY_STATUSES = ("passed", "failed", "not_checked", "not_applicable")

# When timings cannot be trusted, for a record (benchmarks/stats.py) and the gate alike:
# a coefficient of variation above MAX_CV, or a call shorter than MIN_TICKS timer ticks.
MAX_CV = 0.20
MIN_TICKS = 1000
