"""Read pytest-benchmark JSON files (or folders of them) into checked visionbench records.

Anything that is not a whole, known-version visionbench run raises `BadInput` naming the
file and the problem; nothing is skipped silently.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

from reports.errors import BadInput
from reports.vocabulary import Combination
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
    """One benchmark JSON file: where and when it ran, and its records (ok and failed)."""

    path: Path
    machine: str
    timestamp: str
    git_commit: str
    records: tuple[dict[str, Any], ...]


def benchmark_id(record: dict[str, Any]) -> str:
    """A record's identity as the matrix names it: `resnet50-jax-cpu-bs8-float32`."""
    if record.get("id"):
        return record["id"]
    # Records written before the id was stored: rebuild it from the key fields.
    return Combination(record["model"], record["framework"], record["device"], record["batch_size"], record["dtype"],
                       record["mode"], config=record.get("config") or "eager").id


def record_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """The fields that make a record unique within one run (input_size is absent from older records)."""
    return tuple(record.get(field) for field in KEY_FIELDS)


def json_files(path: str | Path) -> list[Path]:
    """`path` itself if a file, else every *.json below it (e.g. a `.benchmarks/` folder)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
        if not files:
            raise BadInput(path, "no benchmark JSON files in this folder")
        return files
    raise BadInput(path, "no such file or folder")


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Every run in `paths` (files or folders), each checked; at least one record in all."""
    runs = [load_run(f) for p in paths for f in json_files(p)]
    if not runs:
        raise BadInput("<arguments>", "no benchmark files given")
    return runs


def load_run(path: str | Path) -> Run:
    """One pytest-benchmark JSON file, checked record by record."""
    path = Path(path)
    document = _parse(path)
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
    return Run(
        path=path,
        machine=str(machine_info.get("node") or path.parent.name or "unknown"),
        timestamp=str(document.get("datetime") or ""),
        git_commit=str(commit_info.get("id") or ""),
        records=tuple(records),
    )


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
