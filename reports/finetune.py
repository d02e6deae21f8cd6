"""`python -m reports finetune`: a fine-tuning log's curves (PNG) and its table, epoch by framework.

The log is JSON lines, one per framework and epoch (FIELDS); other keys are ignored. A
line cut short at the end (a run killed mid-write) is left out with a warning, as run
journals' are; any other line that is not a whole, well-formed entry is bad input.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from reports.errors import BadInput
from reports.vocabulary import FRAMEWORKS, canonical_framework

FIELDS = ("framework", "epoch", "train_loss", "top1", "top5", "epoch_s", "images_per_s", "data_wait_fraction")
# Each figure's allowed range, both ends included.
_RANGES = {
    "train_loss": (-math.inf, math.inf), "top1": (0.0, 100.0), "top5": (0.0, 100.0), "epoch_s": (0.0, math.inf),
    "images_per_s": (0.0, math.inf), "data_wait_fraction": (0.0, 1.0),
}
# The table's columns: (field, header after the framework's name).
_TABLE = (("train_loss", "loss"), ("top1", "top-1 %"), ("epoch_s", "epoch s"), ("images_per_s", "img/s"),
          ("data_wait_fraction", "data wait"))
_NAMES = {"torch": "torch", "jax": "JAX"}


def _entry(path: Path, number: int, line: Any) -> dict[str, Any]:
    """`line` checked and with its framework spelt as the suite spells it, else BadInput naming the line."""
    if not isinstance(line, dict):
        raise BadInput(path, f"line {number} is not a JSON object")
    missing = [f for f in FIELDS if f not in line]
    if missing:
        raise BadInput(path, f"line {number}: missing key(s) {', '.join(missing)}")
    framework = canonical_framework(line["framework"]) if isinstance(line["framework"], str) else line["framework"]
    if framework not in FRAMEWORKS:
        raise BadInput(path, f"line {number}: framework {line['framework']!r} is not one of {', '.join(FRAMEWORKS)}")
    epoch = line["epoch"]
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
        raise BadInput(path, f"line {number}: epoch must be a whole number >= 1, got {epoch!r}")
    for field, (low, high) in _RANGES.items():
        value = line[field]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or not low <= value <= high:
            span = f" in [{low:g}, {high:g}]" if math.isfinite(low) else ""
            raise BadInput(path, f"line {number}: {field} must be a finite number{span}, got {value!r}")
    return {**{f: line[f] for f in FIELDS}, "framework": framework}


def _truncated(exc: Exception, raw: bytes) -> bool:
    """Whether a line failed to parse only because it ends early."""
    return isinstance(exc, json.JSONDecodeError) and (exc.pos >= len(raw.rstrip()) or exc.msg.startswith("Unterminated string"))


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The entries of a fine-tuning log, in file order; BadInput names the file and line of the first problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(path, "no such file") from None
    except OSError as exc:
        raise BadInput(path, f"cannot read: {exc.strerror}") from None
    if not data.strip():
        raise BadInput(path, "empty file (no epoch logged)")
    lines = data.split(b"\n")
    rows: list[dict[str, Any]] = []
    first: dict[tuple[str, int], int] = {}
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if number == len(lines) and _truncated(exc, raw):  # no newline after it, JSON ending early: a write cut short
                sys.stderr.write(f"reports: warning: {path}: line {number}, the last, was cut short; it is left out\n")
                break
            raise BadInput(path, f"line {number} is not JSON ({exc})") from None
        row = _entry(path, number, line)
        key = (row["framework"], row["epoch"])
        if key in first:
            raise BadInput(path, f"line {number}: {key[0]} epoch {key[1]} again (first on line {first[key]})")
        first[key] = number
        rows.append(row)
    if not rows:
        raise BadInput(path, "no whole line (no epoch logged)")
    return rows


def epoch_table(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per epoch; per figure, a column per framework that logged it (torch first)."""
    frame = pd.DataFrame(list(rows))
    frameworks = [f for f in FRAMEWORKS if f in set(frame["framework"])]
    table = pd.DataFrame({"epoch": sorted(int(e) for e in frame["epoch"].unique())})
    for field, header in _TABLE:
        for framework in frameworks:
            by_epoch = frame[frame["framework"] == framework].set_index("epoch")[field]
            table[f"{_NAMES.get(framework, framework)} {header}"] = table["epoch"].map(by_epoch).astype(float)
    return table


def render_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The epoch table as Markdown, with what its figures mean."""
    from reports.table import to_markdown

    return (to_markdown(epoch_table(rows)) + "\n\ntop-1: percent of the evaluation split after the epoch; "
            "loss: the epoch's train loss; data wait: fraction of the epoch spent waiting for data.\n")


def write_curves(rows: Sequence[dict[str, Any]], out_dir: str | os.PathLike[str]) -> Path:
    """`out_dir`/finetune_curve.png, written atomically; returns its path."""
    import io

    import matplotlib.pyplot as plt

    from reports import atomic
    from reports.plots import finetune_curves

    fig = finetune_curves(rows)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    path = Path(out_dir) / "finetune_curve.png"
    atomic.write_bytes(path, buffer.getvalue())
    return path
