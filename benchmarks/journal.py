"""Write the run journal: every completed record appended, one JSON line each, the moment it exists.

A journal survives what a pytest-benchmark JSON does not: a SIGKILL, a crash, a lost node.
Each line is written by one `os.write` on a file opened with O_APPEND and then fsynced, so
a line is either whole on disk or (killed mid-write) an unterminated tail that readers
ignore. The format, and its reader, are in reports/journal.py. No pytest here.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

from reports.journal import JOURNAL_NAME, JOURNAL_VERSION


def now() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


class Journal:
    """An append-only JSON-lines file; `append` returns once the line is on disk."""

    def __init__(self, path: str | os.PathLike[str], run_id: str) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self._fd: int | None = None
        self.count = 0  # records appended by this session

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self._fd

    def _write(self, line: dict[str, Any]) -> None:
        data = (json.dumps(line, default=str, allow_nan=True) + "\n").encode("utf-8")
        fd = self._open()
        written = os.write(fd, data)  # one call: O_APPEND puts it whole at the end
        while written < len(data):  # a short write (rare, e.g. a signal): finish the same line
            written += os.write(fd, data[written:])
        os.fsync(fd)

    def start(self, machine_info: dict[str, Any], commit_info: dict[str, Any], visionbench: dict[str, Any]) -> None:
        """Write this session's header line."""
        self._write({"journal": JOURNAL_NAME, "journal_version": JOURNAL_VERSION, "kind": "header", "run": self.run_id,
                     "time": now(), "machine_info": machine_info, "commit_info": commit_info, "visionbench": visionbench})

    def append_benchmark(self, combo_id: str, benchmark: dict[str, Any]) -> None:
        """Journal one measured combination: pytest-benchmark's entry, the record in its extra_info."""
        self._write({"kind": "benchmark", "run": self.run_id, "time": now(), "id": combo_id, "benchmark": benchmark})
        self.count += 1

    def append_failure(self, combo_id: str, record: dict[str, Any]) -> None:
        """Journal one combination that could not be measured, with its reason."""
        self._write({"kind": "failure", "run": self.run_id, "time": now(), "id": combo_id, "record": record})
        self.count += 1

    def close(self) -> None:
        """Close the file (appends reopen it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
