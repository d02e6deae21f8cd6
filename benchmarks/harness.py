"""Measure one combination: build its workload, call it once, warm it up untimed, time it, keep the record.

The pytest benchmarks time with pytest-benchmark's `benchmark` fixture (`BenchRun.measure`);
the seeds' runner (benchmarks/runner.py) times the same steps with a plain perf_counter
loop (`BenchRun.measure_loop`), pytest-benchmark's own timer. Everything else, the
workload, the warm-up, the statistics and the record, is shared.

A failure is a record, not a crash: an out-of-memory or a broken build is written to
`failures` (saved into the JSON by the conftest hook, or as a row by the runner) and the
run goes on.
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
from typing import Any, Callable

from benchmarks.interleave import PartnerRounds, torch_over_jax
from benchmarks.record import make_failure_record, make_record
from benchmarks.workload import BuildOptions, Combination, Workload, backend_importable, get_backend
from reports.vocabulary import REFERENCE_FRAMEWORK, reads_whole_split

# Accuracy parity on a dataset, float32: the port's top-1 within this many percentage points of torch's.
ACCURACY_TOLERANCE_PP = 0.1


class MeasurementSkipped(Exception):
    """The combination could not be measured for a recorded, expected reason (e.g. OOM)."""


def share_gpu_with_torch() -> None:
    """Keep JAX from taking 75% of the GPU at start: torch and JAX share it in one process.

    Must run before JAX starts.
    """
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def unsupported_reason(combo: Combination) -> str | None:
    """Why `combo` cannot run here (a size the model cannot take, framework not installed, device absent, ...); None if it can."""
    from models.registry import get_family, get_spec

    spec = get_spec(combo.model)
    size_reason = get_family(spec.family).size_reason(spec, combo.input_size or spec.input_size)
    return size_reason or backend_importable(combo.framework) or get_backend(combo.framework).unsupported_reason(combo)


def timed_calls(run: Callable[[], Any], rounds: int) -> list[float]:
    """Wall time in seconds of each of `rounds` calls of `run`, which returns when the device is done."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return samples


@dataclasses.dataclass
class BenchRun:
    """Settings and accumulated failures of one benchmark run."""

    options: BuildOptions
    rounds: int
    warmup: int
    parity_check: Callable[[Combination, BuildOptions], dict[str, Any]] | None = None
    failures: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # --interleave: the frameworks of the run; each benchmark alternates its calls with the
    # same combination in the other framework (benchmarks/interleave.py). Empty: off.
    interleave_frameworks: tuple[str, ...] = ()
    _built: dict[str, tuple[Workload, float]] = dataclasses.field(default_factory=dict)  # id -> (workload, first call ms)
    _top1: dict[str, float] = dataclasses.field(default_factory=dict)  # reference evaluations' top-1 by id
    # --isolate: measures a combination in a fresh process, returning (pytest-benchmark entry
    # or None, failure records) (benchmarks/isolate.py). None: measure here.
    isolated: Callable[[Combination], tuple[dict[str, Any] | None, list[dict[str, Any]]]] | None = None

    def versions(self, framework: str) -> dict[str, str]:
        """The framework's versions."""
        return get_backend(framework).versions()

    def parity(self, combo: Combination) -> dict[str, Any]:
        """Parity status of `combo`'s model against torch; torch records need none.

        An evaluation pass gets accuracy parity instead, once its accuracy is known (`_accuracy_parity`).
        """
        if combo.framework == REFERENCE_FRAMEWORK:
            return {"status": "not_applicable"}
        if combo.mode == "eval":
            return {"status": "not_checked", "reason": f"no {REFERENCE_FRAMEWORK} evaluation of the same combination in this run"}
        if self.parity_check is None:
            return {"status": "not_checked", "reason": "parity check disabled"}
        return self.parity_check(combo, self.options)

    def _accuracy_parity(self, combo: Combination, record: dict[str, Any]) -> None:
        """Keep a reference evaluation's top-1; give another framework's the difference to it (pp) and the verdict."""
        if combo.framework == REFERENCE_FRAMEWORK:
            self._top1[combo.id] = record["top1"]
            return
        reference = self._top1.get(dataclasses.replace(combo, framework=REFERENCE_FRAMEWORK).id)
        if reference is None or record["top1"] is None:
            return
        diff = record["top1"] - reference
        record["accuracy_diff_to_torch"] = diff
        tolerance = ACCURACY_TOLERANCE_PP if combo.dtype == "float32" else None
        record["parity"] = {
            "check": "accuracy",
            "status": "passed" if tolerance is None or abs(diff) <= tolerance else "failed",
            "top1_diff_pp": diff,
            "tolerance_pp": tolerance,
            "reference_top1": reference,
            "images": record.get("eval_images"),
        }

    def build(self, combo: Combination) -> Workload:
        """Build `combo`'s workload, turning a failure into a record first."""
        backend = get_backend(combo.framework)
        try:
            return backend.build_workload(combo, self.options)
        except Exception as exc:
            self._record_failure(combo, exc, "build")
            raise

    def measure(self, benchmark: Any, combo: Combination) -> dict[str, Any]:
        """Time `combo` with pytest-benchmark's `benchmark` fixture and attach the record.

        With a partner (--interleave), the partner's calls alternate with the timed ones
        through pedantic's untimed setup/teardown, and the record carries the ratio.
        """
        if self.isolated is not None:
            return self._measure_isolated(benchmark, combo)
        partner = self._partner(combo)
        rounds = PartnerRounds(partner.run) if partner is not None else None

        def time_with_benchmark(workload: Workload) -> list[float] | None:
            hooks = {"setup": rounds.setup, "teardown": rounds.teardown} if rounds is not None else {}
            benchmark.pedantic(workload.run, rounds=self.rounds_of(combo), iterations=1, warmup_rounds=0, **hooks)
            # --benchmark-disable: ran once as a test, nothing to record
            return list(benchmark.stats.stats.data) if benchmark.enabled else None

        record = self._measure(combo, time_with_benchmark)
        if record and rounds is not None:
            record.update(self._ratio(combo, record, rounds.samples_s))
        benchmark.extra_info.update(record)
        return record

    def _measure_isolated(self, benchmark: Any, combo: Combination) -> dict[str, Any]:
        """`combo` measured by a fresh process; its samples and record adopted by `benchmark`."""
        from benchmarks.isolate import IsolatedFailure, adopt

        assert self.isolated is not None
        entry, failures = self.isolated(combo)
        self.failures.extend(failures)
        if entry is not None:
            return adopt(benchmark, entry)
        if not failures:  # --benchmark-disable: the child ran it once as a test, nothing to record
            return {}
        if failures[0]["status"] == "oom":
            raise MeasurementSkipped(f"out of memory: {failures[0]['reason']}")
        raise IsolatedFailure(f"in the isolated process: {failures[0]['reason']}")

    def _partner(self, combo: Combination) -> Workload | None:
        """The other framework's workload of `combo` when interleaving (built once per pair), else None."""
        others = [f for f in self.interleave_frameworks if f != combo.framework]
        if not others:
            return None
        partner = dataclasses.replace(combo, framework=others[0])
        if unsupported_reason(partner) is not None:
            return None
        for key in [k for k in self._built if k not in (combo.id, partner.id)]:
            del self._built[key]  # the previous pair's workloads: free their memory
        if partner.id not in self._built:
            try:
                self._built[partner.id] = self._warm(get_backend(partner.framework).build_workload(partner, self.options))
            except Exception:  # the partner's own benchmark records its failure; this one runs alone
                return None
        return self._built[partner.id][0]

    def rounds_of(self, combo: Combination) -> int:
        """Timed calls of `combo`: --rounds, or on a dataset --epochs (each call is an epoch or an evaluation pass)."""
        return self.options.data.epochs if reads_whole_split(combo) and self.options.data is not None else self.rounds

    def warmup_of(self, combo: Combination) -> int:
        """Untimed calls after the first: --warmup; none on a dataset (the first call warmed the step on one batch)."""
        return 0 if reads_whole_split(combo) else self.warmup

    def _warm(self, workload: Workload) -> tuple[Workload, float]:
        start = time.perf_counter()
        workload.run()  # first call: never timed as a sample
        first_call_ms = (time.perf_counter() - start) * 1e3
        for _ in range(self.warmup_of(workload.combo)):
            workload.run()
        return workload, first_call_ms

    def _ratio(self, combo: Combination, record: dict[str, Any], partner_samples_s: list[float]) -> dict[str, Any]:
        own = [s / 1e3 for s in record["samples_ms"]]
        torch_s, jax_s = (own, partner_samples_s) if combo.framework == "torch" else (partner_samples_s, own)
        out: dict[str, Any] = {"interleaved": True, "partner_samples_ms": [round(s * 1e3, 6) for s in partner_samples_s]}
        try:
            out.update(torch_over_jax(torch_s, jax_s))
        except ValueError as exc:  # fewer than two rounds: no interval
            out["ratio_reason"] = str(exc)
        return out

    def measure_loop(self, combo: Combination) -> dict[str, Any]:
        """Time `combo` with a plain perf_counter loop (no pytest) and return its record."""
        return self._measure(combo, lambda workload: timed_calls(workload.run, self.rounds_of(combo)))

    def _measure(self, combo: Combination, time_calls: Callable[[Workload], list[float] | None]) -> dict[str, Any]:
        reused = self._built.get(combo.id)  # built as the partner of the previous benchmark
        workload = reused[0] if reused is not None else self.build(combo)
        try:
            if reused is not None:
                first_call_ms = reused[1]
                if workload.restart is not None:  # it stepped as a partner: back to its first step
                    workload.restart()
                    workload.run()
                for _ in range(self.warmup_of(combo)):
                    workload.run()
            else:
                workload, first_call_ms = self._warm(workload)
            if self.interleave_frameworks:
                self._built[combo.id] = (workload, first_call_ms)
            workload.reset_memory()
            samples = time_calls(workload)
        except Exception as exc:
            self._record_failure(combo, exc, "run", workload.device_name)
            raise
        if samples is None:
            return {}
        record = make_record(workload, samples, first_call_ms, self.versions(combo.framework), self.parity(combo))
        if "top1" in record:
            self._accuracy_parity(combo, record)
        return record

    def _record_failure(self, combo: Combination, exc: Exception, stage: str, device_name: str = "") -> None:
        backend = get_backend(combo.framework)
        oom = backend.is_out_of_memory(exc)
        status = "oom" if oom else "error"
        reason = f"{stage}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
        name = device_name or safe_device_name(combo.framework, combo.device)
        record = make_failure_record(combo, name, status, reason)
        if not oom:
            record["traceback"] = traceback.format_exc(limit=8)
        self.failures.append(record)
        if oom:
            raise MeasurementSkipped(f"out of memory: {reason}") from exc


def safe_device_name(framework: str, device: str) -> str:
    """The device's name as `framework` reports it, else `device` itself."""
    try:
        return get_backend(framework).device_name(device)
    except Exception:  # the name is decoration; never let it hide the real failure
        return device
