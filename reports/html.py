"""`python -m reports html`: one self-contained page, tables and plots (PNG as base64) inline."""

from __future__ import annotations

import base64
import html
from typing import Sequence

import pandas as pd

from reports import frame as frames
from reports import plots
from reports.load import Run
from reports.table import format_number, readable_comparison

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.note { color: #666; font-size: 0.9em; }
"""

_TITLES = {
    "latency_vs_batch": "Latency vs batch size",
    "throughput_ratio": "Throughput ratio torch / JAX",
    "memory_vs_batch": "Peak memory vs batch size",
    "latency_vs_flops": "Latency vs FLOPs",
    "accuracy_vs_flops": "Top-1 accuracy vs FLOPs per image",
    "accuracy_vs_latency": "Top-1 accuracy vs time per image",
}


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            cells.append(f"<td{' class=num' if numeric else ''}>{html.escape(format_number(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(runs: Sequence[Run]) -> str:
    """The whole report as one HTML document with nothing fetched from elsewhere."""
    records = frames.records_frame(runs)
    failed = frames.without_unfilled(frames.failures(records))
    sources = "".join(
        f"<li>{html.escape(str(run.path))}: machine {html.escape(run.machine)}, {html.escape(run.timestamp)}, "
        f"commit {html.escape(run.git_commit[:12] or '?')}, {len(run.records)} records</li>"
        for run in runs
    )
    parts = [
        "<!DOCTYPE html>", "<html lang=en><head><meta charset=utf-8>",
        "<title>visionbench: torch vs JAX</title>", f"<style>{_STYLE}</style></head><body>",
        "<h1>visionbench: PyTorch vs JAX/Flax</h1>", f"<ul class=note>{sources}</ul>",
        "<h2>Side by side</h2>", _table(readable_comparison(runs)),
        "<p class=note>torch/JAX img/s above 1: torch is faster; shown only where the JAX port's parity check passed "
        "(both frameworks then run the same weights).</p>",
    ]
    if len(failed):
        parts += ["<h2>Not measured</h2>", _table(failed)]
    pngs = plots.render_png(records)
    if not pngs:
        parts.append("<p class=note>No record was measured, so there is nothing to plot.</p>")
    for name, png in pngs.items():
        data = base64.b64encode(png).decode("ascii")
        parts += [f"<h2>{_TITLES.get(name, name)}</h2>", f'<img alt="{name}" src="data:image/png;base64,{data}">']
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
