"""One benchmark worker per GPU under pytest-xdist, checked on CPU with fake GPUs (CUDA_VISIBLE_DEVICES=0,1)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.gpu_workers import merge_worker_documents, visible_gpus, worker_gpu
from reports import journal as journals
from reports import load

ROOT = Path(__file__).resolve().parents[1]


def test_each_worker_gets_its_own_gpu_or_none_at_all():
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 3"}) == ["2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert [worker_gpu(["2", "3"], f"gw{i}", 2) for i in range(2)] == ["2", "3"]
    assert worker_gpu(["2", "3"], "gw0", 1) == "2"
    assert worker_gpu(["0", "1"], "gw0", 3) is None  # more workers than GPUs: none is pinned, none shares
    assert worker_gpu([], "gw0", 1) is None


def test_worker_documents_merge_into_one_run():
    docs = [{"machine_info": {"visionbench": {"cuda_visible_devices": str(i)}}, "datetime": f"2026-01-0{i + 1}",
             "benchmarks": [{"name": f"b{i}"}], "visionbench": {"failures": [{"f": i}]}} for i in range(2)]
    merged = merge_worker_documents(docs)
    assert [b["name"] for b in merged["benchmarks"]] == ["b0", "b1"]
    assert merged["visionbench"]["failures"] == [{"f": 0}, {"f": 1}]
    assert merged["machine_info"]["visionbench"]["cuda_visible_devices"] == "0,1"
    assert merged["datetime"] == "2026-01-02"


def test_two_xdist_workers_on_two_fake_gpus_record_every_benchmark_once(tmp_path):
    out, journal = tmp_path / "run.json", tmp_path / "run.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--device", "cpu", "--model", "resnet_tiny", "vit_tiny", "--framework", "torch",
         "--batch-sizes", "1", "2", "--rounds", "2", "-p", "no:cacheprovider", "-q", "-n", "2",
         f"--benchmark-json={out}", f"--journal={journal}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "CUDA_VISIBLE_DEVICES": "0,1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "one xdist worker per GPU (gw0->GPU 0, gw1->GPU 1)" in result.stdout
    document = json.loads(out.read_text())
    ids = sorted(load.benchmark_id(b["extra_info"]) for b in document["benchmarks"])
    assert ids == sorted(f"{m}-torch-cpu-bs{b}-float32" for m in ("resnet_tiny", "vit_tiny") for b in (1, 2))
    assert all(b["stats"]["rounds"] == 2 for b in document["benchmarks"])  # timed, not pytest-benchmark's disabled single call
    assert document["machine_info"]["visionbench"]["cuda_visible_devices"] == "0,1"  # each worker pinned to its own
    journaled = sorted(line["id"] for _, line in journals.read_lines(journal) if line["kind"] == "benchmark")
    assert journaled == ids  # the controller journals what the workers measured
    (run,) = load.load_runs([tmp_path])  # the JSON and the journal are one session
    assert len(run.records) == 4
