"""`python -m reports merge A B ... --out merged.json`: shards, journals and machines in one file.

The merged file is pytest-benchmark JSON (a top-level `benchmarks` list, the first run's
`machine_info`), so pytest-benchmark's own tools still read it; its `visionbench.merged`
object keeps every run (id, machine, time, node, source) and every machine's key, and each
record names its run (`run_id`), so nothing is mixed: `reports table` keeps each machine's
figures apart. A session read twice (its journal and its JSON) counts once. Two runs of
one machine holding the same combination are refused unless `newest` keeps the newer;
records of different schema versions are refused.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Sequence

from reports import machine as machines
from reports.errors import BadInput
from reports.load import VISIONBENCH_JSON_KEY, Run, benchmark_id, record_key

MERGED_FORMAT_VERSION = 1


def check_compatible(runs: Sequence[Run]) -> int:
    """The one schema version of every record in `runs`; BadInput naming two files that differ."""
    first: dict[Any, Run] = {}
    for run in runs:
        for record in run.records:
            first.setdefault(record["schema_version"], run)
    if len(first) > 1:
        (v1, a), (v2, b) = sorted(first.items(), key=lambda kv: str(kv[0]))[:2]
        raise BadInput(b.path, f"records of schema version {v2}, but {a.path} holds version {v1}; "
                               "merge runs of one schema version")
    return next(iter(first)) if first else 0


def kept_records(runs: Sequence[Run], newest: bool) -> dict[str, set[int]]:
    """Per run id, the ids (id()) of its records the merge keeps: all, unless one machine has a combination twice."""
    owner: dict[tuple[Any, ...], tuple[Run, dict[str, Any]]] = {}
    kept: dict[str, set[int]] = {run.run_id: set() for run in runs}
    for run in sorted(runs, key=lambda r: r.timestamp):
        for record in run.records:
            key = (run.machine_id, *record_key(record))
            if key in owner:
                older, old_record = owner[key]
                if not newest:
                    raise BadInput(run.path, f"{benchmark_id(record)} on machine {run.machine} is also in {older.path}; "
                                             "merge runs that do not overlap, or add --newest to keep the newer record")
                kept[older.run_id].discard(id(old_record))
            owner[key] = (run, record)
            kept[run.run_id].add(id(record))
    return kept


def merge_runs(runs: Sequence[Run], newest: bool = False) -> dict[str, Any]:
    """One pytest-benchmark-shaped document holding every run's records, each tagged with its run."""
    if not runs:
        raise BadInput("<arguments>", "nothing to merge")
    version = check_compatible(runs)
    kept = kept_records(runs, newest)
    benchmarks, failures, entries, machine_map = [], [], [], {}
    for run in runs:
        measured = set()
        for bench in run.benchmarks:
            record = bench.get("extra_info")
            measured.add(id(record))
            if id(record) in kept[run.run_id]:
                benchmarks.append({**bench, "extra_info": {**record, "run_id": run.run_id}})
        failures += [{**r, "run_id": run.run_id} for r in run.records if id(r) not in measured and id(r) in kept[run.run_id]]
        entries.append({"run_id": run.run_id, "machine_id": run.machine_id, "timestamp": run.timestamp,
                        "git_commit": run.git_commit, "node": run.node, "kind": run.kind, "source": str(run.path),
                        "commit_info": run.commit_info, "records": len(kept[run.run_id])})
        machine_map.setdefault(run.machine_id, {"key": run.machine_key, "label": machines.short_label(run.machine_key),
                                                "description": machines.describe(run.machine_key),
                                                "machine_info": run.machine_info})
    newest_time = max((run.timestamp for run in runs), default="")
    return {
        "machine_info": runs[0].machine_info,
        "commit_info": runs[0].commit_info,
        "datetime": newest_time or datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "benchmarks": benchmarks,
        VISIONBENCH_JSON_KEY: {
            "schema_version": version,
            "failures": failures,
            "merged": {"format_version": MERGED_FORMAT_VERSION, "runs": entries, "machines": machine_map},
        },
    }


def merge_files(paths: Sequence[str | Path], out: str | Path, newest: bool = False) -> str:
    """Merge the runs in `paths` into `out` (written atomically); returns a one-line summary."""
    from reports import atomic
    from reports.load import load_runs

    runs = load_runs(paths)
    document = merge_runs(runs, newest)
    atomic.write_json(out, document)
    header = document[VISIONBENCH_JSON_KEY]
    count = len(document["benchmarks"]) + len(header["failures"])
    return f"{out}: {count} records from {len(runs)} runs on {len(header['merged']['machines'])} machine(s)"
