"""torch <-> Flax output parity: run both on one input and judge the difference."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from models.registry import Tolerance


@dataclasses.dataclass
class ParityResult:
    """How far the Flax logits are from torch's, and the verdict under a tolerance."""

    model: str
    max_abs: float
    max_rel: float
    cosine: float
    top1_agreement: float
    passed: bool
    tolerance: Tolerance
    failures: list[str] = dataclasses.field(default_factory=list)

    def as_record(self) -> dict[str, Any]:
        """The parity block of a benchmark record."""
        return {
            "status": "passed" if self.passed else "failed",
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "cosine": self.cosine,
            "top1_agreement": self.top1_agreement,
            "failures": list(self.failures),
        }


def compare_logits(model: str, expected: np.ndarray, actual: np.ndarray, tolerance: Tolerance) -> ParityResult:
    """Compare `actual` (Flax) logits to `expected` (torch) ones under `tolerance`."""
    expected = np.asarray(expected, np.float64)
    actual = np.asarray(actual, np.float64)
    if expected.shape != actual.shape:
        raise ValueError(f"{model}: torch logits {expected.shape} and Flax logits {actual.shape} differ in shape")
    diff = np.abs(expected - actual)
    max_abs = float(diff.max())
    max_rel = float(max_abs / max(np.abs(expected).max(), 1e-12))
    flat_e, flat_a = expected.reshape(len(expected), -1), actual.reshape(len(actual), -1)
    norms = np.linalg.norm(flat_e, axis=1) * np.linalg.norm(flat_a, axis=1)
    cosine = float(np.min(np.sum(flat_e * flat_a, axis=1) / np.maximum(norms, 1e-30)))
    top1 = float(np.mean(expected.argmax(-1) == actual.argmax(-1)))
    failures = []
    if not np.all(np.isfinite(actual)):
        failures.append("Flax logits contain NaN or inf")
    if tolerance.max_abs is not None and not max_abs <= tolerance.max_abs:
        failures.append(f"max abs error {max_abs:.3g} > {tolerance.max_abs:.3g}")
    if tolerance.max_rel is not None and not max_rel <= tolerance.max_rel:
        failures.append(f"max relative error {max_rel:.3g} > {tolerance.max_rel:.3g}")
    if tolerance.min_cosine is not None and not cosine >= tolerance.min_cosine:
        failures.append(f"cosine similarity {cosine:.6f} < {tolerance.min_cosine}")
    if tolerance.min_top1 is not None and not top1 >= tolerance.min_top1:
        failures.append(f"top-1 agreement {top1:.2%} < {tolerance.min_top1:.0%}")
    return ParityResult(model, max_abs, max_rel, cosine, top1, not failures, tolerance, failures)


def compare_models(
    model_name: str,
    pytorch_model: Any,
    pytorch_preprocess: Callable,
    jax_apply_fn: Callable,
    jax_params: Any,
    jax_preprocess: Callable,
    input_shape_pytorch: tuple[int, ...],
    input_shape_jax: tuple[int, ...],
    batch_size: int,
    tolerance: Tolerance | float,
    seed: int = 0,
) -> ParityResult:
    """Run both models on the same random images and compare their logits.

    `tolerance` is a `Tolerance`, or a float meaning a max-abs bound. Images are uniform
    in [0, 1], (N, H, W, C); each framework's `preprocess` normalises and lays them out.
    """
    import jax
    import torch

    if isinstance(tolerance, (int, float)):
        tolerance = Tolerance(max_abs=float(tolerance))
    c, h, w = input_shape_pytorch[-3:]
    if tuple(input_shape_jax[-3:]) != (h, w, c):
        raise ValueError(f"input shapes disagree: torch {input_shape_pytorch} vs jax {input_shape_jax}")
    images = np.random.default_rng(seed).random((batch_size, h, w, c), dtype=np.float32)
    device = next(pytorch_model.parameters()).device
    dtype = next(pytorch_model.parameters()).dtype
    with torch.no_grad():
        expected = pytorch_model(pytorch_preprocess(images).to(device=device, dtype=dtype)).float().cpu().numpy()
    actual = np.asarray(jax.jit(jax_apply_fn)(jax_params, jax_preprocess(images)), np.float32)
    return compare_logits(model_name, expected, actual, tolerance)
