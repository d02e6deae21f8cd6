"""How much the torch/JAX ratio moves between runs: sequential (--no-interleave) vs interleaved.

Runs the same matrix `--repeats` times in each method, alternating the methods, each in a
fresh pytest process, and prints every run's ratio per combination and the spread (max/min)
of each method across runs.

    python tools/ratio_stability.py --model resnet50 vit_b_16 --batch-sizes 1 8 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reports import frame as frames  # noqa: E402
from reports.load import load_runs  # noqa: E402


def run_once(args: argparse.Namespace, interleave: bool, out: Path) -> dict[tuple, tuple]:
    """One pytest run; (model, batch) -> (ratio, low, high) from the reports comparison."""
    command = [sys.executable, "-m", "pytest", "benchmarks", "-p", "no:cacheprovider", "-q", "--device", "cpu",
               "--model", *args.model, "--batch-sizes", *map(str, args.batch_sizes), "--rounds", str(args.rounds),
               "--threads", str(args.threads), f"--benchmark-json={out}"]
    if not interleave:
        command.append("--no-interleave")
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    table = frames.comparison(frames.records_frame(load_runs([out])))
    return {(r.model, r.batch_size): (r.throughput_ratio, r.ratio_ci_low, r.ratio_ci_high) for r in table.itertuples()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["resnet50", "vit_b_16"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    results: dict[str, list[dict]] = {"sequential": [], "interleaved": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for method in ("sequential", "interleaved"):
                out = Path(tmp) / f"{method}-{repeat}.json"
                results[method].append(run_once(args, method == "interleaved", out))
                print(f"run {repeat + 1} {method}: " + ", ".join(
                    f"{m} bs{b} {r:.3f}" for (m, b), (r, _, _) in sorted(results[method][-1].items())), flush=True)
    print("\n| model | bs | method | ratio per run | spread max/min |")
    print("|---|---|---|---|---|")
    for key in sorted(results["sequential"][0]):
        for method, runs in results.items():
            values = [run[key][0] for run in runs]
            cells = "; ".join(f"{v:.3f}" + (f" [{run[key][1]:.3f}, {run[key][2]:.3f}]" if run[key][1] == run[key][1] else "")
                              for v, run in zip(values, runs))
            print(f"| {key[0]} | {key[1]} | {method} | {cells} | {max(values) / min(values):.3f} |")
    print(json.dumps({m: [{f"{k[0]}-bs{k[1]}": v for k, v in run.items()} for run in runs] for m, runs in results.items()}),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
