"""Checks of the CUDA timing paths that a CPU machine cannot make. Needs a GPU.

1. Sync honesty: a workload's `run()` wall time vs CUDA events around the same call, and
   vs an unsynchronised call (which would under-report: it returns before the GPU is done).
2. JAX: `block_until_ready` vs a call that does not wait.
3. Memory: torch allocated vs reserved peaks, JAX device peak.

    python tools/cuda_checks.py --model resnet50 --batch-size 32 --json out.json
    python tools/cuda_checks.py --device cpu --model resnet_tiny --batch-size 2   # dry run of the code paths
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _median_ms(fn, n: int) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def torch_checks(model: str, batch: int, dtype: str, n: int, device: str = "cuda") -> dict:
    """Wall time of run() vs CUDA events vs an unsynchronised call, and memory peaks."""
    import torch

    from benchmarks.backend_torch import build_workload
    from benchmarks.workload import BuildOptions, Combination

    workload = build_workload(Combination(model, "torch", device, batch, dtype), BuildOptions(threads=1))
    for _ in range(3):
        workload.run()
    workload.reset_memory()
    run_ms = _median_ms(workload.run, n)
    event_ms = []
    for _ in range(n if device == "cuda" else 0):  # a CPU dry run has no events to read
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        workload.run()
        end.record()
        end.synchronize()
        event_ms.append(start.elapsed_time(end))
    # The same forward without the synchronize: what a harness that forgot it would report.
    from models import get_torch_model

    plain, _, shape, _ = get_torch_model(model, device=device)
    plain = plain.to(getattr(torch, dtype))
    x = torch.randn(batch, *shape, device=device, dtype=getattr(torch, dtype))

    def unsynced() -> None:
        with torch.inference_mode():
            plain(x)

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(3):
        unsynced()
    sync()
    unsynced_ms = _median_ms(unsynced, n)
    sync()
    event = statistics.median(event_ms) if event_ms else None
    return {
        "run_wall_ms": run_ms,
        "cuda_event_ms": event,
        "wall_over_event": run_ms / event if event else None,
        "unsynchronised_call_ms": unsynced_ms,
        **workload.memory(),
        "device_name": workload.device_name,
    }


def jax_checks(model: str, batch: int, dtype: str, n: int, device: str = "cuda") -> dict:
    """Wall time of run() (blocks) vs dispatch without waiting, and the device memory peak."""
    from benchmarks.backend_jax import build_workload
    from benchmarks.workload import BuildOptions, Combination

    workload = build_workload(Combination(model, "jax", device, batch, dtype), BuildOptions(threads=1))
    for _ in range(3):
        workload.run()
    run_ms = _median_ms(workload.run, n)
    import jax
    import jax.numpy as jnp

    from models import get_flax_model, get_spec

    spec = get_spec(model)
    apply_fn, variables, _, _ = get_flax_model(model, (batch, spec.input_size, spec.input_size, 3), dtype=getattr(jnp, dtype))
    x = jnp.zeros((batch, spec.input_size, spec.input_size, 3), getattr(jnp, dtype))
    forward = jax.jit(apply_fn)
    forward(variables, x).block_until_ready()
    outputs = []
    dispatch_ms = _median_ms(lambda: outputs.append(forward(variables, x)), n)  # returns before the GPU is done
    jax.block_until_ready(outputs)
    return {"run_wall_ms": run_ms, "dispatch_only_ms": dispatch_ms, "compile_ms": workload.compile_ms, **workload.memory()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: a dry run of the code paths")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = {}
    for dtype in args.dtype:
        results[f"torch-{dtype}"] = torch_checks(args.model, args.batch_size, dtype, args.n, args.device)
        results[f"jax-{dtype}"] = jax_checks(args.model, args.batch_size, dtype, args.n, args.device)
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
