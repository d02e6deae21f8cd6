"""`python -m reports baseline`: a run slimmed to what `reports diff` needs, for reports/baselines/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reports import atomic
from reports.load import VISIONBENCH_JSON_KEY, Run, benchmark_id, load_run
from reports.schema import REQUIRED_FIELDS, SCHEMA_VERSION, SPREAD_FIELDS, TIMING_FIELDS

# Besides the identity, what a stored record keeps: the gated figures, and the summary
# timings that diff shows as ratios. Raw samples and tracebacks are dropped.
KEPT_FIELDS = (
    *REQUIRED_FIELDS, "data", "reason", "input_shape", "params", "flops", "flops_source", "macs_per_image",
    *TIMING_FIELDS, *SPREAD_FIELDS, "n_samples", "compile_ms", "valid", "versions", "weights", "threads",
)
KEPT_PARITY_FIELDS = ("status", "max_abs", "max_rel", "cosine", "top1_agreement", "precision", "weights", "reason")


def slim_record(record: dict[str, Any]) -> dict[str, Any]:
    """`record` with only the fields a baseline keeps."""
    out = {field: record[field] for field in KEPT_FIELDS if field in record}
    if isinstance(record.get("parity"), dict):
        out["parity"] = {k: v for k, v in record["parity"].items() if k in KEPT_PARITY_FIELDS}
    return out


def slim_run(run: Run, document: dict[str, Any]) -> dict[str, Any]:
    """A pytest-benchmark-shaped document holding `run`'s records, slimmed."""
    measured = [r for r in run.records if r["status"] == "ok"]
    failed = [r for r in run.records if r["status"] != "ok"]
    machine_info = document.get("machine_info") or {}
    return {
        "machine_info": {
            "node": machine_info.get("node"),
            "machine": machine_info.get("machine"),
            "cpu_brand": (machine_info.get("cpu") or {}).get("brand_raw"),
            "cpu_count": (machine_info.get("cpu") or {}).get("count"),
            VISIONBENCH_JSON_KEY: machine_info.get(VISIONBENCH_JSON_KEY),
        },
        "commit_info": {k: (document.get("commit_info") or {}).get(k) for k in ("id", "time", "dirty", "branch")},
        "datetime": document.get("datetime"),
        "version": document.get("version"),
        "benchmarks": [{"name": f"test_forward[{benchmark_id(r)}]", "extra_info": slim_record(r)} for r in measured],
        VISIONBENCH_JSON_KEY: {
            "schema_version": SCHEMA_VERSION,
            "failures": [slim_record(r) for r in failed],
            "baseline_of": run.path.name,
        },
    }


def write_baseline(source: str | Path, out: str | Path) -> int:
    """Check the run in `source`, then write its slim baseline to `out` atomically; returns the record count."""
    run = load_run(source)  # refuses bad input before anything is written
    document = json.loads(Path(source).read_text(encoding="utf-8"))
    atomic.write_json(out, slim_run(run, document))
    return len(run.records)
