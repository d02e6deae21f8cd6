"""Does the harness under-report? Record throughput vs a minimal hand-written loop.

For each combination, alternately (A B A B ...) in fresh processes:
  A: `pytest benchmarks` writes the record, whose throughput_ips is read back;
  B: a hand-written loop, built only from the public model API and the frameworks' own
     calls (`jax.jit(apply)(v, x).block_until_ready()`, `model(x)` + cuda sync), timed with
     perf_counter around each call.
It prints the ratio record / hand loop per combination (median over repetitions); the
harness is faithful when every ratio is within 3% of 1.

    python tools/fidelity.py --model resnet50 vit_b_16 --batch-sizes 1 8 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def hand_loop(model: str, framework: str, device: str, batch: int, rounds: int, warmup: int) -> list[float]:
    """Per-call seconds of the plainest loop a user would write, after untimed warm-up."""
    import numpy as np

    from models import get_flax_model, get_spec, get_torch_model

    spec = get_spec(model)
    torch_model, _, shape, _ = get_torch_model(model)
    x = np.random.default_rng(0).standard_normal((batch, *shape), dtype=np.float32)
    if framework == "torch":
        import torch

        torch.set_num_threads(len(os.sched_getaffinity(0)))
        # The harness's default: true float32 (no TF32) on GPU.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch_model = torch_model.to(device)
        xt = torch.from_numpy(x).to(device)

        def call() -> None:
            with torch.inference_mode():
                torch_model(xt)
            if device == "cuda":
                torch.cuda.synchronize()
    else:
        import jax

        apply_fn, variables, _, _ = get_flax_model(model, (batch, spec.input_size, spec.input_size, 3), torch_model=torch_model)
        dev = jax.devices("gpu" if device == "cuda" else "cpu")[0]
        variables = jax.device_put(variables, dev)
        xj = jax.device_put(np.transpose(x, (0, 2, 3, 1)), dev)  # (N, C, H, W) -> (N, H, W, C)
        jax.config.update("jax_default_matmul_precision", "highest")  # the harness's default on GPU
        forward = jax.jit(apply_fn)

        def call() -> None:
            forward(variables, xj).block_until_ready()

    for _ in range(1 + warmup):
        call()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def harness_throughput(args: argparse.Namespace, out: Path) -> dict[tuple, float]:
    """Run the real benchmark matrix once; throughput_ips per (model, framework, batch)."""
    cmd = [sys.executable, "-m", "pytest", "benchmarks", "-q", "-p", "no:cacheprovider", "--no-parity",
           "--model", *args.model, "--framework", args.framework, "--device", args.device,
           "--batch-sizes", *map(str, args.batch_sizes), "--rounds", str(args.rounds),
           "--warmup", str(args.warmup), f"--benchmark-json={out}"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    data = json.loads(out.read_text())
    return {
        (r["model"], r["framework"], r["batch_size"]): r["throughput_ips"]
        for r in (b["extra_info"] for b in data["benchmarks"])
    }


def hand_throughput(args: argparse.Namespace) -> dict[tuple, float]:
    """Run every hand loop in one fresh process; throughput per (model, framework, batch)."""
    cmd = [sys.executable, __file__, "--hand-loop", "--model", *args.model, "--framework", args.framework,
           "--device", args.device, "--batch-sizes", *map(str, args.batch_sizes),
           "--rounds", str(args.rounds), "--warmup", str(args.warmup)]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return {tuple(k): v for k, v in json.loads(out.strip().splitlines()[-1])}


def _combos(args: argparse.Namespace):
    frameworks = ("torch", "jax") if args.framework == "both" else (args.framework,)
    return [(m, f, b) for m in args.model for f in frameworks for b in args.batch_sizes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["resnet50", "vit_b_16"])
    parser.add_argument("--framework", default="both", choices=("torch", "jax", "both"))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="A/B alternations")
    parser.add_argument("--hand-loop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))

    if args.hand_loop:
        result = []
        for model, framework, batch in _combos(args):
            samples = hand_loop(model, framework, args.device, batch, args.rounds, args.warmup)
            result.append([[model, framework, batch], batch / statistics.median(samples)])
        print(json.dumps(result))
        return

    ratios: dict[tuple, list[float]] = {c: [] for c in _combos(args)}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            print(f"repeat {rep + 1}/{args.repeats}: harness ...", file=sys.stderr, flush=True)
            harness = harness_throughput(args, Path(tmp) / f"h{rep}.json")
            print(f"repeat {rep + 1}/{args.repeats}: hand loop ...", file=sys.stderr, flush=True)
            hand = hand_throughput(args)
            for combo in ratios:
                ratios[combo].append(harness[combo] / hand[combo])
                print(f"  {combo}: harness {harness[combo]:.2f} img/s, hand {hand[combo]:.2f} img/s", file=sys.stderr)
    print("| model | framework | batch | record / hand loop (median) | min | max |")
    print("| --- | --- | --- | --- | --- | --- |")
    worst = 0.0
    for (model, framework, batch), values in ratios.items():
        median = statistics.median(values)
        worst = max(worst, abs(1 - median))
        print(f"| {model} | {framework} | {batch} | {median:.3f} | {min(values):.3f} | {max(values):.3f} |")
    print(f"\nlargest deviation of the median ratio from 1: {worst:.1%} (target: within 3%)")


if __name__ == "__main__":
    main()
