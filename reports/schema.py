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

Better = Literal["lower", "higher", "equal"]


@dataclasses.dataclass(frozen=True)
class Metric:
    """One figure of a record: its unit, which direction is better, and whether it is a timing.

    Timings vary between runs and machines and are never gated against a stored baseline;
    deterministic figures (`deterministic=True`) are compared exactly or to `rel_tol`.
    """

    unit: str
    better: Better
    description: str
    deterministic: bool = False
    rel_tol: float = 0.0


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
    "rss_mb": Metric("MiB", "lower", "process resident set size after the test"),
    "rss_peak_mb": Metric("MiB", "lower", "process peak resident set size (process lifetime)"),
    "params": Metric("count", "equal", "trainable parameters", deterministic=True),
    "flops": Metric("FLOP", "lower", "floating-point operations of one forward of the batch, 2 per multiply-add", deterministic=True, rel_tol=0.02),
    "parity_max_abs": Metric("abs", "lower", "max |torch - flax| of the logits", deterministic=True),
}

# Identity of a record: one per combination.
KEY_FIELDS = ("model", "framework", "device", "batch_size", "dtype", "mode")

# Every record's extra_info has these; a file whose records lack them is not ours.
REQUIRED_FIELDS = (
    "schema",
    "schema_version",
    *KEY_FIELDS,
    "family",
    "device_name",
    "status",
)

# Record statuses. Only "ok" records carry timings.
STATUSES = ("ok", "error", "oom", "unsupported")

# Parity statuses carried in `parity.status`.
PARITY_STATUSES = ("passed", "failed", "not_checked", "not_applicable")
