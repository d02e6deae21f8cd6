"""`--batch-sizes auto`: the sweep's stopping rule on synthetic throughputs, and a real run that ends by itself."""

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.sweep import MIN_GAIN, Sweep, auto_batch_sizes
from reports.vocabulary import Combination

ROOT = Path(__file__).resolve().parents[1]


def _combo(batch: int, framework: str = "torch") -> Combination:
    return Combination("resnet50", framework, "cuda", batch, "bfloat16")


def test_line_runs_while_doubling_pays_and_stops_at_the_first_small_gain():
    sweep = Sweep()
    throughputs = {1: 100.0, 2: 190.0, 4: 350.0, 8: 360.0, 16: 900.0}
    ran = []
    for batch in auto_batch_sizes("cuda"):
        if sweep.reason_to_skip(_combo(batch)):
            continue
        ran.append(batch)
        sweep.record_measured(_combo(batch), throughputs.get(batch, 0.0))
    assert ran == [1, 2, 4, 8]  # 360 < 350 * 1.05 ends the line: bs16 is never tried
    (line,) = sweep.summary()
    assert line["largest_batch_fit"] == 8 and line["best_batch"] == 8 and line["best_throughput_ips"] == 360.0
    assert "bs8 gave 360.0 img/s" in line["stopped"]
    assert "under 1.05x the best (350.0 img/s at bs4)" in sweep.reason_to_skip(_combo(16))


def test_out_of_memory_ends_only_its_own_line():
    sweep = Sweep()
    for batch in (1, 2):
        sweep.record_measured(_combo(batch), 100.0 * batch)
        sweep.record_measured(_combo(batch, "jax"), 100.0 * batch)
    sweep.record_failed(_combo(4), "out of memory: CUDA OOM")
    assert "bs4 failed: out of memory" in sweep.reason_to_skip(_combo(8))
    assert sweep.reason_to_skip(_combo(4, "jax")) is None
    torch_line = next(line for line in sweep.summary() if "-torch-" in line["line"])
    assert torch_line["largest_batch_fit"] == 2 and torch_line["best_batch"] == 2


def test_a_gain_of_exactly_the_threshold_continues():
    sweep = Sweep()
    sweep.record_measured(_combo(1), 100.0)
    sweep.record_measured(_combo(2), 100.0 * (1 + MIN_GAIN))
    assert sweep.reason_to_skip(_combo(4)) is None


def test_auto_sweep_run_ends_by_itself_and_records_the_summary(tmp_path):
    out = tmp_path / "sweep.json"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--device", "cpu", "--model", "vit_tiny", "--framework", "torch",
         "--batch-sizes", "auto", "--rounds", "3", "--no-parity", "-p", "no:cacheprovider", f"--benchmark-json={out}", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    doc = json.loads(out.read_text())
    (line,) = doc["visionbench"]["batch_sweep"]
    measured = sorted(b["extra_info"]["batch_size"] for b in doc["benchmarks"])
    assert measured == [2**i for i in range(len(measured))]  # 1, 2, 4, ... with no gap
    assert line["largest_batch_fit"] == measured[-1]
    best = max(doc["benchmarks"], key=lambda b: b["extra_info"]["throughput_ips"])
    assert line["best_batch"] == best["extra_info"]["batch_size"]
    assert "batch sweep of vit_tiny-torch-cpu-float32 ended" in result.stdout or measured[-1] == auto_batch_sizes("cpu")[-1]
