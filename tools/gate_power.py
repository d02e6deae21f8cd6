"""How often does the A/B gate cry wolf, and how often does it catch a real 10% slowdown, here?

Two modes, both with the gate's own decision and re-measure rule (reports/gate_stats.py):

  real (default)  each trial is the real two-process gate, `python -m reports gate`, with a
                  worker process per side and fresh workers for a re-measure. Side B's python
                  loads tools/gate_inject/sitecustomize.py, which makes every workload it builds
                  busy-wait `--slowdown` (10%) x its own median step time after each step.
  in-process      real timings of one workload in this process fed through the decision rule
                  (fast, but blind to what differs between two worker processes).

  A/A trials: both sides run the same code. Every REGRESSION is a false alarm.
  A/B trials: side B is `--slowdown` slower. Every REGRESSION is a detection.

A/A and A/B trials alternate, so load changes hit both alike; with `--parallel K` (real mode)
K trials run at a time, each pinned to its own share of the cores. Prints the rates with 95%
Clopper-Pearson intervals (scipy.stats.binomtest) and the gate's wall time, and writes them
to --out as JSON after every trial (a run cut short still leaves its figures).

    python tools/gate_power.py --repeats 40 --out gate_power.json          # the full measurement
    python tools/gate_power.py --mode in-process --repeats 3 --rounds 12    # a quick check
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
INJECT = Path(__file__).resolve().with_name("gate_inject")  # sitecustomize.py that slows a side down
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
    final, old = first, first.verdict
    if gs.needs_remeasure(first, config):
        second_rounds = measure()
        final = gs.confirm(first_rounds, second_rounds, resolution_s, config)
        if first.verdict == gs.REGRESSION:  # the rule before issue 11: the second measurement alone decides
            old = gs.evaluate(*second_rounds, resolution_s, config).verdict
    return {"first": first.verdict, "final": final.verdict, "old_rule": old, "slowdown": final.slowdown,
            "first_slowdown": first.slowdown, "remeasured": final is not first,
            "cv": max(final.baseline_cv or 0.0, final.candidate_cv or 0.0), "reasons": list(final.reasons)}


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
        "regression_old_rule": rate(sum(t.get("old_rule") == gs.REGRESSION for t in trials), len(trials)),
        "invalid": rate(finals.count(gs.INVALID), len(trials)),
        "remeasured": sum(bool(t.get("remeasured")) for t in trials),
        "median_slowdown": statistics.median(slowdowns) if slowdowns else None,
        "median_cv": statistics.median(t["cv"] for t in trials) if trials else None,
        **_wall_times(trials),
    }


def _wall_times(trials: Sequence[dict[str, Any]]) -> dict[str, Any]:
    walls = sorted(t["wall_s"] for t in trials if t.get("wall_s") is not None)
    if not walls:
        return {}
    return {"gate_wall_s": {"median": statistics.median(walls), "p90": walls[min(len(walls) - 1, int(0.9 * len(walls)))],
                            "max": walls[-1]}}


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
    if not r["total"]:
        return f"{name}: no trials"
    ci = f"[{r['ci95'][0]:.1%}, {r['ci95'][1]:.1%}]" if r["ci95"] else "-"
    slowdown = "-" if summary["median_slowdown"] is None else f"{summary['median_slowdown']:+.1%}"
    wall = summary.get("gate_wall_s")
    walls = f"; gate wall time median {wall['median']:.0f} s, p90 {wall['p90']:.0f} s" if wall else ""
    return (f"{name}: REGRESSION {r['count']}/{r['total']} = {r['rate']:.1%} (95% CI {ci}); "
            f"before re-measure {summary['regression_before_remeasure']['count']}, re-measured {summary['remeasured']}, "
            f"old rule {summary['regression_old_rule']['count']}; "
            f"INVALID {summary['final'][gs.INVALID]}; median measured change {slowdown}, median CV {summary['median_cv']:.1%}{walls}")


def side_python(folder: Path, name: str, slowdown: float) -> Path:
    """An executable that runs this python with `slowdown` injected into every workload it builds (0: none)."""
    path = folder / name
    path.write_text("#!/bin/sh\n"
                    f"export VISIONBENCH_INJECT_SLOWDOWN={slowdown}\n"
                    f'export PYTHONPATH="{INJECT}${{PYTHONPATH:+:$PYTHONPATH}}"\n'
                    f'exec "{sys.executable}" "$@"\n')
    path.chmod(0o755)
    return path


def real_gate(baseline: Path, candidate: Path, args: argparse.Namespace, out: Path, cores: Sequence[int] | None) -> dict[str, Any]:
    """One run of the real gate (`python -m reports gate`, two worker processes); its verdicts and wall time."""
    command = [sys.executable, "-m", "reports", "gate", "--baseline", str(baseline), "--candidate", str(candidate),
               "--model", args.model, "--framework", args.framework, "--batch-sizes", str(args.batch_size),
               "--rounds", str(args.rounds), "--calls", str(args.calls), "--min-round-ms", str(args.min_round_ms),
               "--threads", str(args.threads), "--alpha", str(args.alpha), "--threshold", str(args.threshold), "--out", str(out)]
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, preexec_fn=pin, check=False)
    wall = time.perf_counter() - started
    name = f"{args.model}-{args.framework}-cpu-bs{args.batch_size}-float32"
    try:
        document = json.loads((out / f"{name}.json").read_text())
    except (OSError, ValueError):
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return {"first": "ERROR", "final": "ERROR", "slowdown": None, "first_slowdown": None, "remeasured": False,
                "cv": 0.0, "reasons": [last], "wall_s": wall, "exit": result.returncode}
    final, first = document["measurement"], document["first_measurement"] or document["measurement"]
    second = document.get("second_measurement")
    # The rule before issue 11: a first REGRESSION counts only if the second measurement, alone, says so too.
    old = first["verdict"] if first["verdict"] != gs.REGRESSION or second is None else second["verdict"]
    return {"first": first["verdict"], "final": document["verdict"], "old_rule": old, "slowdown": final["slowdown"],
            "first_slowdown": first["slowdown"], "remeasured": document["remeasured"],
            "cv": max(final["baseline_cv"] or 0.0, final["candidate_cv"] or 0.0), "reasons": document["reasons"],
            "wall_s": wall, "exit": result.returncode}


def run_real(args: argparse.Namespace, report: Any) -> dict[str, list[dict[str, Any]]]:
    """A/A and A/B trials of the real gate, `args.parallel` at a time on disjoint cores; `report` after each."""
    folder = Path(tempfile.mkdtemp(prefix="visionbench-gate-power-"))
    plain, slower = side_python(folder, "python-a", 0.0), side_python(folder, "python-b", args.slowdown)
    todo: queue.Queue[tuple[int, str]] = queue.Queue()
    for i, scenario in itertools.product(range(args.repeats), ("A/A", "A/B")):
        todo.put((i, scenario))
    trials: dict[str, list[dict[str, Any]]] = {"A/A": [], "A/B": []}
    lock = threading.Lock()
    cores = sorted(os.sched_getaffinity(0))
    share = max(1, len(cores) // args.parallel)

    def stream(k: int) -> None:
        mine = cores[k * share:(k + 1) * share] if args.parallel > 1 else None
        while True:
            try:
                i, scenario = todo.get_nowait()
            except queue.Empty:
                return
            out = folder / f"trial-{i}-{scenario.replace('/', '')}"
            trial = real_gate(plain, slower if scenario == "A/B" else plain, args, out, mine)
            with lock:
                trials[scenario].append(trial)
                print(f"{scenario} trial {i + 1}/{args.repeats}: {trial['first']} -> {trial['final']}, "
                      f"change {trial['slowdown'] if trial['slowdown'] is None else format(trial['slowdown'], '+.1%')}, "
                      f"{trial['wall_s']:.0f} s", file=sys.stderr, flush=True)
                report(trials)

    threads = [threading.Thread(target=stream, args=(k,)) for k in range(args.parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return trials


def run_in_process(args: argparse.Namespace, report: Any) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """A/A and A/B trials on one workload in this process, through the gate's decision rule."""
    run = build_call(args.model, args.framework, args.batch_size, args.threads)
    config = gs.GateConfig(alpha=args.alpha, threshold=args.threshold)
    resolution_s = time.get_clock_info("perf_counter").resolution
    calls = calls_for(median_call_s(run), args.calls, args.min_round_ms / 1e3)
    trials: dict[str, list[dict[str, Any]]] = {"A/A": [], "A/B": []}
    for i in range(args.repeats):
        trials["A/A"].append(simulated_gate(run, run, args.rounds, calls, resolution_s, config))
        extra_s = args.slowdown * median_call_s(run)
        trials["A/B"].append(simulated_gate(run, slowed(run, extra_s), args.rounds, calls, resolution_s, config))
        print(f"trial {i + 1}/{args.repeats}: A/A {trials['A/A'][-1]['final']}, A/B {trials['A/B'][-1]['final']} "
              f"(injected {extra_s * 1e3:.2f} ms, measured {trials['A/B'][-1]['slowdown']:+.1%})", file=sys.stderr)
        report(trials)
    return trials, calls


def main(argv: Sequence[str] | None = None) -> int:
    """Run the trials and print/write the false-alarm and detection rates."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("real", "in-process"), default="real",
                        help="real: the two-process gate, python -m reports gate; in-process: the decision rule on this process's timings")
    parser.add_argument("--model", default="resnet_tiny")
    parser.add_argument("--framework", choices=("torch", "jax"), default="torch")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="cores the workload may use (default 1: least sensitive to neighbours)")
    parser.add_argument("--repeats", type=int, default=40, help="trials per scenario (A/A and A/B)")
    parser.add_argument("--parallel", type=int, default=1, help="real mode: trials at a time, each on its own share of the cores")
    parser.add_argument("--rounds", type=int, default=gs.ROUNDS)
    parser.add_argument("--calls", type=int, default=10, help="timed calls per side and round (as the gate's --calls)")
    parser.add_argument("--min-round-ms", type=float, default=100.0, help="more calls where needed to fill a round (as the gate's)")
    parser.add_argument("--slowdown", type=float, default=0.10, help="injected slowdown of side B (0.10: 10%%)")
    parser.add_argument("--alpha", type=float, default=gs.ALPHA)
    parser.add_argument("--threshold", type=float, default=gs.THRESHOLD)
    parser.add_argument("--out", help="write the summary JSON here (rewritten after every trial)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    calls: int | str = args.calls if args.mode == "real" else "?"

    def summary_of(trials: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        return {
            "workload": f"{args.model}-{args.framework}-cpu-bs{args.batch_size}-float32, {args.threads} thread(s), "
                        + ("real two-process gate (python -m reports gate)" if args.mode == "real" else "in-process"),
            "design": {"rounds": args.rounds, "calls": calls, "min_round_ms": args.min_round_ms, "alpha": args.alpha,
                       "threshold": args.threshold, "suspect": gs.SUSPECT, "injected_slowdown": args.slowdown,
                       "repeats": args.repeats, "parallel": args.parallel if args.mode == "real" else 1, "order": "ABBA",
                       "remeasure": "a REGRESSION or a PASS slower by >= half the threshold, once, pooled"},
            "false_alarm (A/A)": summarise(trials["A/A"]),
            "detection (A/B)": summarise(trials["A/B"]),
            "trials": trials,
            "machine": platform.node(),
            "cores": len(os.sched_getaffinity(0)),
            "wall_s": time.perf_counter() - started,
        }

    def report(trials: dict[str, list[dict[str, Any]]]) -> None:
        if args.out:
            atomic.write_json(args.out, summary_of(trials))

    if args.mode == "real":
        trials = run_real(args, report)
    else:
        trials, calls = run_in_process(args, report)
    summary = summary_of(trials)
    report(trials)
    print(_format("A/A false alarms", summary["false_alarm (A/A)"]))
    print(_format(f"A/B +{args.slowdown:.0%} detections", summary["detection (A/B)"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
