"""Read run journals: the JSON-lines files `pytest benchmarks` appends every record to as it is measured.

Several sessions may append to one journal (`--resume`, a retried shard); every line names
its session (`run`), whose header line carries the machine and commit. A journal killed
mid-write ends in an unterminated line: that record never completed, and is ignored. The
writer is benchmarks/journal.py.

Line kinds (JOURNAL_NAME, JOURNAL_VERSION):
  header     {"journal", "journal_version", "kind": "header", "run", "time", "machine_info", "commit_info", "visionbench"}
  benchmark  {"kind": "benchmark", "run", "time", "id", "benchmark": pytest-benchmark's entry, extra_info = the record}
  failure    {"kind": "failure", "run", "time", "id", "record": the failure record}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from reports.errors import BadInput

JOURNAL_NAME = "visionbench.journal"
JOURNAL_VERSION = 1
JOURNAL_SUFFIX = ".jsonl"
KINDS = ("header", "benchmark", "failure")


def read_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, parsed line) of every whole line; an unterminated last line (a killed write) is left out.

    Raises BadInput for a whole line that is not a journal line.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(path, f"cannot read: {exc.strerror}") from None
    if not data.strip():
        raise BadInput(path, "empty file")
    complete = data.split(b"\n")[:-1]  # after the last newline: b"" or a torn tail
    for number, raw in enumerate(complete, start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadInput(path, f"line {number} is not JSON ({exc})") from None
        if not isinstance(line, dict) or line.get("kind") not in KINDS or not isinstance(line.get("run"), str):
            raise BadInput(path, f"line {number} is not a visionbench journal line")
        if line["kind"] == "header":
            if line.get("journal") != JOURNAL_NAME:
                raise BadInput(path, f"line {number}: not a visionbench journal header")
            if line.get("journal_version") != JOURNAL_VERSION:
                raise BadInput(path, f"line {number}: journal version {line.get('journal_version')!r}, "
                                     f"which this code does not know (it reads {JOURNAL_VERSION})")
        elif not isinstance(line.get("id"), str):
            raise BadInput(path, f"line {number}: a {line['kind']} line without its combination id")
        yield number, line


def torn_tail(path: str | os.PathLike[str]) -> bool:
    """Whether the journal ends in an unterminated line (a write cut short by a kill)."""
    data = Path(path).read_bytes()
    return bool(data) and not data.endswith(b"\n")


def recorded_ids(path: str | os.PathLike[str]) -> set[str]:
    """The combination ids the journal holds a record (measured or failed) for."""
    return {line["id"] for _, line in read_lines(path) if line["kind"] != "header"}


def is_journal(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is read as a journal: its name ends in .jsonl."""
    return os.fspath(path).endswith(JOURNAL_SUFFIX)
