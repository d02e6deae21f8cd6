"""Build the `extra_info` record of one combination, per reports/schema.py."""

from __future__ import annotations

import os
import platform
import resource
import sys
from typing import Any, Sequence

import numpy as np
import psutil

from benchmarks import stats
from benchmarks.workload import Combination, Workload
from models.registry import get_spec
from reports.peaks import utilisation
from reports.schema import SCHEMA_NAME, SCHEMA_VERSION
from reports.vocabulary import SYNTHETIC_DATA

_MiB = 2**20


def _identity(combo: Combination, device_name: str) -> dict[str, Any]:
    spec = get_spec(combo.model)
    return {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "id": combo.id,
        "model": combo.model,
        "family": spec.family,
        "framework": combo.framework,
        "device": combo.device,
        "device_name": device_name,
        "batch_size": combo.batch_size,
        "dtype": combo.dtype,
        "mode": combo.mode,
        "input_size": combo.input_size or spec.input_size,
        "config": combo.config,
        "data": combo.data or SYNTHETIC_DATA,
    }


def process_memory() -> dict[str, float]:
    """Resident set size now and the process's lifetime peak, in MiB."""
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"rss_mb": psutil.Process().memory_info().rss / _MiB, "rss_peak_mb": peak_kib / 1024, "pid": os.getpid()}


def make_record(
    workload: Workload,
    samples_s: Sequence[float],
    first_call_ms: float,
    versions: dict[str, str],
    parity: dict[str, Any],
) -> dict[str, Any]:
    """The full record of a measured combination."""
    combo = workload.combo
    reasons = stats.validity(samples_s)
    median_s = float(np.median(samples_s)) if len(samples_s) else None
    efficiency = utilisation(workload.flops, median_s, workload.device_name, combo.dtype, bool(workload.extra.get("tf32")))
    record = _identity(combo, workload.device_name)
    record.update(
        status="ok",
        input_shape=list(workload.input_shape),
        params=workload.params,
        flops=workload.flops,
        flops_source=workload.flops_source,
        macs_per_image=get_spec(combo.model).macs,
        weights=workload.weights,
        threads=workload.threads,
        compile_ms=workload.compile_ms,
        compile_warm_ms=workload.compile_warm_ms,
        first_call_ms=first_call_ms,
        **stats.latency_summary(samples_s, workload.images_per_call or combo.batch_size),
        **efficiency,
        samples_ms=[round(s * 1e3, 6) for s in samples_s],
        timer_resolution_s=stats.timer_resolution_s(),
        **workload.memory(),
        **process_memory(),
        versions={**versions, "python": platform.python_version(), "numpy": np.__version__},
        parity=parity,
        valid=not reasons,
        validity_reasons=reasons,
        **workload.extra,
        **workload.timed_extra(),
    )
    return record


def make_failure_record(combo: Combination, device_name: str, status: str, reason: str) -> dict[str, Any]:
    """The record of a combination that could not be measured, with its reason."""
    record = _identity(combo, device_name)
    record.update(status=status, reason=reason, python=sys.version.split()[0])
    return record
