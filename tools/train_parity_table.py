"""Print train-step parity as a markdown table: model x optimizer x freeze, float32.

Runs `validation.compare_train_step` (the check validation/test_train_parity.py runs) on
random weights. Usage:

    python tools/train_parity_table.py [--model NAME ...] [--optimizer sgd adamw] [--freeze 0 1 backbone]
                                       [--steps 3] [--batch N] [--device cpu]

Default: one tiny variant per family at batch 8 (validation/test_train_parity.py's), and
each named real model at batch 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from models.registry import get_spec  # noqa: E402
from validation.train_parity import compare_train_step  # noqa: E402

HEADER = ("model", "optimizer", "freeze", "steps", "batch", "trainable", "loss rel", "worst update", "worst BN stat",
          "bounds widened", "Adam elements left out", "time s", "status")


def row(name: str, optimizer: str, freeze: str, steps: int, batch: int, device: str) -> tuple[str, ...]:
    """One measured row."""
    start = time.perf_counter()
    r = compare_train_step(name, optimizer, steps=steps, batch_size=batch, freeze=freeze, device=device)
    tensors = [t for t in r.tensors if t.kind != "frozen"]
    status = "pass" if r.passed else f"FAIL: first diverging {r.first_diverging_param} (step {r.first_diverging_step})"
    return (name, optimizer, str(freeze), str(steps), str(batch), f"{r.trainable_params:,}", f"{r.loss_rel:.1e}",
            f"{r.param_max_rel:.1e}", f"{r.stat_max_rel:.1e}", f"{len(r.widened)}/{len(tensors)}",
            str(sum(t.unresolved for t in r.tensors)), f"{time.perf_counter() - start:.0f}", status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=None, help="default: every family's tiny variant")
    parser.add_argument("--optimizer", nargs="+", default=["sgd", "adamw"])
    parser.add_argument("--freeze", nargs="+", default=["0"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=None, help="default: 8 for tiny variants, 2 for real models")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args(argv)
    if args.model is None:
        from validation.test_train_parity import TINY

        args.model = TINY
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for name in args.model:
        batch = args.batch or (8 if get_spec(name).test_only else 2)
        for optimizer in args.optimizer:
            for freeze in args.freeze:
                lines.append("| " + " | ".join(row(name, optimizer, freeze, args.steps, batch, args.device)) + " |")
                print(lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
