"""`--compile-cache DIR` (issue 14): a first process finds JAX's cache cold, a second one warm, and says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(cache: Path, out: Path) -> dict:
    result = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "-p", "no:cacheprovider", "--model", "vit_tiny",
                             "--framework", "jax", "--batch-sizes", "1", "--rounds", "2", "--no-parity",
                             f"--compile-cache={cache}", f"--benchmark-json={out}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    data = json.loads(out.read_text())
    (bench,) = data["benchmarks"]
    return {**bench["extra_info"], "machine": data["machine_info"]["visionbench"]}


def test_the_second_process_finds_the_cache_warm(tmp_path) -> None:
    cache = tmp_path / "cache"
    cold = _run(cache, tmp_path / "cold.json")
    warm = _run(cache, tmp_path / "warm.json")
    assert (cold["compile_cache"], warm["compile_cache"]) == ("cold", "warm")
    assert any((cache / "jax").iterdir()) and (cache / "inductor").is_dir()
    assert cold["machine"]["compile_cache"] == str(cache)
    # Timing (warm at most 0.2x cold for resnet50) is shown by tools/compile_cache.py, not asserted here.


def test_without_the_option_records_say_no_cache(tmp_path) -> None:
    out = tmp_path / "none.json"
    result = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "-p", "no:cacheprovider", "--model",
                             "vit_tiny", "--framework", "jax", "--batch-sizes", "1", "--rounds", "2", "--no-parity",
                             f"--benchmark-json={out}"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION", "TORCHINDUCTOR"))})
    assert result.returncode == 0, result.stdout[-2000:]
    (bench,) = json.loads(out.read_text())["benchmarks"]
    assert bench["extra_info"]["compile_cache"] is None
