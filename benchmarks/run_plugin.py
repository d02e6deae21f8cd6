"""pytest plugin for runs that survive and spread: the journal, SIGTERM, `--resume` and `--shard`.

- Every measured record, and every failure record, is appended to a journal (JSON lines,
  fsynced; benchmarks/journal.py) the moment its test's report exists: `--journal PATH`,
  by default beside pytest-benchmark's storage (`.benchmarks/<machine>/journal_*.jsonl`).
  Under pytest-xdist the controller writes it from the workers' reports.
- SIGTERM (a scheduler's preemption, a CI time-out) stops the run as Ctrl-C does, so
  pytest-benchmark still saves its JSON; a benchmark cut short is left out of it.
- `--resume JOURNAL` deselects the combinations JOURNAL holds a record for and appends
  the rest to it; `--shard I/N` keeps a deterministic, balanced part (benchmarks/shard.py).
  Both key on the combination's id (`Combination.id`, the test id).

Registered from conftest.py (`pytest_plugins`); the records themselves come from the
`benchmark` fixture's extra_info and the `bench_run` fixture's failures.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from benchmarks import shard as shards
from benchmarks.journal import Journal, now
from reports.errors import BadInput
from reports.journal import recorded_ids, torn_tail
from reports.schema import SCHEMA_NAME, SCHEMA_VERSION

RECORD_PROPERTY = "visionbench_journal_benchmark"  # user_properties key: {"id", "benchmark"}
FAILURE_PROPERTY = "visionbench_journal_failure"  # user_properties key: {"id", "record"}
VISIONBENCH_JSON_KEY = "visionbench"


@dataclasses.dataclass
class RunState:
    """This session's journal, resume and shard settings, and what has completed."""

    run_id: str
    journal_path: Path | None = None  # None: decided at the first record (beside the storage)
    journal: Journal | None = None
    resume_path: Path | None = None
    resumed: set[str] = dataclasses.field(default_factory=set)
    shard: tuple[int, int] | None = None
    completed: set[str] = dataclasses.field(default_factory=set)  # node ids whose call phase reported
    failures_seen: int = 0
    sigterm: bool = False
    previous_sigterm: Any = None


_state_key = pytest.StashKey[RunState]()


def state(config: pytest.Config) -> RunState | None:
    """The session's RunState (None before configure)."""
    return config.stash.get(_state_key, None)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("visionbench")
    group.addoption("--journal", default=None, metavar="PATH",
                    help="append every record to this JSON-lines journal as it is measured "
                         "(default: .benchmarks/<machine>/journal_<time>_<run>.jsonl)")
    group.addoption("--resume", default=None, metavar="JOURNAL",
                    help="skip the combinations JOURNAL holds a record for, and append the rest to it")
    group.addoption("--shard", default=None, metavar="I/N",
                    help="run shard I of N (1 <= I <= N): a deterministic, balanced part of the matrix")


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    run = RunState(run_id=uuid.uuid4().hex)
    text = config.getoption("shard", None)
    if text is not None:
        try:
            run.shard = shards.parse_shard(text)
        except ValueError as exc:
            raise pytest.UsageError(f"--shard: {exc}") from None
    resume = config.getoption("resume", None)
    if resume is not None:
        run.resume_path = Path(resume)
        if not run.resume_path.is_file():
            raise pytest.UsageError(f"--resume: no such journal {resume!r}; give the .jsonl file an earlier run wrote")
        try:
            run.resumed = recorded_ids(run.resume_path)
        except BadInput as exc:
            raise pytest.UsageError(f"--resume: {exc}") from None
    journal = config.getoption("journal", None)
    run.journal_path = Path(journal) if journal is not None else run.resume_path
    if run.journal_path is not None and run.journal_path.is_dir():
        raise pytest.UsageError(f"--journal: {str(run.journal_path)!r} is a folder; give a file path such as run.jsonl")
    config.stash[_state_key] = run
    config.pluginmanager.register(_LogReports(config), "visionbench-journal")
    _install_sigterm(run)


def _install_sigterm(run: RunState) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def stop_like_ctrl_c(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
        run.sigterm = True
        sys.stderr.write("\nvisionbench: SIGTERM: stopping as on Ctrl-C; completed records are kept\n")
        raise KeyboardInterrupt

    run.previous_sigterm = signal.signal(signal.SIGTERM, stop_like_ctrl_c)


def pytest_unconfigure(config: pytest.Config) -> None:
    run = state(config)
    if run is None:
        return
    if run.journal is not None:
        run.journal.close()
    if run.previous_sigterm is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, run.previous_sigterm)


def combination_of(item: pytest.Item) -> Any | None:
    """The benchmark combination an item runs (its `combo` parameter), or None."""
    callspec = getattr(item, "callspec", None)
    combo = callspec.params.get("combo") if callspec is not None else None
    return combo if hasattr(combo, "id") else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run = state(config)
    if run is None or (run.shard is None and run.resume_path is None):
        return
    combos = {item.nodeid: combination_of(item) for item in items}
    keep_ids: set[str] | None = None
    if run.shard is not None:
        costs = shards.costs_of(c for c in combos.values() if c is not None)
        keep_ids = shards.select(costs, *run.shard)
    kept, dropped = [], []
    for item in items:
        combo = combos[item.nodeid]
        if combo is None:
            kept.append(item)
        elif (keep_ids is not None and combo.id not in keep_ids) or combo.id in run.resumed:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    if run.resume_path is not None and not _is_xdist_worker(config):
        skipped = sum(1 for c in combos.values() if c is not None and c.id in run.resumed)
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"visionbench: --resume: {skipped} combination(s) already in {run.resume_path}, not run again")


def _plain(value: Any) -> Any:
    """`value` as plain JSON types (xdist sends user_properties between processes)."""
    return json.loads(json.dumps(value, default=str))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    if call.when == "call":
        _attach_records(item)
    yield


def _attach_records(item: pytest.Item) -> None:
    """Put the item's full record and any new failure records into its user_properties, for the journal."""
    combo = combination_of(item)
    funcargs = getattr(item, "funcargs", {})
    if combo is None:
        return
    fixture = funcargs.get("benchmark")
    stats = getattr(fixture, "stats", None)
    extra = getattr(fixture, "extra_info", None)
    if stats is not None and isinstance(extra, dict) and extra.get("schema") == SCHEMA_NAME:
        item.user_properties.append((RECORD_PROPERTY, {"id": combo.id, "benchmark": _plain(stats.as_dict(include_data=True))}))
    failures = getattr(funcargs.get("bench_run"), "failures", None)
    run = state(item.config)
    if isinstance(failures, list) and run is not None:
        for failure in failures[run.failures_seen:]:
            item.user_properties.append((FAILURE_PROPERTY, {"id": combo.id, "record": _plain(failure)}))
        run.failures_seen = len(failures)


def run_config(config: pytest.Config) -> dict[str, Any]:
    """The settings of this run that change its figures: part of its machine key (reports/machine.py)."""
    return {
        "tf32": bool(config.getoption("tf32", False)),
        "torch_compile": bool(config.getoption("torch_compile", False)),
        "pretrained": bool(config.getoption("pretrained", False) or config.getoption("weights", None)),
    }


def header(config: pytest.Config, run: RunState) -> dict[str, Any]:
    """The `visionbench` object of this run's JSON and journal header."""
    return {"schema_version": SCHEMA_VERSION, "run_id": run.run_id, "config": run_config(config),
            "shard": None if run.shard is None else f"{run.shard[0]}/{run.shard[1]}"}


def _default_journal_path(config: pytest.Config, run: RunState) -> Path:
    name = f"journal_{now()[:19].replace('-', '').replace(':', '')}_{run.run_id[:8]}.jsonl"
    storage = getattr(getattr(config, "_benchmarksession", None), "storage", None)
    if hasattr(storage, "get") and hasattr(storage, "path"):  # pytest-benchmark's file storage
        return Path(storage.get(name))
    return Path(".benchmarks") / name


def _open_journal(config: pytest.Config, run: RunState) -> Journal:
    if run.journal is None:
        path = run.journal_path or _default_journal_path(config, run)
        journal = Journal(path, run.run_id)
        machine_info = config.hook.pytest_benchmark_generate_machine_info(config=config)
        config.hook.pytest_benchmark_update_machine_info(config=config, machine_info=machine_info)
        commit_info = config.hook.pytest_benchmark_generate_commit_info(config=config)
        config.hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit_info)
        if path.exists() and path.stat().st_size and torn_tail(path):
            with open(path, "ab") as f:  # end a line torn by a kill, so the next line starts clean
                f.write(b"\n")
        journal.start(_plain(machine_info), _plain(commit_info), header(config, run))
        run.journal = journal
    return run.journal


class _LogReports:
    """Journals each test's records from its report; registered per session, for the config."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        _journal_report(self.config, report)


def _journal_report(config: pytest.Config, report: pytest.TestReport) -> None:
    run = state(config)
    if report.when != "call" or run is None:
        return
    run.completed.add(report.nodeid)
    if _is_xdist_worker(config):
        return  # the controller journals what the workers report
    for key, value in report.user_properties:
        if key == RECORD_PROPERTY:
            _open_journal(config, run).append_benchmark(value["id"], value["benchmark"])
        elif key == FAILURE_PROPERTY:
            _open_journal(config, run).append_failure(value["id"], value["record"])


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int):
    run = state(session.config)
    bs = getattr(session.config, "_benchmarksession", None)
    if run is not None and bs is not None:
        for bench in getattr(bs, "benchmarks", []):
            # A benchmark cut short (Ctrl-C, SIGTERM) or whose record was never attached
            # would be saved without its record: pytest-benchmark skips entries with errors.
            extra = getattr(bench, "extra_info", {}) or {}
            if bench.fullname not in run.completed or extra.get("schema") != SCHEMA_NAME:
                bench.fixture.has_error = True
    yield


@pytest.hookimpl(trylast=True, optionalhook=True)  # pytest-benchmark's hook
def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    run = state(config)
    if run is not None:
        output_json.setdefault(VISIONBENCH_JSON_KEY, {}).update(header(config, run))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = state(config)
    if run is None:
        return
    if run.journal is not None:
        terminalreporter.write_line(f"visionbench: journal: {run.journal.path} ({run.journal.count} records this run)")
    if run.sigterm:
        terminalreporter.write_line("visionbench: stopped by SIGTERM; the records above are saved; "
                                    "--resume JOURNAL runs the rest")
