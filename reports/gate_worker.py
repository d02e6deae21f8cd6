"""The gate's timing entry point, run inside one side's checkout and Python (never imported by reports).

Started by reports/gate_sides.py with the side's checkout as working directory, it builds
each benchmark's workload once through that checkout's `benchmarks` package, warms it up,
answers `{"ready": ...}`, then for every `{"calls": K, "min_round_s": S}` line on stdin times
each benchmark K calls, or more if K calls would take under S seconds (so a sub-millisecond
call still gets a round long enough to outlast a scheduler hiccup), and answers
`{"samples_s": {id: [seconds, ...]}}`. Protocol lines go to the
original stdout; anything the frameworks print goes to stderr. Standard library only here:
torch and jax are imported by the side's own back ends.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from typing import Any, Callable, TextIO

_ID = re.compile(r"^(?P<model>.+)-(?P<framework>torch|jax)-(?P<device>cpu|cuda)-bs(?P<batch>\d+)-(?P<dtype>[a-z0-9]+)$")


def parse_benchmark_id(text: str) -> dict[str, Any]:
    """`resnet50-jax-cpu-bs8-float32` as its fields; ValueError if it is not such an id."""
    match = _ID.match(text)
    if match is None:
        raise ValueError(f"not a benchmark id like resnet50-jax-cpu-bs8-float32: {text!r}")
    fields = match.groupdict()
    return {**fields, "batch": int(fields["batch"])}


def build_runs(ids: list[str], threads: int, warmup: int) -> dict[str, tuple[Callable[[], Any], float]]:
    """Each benchmark's one-step callable, built by this checkout's back ends and warmed up, with its median call time."""
    from benchmarks.workload import BuildOptions, Combination, get_backend

    options = BuildOptions(threads=threads)
    runs = {}
    for text in ids:
        f = parse_benchmark_id(text)
        combo = Combination(f["model"], f["framework"], f["device"], f["batch"], f["dtype"])
        backend = get_backend(combo.framework)
        reason = backend.unsupported_reason(combo)
        if reason:
            raise RuntimeError(f"{text}: {reason}")
        workload = backend.build_workload(combo, options)
        for _ in range(1 + warmup):
            workload.run()
        estimate = sorted(_timed(workload.run) for _ in range(5))[2]
        runs[text] = (workload.run, estimate)
    return runs


def _timed(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def calls_for(call_s: float, calls: int, min_round_s: float, most: int = 10_000) -> int:
    """At least `calls` calls, and enough that a round lasts `min_round_s` (at most `most`)."""
    return max(calls, min(most, math.ceil(min_round_s / max(call_s, 1e-9))))


def time_calls(runs: dict[str, tuple[Callable[[], Any], float]], calls: int, min_round_s: float = 0.0) -> dict[str, list[float]]:
    """Timed calls of each benchmark, in seconds, after one untimed call each.

    The untimed call lets the other side's idle thread pools stop spinning and this side's
    caches refill before anything is timed.
    """
    out = {}
    for name, (run, estimate_s) in runs.items():
        run()
        out[name] = [_timed(run) for _ in range(calls_for(estimate_s, calls, min_round_s))]
    return out


def serve(runs: dict[str, tuple[Callable[[], Any], float]], commands: TextIO, replies: TextIO) -> None:
    """Answer each `{"calls": K, "min_round_s": S}` line with the samples, until stdin closes."""
    for line in commands:
        if not line.strip():
            continue
        request = json.loads(line)
        samples = time_calls(runs, int(request["calls"]), float(request.get("min_round_s", 0.0)))
        replies.write(json.dumps({"samples_s": samples}) + "\n")
        replies.flush()


def main() -> int:
    """Build, warm up, report ready, then serve timing requests."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--benchmarks", nargs="+", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the frameworks' own prints must not corrupt the protocol
    cores = sorted(os.sched_getaffinity(0))
    if args.threads < len(cores):
        os.sched_setaffinity(0, cores[: args.threads])  # before jax starts: XLA sizes its pool by it
    try:
        runs = build_runs(args.benchmarks, args.threads, args.warmup)
    except Exception as exc:  # reported to the gate as one line; the traceback goes to stderr
        import traceback

        traceback.print_exc()
        replies.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        replies.flush()
        return 1
    ready = {"ready": True, "timer_resolution_s": time.get_clock_info("perf_counter").resolution,
             "python": sys.version.split()[0], "cwd": os.getcwd()}
    replies.write(json.dumps(ready) + "\n")
    replies.flush()
    serve(runs, sys.stdin, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
