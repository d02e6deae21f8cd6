"""The Results page: what `python -m reports` makes (tables and plots) for the folder given with --results.

Everything here reuses reports/ (load_runs, the side-by-side table, the plots); requests
name files by their path relative to that folder, and `results_file` refuses any path that
leads outside it (`..`, absolute paths, symbolic links pointing out).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Sequence

from visualizer.catalog import NotFound


def results_file(root: Path, relative: str) -> Path:
    """The JSON file `relative` inside the results folder `root`, or NotFound listing the files there."""
    from werkzeug.security import safe_join

    base = root.resolve()
    joined = safe_join(str(base), relative) if relative else None
    candidate = Path(joined).resolve() if joined else None
    if candidate is None or not candidate.is_relative_to(base) or not candidate.is_file() or candidate.suffix != ".json":
        raise NotFound(f"no results file {relative!r} in the results folder", [str(p) for p in relative_files(root)],
                       "results files")
    return candidate


def relative_files(root: Path) -> list[Path]:
    """The results folder's JSON files, relative to it (symbolic links leading outside left out)."""
    base = root.resolve()
    files = []
    for path in sorted(base.rglob("*.json")):
        if path.is_file() and path.resolve().is_relative_to(base):
            files.append(path.relative_to(base))
    return files


def html_table(frame: Any) -> str:
    """A DataFrame as an HTML table, numbers formatted as reports formats them."""
    from reports.table import format_number

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = "".join(
            f"<td{' class=num' if isinstance(v, (int, float)) and not isinstance(v, bool) else ''}>{html.escape(format_number(v))}</td>"
            for v in row)
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def folder_files(root: Path) -> list[Path]:
    """Every JSON file the Results page reads from `root`: inside it, symbolic links leading out left out."""
    return [root.resolve() / p for p in relative_files(root)]


def results_view(root: Path, paths: Sequence[Path]) -> dict[str, Any]:
    """The runs in the files `paths` as the page shows them: sources, side-by-side table, failures, plots (PNG data URIs)."""
    from reports import frame as frames
    from reports import plots
    from reports.errors import BadInput
    from reports.load import load_runs
    from reports.table import readable_comparison

    base = root.resolve()
    if not paths:
        return {"error": f"reports: error: {root.name}/: no benchmark JSON files in this folder"}
    try:
        runs = load_runs(paths)
    except BadInput as exc:
        return {"error": f"reports: error: {_relative(exc.args[0], base)}"}
    records = frames.records_frame(runs)
    failed = frames.failures(records)
    return {
        "error": None,
        "runs": [{"path": str(Path(run.path).resolve().relative_to(base)), "machine": run.machine, "timestamp": run.timestamp,
                  "commit": run.git_commit[:12], "records": len(run.records)} for run in runs],
        "comparison_html": html_table(readable_comparison(runs)),
        "failures_html": html_table(failed) if len(failed) else None,
        "plots": [(name, "data:image/png;base64," + base64.b64encode(png).decode("ascii"))
                  for name, png in plots.render_png(records).items()],
    }


def _relative(message: str, base: Path) -> str:
    """`message` with the results folder's absolute path shortened (pages do not show server paths)."""
    return message.replace(str(base) + "/", "").replace(str(base), ".")
