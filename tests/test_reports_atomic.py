"""Results and verdicts are written whole or not at all."""

import json
import math
import os
import stat

import pytest

from reports import atomic


def test_failed_write_leaves_the_old_file_whole_and_no_temporary(tmp_path):
    path = tmp_path / "verdict.json"
    atomic.write_json(path, {"verdict": "PASS"})
    with pytest.raises(ValueError):
        atomic.write_json(path, {"verdict": "REGRESSION", "p": math.nan})  # NaN is refused
    assert json.loads(path.read_text()) == {"verdict": "PASS"}
    assert os.listdir(tmp_path) == ["verdict.json"]


def test_crash_before_replace_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "table.md"
    atomic.write_text(path, "old table\n")

    def crash(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(OSError):
        atomic.write_text(path, "new table " * 10_000)
    assert path.read_text() == "old table\n"
    assert os.listdir(tmp_path) == ["table.md"]


def test_written_file_is_readable_like_any_other(tmp_path):
    path = tmp_path / "sub" / "plot.png"
    atomic.write_bytes(path, b"\x89PNG")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert path.read_bytes() == b"\x89PNG"
