"""Read pytest-benchmark JSON files, run journals and merged files (or folders of them) into checked runs.

Anything that is not a whole, known-version visionbench run raises `BadInput` naming the
file and the problem; nothing is skipped silently. Each run is keyed by its machine
(reports/machine.py); a journal session also saved as JSON (same run id) is read once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from reports import journal as journals
from reports import machine as machines
from reports.errors import BadInput
from reports.vocabulary import SYNTHETIC_DATA, Combination
from reports.schema import (
    KEY_FIELDS,
    PARITY_STATUSES,
    REQUIRED_FIELDS,
    SCHEMA_NAME,
    SPREAD_FIELDS,
    STATUSES,
    SUPPORTED_SCHEMA_VERSIONS,
    TIMING_FIELDS,
)

VISIONBENCH_JSON_KEY = "visionbench"  # the top-level key conftest.py writes


@dataclasses.dataclass(frozen=True)
class Run:
    """One benchmark session (a JSON file, a journal session, or one run inside a merged file):
    where and when it ran, and its records (ok and failed).

    `machine` is the machine's label (unique among the runs loaded together), `machine_key`
    what makes it that machine; `benchmarks` are pytest-benchmark's entries of the measured
    records, kept so a merge loses nothing.
    """

    path: Path
    machine: str
    timestamp: str
    git_commit: str
    records: tuple[dict[str, Any], ...]
    machine_key: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)
    run_id: str = ""
    node: str = ""
    kind: str = "json"  # "json", "journal" or "merged"
    benchmarks: tuple[dict[str, Any], ...] = dataclasses.field(default=(), compare=False)
    machine_info: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)
    commit_info: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)

    @property
    def machine_id(self) -> str:
        """The short id of this run's machine key."""
        return machines.machine_id(self.machine_key)


def benchmark_id(record: dict[str, Any]) -> str:
    """A record's identity as the matrix names it: `resnet50-jax-cpu-bs8-float32`."""
    if record.get("id"):
        return record["id"]
    # Records written before the id was stored: rebuild it from the key fields.
    data = record.get("data")
    return Combination(record["model"], record["framework"], record["device"], record["batch_size"], record["dtype"],
                       record["mode"], config=record.get("config") or "eager",
                       data=None if data in (None, SYNTHETIC_DATA) else data).id


def input_size_of(record: dict[str, Any]) -> int | None:
    """The square input's side: the record's field, or (older records) read off torch's NCHW / JAX's NHWC shape."""
    if record.get("input_size") is not None:
        return int(record["input_size"])
    shape = record.get("input_shape")
    if isinstance(shape, list) and len(shape) == 4:
        return int(shape[2])  # (N, C, H, W) and (N, H, W, C) both hold W at index 2
    return None


def data_of(record: dict[str, Any]) -> str:
    """The record's dataset: its `data` field, or "synthetic" for records written before datasets existed."""
    return record.get("data") or SYNTHETIC_DATA


def record_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """The fields that make a record unique within one run.

    Records written before input sizes, configurations and datasets existed get theirs filled
    in (read off the input shape; eager; synthetic), so stored baselines keep matching new runs.
    """
    filled = {**record, "input_size": input_size_of(record), "config": record.get("config") or "eager",
              "data": data_of(record)}
    return tuple(filled.get(field) for field in KEY_FIELDS)


def json_files(path: str | Path) -> list[Path]:
    """`path` itself if a file, else every *.json and *.jsonl (journal) below it (e.g. a `.benchmarks/` folder)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json*") if p.is_file() and p.suffix in (".json", journals.JOURNAL_SUFFIX))
        if not files:
            raise BadInput(path, "no benchmark JSON files in this folder")
        return files
    raise BadInput(path, "no such file or folder")


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Every run in `paths` (files or folders), each checked, each once; at least one record in all."""
    runs = [run for p in paths for f in json_files(p) for run in load_file(f)]
    if not runs:
        raise BadInput("<arguments>", "no benchmark files given")
    return label_machines(unique_runs(runs))


_KIND_PREFERENCE = {"json": 0, "merged": 1, "journal": 2}


def unique_runs(runs: Sequence[Run]) -> list[Run]:
    """Each session once: of a journal session that was also saved as JSON (one run id), the fuller copy."""
    best: dict[str, Run] = {}
    for run in runs:
        other = best.get(run.run_id)
        if other is None or (len(run.records), -_KIND_PREFERENCE[run.kind]) > (len(other.records), -_KIND_PREFERENCE[other.kind]):
            best[run.run_id] = run
    return [run for run in runs if best[run.run_id] is run]


def label_machines(runs: Sequence[Run]) -> list[Run]:
    """`runs` with each machine labelled, labels unique among them."""
    labels = machines.unique_labels(run.machine_key for run in runs)
    return [dataclasses.replace(run, machine=labels[run.machine_id]) for run in runs]


def load_file(path: str | Path) -> list[Run]:
    """The runs of one file: a pytest-benchmark JSON (one run), a journal or a merged file (one or more)."""
    path = Path(path)
    if journals.is_journal(path):
        return load_journal(path)
    document = _parse(path)
    header = document.get(VISIONBENCH_JSON_KEY) if isinstance(document, dict) else None
    if isinstance(header, dict) and "merged" in header:
        return _load_merged(path, document)
    return [_load_document(path, document)]


def load_run(path: str | Path) -> Run:
    """One pytest-benchmark JSON file (or a one-session journal), checked record by record."""
    runs = load_file(path)
    if len(runs) != 1:
        raise BadInput(path, f"holds {len(runs)} runs, of {len({r.machine_id for r in runs})} machine(s); give one run here")
    return label_machines(runs)[0]


def _run_id(path: Path, header: Any) -> str:
    run_id = header.get("run_id") if isinstance(header, dict) else None
    if isinstance(run_id, str) and run_id:
        return run_id
    # Older files carry no run id: the file is the run (two copies of it are two runs).
    return "file:" + hashlib.sha1(str(path.resolve()).encode() + path.read_bytes()).hexdigest()[:16]


def _load_document(path: Path, document: Any) -> Run:
    """One pytest-benchmark JSON document, checked record by record."""
    if not isinstance(document, dict) or not isinstance(document.get("benchmarks"), list):
        raise BadInput(path, "not a pytest-benchmark JSON file (no 'benchmarks' list at the top level)")
    header = document.get(VISIONBENCH_JSON_KEY)
    failures: Sequence[Any] = []
    if header is not None:
        if not isinstance(header, dict):
            raise BadInput(path, f"'{VISIONBENCH_JSON_KEY}' is not an object")
        _check_version(path, header.get("schema_version"), "file")
        failures = header.get("failures") or []
        if not isinstance(failures, list):
            raise BadInput(path, f"'{VISIONBENCH_JSON_KEY}.failures' is not a list")
    records = []
    for index, bench in enumerate(document["benchmarks"]):
        name = bench.get("name", f"#{index}") if isinstance(bench, dict) else f"#{index}"
        extra = bench.get("extra_info") if isinstance(bench, dict) else None
        records.append(check_record(path, name, extra))
    for index, failure in enumerate(failures):
        records.append(check_record(path, f"failure #{index}", failure))
    if not records:
        raise BadInput(path, "no benchmarks in this file (did every test skip or fail before timing?)")
    _check_unique(path, records)
    machine_info = document.get("machine_info") or {}
    commit_info = document.get("commit_info") or {}
    key = machines.machine_key(machine_info, commit_info, header if isinstance(header, dict) else {})
    return Run(
        path=path,
        machine=machines.short_label(key),
        timestamp=str(document.get("datetime") or ""),
        git_commit=str(commit_info.get("id") or ""),
        records=tuple(records),
        machine_key=key,
        run_id=_run_id(path, header),
        node=str(machine_info.get("node") or ""),
        kind="json",
        benchmarks=tuple(b for b in document["benchmarks"] if isinstance(b, dict)),
        machine_info=machine_info,
        commit_info=commit_info,
    )


def load_journal(path: str | Path) -> list[Run]:
    """One run per session of a journal, in the order they started; every whole line checked."""
    path = Path(path)
    headers: dict[str, dict[str, Any]] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    benches: dict[str, list[dict[str, Any]]] = {}
    for number, line in journals.read_lines(path):
        run = line["run"]
        if line["kind"] == "header":
            _check_version(path, (line.get("visionbench") or {}).get("schema_version"), f"line {number}")
            headers.setdefault(run, line)
            records.setdefault(run, [])
            benches.setdefault(run, [])
            continue
        if run not in headers:
            raise BadInput(path, f"line {number}: a record of session {run[:8]} before its header line")
        if line["kind"] == "benchmark":
            bench = line.get("benchmark")
            extra = bench.get("extra_info") if isinstance(bench, dict) else None
            records[run].append(check_record(path, f"line {number} ({line['id']})", extra))
            benches[run].append(bench)
        else:
            records[run].append(check_record(path, f"line {number} ({line['id']})", line.get("record")))
    if journals.torn_tail(path):
        sys.stderr.write(f"reports: warning: {path}: the last line was cut short (a run killed mid-write); "
                         f"that record is left out\n")
    runs = []
    for run_id, head in headers.items():
        if not records[run_id]:
            continue  # a session killed before its first record was whole
        _check_unique(path, records[run_id])
        machine_info, commit_info = head.get("machine_info") or {}, head.get("commit_info") or {}
        key = machines.machine_key(machine_info, commit_info, head.get("visionbench") or {})
        runs.append(Run(path=path, machine=machines.short_label(key), timestamp=str(head.get("time") or ""),
                        git_commit=str(commit_info.get("id") or ""), records=tuple(records[run_id]), machine_key=key,
                        run_id=run_id, node=str(machine_info.get("node") or ""), kind="journal",
                        benchmarks=tuple(benches[run_id]), machine_info=machine_info, commit_info=commit_info))
    if not runs:
        raise BadInput(path, "no records in this journal (did the run stop before its first benchmark finished?)")
    return runs


def _load_merged(path: Path, document: dict[str, Any]) -> list[Run]:
    """The runs inside a file written by `reports merge`, each with its own machine."""
    header = document[VISIONBENCH_JSON_KEY]
    _check_version(path, header.get("schema_version"), "file")
    merged = header.get("merged")
    if not isinstance(merged, dict) or not isinstance(merged.get("runs"), list) or not isinstance(merged.get("machines"), dict):
        raise BadInput(path, "a merged file without its 'runs' and 'machines' lists")
    if not isinstance(document.get("benchmarks"), list) or not isinstance(header.get("failures", []), list):
        raise BadInput(path, "a merged file without its 'benchmarks' and 'failures' lists")
    entries = {r.get("run_id"): r for r in merged["runs"] if isinstance(r, dict)}
    records: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in entries}
    benches: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in entries}
    items = [(b.get("name", f"#{i}") if isinstance(b, dict) else f"#{i}", b.get("extra_info") if isinstance(b, dict) else None, b)
             for i, b in enumerate(document["benchmarks"])]
    items += [(f"failure #{i}", f, None) for i, f in enumerate(header.get("failures", []))]
    for name, record, bench in items:
        record = check_record(path, name, record)
        run_id = record.get("run_id")
        if run_id not in records:
            raise BadInput(path, f"benchmark {name}: run {run_id!r} is not in the merged file's runs")
        records[run_id].append(record)
        if bench is not None:
            benches[run_id].append(bench)
    runs = []
    for run_id, entry in entries.items():
        machine = merged["machines"].get(entry.get("machine_id"))
        if not isinstance(machine, dict) or not isinstance(machine.get("key"), dict):
            raise BadInput(path, f"run {run_id}: machine {entry.get('machine_id')!r} is not in the merged file's machines")
        if not records[run_id]:
            continue
        _check_unique(path, records[run_id])
        key = machine["key"]
        runs.append(Run(path=path, machine=machines.short_label(key), timestamp=str(entry.get("timestamp") or ""),
                        git_commit=str(entry.get("git_commit") or ""), records=tuple(records[run_id]), machine_key=key,
                        run_id=str(run_id), node=str(entry.get("node") or ""), kind="merged",
                        benchmarks=tuple(benches[run_id]), machine_info=machine.get("machine_info") or {},
                        commit_info=entry.get("commit_info") or {}))
    if not runs:
        raise BadInput(path, "no benchmarks in this merged file")
    return runs


def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BadInput(path, "not JSON (not UTF-8 text)") from None
    except OSError as exc:
        raise BadInput(path, f"cannot read: {exc.strerror}") from None
    if not text.strip():
        raise BadInput(path, "empty file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # An unterminated string can only end at the end of the text.
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            raise BadInput(path, f"truncated JSON (the text ends early: {exc.msg}, line {exc.lineno})") from None
        raise BadInput(path, f"not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None

def _check_version(path: Path, version: Any, where: str) -> None:
    if version not in SUPPORTED_SCHEMA_VERSIONS or isinstance(version, bool):
        known = ", ".join(map(str, SUPPORTED_SCHEMA_VERSIONS))
        raise BadInput(path, f"{where} has schema version {version!r}, which this reports does not know (it reads {known})")


def check_record(path: Path, name: str, record: Any) -> dict[str, Any]:
    """`record` if it is a well-formed visionbench record, else BadInput naming `name`."""
    if not isinstance(record, dict) or record.get("schema") != SCHEMA_NAME:
        found = record.get("schema") if isinstance(record, dict) else None
        raise BadInput(path, f"benchmark {name}: not a visionbench record (schema {found!r}, expected {SCHEMA_NAME!r})")
    _check_version(path, record.get("schema_version"), f"benchmark {name}")
    missing = [f for f in REQUIRED_FIELDS if f not in record]
    if missing:
        raise BadInput(path, f"benchmark {name}: missing field(s) {', '.join(missing)}")
    if record["status"] not in STATUSES:
        raise BadInput(path, f"benchmark {name}: unknown status {record['status']!r} (known: {', '.join(STATUSES)})")
    batch = record["batch_size"]
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise BadInput(path, f"benchmark {name}: batch_size must be a whole number >= 1, got {batch!r}")
    if record["status"] == "ok":
        _check_measured(path, name, record)
    return record


def _check_measured(path: Path, name: str, record: dict[str, Any]) -> None:
    for field in TIMING_FIELDS:
        value = record.get(field)
        if not _is_number(value) or not math.isfinite(value) or value <= 0:
            raise BadInput(path, f"benchmark {name}: {field} must be a finite number > 0, got {value!r}")
    for field in SPREAD_FIELDS:
        value = record.get(field)
        if value is not None and (not _is_number(value) or not math.isfinite(value) or value < 0):
            raise BadInput(path, f"benchmark {name}: {field} must be a finite number >= 0, got {value!r}")
    samples = record.get("samples_ms")
    if samples is not None:
        if not isinstance(samples, list) or not all(_is_number(s) and math.isfinite(s) and s > 0 for s in samples):
            raise BadInput(path, f"benchmark {name}: samples_ms must be finite numbers > 0")
    params = record.get("params")
    if not isinstance(params, int) or isinstance(params, bool) or params < 0:
        raise BadInput(path, f"benchmark {name}: params must be a whole number >= 0, got {params!r}")
    flops = record.get("flops")
    if flops is not None and (not _is_number(flops) or not math.isfinite(flops) or flops < 0):
        raise BadInput(path, f"benchmark {name}: flops must be a finite number >= 0 or null, got {flops!r}")
    parity = record.get("parity")
    if not isinstance(parity, dict) or parity.get("status") not in PARITY_STATUSES:
        found = parity.get("status") if isinstance(parity, dict) else parity
        raise BadInput(path, f"benchmark {name}: parity status {found!r} is not one of {', '.join(PARITY_STATUSES)}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_unique(path: Path, records: Sequence[dict[str, Any]]) -> None:
    seen: set[tuple[Any, ...]] = set()
    for record in records:
        key = record_key(record)
        if key in seen:
            raise BadInput(path, f"duplicate benchmark id {benchmark_id(record)}")
        seen.add(key)
