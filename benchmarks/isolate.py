"""`--isolate`: each combination measured in a fresh pytest process, its record merged back.

Memory fragmentation and allocator state left by earlier combinations change what a
later one measures (cuDNN picks algorithms by the workspace it can get; XLA's and torch's
caching allocators keep what they took). With `--isolate`, the benchmark of each
combination starts `python -m pytest benchmarks/test_inference.py::test_forward[<id>]` with
the run's settings and a journal of its own, waits for it, and puts the child's timed
samples and record into this process's `benchmark` fixture, so the one pytest-benchmark
JSON, journal and summary hold every combination as if measured here. The child keeps
`--framework both` when the run has both, so its combination is still interleaved with
its partner (built in the child). A child that fails or is killed fails that combination
with the child's reason, and the run goes on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.workload import Combination
from reports.vocabulary import DEFAULT_CONFIG

TEST = f"{Path(__file__).resolve().parent / 'test_inference.py'}::test_forward"
# Run-level settings a child repeats: (option, dest). The matrix options are replaced by the combination's.
RUN_OPTIONS = (
    ("--rounds", "rounds"), ("--warmup", "warmup"), ("--threads", "threads"), ("--optimizer", "optimizer"),
    ("--freeze", "freeze"), ("--weights", "weights"), ("--xla-flags", "xla_flags"),
    ("--compile-cache", "compile_cache"), ("--data", "data"), ("--epochs", "epochs"), ("--steps", "steps"),
    ("--data-workers", "data_workers"),
)
RUN_FLAGS = (("--torch-compile", "torch_compile"), ("--tf32", "tf32"), ("--pretrained", "pretrained"),
             ("--no-parity", "no_parity"), ("--train-dropout", "train_dropout"), ("--no-interleave", "no_interleave"),
             ("--benchmark-disable", "benchmark_disable"))


class IsolatedFailure(Exception):
    """The child process did not produce the combination's record."""


def child_command(config: Any, combo: Combination, frameworks: tuple[str, ...], journal: Path) -> list[str]:
    """The pytest command that measures `combo` alone, with this run's settings, journaling to `journal`."""
    command = [sys.executable, "-m", "pytest", f"{TEST}[{combo.id}]", "-p", "no:cacheprovider", "-q",
               "--model", combo.model, "--framework", "both" if len(frameworks) > 1 else combo.framework,
               "--device", combo.device, "--batch-sizes", str(combo.batch_size), "--dtype", combo.dtype,
               "--mode", combo.mode, f"--journal={journal}"]
    if combo.input_size is not None:
        command += ["--input-size", str(combo.input_size)]
    if combo.config != DEFAULT_CONFIG:
        command += ["--config", combo.config]
    for option, dest in RUN_OPTIONS:
        value = config.getoption(dest, None)
        if value is not None:
            command += [option, str(value)]
    command += [flag for flag, dest in RUN_FLAGS if config.getoption(dest, False)]
    return command


def run_child(config: Any, combo: Combination, frameworks: tuple[str, ...], timeout_s: float | None = None
              ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Measure `combo` in a fresh process: (its pytest-benchmark entry or None, its failure records)."""
    with tempfile.TemporaryDirectory(prefix="visionbench-isolate-") as folder:
        journal = Path(folder) / "journal.jsonl"
        # In this process's folder, so relative paths (--data, --weights) name the same files.
        result = subprocess.run(child_command(config, combo, frameworks, journal), cwd=os.getcwd(), capture_output=True,
                                text=True, timeout=timeout_s, env=dict(os.environ))
        entry, failures = None, []
        if journal.exists():
            for line in journal.read_text().splitlines():
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:  # a torn last line: the child was killed mid-write
                    continue
                if item.get("kind") == "benchmark" and item.get("id") == combo.id:
                    entry = item["benchmark"]
                elif item.get("kind") == "failure" and item.get("id") == combo.id:
                    failures.append(item["record"])
    if entry is None and not failures and result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
        raise IsolatedFailure(f"isolated process for {combo.id} exited with {result.returncode}: {tail[0]}")
    return entry, failures


def adopt(benchmark: Any, entry: dict[str, Any]) -> dict[str, Any]:
    """Give pytest-benchmark's fixture the child's timed samples and record; returns the record."""
    record = dict(entry["extra_info"])
    record["isolated"] = True
    stats = benchmark._make_stats(1)  # pytest-benchmark's own container: one iteration per round, as pedantic
    for seconds in entry["stats"]["data"]:
        stats.update(seconds)
    benchmark.extra_info.update(record)
    return record
