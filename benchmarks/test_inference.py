"""Forward-pass benchmarks, one per combination of the matrix (see conftest.py).

Framework-neutral: every combination is a `Workload` from its back end.
"""

import pytest

from benchmarks.runner import MeasurementSkipped
from reports.summary import SUMMARY_FIELDS


def test_forward(benchmark, bench_run, combo, request):
    benchmark.group = f"{combo.model}-{combo.device}-bs{combo.batch_size}-{combo.dtype}" + ("" if combo.mode == "inference" else f"-{combo.mode}")
    try:
        record = bench_run.measure(benchmark, combo)
    except MeasurementSkipped as exc:
        pytest.skip(str(exc))
    if record:
        request.node.user_properties.append(
            ("visionbench_record", {key: record.get(key) for key in SUMMARY_FIELDS})
        )
