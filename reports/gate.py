"""`python -m reports gate`: paired A/B timing of a baseline and a candidate on this machine.

Each side (a git ref, a python executable, or '.' for this working tree) gets one worker
process that builds the benchmarks once; rounds alternate A B, B A, ... and each round
times `--calls` calls of every benchmark per side. reports/gate_stats.py decides; a
REGRESSION, or a PASS already slower by half the threshold, is measured again with fresh
workers and decided on both measurements' rounds together. One verdict JSON per
benchmark (and gate.json for the run) is written atomically to --out.
Exit codes: 0 pass, 1 regression, 2 invalid, 3 bad input.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path
from typing import Any, Sequence

from reports import atomic
from reports import gate_stats as gs
from reports.errors import EXIT_INVALID, EXIT_MISMATCH, EXIT_OK, BadInput
from reports.gate_sides import SideSpec, Worker, WorkerError, checkout, parse_side

VERDICT_SCHEMA = "visionbench.gate_verdict"
VERDICT_SCHEMA_VERSION = 1
FRAMEWORKS = ("torch", "jax")
EXIT_CODES = {gs.PASS: EXIT_OK, gs.REGRESSION: EXIT_MISMATCH, gs.INVALID: EXIT_INVALID}


def add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    """The gate's options."""
    parser.add_argument("--baseline", default="HEAD", help="git ref, python executable, or '.' (this working tree)")
    parser.add_argument("--candidate", default=".", help="git ref, python executable, or '.' (this working tree)")
    parser.add_argument("--model", nargs="+", default=["resnet_tiny", "vit_tiny"], help="models to time")
    parser.add_argument("--framework", choices=(*FRAMEWORKS, "both"), default="both", help="frameworks to time")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device to time on")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[2], metavar="N", help="batch sizes to time")
    parser.add_argument("--dtype", nargs="+", default=["float32"], help="dtypes to time")
    parser.add_argument("--rounds", type=int, default=gs.ROUNDS,
                        help=f"paired rounds; fewer than {gs.min_rounds(gs.ALPHA)} cannot reach p < {gs.ALPHA:g} (INVALID)")
    parser.add_argument("--calls", type=int, default=10, help="timed calls per benchmark, side and round (>= 3)")
    parser.add_argument("--min-round-ms", type=float, default=100.0,
                        help="more calls than --calls where needed so each benchmark's round lasts this long")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per benchmark after building")
    parser.add_argument("--threads", type=int, default=1,
                        help="cores each side may use; 1 is least disturbed by neighbours on a shared machine")
    parser.add_argument("--alpha", type=float, default=gs.ALPHA, help="significance level of the one-sided test")
    parser.add_argument("--threshold", type=float, default=gs.THRESHOLD, help="smallest slowdown that counts (0.05: 5%%)")
    parser.add_argument("--max-cv", type=float, default=gs.MAX_CV, help="coefficient of variation above which a side is INVALID")
    parser.add_argument("--out", default=".gate", metavar="DIR", help="folder for the verdict JSON files")


def benchmark_ids(args: argparse.Namespace) -> list[str]:
    """The ids the options select, named as the benchmark matrix names them."""
    frameworks = FRAMEWORKS if args.framework == "both" else (args.framework,)
    return [f"{m}-{fw}-{args.device}-bs{b}-{d}" for m in args.model for b in args.batch_sizes for d in args.dtype for fw in frameworks]


def _check_arguments(args: argparse.Namespace) -> None:
    for name, least in (("rounds", 1), ("calls", 3), ("warmup", 0), ("threads", 1), ("min_round_ms", 0)):
        if getattr(args, name) < least:
            raise BadInput(f"--{name.replace('_', '-')}", f"must be >= {least}, got {getattr(args, name)}")
    if any(b < 1 for b in args.batch_sizes):
        raise BadInput("--batch-sizes", f"must be >= 1, got {args.batch_sizes}")
    if not 0 < args.alpha < 1 or args.threshold < 0 or args.max_cv <= 0:
        raise BadInput("--alpha/--threshold/--max-cv", "need 0 < alpha < 1, threshold >= 0, max-cv > 0")


def measure(sides: tuple[SideSpec, SideSpec], roots: tuple[Path, Path], ids: Sequence[str],
            args: argparse.Namespace) -> tuple[dict[str, tuple[list[list[float]], list[list[float]]]], float]:
    """Per benchmark, (baseline rounds, candidate rounds) of per-call seconds; and the timer resolution."""
    workers: list[Worker] = []
    try:
        for side, root in zip(sides, roots):
            print(f"gate: starting {side.describe()}", file=sys.stderr)
            workers.append(Worker(side, root, ids, args.threads, args.warmup))
        a, b = workers
        min_round_s = args.min_round_ms / 1e3
        a.time_round(args.calls, min_round_s), b.time_round(args.calls, min_round_s)  # untimed: caches, clocks
        print(f"gate: {args.rounds} interleaved rounds of >= {args.calls} calls x {len(ids)} benchmarks", file=sys.stderr)
        rounds_a, rounds_b = gs.interleaved_rounds(lambda: a.time_round(args.calls, min_round_s),
                                                   lambda: b.time_round(args.calls, min_round_s), args.rounds)
    except WorkerError as exc:
        raise BadInput("gate", str(exc)) from None
    finally:
        for worker in workers:
            worker.close()
    resolution = max(w.timer_resolution_s for w in workers)
    return {i: ([r[i] for r in rounds_a], [r[i] for r in rounds_b]) for i in ids}, resolution


def verdict_document(benchmark: str, final: gs.Verdict, first: gs.Verdict | None, sides: tuple[SideSpec, SideSpec],
                     args: argparse.Namespace, resolution: float, second: gs.Verdict | None = None) -> dict[str, Any]:
    """The JSON written for one benchmark: `first` and `second` alone when it was re-measured, `final` on both."""
    return {
        "schema": VERDICT_SCHEMA,
        "schema_version": VERDICT_SCHEMA_VERSION,
        "benchmark": benchmark,
        "verdict": final.verdict,
        "reasons": list(final.reasons),
        "remeasured": first is not None,
        "first_measurement": first.as_json() if first is not None else None,
        "second_measurement": second.as_json() if second is not None else None,
        "measurement": final.as_json(),
        "baseline": {"side": sides[0].label, "commit": sides[0].commit, "python": sides[0].python},
        "candidate": {"side": sides[1].label, "commit": sides[1].commit, "python": sides[1].python},
        "design": {"order": "ABBA", "rounds": args.rounds, "calls_per_round": args.calls,
                   "remeasure": "a REGRESSION, or a PASS slower by >= half the threshold, is measured again with fresh "
                                "workers; the verdict is then on both measurements' rounds together",
                   "min_round_ms": args.min_round_ms, "warmup": args.warmup,
                   "threads": args.threads, "alpha": args.alpha, "threshold": args.threshold, "max_cv": args.max_cv,
                   "test": "scipy.stats.wilcoxon(log(median B / median A) per round, alternative='greater')"},
        "timer_resolution_s": resolution,
        "machine": platform.node(),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }


def _safe_name(benchmark: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in benchmark)


def render(final: dict[str, gs.Verdict], remeasured: set[str]) -> str:
    """One line per benchmark and the run's verdict."""
    lines = ["| benchmark | verdict | baseline ms | candidate ms | change | p | detail |", "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for name, v in final.items():
        ms = lambda s: "-" if s is None else f"{s * 1e3:.4g}"  # noqa: E731
        change = "-" if v.slowdown is None else f"{v.slowdown:+.1%}"
        p = "-" if v.p_value is None else f"{v.p_value:.2g}"
        note = "; ".join(v.reasons) + (" (re-measured)" if name in remeasured else "")
        lines.append(f"| {name} | {v.verdict} | {ms(v.baseline_median_s)} | {ms(v.candidate_median_s)} | {change} | {p} | {note} |")
    lines.append(f"\ngate: {gs.overall(final)}")
    return "\n".join(lines) + "\n"


def run_gate(args: argparse.Namespace) -> int:
    """Measure, decide, re-measure regressions once, write verdicts; returns the exit code."""
    _check_arguments(args)
    ids = benchmark_ids(args)
    sides = (parse_side(args.baseline, sys.executable), parse_side(args.candidate, sys.executable))
    config = gs.GateConfig(alpha=args.alpha, threshold=args.threshold, max_cv=args.max_cv)
    with checkout(sides[0]) as root_a, checkout(sides[1]) as root_b:
        roots = (root_a, root_b)
        samples, resolution = measure(sides, roots, ids, args)
        first = {i: gs.evaluate(*samples[i], resolution, config) for i in ids}
        again = [i for i in ids if gs.needs_remeasure(first[i], config)]
        final, second = dict(first), {}
        if again:
            print(f"gate: re-measuring {', '.join(again)} with fresh workers before deciding", file=sys.stderr)
            more, more_resolution = measure(sides, roots, again, args)
            resolution = max(resolution, more_resolution)
            second = {i: gs.evaluate(*more[i], resolution, config) for i in again}
            final.update({i: gs.confirm(samples[i], more[i], resolution, config) for i in again})
    out = Path(args.out)
    files = {}
    for i in ids:
        path = out / f"{_safe_name(i)}.json"
        atomic.write_json(path, verdict_document(i, final[i], first[i] if i in again else None, sides, args, resolution,
                                                 second.get(i)))
        files[i] = path.name
    verdict = gs.overall(final)
    atomic.write_json(out / "gate.json", {"schema": VERDICT_SCHEMA, "schema_version": VERDICT_SCHEMA_VERSION,
                                          "verdict": verdict, "benchmarks": {i: final[i].verdict for i in ids},
                                          "files": files, "baseline": sides[0].describe(), "candidate": sides[1].describe()})
    sys.stdout.write(render(final, set(again)))
    return EXIT_CODES[verdict]
