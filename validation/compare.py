"""torch <-> Flax output parity: run both on one input and judge the difference."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from models.registry import Tolerance

# Relative error of one layer's output (max |flax - torch| / max |torch|) above which it
# counts as diverged, per tier. Worst layer of a correct port on random weights (CPU):
# float32 6.6e-6, bfloat16 9.8e-2 (both resnet50's last stage). First wrong layer of the
# planted bugs in tests/test_wrong_port.py: a dropped class token 0.44 in bfloat16, a
# transposed kernel 1.4; a tanh GELU stays above the float32 threshold.
FLOAT32_LAYER_THRESHOLD = 5e-5
HALF_LAYER_THRESHOLD = 0.25

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
    logit_scale: float = float("nan")  # max |torch logit|: the scale max_abs is read against
    top1_margin: float = float("nan")  # smallest gap between torch's two highest logits
    top1_strict: float = float("nan")  # top-1 agreement with no tie excused
    first_diverging_layer: str | None = None  # torch module name, e.g. "layer2.0.conv2"
    flax_layer: str | None = None  # its Flax path, e.g. "layer2_0/conv2"
    layer_error: float | None = None  # that layer's relative error
    layer_threshold: float | None = None

    def as_record(self) -> dict[str, Any]:
        """The parity block of a benchmark record."""
        return {
            "status": "passed" if self.passed else "failed",
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "cosine": self.cosine,
            "top1_agreement": self.top1_agreement,
            "top1_strict": self.top1_strict,
            "logit_scale": self.logit_scale,
            "failures": list(self.failures),
            "first_diverging_layer": self.first_diverging_layer,
            "layer_error": self.layer_error,
        }

    def message(self) -> str:
        """One human line: the verdict, what failed and, on failure, where it started."""
        if self.passed:
            return f"{self.model}: parity passed (max abs {self.max_abs:.2g}, cosine {self.cosine:.6f})"
        text = f"{self.model}: parity FAILED: {'; '.join(self.failures)}"
        if self.first_diverging_layer is not None:
            text += (
                f"; first diverging layer: {self.first_diverging_layer} (Flax {self.flax_layer}), "
                f"relative error {self.layer_error:.3g} > {self.layer_threshold:.3g}"
            )
        elif self.layer_threshold is not None:
            text += f"; no single layer exceeds relative error {self.layer_threshold:.3g}: the error accumulates"
        return text


def layer_threshold(tolerance: Tolerance) -> float:
    """The relative error per layer that counts as diverged under `tolerance`'s tier."""
    if tolerance.max_abs is not None:
        return FLOAT32_LAYER_THRESHOLD
    if tolerance.max_rel is not None:
        return tolerance.max_rel
    return HALF_LAYER_THRESHOLD


def compare_logits(model: str, expected: np.ndarray, actual: np.ndarray, tolerance: Tolerance) -> ParityResult:
    """Compare `actual` (Flax) logits to `expected` (torch) ones under `tolerance`."""
    expected = np.asarray(expected, np.float64)
    actual = np.asarray(actual, np.float64)
    if expected.shape != actual.shape:
        raise ValueError(f"{model}: torch logits {expected.shape} and Flax logits {actual.shape} differ in shape")
    diff = np.abs(expected - actual)
    max_abs = float(diff.max())
    scale = float(np.abs(expected).max())
    max_rel = float(max_abs / max(scale, 1e-12))
    flat_e, flat_a = expected.reshape(len(expected), -1), actual.reshape(len(actual), -1)
    norms = np.linalg.norm(flat_e, axis=1) * np.linalg.norm(flat_a, axis=1)
    cosine = float(np.min(np.sum(flat_e * flat_a, axis=1) / np.maximum(norms, 1e-30)))
    top1, top1_strict, margin = _top1(flat_e, flat_a, tolerance.top1_tie_rel * scale)
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
        failures.append(f"top-1 agreement {top1:.2%} < {tolerance.min_top1:.0%} (ties within {tolerance.top1_tie_rel:g} of the scale excused)")
    return ParityResult(model, max_abs, max_rel, cosine, top1, not failures, tolerance, failures, scale, margin, top1_strict)


def _top1(expected: np.ndarray, actual: np.ndarray, tie: float) -> tuple[float, float, float]:
    """(agreement with ties excused, strict agreement, smallest gap between torch's top two logits) over (N, K) logits."""
    torch_class, flax_class = expected.argmax(-1), actual.argmax(-1)
    rows = np.arange(len(expected))
    # Flax's choice scores within `tie` of torch's best in torch's own logits: a tie, not a disagreement.
    tied = expected[rows, torch_class] - expected[rows, flax_class] <= tie
    top2 = np.sort(expected, axis=1)[:, -2:] if expected.shape[1] > 1 else np.zeros((len(expected), 2))
    strict = torch_class == flax_class
    return float(np.mean(strict | tied)), float(np.mean(strict)), float(np.min(top2[:, 1] - top2[:, 0]))


def parity_images(batch_size: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Random images, uniform in [0, 1], (N, H, W, C): no two pixels or images alike."""
    return np.random.default_rng(seed).random((batch_size, height, width, 3), dtype=np.float32)


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
    family: Any = None,
) -> ParityResult:
    """Run both models on the same random images and compare their logits.

    `tolerance` is a `Tolerance`, or a float meaning a max-abs bound. Images are uniform
    in [0, 1], (N, H, W, C); each framework's `preprocess` normalises and lays them out.
    On failure both models run again layer by layer and the result names the first layer
    that diverged; that needs `jax_apply_fn` to be a Flax `Module.apply` (or its `jax.jit`) and the
    family's port rules (`family`, a `models.registry.Family`, or the registered family of `model_name`).
    """
    import jax
    import torch

    if isinstance(tolerance, (int, float)):
        tolerance = Tolerance(max_abs=float(tolerance))
    c, h, w = input_shape_pytorch[-3:]
    if tuple(input_shape_jax[-3:]) != (h, w, c):
        raise ValueError(f"input shapes disagree: torch {input_shape_pytorch} vs jax {input_shape_jax}")
    images = parity_images(batch_size, h, w, seed)
    device = next(pytorch_model.parameters()).device
    dtype = next(pytorch_model.parameters()).dtype
    torch_input = pytorch_preprocess(images).to(device=device, dtype=dtype)
    flax_input = jax_preprocess(images)
    with torch.no_grad():
        expected = pytorch_model(torch_input).float().cpu().numpy()
    run = jax_apply_fn if hasattr(jax_apply_fn, "lower") else jax.jit(jax_apply_fn)  # already jitted: reuse its compilation
    actual = np.asarray(run(jax_params, flax_input), np.float32)
    result = compare_logits(model_name, expected, actual, tolerance)
    if not result.passed:
        family = family if family is not None else _registered_family(model_name)
        if family is not None:
            locate_divergence(result, pytorch_model, torch_input, jax_apply_fn, jax_params, flax_input, family)
    return result


def locate_divergence(
    result: ParityResult,
    torch_model: Any,
    torch_input: Any,
    apply_fn: Callable,
    variables: Any,
    flax_input: Any,
    family: Any,
) -> ParityResult:
    """Fill `result`'s first diverging layer by running both models layer by layer."""
    from validation import layers

    threshold = layer_threshold(result.tolerance)
    errors = layers.layer_errors(
        layers.torch_layer_outputs(torch_model, torch_input),
        layers.flax_layer_outputs(apply_fn, variables, flax_input),
        family,
    )
    result.layer_threshold = threshold
    first = layers.first_diverging_layer(errors, threshold)
    if first is not None:
        result.first_diverging_layer, result.flax_layer, result.layer_error = first.torch_name, first.flax_path, first.error
    return result


def _registered_family(model_name: str) -> Any:
    from models.registry import UnknownModelError, family_of

    try:
        return family_of(model_name)
    except UnknownModelError:
        return None
