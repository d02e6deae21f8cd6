"""Put on one side of a real gate by tools/gate_power.py: that side's benchmarks get slower by a known fraction.

Python imports `sitecustomize` at start-up; this one, found first on the side's PYTHONPATH,
wraps `benchmarks.workload.get_backend` once that module is imported, so every workload the
gate worker builds runs its step and then busy-waits VISIONBENCH_INJECT_SLOWDOWN (e.g. 0.10)
x the step's median time, measured right after building. 0 or unset: nothing is changed.
"""

import importlib.util
import os
import statistics
import sys
import time

FRACTION = float(os.environ.get("VISIONBENCH_INJECT_SLOWDOWN") or 0)


def _busy_wait(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _slowed(workload):
    run = workload.run
    for _ in range(3):
        run()
    samples = []
    for _ in range(9):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    extra = FRACTION * statistics.median(samples)

    def run_slower():
        run()
        _busy_wait(extra)

    workload.run = run_slower
    return workload


class _SlowedBackend:
    def __init__(self, backend):
        self._backend = backend

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def build_workload(self, combo, options):
        return _slowed(self._backend.build_workload(combo, options))


class _WrapWorkloadModule:
    """A meta-path finder that patches benchmarks.workload right after it executes."""

    def find_spec(self, name, path, target=None):
        if name != "benchmarks.workload":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            original = module.get_backend
            module.get_backend = lambda framework: _SlowedBackend(original(framework))

        spec.loader.exec_module = exec_module
        return spec


if FRACTION:
    sys.meta_path.insert(0, _WrapWorkloadModule())
