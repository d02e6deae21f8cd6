"""`python -m reports diff`: a run against a stored baseline, deterministic figures only gated.

Status, input shape, params, FLOPs (within the schema's rel_tol), parity status and parity
max_abs (within its bound) must match; a benchmark missing from the current run fails, a
new one is reported. Timings are shown as current/baseline ratios and never gated:
machines of one class still differ by tens of percent.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from reports.errors import EXIT_MISMATCH, EXIT_OK, BadInput
from reports.load import Run, benchmark_id, json_files, label_machines, load_file, record_key, unique_runs
from reports.schema import METRICS


@dataclasses.dataclass(frozen=True)
class Side:
    """One side of a diff: its records by key, and where they came from."""

    label: str
    runs: tuple[Run, ...]
    records: dict[tuple[Any, ...], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Row:
    """The outcome for one benchmark id."""

    benchmark: str
    result: str  # "ok", "mismatch", "missing" or "new"
    problems: tuple[str, ...] = ()
    baseline_p50_ms: float | None = None
    current_p50_ms: float | None = None

    @property
    def fails(self) -> bool:
        """Whether this row fails the diff."""
        return self.result in ("mismatch", "missing")


def load_side(path: str | Path) -> Side:
    """The records of one side (a file or a folder); a benchmark id twice is bad input."""
    runs = tuple(label_machines(unique_runs([run for f in json_files(path) for run in load_file(f)])))
    records: dict[tuple[Any, ...], dict[str, Any]] = {}
    for run in runs:
        for record in run.records:
            key = record_key(record)
            if key in records:
                raise BadInput(run.path, f"duplicate benchmark id {benchmark_id(record)} (also in another file of {path})")
            records[key] = record
    return Side(str(path), runs, records)


def _parity(record: dict[str, Any]) -> dict[str, Any]:
    return record.get("parity") if isinstance(record.get("parity"), dict) else {}


def _close(name: str, base: Any, now: Any) -> str | None:
    """The problem with figure `name`, or None when `now` is within its bound of `base`."""
    metric = METRICS[name]
    if base is None and now is None:
        return None
    if base is None or now is None:
        return f"{name} {base!r} -> {now!r}"
    if metric.within(float(base), float(now)):
        return None
    if isinstance(base, int) and isinstance(now, int):
        return f"{name} {base} -> {now} ({now - base:+d})"
    change = f" ({(now - base) / base:+.2%})" if base else ""
    return f"{name} {base:.6g} -> {now:.6g}{change}, beyond its bound"


def check_record(base: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between a baseline record and the current one, as readable problems."""
    problems = []
    if base["status"] != now["status"]:
        reason = f" ({now['reason']})" if now.get("reason") else ""
        return [f"status {base['status']} -> {now['status']}{reason}"]
    if base["status"] != "ok":
        return []
    if base.get("input_shape") != now.get("input_shape"):
        problems.append(f"input_shape {base.get('input_shape')} -> {now.get('input_shape')}")
    for name in ("params", "flops"):
        problem = _close(name, base.get(name), now.get(name))
        if problem:
            problems.append(problem)
    base_parity, now_parity = _parity(base), _parity(now)
    if base_parity.get("status") != now_parity.get("status"):
        problems.append(f"parity {base_parity.get('status')} -> {now_parity.get('status')}")
    elif base_parity.get("max_abs") is not None:
        problem = _close("parity_max_abs", base_parity.get("max_abs"), now_parity.get("max_abs"))
        if problem:
            problems.append(problem)
    return problems


def compare(baseline: Side, current: Side) -> list[Row]:
    """One row per benchmark id of either side, baseline order first, then new ones."""
    rows = []
    for key, base in baseline.records.items():
        name = benchmark_id(base)
        now = current.records.get(key)
        if now is None:
            rows.append(Row(name, "missing", ("not in the current run",), base.get("latency_p50_ms")))
            continue
        problems = check_record(base, now)
        rows.append(Row(name, "mismatch" if problems else "ok", tuple(problems),
                        base.get("latency_p50_ms"), now.get("latency_p50_ms")))
    for key, now in current.records.items():
        if key not in baseline.records:
            rows.append(Row(benchmark_id(now), "new", ("not in the baseline",), None, now.get("latency_p50_ms")))
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _ratio(row: Row) -> str:
    if row.baseline_p50_ms is None or row.current_p50_ms is None:
        return "-"
    return f"{row.current_p50_ms / row.baseline_p50_ms:.2f}x"


def render(rows: list[Row], baseline: Side, current: Side) -> str:
    """The diff as a Markdown table and a one-line verdict."""
    lines = [
        f"baseline: {baseline.label} ({_describe(baseline)})",
        f"current:  {current.label} ({_describe(current)})",
        "",
        "| benchmark | result | p50 ms baseline | p50 ms current | current/baseline (not gated) | detail |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        detail = "; ".join(row.problems).replace("|", "\\|")
        result = row.result.upper() if row.fails else row.result
        lines.append(f"| {row.benchmark} | {result} | {_ms(row.baseline_p50_ms)} | {_ms(row.current_p50_ms)} | {_ratio(row)} | {detail} |")
    counts = {r: sum(row.result == r for row in rows) for r in ("ok", "mismatch", "missing", "new")}
    failed = counts["mismatch"] + counts["missing"]
    verdict = "FAILED" if failed else "passed"
    lines += ["", f"diff {verdict}: {counts['ok']} match, {counts['mismatch']} mismatch, "
                  f"{counts['missing']} missing, {counts['new']} new (timings are shown, never gated)"]
    return "\n".join(lines) + "\n"


def _describe(side: Side) -> str:
    commits = sorted({run.git_commit[:10] for run in side.runs if run.git_commit})
    machines = sorted({run.machine for run in side.runs})
    return f"{len(side.records)} records, machine {', '.join(machines)}, commit {', '.join(commits) or '?'}"


def exit_code(rows: list[Row]) -> int:
    """EXIT_MISMATCH if any row fails, else EXIT_OK."""
    return EXIT_MISMATCH if any(row.fails for row in rows) else EXIT_OK

