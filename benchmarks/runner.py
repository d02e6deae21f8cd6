"""One benchmark run: build each workload, warm it up untimed, time it, keep every record.

A failure is a record, not a crash: an out-of-memory or a broken build is written to
`failures` (saved into the JSON by the conftest hook) and the run goes on.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from typing import Any, Callable

from benchmarks.record import make_failure_record, make_record
from benchmarks.workload import BuildOptions, Combination, Workload, get_backend


class MeasurementSkipped(Exception):
    """The combination could not be measured for a recorded, expected reason (e.g. OOM)."""


@dataclasses.dataclass
class BenchRun:
    """Settings and accumulated failures of one pytest session's benchmark run."""

    options: BuildOptions
    rounds: int
    warmup: int
    parity_check: Callable[[Combination, BuildOptions], dict[str, Any]] | None = None
    failures: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def versions(self, framework: str) -> dict[str, str]:
        """The framework's versions."""
        return get_backend(framework).versions()

    def parity(self, combo: Combination) -> dict[str, Any]:
        """Parity status of `combo`'s model against torch; torch records need none."""
        if combo.framework == "torch":
            return {"status": "not_applicable"}
        if self.parity_check is None:
            return {"status": "not_checked", "reason": "parity check disabled"}
        return self.parity_check(combo, self.options)

    def build(self, combo: Combination) -> Workload:
        """Build `combo`'s workload, turning a failure into a record first."""
        backend = get_backend(combo.framework)
        try:
            return backend.build_workload(combo, self.options)
        except Exception as exc:
            self._record_failure(combo, exc, "build")
            raise

    def measure(self, benchmark: Any, combo: Combination) -> dict[str, Any]:
        """Time `combo` with pytest-benchmark's `benchmark` fixture and attach the record."""
        workload = self.build(combo)
        try:
            start = time.perf_counter()
            workload.run()  # first call: never timed as a sample
            first_call_ms = (time.perf_counter() - start) * 1e3
            for _ in range(self.warmup):
                workload.run()
            workload.reset_memory()
            benchmark.pedantic(workload.run, rounds=self.rounds, iterations=1, warmup_rounds=0)
        except Exception as exc:
            self._record_failure(combo, exc, "run", workload.device_name)
            raise
        if not benchmark.enabled:  # --benchmark-disable: ran once as a test, nothing to record
            return {}
        samples = list(benchmark.stats.stats.data)
        record = make_record(workload, samples, first_call_ms, self.versions(combo.framework), self.parity(combo))
        benchmark.extra_info.update(record)
        return record

    def _record_failure(self, combo: Combination, exc: Exception, stage: str, device_name: str = "") -> None:
        backend = get_backend(combo.framework)
        oom = backend.is_out_of_memory(exc)
        status = "oom" if oom else "error"
        reason = f"{stage}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
        name = device_name or _safe_device_name(backend, combo.device)
        record = make_failure_record(combo, name, status, reason)
        if not oom:
            record["traceback"] = traceback.format_exc(limit=8)
        self.failures.append(record)
        if oom:
            raise MeasurementSkipped(f"out of memory: {reason}") from exc


def _safe_device_name(backend: Any, device: str) -> str:
    try:
        return backend.device_name(device)
    except Exception:  # the name is decoration; never let it hide the real failure
        return device
