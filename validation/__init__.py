"""torch <-> Flax parity. `compare_models(...)` is the programmatic entry (validation/compare.py)."""

from validation.compare import ParityResult, compare_models

__all__ = ["ParityResult", "compare_models"]
