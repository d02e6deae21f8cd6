"""Forward-pass benchmarks, one per combination of the matrix (see conftest.py).

Framework-neutral: every combination is a `Workload` from its back end.
"""

import pytest

from benchmarks.harness import MeasurementSkipped
from reports.summary import SUMMARY_FIELDS


def test_forward(benchmark, bench_run, batch_sweep, combo, request):
    benchmark.group = f"{combo.model}-{combo.device}-bs{combo.batch_size}-{combo.dtype}" + ("" if combo.mode == "inference" else f"-{combo.mode}")
    if batch_sweep is not None and (reason := batch_sweep.reason_to_skip(combo)):
        pytest.skip(reason)
    try:
        record = bench_run.measure(benchmark, combo)
    except MeasurementSkipped as exc:
        if batch_sweep is not None:
            batch_sweep.record_failed(combo, str(exc))
        pytest.skip(str(exc))
    except Exception as exc:
        if batch_sweep is not None:
            batch_sweep.record_failed(combo, f"{type(exc).__name__}: {exc}")
        raise
    if batch_sweep is not None and record:
        batch_sweep.record_measured(combo, record["throughput_ips"])
    if record:
        request.node.user_properties.append(
            ("visionbench_record", {key: record.get(key) for key in SUMMARY_FIELDS})
        )
