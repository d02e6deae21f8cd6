"""Records as pandas tables: one row per record, and torch beside JAX per combination."""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from reports.load import Run, data_of, input_size_of
from reports.schema import PEAK_MEMORY_FIELDS, XLA_PROGRAM_FIELDS
from reports.vocabulary import SYNTHETIC_DATA

# The exported columns, in this order, one row per record (the CSV contract of issue 4).
# `device` is the hardware's name ("NVIDIA H100 80GB HBM3", "AMD EPYC") and
# `device_type` the record's device ("cuda", "cpu").
CSV_COLUMNS = (
    "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_mean_ms", "latency_std_ms",
    "latency_min_ms", "latency_max_ms", "throughput_ips", "memory_mb", "compilation_time_ms",
    "framework", "model", "device", "device_type", "batch_size", "input_shape", "dtype",
    "timestamp", "git_commit",
)
# Further columns after the contract's, for the other views and for readers who want them.
EXTRA_COLUMNS = (
    "machine", "machine_id", "node", "mode", "input_size", "config", "status", "reason", "params", "flops",
    "parity_status", "parity_max_abs", "latency_p90_ms", "latency_cv", "n_samples", "valid", "source", "ratio_log_rounds",
    "data", "top1", "top5", "eval_images", "accuracy_diff_to_torch", "epochs", "dataset_size", "images_per_epoch",
    "data_wait_fraction",
)
# Filled only by runs on a dataset (issue 12): eval records' accuracy (percent; the JAX minus
# torch top-1 in percentage points), train epochs' sizes and input-pipeline wait (0..1).
# Views leave a column out when no record fills it, so runs without them read as before.
DATASET_COLUMNS = ("top1", "top5", "eval_images", "accuracy_diff_to_torch", "epochs", "dataset_size", "images_per_epoch",
                   "data_wait_fraction")
# A combination on one machine: the rows that sit side by side in the comparison. Two
# datasets never share a row, and `latest` keeps the newest record of each.
COMBINATION = ("machine", "model", "device_type", "batch_size", "dtype", "mode", "input_size", "config", "data")


def peak_memory_mb(record: dict[str, Any]) -> float | None:
    """The record's peak memory in MiB: the device's own peak if measured, else the process's.

    On an accelerator a JAX record's figure is its compiled program's buffers (weights,
    input, output, scratch: XLA's memory_analysis), the counterpart of torch's allocated
    peak; JAX's `memory_stats` peak covers the whole process and so every earlier benchmark.
    """
    program = [record.get(f) for f in XLA_PROGRAM_FIELDS]
    if record.get("device") != "cpu" and all(v is not None for v in program):
        return float(sum(program))
    for field in PEAK_MEMORY_FIELDS:
        if record.get(field) is not None:
            return float(record[field])
    return None


def _row(run: Run, record: dict[str, Any]) -> dict[str, Any]:
    parity = record.get("parity") if isinstance(record.get("parity"), dict) else {}
    shape = record.get("input_shape")
    return {
        **{field: record.get(field) for field in CSV_COLUMNS[:8]},
        "memory_mb": peak_memory_mb(record),
        "compilation_time_ms": record.get("compile_ms"),
        "framework": record["framework"],
        "model": record["model"],
        "device": record.get("device_name") or record["device"],
        "device_type": record["device"],
        "batch_size": record["batch_size"],
        "input_shape": "x".join(map(str, shape)) if isinstance(shape, list) else None,
        "dtype": record["dtype"],
        "timestamp": run.timestamp,
        "git_commit": run.git_commit,
        "machine": run.machine,
        "machine_id": run.machine_id,
        "node": run.node,
        "mode": record["mode"],
        "input_size": input_size_of(record),
        "config": record.get("config") or "eager",
        "status": record["status"],
        "reason": record.get("reason"),
        "params": record.get("params"),
        "flops": record.get("flops"),
        "parity_status": parity.get("status"),
        "parity_max_abs": parity.get("max_abs"),
        "latency_p90_ms": record.get("latency_p90_ms"),
        "latency_cv": record.get("latency_cv"),
        "n_samples": record.get("n_samples"),
        "valid": record.get("valid"),
        "source": str(run.path),
        "ratio_log_rounds": record.get("ratio_log_rounds"),
        "data": data_of(record),
        **{field: record.get(field) for field in DATASET_COLUMNS},
    }


def records_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """Every record of `runs`, one row each, CSV columns first."""
    rows = [_row(run, record) for run in runs for record in run.records]
    return pd.DataFrame(rows, columns=[*CSV_COLUMNS, *EXTRA_COLUMNS])


def without_unfilled(table: pd.DataFrame) -> pd.DataFrame:
    """`table` less the dataset columns no row fills, and `data` when every row is synthetic."""
    empty = [c for c in table.columns if c.removeprefix("torch_").removeprefix("jax_") in (*DATASET_COLUMNS, "top1_diff_pp")
             and table[c].isna().all()]
    if "data" in table and (table["data"] == SYNTHETIC_DATA).all():
        empty.append("data")
    return table.drop(columns=empty)


def latest(frame: pd.DataFrame) -> pd.DataFrame:
    """Of records measured more than once on a machine, only the newest run's."""
    keys = [*COMBINATION, "framework"]
    return frame.sort_values("timestamp", kind="stable").drop_duplicates(keys, keep="last")


def measured(frame: pd.DataFrame) -> pd.DataFrame:
    """The newest "ok" record of each combination and framework, sorted for reading."""
    ok = latest(frame[frame["status"] == "ok"])
    return ok.sort_values([*COMBINATION, "framework"], kind="stable").reset_index(drop=True)


def comparison(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per machine x model x device x batch x dtype: torch and JAX side by side.

    `throughput_ratio` is torch img/s over JAX img/s (above 1: torch is faster), filled in
    only where the JAX port's parity check passed, since only then do both run one model.
    `top1_diff_pp` is JAX top-1 minus torch top-1 in percentage points: of the row's two
    records, else as the JAX record states it (its torch record not measured).
    """
    ok = measured(frame)
    values = ["latency_p50_ms", "throughput_ips", "compilation_time_ms", "memory_mb", "top1", "top5", "data_wait_fraction"]
    wide = ok.pivot_table(index=list(COMBINATION), columns="framework", values=values, aggfunc="first", dropna=False)
    wide.columns = [f"{framework}_{value}" for value, framework in wide.columns]
    parity = ok[ok["framework"] == "jax"].set_index(list(COMBINATION))[["parity_status", "parity_max_abs", "accuracy_diff_to_torch"]]
    names = ok.drop_duplicates(list(COMBINATION)).set_index(list(COMBINATION))["device"].rename("device_name")
    out = wide.join(parity).join(names).reset_index()
    # pivot_table(dropna=False) crosses every key's values (each model at every batch, mode and
    # dataset); keep only the combinations some record measured.
    out = ok[list(COMBINATION)].drop_duplicates().merge(out, on=list(COMBINATION), how="left")
    for framework in ("torch", "jax"):
        for value in values:
            if f"{framework}_{value}" not in out:
                out[f"{framework}_{value}"] = float("nan")
    passed = out["parity_status"] == "passed"
    ratio = out["torch_throughput_ips"] / out["jax_throughput_ips"]
    out["throughput_ratio"] = ratio.where(passed)
    out = _interleaved_ratios(out, ok)
    stated = pd.to_numeric(out["accuracy_diff_to_torch"], errors="coerce")
    out["top1_diff_pp"] = (out["jax_top1"] - out["torch_top1"]).fillna(stated)
    columns = [
        *COMBINATION, "device_name", "torch_latency_p50_ms", "jax_latency_p50_ms", "torch_throughput_ips",
        "jax_throughput_ips", "throughput_ratio", "ratio_ci_low", "ratio_ci_high", "ratio_rounds", "parity_status", "parity_max_abs", "jax_compilation_time_ms",
        "torch_memory_mb", "jax_memory_mb", "torch_top1", "jax_top1", "top1_diff_pp", "torch_top5", "jax_top5",
        "torch_data_wait_fraction", "jax_data_wait_fraction",
    ]
    return out[columns].sort_values(list(COMBINATION), kind="stable").reset_index(drop=True)


def _interleaved_ratios(out: pd.DataFrame, ok: pd.DataFrame) -> pd.DataFrame:
    """Where the records were timed interleaved, the ratio is the median of their pooled per-round ratios, with its 95% interval."""
    from reports.gate_stats import median_ratio_interval

    rounds: dict[tuple, list[float]] = {}
    for _, row in ok.iterrows():
        if isinstance(row["ratio_log_rounds"], list):
            rounds.setdefault(tuple(row[c] for c in COMBINATION), []).extend(row["ratio_log_rounds"])
    low, high, count = [], [], []
    for index, row in out.iterrows():
        d = rounds.get(tuple(row[c] for c in COMBINATION), [])
        if len(d) >= 2 and row["parity_status"] == "passed":
            ratio, lo, hi = median_ratio_interval(d)
            out.at[index, "throughput_ratio"] = ratio
            low.append(lo), high.append(hi), count.append(len(d))
        else:
            low.append(float("nan")), high.append(float("nan")), count.append(float("nan"))
    return out.assign(ratio_ci_low=low, ratio_ci_high=high, ratio_rounds=count)


def failures(frame: pd.DataFrame) -> pd.DataFrame:
    """Records that were not measured (error, oom, unsupported), with their reasons."""
    failed = latest(frame[frame["status"] != "ok"])
    return failed[["machine", "model", "framework", "device_type", "batch_size", "dtype", "data", "status", "reason"]].reset_index(drop=True)
