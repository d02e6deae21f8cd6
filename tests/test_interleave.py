"""Interleaved torch-vs-JAX rounds: a known ratio is recovered, and drift biases only the sequential ratio."""

import math
import time

import numpy as np
import pytest

from benchmarks.interleave import PartnerRounds, torch_over_jax
from reports.gate_stats import interleaved_rounds, median_ratio_interval


class DriftingMachine:
    """A fake clock: each call of a side costs its base time x a slowdown that grows with every call made."""

    def __init__(self, drift_per_call: float, noise: float = 0.0, seed: int = 0) -> None:
        self.now = 0.0
        self.calls = 0
        self.drift = drift_per_call
        self.rng = np.random.default_rng(seed)
        self.noise = noise

    def timer(self) -> float:
        return self.now

    def work(self, base_s: float) -> float:
        cost = base_s * (1.0 + self.drift * self.calls) * (1.0 + self.noise * self.rng.standard_normal())
        self.calls += 1
        self.now += cost
        return cost


TORCH_S, JAX_S = 0.010, 0.0125  # torch 1.25x faster


def test_known_ratio_is_inside_the_interval_on_a_noisy_machine():
    machine = DriftingMachine(drift_per_call=0.0, noise=0.03, seed=1)
    torch_t, jax_t = interleaved_rounds(lambda: machine.work(TORCH_S), lambda: machine.work(JAX_S), 30)
    out = torch_over_jax(torch_t, jax_t)
    low, high = out["ratio_ci95"]
    assert low < 1.25 < high and high - low < 0.1
    assert out["ratio_excludes_1"] and out["ratio_rounds"] == 30


def test_drift_biases_the_sequential_ratio_but_not_the_interleaved_one():
    rounds, drift = 20, 0.01  # the machine slows 1% per call: 40 calls end 40% slower
    machine = DriftingMachine(drift)
    torch_t, jax_t = interleaved_rounds(lambda: machine.work(TORCH_S), lambda: machine.work(JAX_S), rounds)
    interleaved = torch_over_jax(torch_t, jax_t)["ratio_torch_over_jax"]

    machine = DriftingMachine(drift)
    torch_seq = [machine.work(TORCH_S) for _ in range(rounds)]  # all torch first, then all JAX: today's order
    jax_seq = [machine.work(JAX_S) for _ in range(rounds)]
    sequential = float(np.median(jax_seq) / np.median(torch_seq))

    assert interleaved == pytest.approx(1.25, rel=0.01)
    assert sequential > 1.25 * 1.15  # the later framework looks >15% slower than it is


def test_partner_rounds_alternate_abba_through_setup_and_teardown():
    order = []
    machine = DriftingMachine(0.0)
    partner = PartnerRounds(lambda: order.append("J") or machine.work(JAX_S), timer=machine.timer)
    for _ in range(4):  # what pytest-benchmark's pedantic does per round: setup, timed call, teardown
        partner.setup()
        order.append("T")
        partner.teardown()
    assert "".join(order) == "JTTJJTTJ"
    assert partner.samples_s == pytest.approx([JAX_S] * 4)


def test_interval_needs_two_rounds_and_is_reproducible():
    with pytest.raises(ValueError, match="at least 2"):
        median_ratio_interval([0.1])
    d = [math.log(1.1), math.log(1.2), math.log(1.15), math.log(1.05)]
    assert median_ratio_interval(d) == median_ratio_interval(d)
    ratio, low, high = median_ratio_interval(d)
    assert low <= ratio <= high and ratio == pytest.approx(math.exp(np.median(d)))


class _SteppingBackend:
    """A fake back end whose workloads are stateful (like a train step): each call advances a step counter."""

    def __init__(self) -> None:
        self.timed_steps: dict[str, list[int]] = {}

    def build_workload(self, combo, options):
        from benchmarks.workload import Workload

        state = {"step": 0}
        steps: list[int] = []

        def run() -> int:
            state["step"] += 1
            steps.append(state["step"])
            return state["step"]

        def start_timing() -> None:
            steps.clear()

        def restart() -> None:
            state["step"] = 0

        self.timed_steps[combo.framework] = steps
        return Workload(combo=combo, run=run, device_name="fake", input_shape=(1,), params=1, flops=1,
                        flops_source="fake", threads=1, reset_memory=start_timing, restart=restart,
                        timed_extra=lambda: {"steps": list(steps)})

    def versions(self) -> dict[str, str]:
        return {}

    def unsupported_reason(self, combo):
        return None

    def is_out_of_memory(self, exc) -> bool:
        return False

    def device_name(self, device: str) -> str:
        return "fake"


class _FakeBenchmark:
    """pytest-benchmark's fixture, as far as `BenchRun.measure` uses it."""

    enabled = True

    def __init__(self) -> None:
        self.extra_info: dict = {}
        self.stats = type("S", (), {"stats": type("D", (), {"data": []})()})()

    def pedantic(self, fn, rounds, iterations, warmup_rounds, setup=None, teardown=None):
        for _ in range(rounds):
            if setup:
                setup()
            start = time.perf_counter()
            fn()
            self.stats.stats.data.append(time.perf_counter() - start)
            if teardown:
                teardown()


@pytest.mark.parametrize("order", [("torch", "jax"), ("jax", "torch")])
def test_a_stateful_partner_is_measured_from_the_same_step_as_a_fresh_workload(monkeypatch, order):
    # A train step that already ran as the other framework's partner restarts from its built
    # state: both frameworks' timed calls are the same steps (first call + warm-up, then timed).
    from benchmarks import harness
    from benchmarks.workload import BuildOptions, Combination

    backend = _SteppingBackend()
    monkeypatch.setattr(harness, "get_backend", lambda framework: backend)
    run = harness.BenchRun(BuildOptions(threads=1), rounds=4, warmup=2, interleave_frameworks=("torch", "jax"))
    records = {}
    for framework in order:
        combo = Combination("resnet_tiny", framework, "cpu", 2, "float32", "train")
        records[framework] = run.measure(_FakeBenchmark(), combo)
    assert records["torch"]["steps"] == records["jax"]["steps"] == [4, 5, 6, 7]
    assert all(records[f]["interleaved"] and records[f]["ratio_rounds"] == 4 for f in order)
