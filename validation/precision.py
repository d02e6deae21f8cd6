"""Matmul precision of both frameworks for float32 parity: exact, or each one's default."""

from __future__ import annotations

import contextlib
from typing import Iterator

PRECISIONS = ("highest", "default")


@contextlib.contextmanager
def float32_precision(precision: str) -> Iterator[None]:
    """Both frameworks at `precision`: 'highest' (TF32 off on both sides) or 'default'.

    'default' allows TensorFloat-32 in both, as JAX does by default on Ampere and later
    GPUs and as the benchmarks run with `--tf32` (torch by default allows it only in
    cuDNN convolutions). On a CPU both mean float32.
    """
    import jax
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    exact = precision == "highest"
    torch.backends.cuda.matmul.allow_tf32 = not exact
    torch.backends.cudnn.allow_tf32 = not exact
    try:
        with jax.default_matmul_precision("highest" if exact else "tensorfloat32"):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
