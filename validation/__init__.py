"""torch/Flax parity: inference logits (`validation.compare`), train steps (`validation.train_parity`).

`compare_models` and `compare_train_step` are importable from here; importing the package
imports neither torch nor jax.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ParityResult", "compare_models", "compare_train_step"]


def __getattr__(name: str) -> Any:
    if name in ("compare_models", "ParityResult"):
        from validation import compare

        return getattr(compare, name)
    if name == "compare_train_step":
        from validation.train_parity import compare_train_step

        return compare_train_step
    raise AttributeError(f"module 'validation' has no attribute {name!r}")
