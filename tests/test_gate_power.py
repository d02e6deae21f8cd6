"""tools/gate_power.py: its injected slowdown is what it claims, and one simulated gate tells A/A from A/B."""

import importlib.util
import time
from pathlib import Path

import pytest

from reports import gate_stats as gs

_spec = importlib.util.spec_from_file_location("gate_power", Path(__file__).resolve().parents[1] / "tools" / "gate_power.py")
gate_power = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gate_power)

# Real wall-clock timings decide these: run alone, never beside parallel workers (run.sh test).
pytestmark = pytest.mark.timing


def test_injected_slowdown_adds_the_requested_busy_time():
    base = lambda: gate_power.busy_wait(0.002)  # noqa: E731
    slower = gate_power.slowed(base, 0.0004)
    ratio = gate_power.median_call_s(slower, 9) / gate_power.median_call_s(base, 9)
    assert ratio == pytest.approx(1.2, abs=0.05)


def test_simulated_gate_passes_a_over_a_and_fails_a_over_slower_a():
    base = lambda: gate_power.busy_wait(0.001)  # noqa: E731
    config = gs.GateConfig()
    resolution = time.get_clock_info("perf_counter").resolution
    same = gate_power.simulated_gate(base, base, 10, 3, resolution, config)
    assert same["final"] != gs.REGRESSION  # PASS, or INVALID if this machine is badly overloaded
    slower = gate_power.simulated_gate(base, gate_power.slowed(base, 0.0003), 10, 3, resolution, config)
    assert (slower["first"], slower["final"]) == (gs.REGRESSION, gs.REGRESSION)
    assert slower["slowdown"] == pytest.approx(0.3, abs=0.1)


def test_rates_carry_a_clopper_pearson_interval():
    r = gate_power.rate(0, 50)
    assert r["rate"] == 0 and r["ci95"][0] == 0 and r["ci95"][1] == pytest.approx(0.0711, abs=1e-3)
    summary = gate_power.summarise([{"first": gs.REGRESSION, "final": gs.PASS, "slowdown": 0.06, "cv": 0.1},
                                    {"first": gs.PASS, "final": gs.PASS, "slowdown": 0.0, "cv": 0.2}])
    assert summary["regression"]["count"] == 0 and summary["regression_before_remeasure"]["count"] == 1


def test_real_mode_side_python_injects_the_slowdown_only_where_asked(tmp_path):
    plain, slower = gate_power.side_python(tmp_path, "a", 0.0), gate_power.side_python(tmp_path, "b", 0.1)
    probe = ("from benchmarks.workload import BuildOptions, Combination, get_backend\n"
             "w = get_backend('torch').build_workload(Combination('resnet_tiny', 'torch', 'cpu', 1, 'float32'), BuildOptions(threads=1))\n"
             "print(type(get_backend('torch')).__name__, w.run.__name__)")
    import subprocess
    out = [subprocess.run([str(side), "-c", probe], cwd=gate_power.ROOT, capture_output=True, text=True, check=True).stdout.split()
           for side in (plain, slower)]
    assert out[0] == ["module", "run"]  # the baseline side is untouched
    assert out[1] == ["_SlowedBackend", "run_slower"]


def test_injected_busy_wait_is_the_fraction_of_the_median_step():
    import types

    spec = importlib.util.spec_from_file_location("inject", Path(gate_power.INJECT) / "sitecustomize.py")
    inject = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(inject)
    inject.FRACTION = 0.5
    waits, now = [], [0.0]
    inject._busy_wait = waits.append
    inject.time = types.SimpleNamespace(perf_counter=lambda: now[0])  # a step takes exactly 4 ms of this clock

    def step():
        now[0] += 0.004

    workload = inject._slowed(types.SimpleNamespace(run=step))
    workload.run()
    assert waits == [pytest.approx(0.002)]
