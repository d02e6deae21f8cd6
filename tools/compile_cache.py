"""Cold vs warm compilation across processes with `--compile-cache`: JAX's persistent cache.

Runs the same JAX workload build in fresh processes sharing one cache folder: the first
compiles cold and writes the cache, the later ones should load it. Prints each process's
time to trace and lower the Flax module (Python work no cache can skip) and XLA's compile
(what the persistent cache replaces), and the warm/cold ratios of both.

    python tools/compile_cache.py --model resnet50 --processes 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys
from benchmarks.compile_cache import enable_compile_caches
enable_compile_caches(sys.argv[1])
from benchmarks.backend_jax import build_workload
from benchmarks.workload import BuildOptions, Combination
w = build_workload(Combination(sys.argv[2], "jax", "cpu", int(sys.argv[3]), "float32"), BuildOptions(threads=int(sys.argv[4])))
print(json.dumps({"compile_ms": w.compile_ms, "compile_cache": w.extra["compile_cache"],
                  "lower_ms": w.extra["lower_ms"], "xla_compile_ms": w.extra["xla_compile_ms"]}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--processes", type=int, default=3, help="fresh processes in a row (the first is cold)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vb-cache-") as cache:
        results = []
        for index in range(args.processes):
            out = subprocess.run([sys.executable, "-c", CHILD, cache, args.model, str(args.batch_size), str(args.threads)],
                                 cwd=ROOT, capture_output=True, text=True, check=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
            r = results[-1]
            print(f"process {index + 1}: lower+compile {r['compile_ms']:,.0f} ms = trace/lower {r['lower_ms']:,.0f} ms "
                  f"+ XLA compile {r['xla_compile_ms']:,.0f} ms ({r['compile_cache']})", flush=True)
    cold = results[0]
    for index, r in enumerate(results[1:], start=2):
        print(f"process {index} / process 1: XLA compile {r['xla_compile_ms'] / cold['xla_compile_ms']:.3f}, "
              f"lower+compile {r['compile_ms'] / cold['compile_ms']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
