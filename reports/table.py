"""`python -m reports table`: torch vs JAX side by side, as Markdown, CSV or JSON."""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import pandas as pd

from reports import frame as frames
from reports import machine as machines
from reports.load import Run

FORMATS = ("markdown", "csv", "json")
ACROSS_MACHINES = "(across machines)"  # the machine of a row that may mix machines, when asked

# Headers of the Markdown comparison; the JSON keeps the column names themselves.
_HEADERS = {
    "machine": "machine", "model": "model", "device_type": "device", "batch_size": "bs", "dtype": "dtype",
    "mode": "mode", "input_size": "input px", "config": "config", "device_name": "device name",
    "torch_latency_p50_ms": "torch p50 ms", "jax_latency_p50_ms": "JAX p50 ms",
    "torch_throughput_ips": "torch img/s", "jax_throughput_ips": "JAX img/s",
    "throughput_ratio": "torch/JAX img/s", "parity_status": "parity", "parity_max_abs": "parity max abs",
    "jax_compilation_time_ms": "JAX compile ms", "torch_memory_mb": "torch MiB", "jax_memory_mb": "JAX MiB",
    "data": "dataset", "torch_top1": "torch top-1 %", "jax_top1": "JAX top-1 %", "top1_diff_pp": "JAX-torch top-1 pp",
    "torch_top5": "torch top-5 %", "jax_top5": "JAX top-5 %",
    "torch_data_wait_fraction": "torch data wait", "jax_data_wait_fraction": "JAX data wait",
}


def format_number(value: Any) -> str:
    """A figure as a reader wants it: about three significant digits, '-' when absent."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, (bool, str)) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.01 or magnitude == 0:
        return f"{value:#.3g}"
    return f"{value:.1e}"


def to_markdown(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub Markdown table, numbers right-aligned."""
    headers = [str(c) for c in table.columns]
    numeric = [pd.api.types.is_numeric_dtype(table[c]) for c in table.columns]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(format_number(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def ratio_label(ratio: float, low: float, high: float) -> str:
    """'1.15x [1.12, 1.19]' for an interleaved ratio ('no difference shown' when the interval holds 1), '1.15x' for a sequential one."""
    if ratio is None or math.isnan(ratio):
        return "-"
    if low is None or math.isnan(low):
        return f"{ratio:.2f}x"
    verdict = " no difference shown" if low <= 1.0 <= high else ""
    return f"{ratio:.2f}x [{low:.2f}, {high:.2f}]{verdict}"


def records(runs: Sequence[Run], across_machines: bool = False) -> pd.DataFrame:
    """The records frame; with `across_machines`, every record counted as on one machine (newest wins)."""
    frame = frames.records_frame(runs)
    return frame.assign(machine=ACROSS_MACHINES) if across_machines else frame


def machine_legend(runs: Sequence[Run]) -> list[str]:
    """One line per machine: its label and everything that makes it that machine."""
    seen = {run.machine: run.machine_key for run in runs}
    return [f"- {label}: {machines.describe(key)}" for label, key in sorted(seen.items())]


def readable_comparison(runs: Sequence[Run], across_machines: bool = False) -> pd.DataFrame:
    """The comparison with reader's headers; the machine column only when there are several."""
    table = frames.comparison(records(runs, across_machines))
    table["throughput_ratio"] = [ratio_label(r, lo, hi) for r, lo, hi in
                                 zip(table["throughput_ratio"], table["ratio_ci_low"], table["ratio_ci_high"])]
    table = table.drop(columns=["ratio_ci_low", "ratio_ci_high", "ratio_rounds"])
    if table["machine"].nunique() <= 1:
        table = table.drop(columns="machine")
    if (table["mode"] == "inference").all():
        table = table.drop(columns="mode")
    if (table.groupby("model")["input_size"].nunique() <= 1).all():  # each model at one size: no sweep to show
        table = table.drop(columns="input_size")
    if (table["config"] == "eager").all():
        table = table.drop(columns="config")
    table = frames.without_unfilled(table)
    # Accuracy to two decimals: the ports' parity tolerance is 0.1 percentage points.
    for column in ("torch_top1", "jax_top1", "torch_top5", "jax_top5", "top1_diff_pp"):
        if column in table:
            sign = "+" if column == "top1_diff_pp" else ""
            table[column] = [f"{v:{sign}.2f}" if pd.notna(v) else "-" for v in table[column]]
    return table.rename(columns=_HEADERS)


def render_markdown(runs: Sequence[Run], across_machines: bool = False) -> str:
    """The comparison table, then any records that could not be measured, then the machines if several."""
    comparison = readable_comparison(runs, across_machines)
    parts = [to_markdown(comparison)]
    failed = frames.without_unfilled(frames.failures(records(runs, across_machines)))
    if len(failed):
        parts += ["", "Not measured:", "", to_markdown(failed)]
    parts += ["", "torch/JAX img/s above 1: torch is faster; shown only where the JAX port's parity check passed. "
                  "[low, high]: 95% interval of the median per-round ratio where the frameworks were timed interleaved."]
    if _HEADERS["top1_diff_pp"] in comparison:
        parts += ["", "top-1 / top-5: percent of the evaluation split's images classified right (eval rows); "
                      "JAX-torch top-1 pp: the difference in percentage points."]
    if _HEADERS["torch_data_wait_fraction"] in comparison or _HEADERS["jax_data_wait_fraction"] in comparison:
        parts += ["", "data wait: the fraction of a train epoch spent waiting for the next batch of the dataset; "
                      "a train row on a dataset times whole epochs (ms per epoch, img/s over the epoch)."]
    legend = machine_legend(runs)
    if across_machines and len(legend) > 1:
        parts += ["", f"--across-machines: each row holds the newest figures of {len(legend)} machines, "
                      "so a cell or ratio may compare different machines:", *legend]
    elif len(legend) > 1:
        parts += ["", "Machines (figures of different machines never share a row):", *legend]
    return "\n".join(parts) + "\n"


def render_csv(runs: Sequence[Run], across_machines: bool = False) -> str:
    """One row per record, the contract's columns first (each row names its own machine)."""
    return frames.without_unfilled(frames.records_frame(runs)).to_csv(index=False)


def _json_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(table.to_json(orient="records", double_precision=15))


def render_json(runs: Sequence[Run], across_machines: bool = False) -> str:
    """{"comparison": side-by-side rows, "records": one per record, "failures": unmeasured, "machines": their keys}."""
    frame = records(runs, across_machines)
    document = {
        "comparison": _json_rows(frames.without_unfilled(frames.comparison(frame))),
        "records": _json_rows(frames.without_unfilled(frames.records_frame(runs))),
        "failures": _json_rows(frames.without_unfilled(frames.failures(frame))),
        "machines": {run.machine: run.machine_key for run in runs},
    }
    return json.dumps(document, indent=2) + "\n"


def render(runs: Sequence[Run], fmt: str, across_machines: bool = False) -> str:
    """The table of `runs` in `fmt` (one of FORMATS)."""
    return {"markdown": render_markdown, "csv": render_csv, "json": render_json}[fmt](runs, across_machines)
