"""Print the parity suite's measurements as a markdown table: model x dtype x device.

Runs the very checks validation/test_parity.py runs (same random weights, seeds, batch
sizes and tolerances), so the numbers are the suite's. Usage:

    python tools/parity_table.py [--device cpu cuda] [--model NAME ...]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from models.registry import list_models  # noqa: E402
from validation.suite import DTYPES, batch_size, check, cuda_unavailable_reason, random_pair  # noqa: E402

HEADER = ("model", "dtype", "device", "precision", "batch", "max abs", "max rel", "max logit", "cosine",
          "top-1 agree", "top-1 strict", "top-1 margin", "status")


def rows(models: list[str], devices: list[str]) -> list[tuple[str, ...]]:
    """One row per model x dtype x device (plus float32 at default precision on cuda)."""
    out = []
    for name in models:
        pair = random_pair(name)
        for device in devices:
            cases = [(dtype, "highest") for dtype in DTYPES]
            if device == "cuda":
                cases.insert(1, ("float32", "default"))
            for dtype, precision in cases:
                r = check(pair, dtype, device, precision)
                status = "pass" if r.passed else "FAIL: " + "; ".join(r.failures)
                out.append((
                    name, dtype, device, precision if dtype == "float32" else "-", str(batch_size(pair.spec, dtype, device)),
                    f"{r.max_abs:.2e}", f"{r.max_rel:.2e}", f"{r.logit_scale:.3g}", f"{r.cosine:.7f}",
                    f"{r.top1_agreement:.0%}", f"{r.top1_strict:.0%}", f"{r.top1_margin:.3g}", status,
                ))
                print(f"measured {name} {dtype} {device} {precision}", file=sys.stderr, flush=True)
    return out


def markdown(table: list[tuple[str, ...]]) -> str:
    """`table` under HEADER as a markdown table."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", nargs="+", choices=("cpu", "cuda"), default=["cpu"])
    parser.add_argument("--model", nargs="+", default=None, help="default: every registered model, tiny ones included")
    args = parser.parse_args(argv)
    if "cuda" in args.device and (reason := cuda_unavailable_reason()):
        parser.error(f"--device cuda: {reason}")
    print(markdown(rows(args.model or list_models(include_test_only=True), args.device)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
