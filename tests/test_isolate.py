"""`--isolate` (issue 14): each combination measured in its own process, the records merged into one JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.isolate import child_command
from benchmarks.workload import Combination

ROOT = Path(__file__).resolve().parents[1]


class _Config:
    def __init__(self, **options) -> None:
        self.options = options

    def getoption(self, name, default=None):
        return self.options.get(name, default)


def test_a_child_repeats_the_run_settings_for_its_one_combination(tmp_path) -> None:
    combo = Combination("swin_t", "jax", "cuda", 4, "bfloat16", "train", 288, "xla-autotune")
    config = _Config(rounds="7", warmup="2", threads=None, optimizer="adamw", freeze="1", tf32=True, no_parity=False)
    command = child_command(config, combo, ("torch", "jax"), tmp_path / "j.jsonl")
    assert command[:3] == [sys.executable, "-m", "pytest"]
    assert command[3] == f"{ROOT / 'benchmarks' / 'test_inference.py'}::test_forward[{combo.id}]"
    text = " ".join(command[4:])
    for part in ("--model swin_t", "--framework both", "--device cuda", "--batch-sizes 4", "--dtype bfloat16",
                 "--mode train", "--input-size 288", "--config xla-autotune", "--rounds 7", "--warmup 2",
                 "--optimizer adamw", "--freeze 1", "--tf32", f"--journal={tmp_path / 'j.jsonl'}"):
        assert part in text
    assert "--threads" not in text and "--no-parity" not in text
    one = child_command(config, Combination("resnet50", "torch", "cpu", 1, "float32"), ("torch",), tmp_path / "k")
    assert "--framework torch" in " ".join(one) and "--input-size" not in one and "--config" not in one


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, env=dict(os.environ))


def test_isolated_records_come_from_their_own_processes_into_one_json(tmp_path) -> None:
    out = tmp_path / "out.json"
    result = _bench("--isolate", "--model", "resnet_tiny", "--batch-sizes", "1", "2", "--rounds", "3",
                    f"--benchmark-json={out}", f"--journal={tmp_path / 'journal.jsonl'}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    benchmarks = json.loads(out.read_text())["benchmarks"]
    assert len(benchmarks) == 4
    pids = {b["extra_info"]["pid"] for b in benchmarks}
    assert len(pids) == 4 and os.getpid() not in pids  # four processes, none of them this one's or each other's
    for b in benchmarks:
        record = b["extra_info"]
        assert record["isolated"] and record["status"] == "ok"
        assert b["stats"]["rounds"] == 3 and len(b["stats"]["data"]) == 3
        assert [round(s * 1e3, 6) for s in b["stats"]["data"]] == record["samples_ms"]  # the child's samples, adopted
        assert record["interleaved"] and record["ratio_rounds"] == 3  # each child still ran its partner
    journal = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert sum(line["kind"] == "benchmark" for line in journal) == 4  # the parent journals the adopted records


def test_a_failing_child_fails_its_combination_with_the_reason_and_the_run_goes_on(tmp_path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a state dict")
    journal = tmp_path / "journal.jsonl"
    result = _bench("--isolate", "--model", "resnet_tiny", "--framework", "torch", "--batch-sizes", "1", "2",
                    "--weights", str(bad), "--rounds", "2", f"--journal={journal}")
    assert result.returncode == 1, result.stdout[-3000:]
    assert "2 failed" in result.stdout
    assert "in the isolated process: build: WeightsMismatchError" in result.stdout
    failures = [line["record"] for line in map(json.loads, journal.read_text().splitlines()) if line["kind"] == "failure"]
    assert sorted(f["batch_size"] for f in failures) == [1, 2]  # both tried, each with its reason
    assert all(f["status"] == "error" and "is not a torch state_dict" in f["reason"] for f in failures)
