"""`python -m benchmarks.cluster` on a local Ray cluster started here: two shards as two worker
processes, tiny models, one shard's first attempt killed mid-run (the recovery drill).

Ray is an optional extra; CI installs it (it is in the dev extra) and must never skip this test.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reports import journal as journals
from reports import load

ROOT = Path(__file__).resolve().parents[1]

try:
    import ray  # noqa: F401
except ImportError:
    if os.environ.get("CI"):
        raise RuntimeError("Ray is not installed, but CI must run the cluster test: pip install -e .[cluster]") from None
    pytest.skip("Ray is not installed (pip install -e .[cluster])", allow_module_level=True)


@pytest.mark.timing  # a live two-process Ray cluster with a timed drill: run alone, not beside xdist workers
def test_two_shards_on_a_local_ray_cluster_survive_a_lost_attempt_and_merge(tmp_path):
    out = tmp_path / "fleet"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.cluster", "--address", "local", "--num-cpus", "2", "--shards", "2",
         "--out", str(out), "--drill-kill", "1:1", "--",
         "--device", "cpu", "--model", "resnet_tiny", "vit_tiny", "--batch-sizes", "1", "2", "--rounds", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    merged = json.loads((out / "merged.json").read_text())
    ids = sorted(load.benchmark_id(b["extra_info"]) for b in merged["benchmarks"])
    assert ids == sorted(f"{m}-{fw}-cpu-bs{b}-float32" for m in ("resnet_tiny", "vit_tiny") for fw in ("torch", "jax") for b in (1, 2))
    # Shard 1's first attempt was killed after one record; its retry resumed from the streamed journal.
    assert "shard 1/2 done on" in result.stderr and "(attempt 2, pytest exit 0)" in result.stderr
    sessions = {}
    for _, line in journals.read_lines(out / "shards" / "shard-1.jsonl"):
        if line["kind"] == "benchmark":
            sessions.setdefault(line["run"], []).append(line["id"])
    first, second = sessions.values()
    assert len(first) >= 1 and second and not set(first) & set(second)
    table = result.stdout.splitlines()
    assert any(line.startswith("| model | device | bs |") for line in table)
    assert len([line for line in table if line.startswith(("| resnet_tiny |", "| vit_tiny |"))]) == 4
    assert "8 records from 3 runs on 1 machine(s)" in result.stderr
