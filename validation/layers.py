"""Layer-by-layer torch vs Flax comparison: which layer's output first leaves the tolerance.

torch outputs come from forward hooks, in execution order; Flax outputs from
`capture_intermediates=True`. A torch module `layer1.0.conv1` pairs with the Flax path
`layer1_0/conv1` through the family's `torch_renames`, the same renames porting uses, and
the family's `layout` says which torch outputs are channels-first.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any, Callable, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class LayerError:
    """One paired layer output: its names in both frameworks and their relative error."""

    torch_name: str
    flax_path: str
    error: float  # max |flax - torch| / max |torch| over the batch; inf on a shape mismatch
    detail: str = ""


def relative_error(expected: np.ndarray, actual: np.ndarray) -> float:
    """max |actual - expected| / max |expected|; inf when shapes differ or values are not finite.

    Max-based, like the logits' max_rel, so an error confined to a few elements (one
    token of a ViT, one channel) is not averaged away.
    """
    expected = np.asarray(expected, np.float64)
    actual = np.asarray(actual, np.float64)
    if expected.shape != actual.shape or not np.all(np.isfinite(actual)):
        return float("inf")
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-30))


def torch_name_to_flax_path(name: str, renames: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """The Flax module path of torch module `name` (`layer1.0.conv1` -> ('layer1_0', 'conv1'))."""
    from models.porting import torch_module_to_flax_path

    return torch_module_to_flax_path(name, renames)


def torch_layer_outputs(model: Any, x: Any) -> list[tuple[str, int, np.ndarray]]:
    """`(module name, call index, output)` of every module call, in the order the calls end."""
    import torch

    records: list[tuple[str, int, np.ndarray]] = []
    calls: dict[str, int] = {}

    def hook(name: str, _module: Any, _inputs: Any, output: Any) -> None:
        if isinstance(output, (tuple, list)):  # nn.MultiheadAttention returns (output, weights)
            output = output[0]
        if not isinstance(output, torch.Tensor):
            return
        index = calls.get(name, 0)
        calls[name] = index + 1
        # copy: torchvision's in-place ReLU would overwrite a BatchNorm's output afterwards
        records.append((name, index, output.detach().float().cpu().numpy().copy()))

    handles = [m.register_forward_hook(functools.partial(hook, n)) for n, m in model.named_modules()]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return records


@functools.lru_cache(maxsize=16)
def capture_fn(apply_fn: Callable) -> Callable:
    """`apply_fn` jitted to return every module's outputs too; one compilation per module config."""
    import jax

    return jax.jit(functools.partial(apply_fn, capture_intermediates=True, mutable=["intermediates"]))


def flax_layer_outputs(apply_fn: Callable, variables: Any, x: Any) -> dict[tuple[str, ...], tuple[np.ndarray, ...]]:
    """Every Flax module's outputs, one per call, keyed by module path (the root is ())."""
    if hasattr(apply_fn, "lower"):  # a jax.jit of Module.apply: capture needs the plain apply
        apply_fn = apply_fn.__wrapped__
    _, state = capture_fn(apply_fn)(variables, x)
    outputs: dict[tuple[str, ...], tuple[np.ndarray, ...]] = {}

    def walk(tree: Any, path: tuple[str, ...]) -> None:
        for key, value in tree.items():
            if key == "__call__":
                outputs[path] = tuple(np.asarray(v, np.float32) for v in value)
            else:
                walk(value, path + (key,))

    walk(state["intermediates"], ())
    return outputs


def to_torch_layout(x: np.ndarray, layout: str = "NCHW") -> np.ndarray:
    """A Flax (channels-last) activation in torch's layout: NHWC becomes NCHW where torch holds NCHW."""
    if layout == "NCHW" and x.ndim == 4:
        return np.transpose(x, (0, 3, 1, 2))  # (N, H, W, C) -> (N, C, H, W)
    return x


def layer_errors(
    torch_outputs: list[tuple[str, int, np.ndarray]],
    flax_outputs: dict[tuple[str, ...], tuple[np.ndarray, ...]],
    family: Any,
) -> list[LayerError]:
    """The error of every layer present in both frameworks, in torch's execution order.

    `family` (a `models.registry.Family`) pairs the names and says each output's layout.
    """
    errors = []
    for name, index, expected in torch_outputs:
        path = torch_name_to_flax_path(name, family.torch_renames)
        calls = flax_outputs.get(path, ())
        if index >= len(calls):
            continue  # no Flax twin (ReLU modules, dropout, nn.Sequential containers)
        actual = to_torch_layout(calls[index], family.layout(name, expected.ndim))
        detail = "" if actual.shape == expected.shape else f"shape {actual.shape} vs torch {expected.shape}"
        label = "/".join(path) or "(output)"
        errors.append(LayerError(name or "(output)", label, relative_error(expected, actual), detail))
    return errors


def first_diverging_layer(errors: Sequence[LayerError], threshold: float) -> LayerError | None:
    """The first layer, in execution order, whose relative error exceeds `threshold`."""
    for error in errors:
        if not error.error <= threshold:  # also catches NaN
            return error
    return None
