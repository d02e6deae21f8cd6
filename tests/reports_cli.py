"""Helpers the reports tests share: write a run document, run `python -m reports table` in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reports.__main__ import main


def write(tmp_path: Path, doc: dict[str, Any] | str, name: str = "run.json") -> Path:
    """`doc` as JSON (text as it is) at `tmp_path / name`; returns the path."""
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def table(capsys: Any, *argv: Any) -> str:
    """What `python -m reports table ARGV...` prints (it must succeed)."""
    assert main(["table", *map(str, argv)]) == 0
    return capsys.readouterr().out
