"""How often does the A/B gate cry wolf, and how often does it catch a real 10% slowdown, here?

Real timings of a real workload on this machine (by default torch resnet_tiny, batch 2, in
this process), fed through the gate's own decision rule (reports/gate_stats.py) exactly as
`python -m reports gate` uses it: ABBA-interleaved rounds, log-ratio of per-round medians,
one-sided Wilcoxon p < alpha AND slowdown >= threshold, a REGRESSION re-measured once.

  A/A trials: both sides run the same call. Every REGRESSION is a false alarm.
  A/B trials: side B adds a busy-wait of `--slowdown` (10%) of the call's median time,
              re-calibrated before each trial. Every REGRESSION is a detection.

A/A and A/B trials alternate, so load changes hit both alike. Prints the rates with 95%
Clopper-Pearson intervals (scipy.stats.binomtest) and writes them to --out as JSON.

    python tools/gate_power.py --repeats 50 --out gate_power.json      # the full measurement
    python tools/gate_power.py --repeats 3 --rounds 12 --calls 5       # a quick check
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scipy import stats  # noqa: E402

from reports import atomic  # noqa: E402
from reports import gate_stats as gs  # noqa: E402
from reports.gate_worker import calls_for  # noqa: E402

Call = Callable[[], Any]


def busy_wait(seconds: float) -> None:
    """Spin (not sleep) for `seconds`: costs CPU time like slower code would."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def slowed(run: Call, extra_s: float) -> Call:
    """`run` followed by `extra_s` of busy work: the injected regression."""

    def run_slower() -> None:
        run()
        busy_wait(extra_s)

    return run_slower


def time_calls(run: Call, calls: int) -> list[float]:
    """Seconds of `calls` calls after one untimed call, as gate_worker.py times a round."""
    run()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return samples


def median_call_s(run: Call, calls: int = 15) -> float:
    """The call's median time now, for sizing the injected slowdown."""
    return statistics.median(time_calls(run, calls))


def simulated_gate(a: Call, b: Call, rounds: int, calls: int, resolution_s: float, config: gs.GateConfig) -> dict[str, Any]:
    """One gate verdict on real timings of `a` (baseline) and `b` (candidate), with the gate's own re-measure rule."""
    measure = lambda: gs.interleaved_rounds(lambda: time_calls(a, calls), lambda: time_calls(b, calls), rounds)  # noqa: E731
    first_rounds = measure()
    first = gs.evaluate(*first_rounds, resolution_s, config)
    final = gs.confirm(first_rounds, measure(), resolution_s, config) if gs.needs_remeasure(first, config) else first
    return {"first": first.verdict, "final": final.verdict, "slowdown": final.slowdown, "first_slowdown": first.slowdown,
            "remeasured": final is not first, "cv": max(final.baseline_cv or 0.0, final.candidate_cv or 0.0),
            "reasons": list(final.reasons)}


def rate(count: int, total: int) -> dict[str, Any]:
    """count/total with its 95% Clopper-Pearson interval."""
    if total == 0:
        return {"count": 0, "total": 0, "rate": None, "ci95": None}
    ci = stats.binomtest(count, total).proportion_ci(0.95)
    return {"count": count, "total": total, "rate": count / total, "ci95": [ci.low, ci.high]}


def summarise(trials: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Verdict counts and rates of one scenario's trials."""
    finals = [t["final"] for t in trials]
    slowdowns = [t["slowdown"] for t in trials if t["slowdown"] is not None]
    return {
        "trials": len(trials),
        "final": {v: finals.count(v) for v in (gs.PASS, gs.REGRESSION, gs.INVALID)},
        "regression": rate(finals.count(gs.REGRESSION), len(trials)),
        "regression_before_remeasure": rate(sum(t["first"] == gs.REGRESSION for t in trials), len(trials)),
        "invalid": rate(finals.count(gs.INVALID), len(trials)),
        "median_slowdown": statistics.median(slowdowns) if slowdowns else None,
        "median_cv": statistics.median(t["cv"] for t in trials),
    }


def build_call(model: str, framework: str, batch_size: int, threads: int) -> Call:
    """The workload's one-step callable, built by this checkout's back end and warmed up."""
    from benchmarks.workload import BuildOptions, Combination, get_backend

    workload = get_backend(framework).build_workload(Combination(model, framework, "cpu", batch_size, "float32"),
                                                     BuildOptions(threads=threads))
    for _ in range(5):
        workload.run()
    return workload.run


def _format(name: str, summary: dict[str, Any]) -> str:
    r = summary["regression"]
    ci = f"[{r['ci95'][0]:.1%}, {r['ci95'][1]:.1%}]" if r["ci95"] else "-"
    slowdown = "-" if summary["median_slowdown"] is None else f"{summary['median_slowdown']:+.1%}"
    return (f"{name}: REGRESSION {r['count']}/{r['total']} = {r['rate']:.1%} (95% CI {ci}); "
            f"before re-measure {summary['regression_before_remeasure']['count']}; INVALID {summary['final'][gs.INVALID]}; "
            f"median measured change {slowdown}, median CV {summary['median_cv']:.1%}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the trials and print/write the false-alarm and detection rates."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet_tiny")
    parser.add_argument("--framework", choices=("torch", "jax"), default="torch")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="cores the workload may use (default 1: least sensitive to neighbours)")
    parser.add_argument("--repeats", type=int, default=50, help="trials per scenario (A/A and A/B)")
    parser.add_argument("--rounds", type=int, default=gs.ROUNDS)
    parser.add_argument("--calls", type=int, default=10, help="timed calls per side and round (as the gate's --calls)")
    parser.add_argument("--min-round-ms", type=float, default=100.0, help="more calls where needed to fill a round (as the gate's)")
    parser.add_argument("--slowdown", type=float, default=0.10, help="injected slowdown of side B (0.10: 10%%)")
    parser.add_argument("--alpha", type=float, default=gs.ALPHA)
    parser.add_argument("--threshold", type=float, default=gs.THRESHOLD)
    parser.add_argument("--out", help="write the summary JSON here")
    args = parser.parse_args(argv)

    run = build_call(args.model, args.framework, args.batch_size, args.threads)
    config = gs.GateConfig(alpha=args.alpha, threshold=args.threshold)
    resolution_s = time.get_clock_info("perf_counter").resolution
    calls = calls_for(median_call_s(run), args.calls, args.min_round_ms / 1e3)
    trials: dict[str, list[dict[str, Any]]] = {"A/A": [], "A/B": []}
    started = time.perf_counter()
    for i in range(args.repeats):
        trials["A/A"].append(simulated_gate(run, run, args.rounds, calls, resolution_s, config))
        extra_s = args.slowdown * median_call_s(run)
        trials["A/B"].append(simulated_gate(run, slowed(run, extra_s), args.rounds, calls, resolution_s, config))
        print(f"trial {i + 1}/{args.repeats}: A/A {trials['A/A'][-1]['final']}, A/B {trials['A/B'][-1]['final']} "
              f"(injected {extra_s * 1e3:.2f} ms, measured {trials['A/B'][-1]['slowdown']:+.1%})", file=sys.stderr)
    summary = {
        "workload": f"{args.model}-{args.framework}-cpu-bs{args.batch_size}-float32, {args.threads} thread(s), in-process",
        "design": {"rounds": args.rounds, "calls": calls, "min_round_ms": args.min_round_ms, "alpha": args.alpha, "threshold": args.threshold,
                   "injected_slowdown": args.slowdown, "repeats": args.repeats, "order": "ABBA", "remeasure": "once"},
        "false_alarm (A/A)": summarise(trials["A/A"]),
        "detection (A/B)": summarise(trials["A/B"]),
        "machine": platform.node(),
        "wall_s": time.perf_counter() - started,
    }
    print(_format("A/A false alarms", summary["false_alarm (A/A)"]))
    print(_format(f"A/B +{args.slowdown:.0%} detections", summary["detection (A/B)"]))
    if args.out:
        atomic.write_json(args.out, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
