"""The best configuration per model x framework x dtype in benchmark JSON files: img/s, MFU, batch.

    python tools/best_configs.py gpu-out/gpu_configs.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reports.load import load_runs  # noqa: E402


def best_rows(paths: list[str]) -> list[dict]:
    """One row per (model, framework, dtype, mode): the measured record with the highest img/s, and the others."""
    best: dict[tuple, dict] = {}
    tried: dict[tuple, list[str]] = {}
    for run in load_runs(paths):
        for record in run.records:
            if record.get("status") != "ok":
                continue
            key = (record["model"], record["framework"], record["dtype"], record["mode"])
            tried.setdefault(key, []).append(f"{record.get('config', 'eager')}@bs{record['batch_size']}:"
                                             f"{record['throughput_ips']:,.0f}")
            if key not in best or record["throughput_ips"] > best[key]["throughput_ips"]:
                best[key] = record
    return [dict(best[key], tried=tried[key]) for key in sorted(best)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    print("| model | framework | dtype | mode | best config | bs | img/s | TFLOP/s | MFU | parity | device | all tried (config@bs: img/s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in best_rows(args.paths):
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "-"
        tflops = f"{r['achieved_tflops']:.1f}" if r.get("achieved_tflops") is not None else "-"
        parity = (r.get("parity") or {}).get("status", "-")
        print(f"| {r['model']} | {r['framework']} | {r['dtype']} | {r['mode']} | {r.get('config', 'eager')} | {r['batch_size']} "
              f"| {r['throughput_ips']:,.0f} | {tflops} | {mfu} | {parity} | {r.get('device_name', '')} | {'; '.join(r['tried'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
