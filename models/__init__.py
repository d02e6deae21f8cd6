"""The model zoo: one registry, torchvision models and native Flax twins with ported weights.

Importing this package imports neither torch nor jax; each builder imports its framework
when called, so a torch-only or JAX-only user can run their half.
"""

from __future__ import annotations

import operator
import os
from typing import Any

from models.attention import AttentionReader, attention_rollout, class_token_grid, get_attention_maps
from models.registry import (
    Family,
    ModelSpec,
    Tolerance,
    UnknownModelError,
    get_family,
    get_spec,
    list_families,
    list_models,
    select_models,
)

__all__ = [
    "AttentionReader",
    "Family",
    "ModelSpec",
    "Tolerance",
    "UnknownModelError",
    "attention_rollout",
    "class_token_grid",
    "get_attention_maps",
    "get_flax_model",
    "get_model_info",
    "get_spec",
    "get_family",
    "get_torch_model",
    "list_families",
    "list_models",
    "select_models",
]


def get_model_info(name: str) -> dict[str, Any]:
    """Registry facts about `name`: params, input shape, FLOPs (2 per multiply-add), MACs."""
    spec = get_spec(name)
    return {
        "name": spec.name,
        "family": spec.family,
        "params": spec.params,
        "input_shape": spec.input_shape,
        "input_size": spec.input_size,
        "num_classes": spec.num_classes,
        "flops": spec.flops,
        "macs": spec.macs,
        "mean": spec.mean,
        "std": spec.std,
        "config": dict(spec.config),
        "torchvision_weights": spec.torchvision_weights,
        "description": get_family(spec.family).description,
    }


def get_torch_model(
    name: str,
    pretrained: bool = False,
    device: str | None = None,
    weights: str | os.PathLike | None = None,
    input_size: int | None = None,
) -> tuple[Any, Any, tuple[int, int, int], dict[str, Any]]:
    """`(model, preprocess, input_shape, metadata)` for the torch `name`, in eval mode.

    `pretrained=True` loads the published weights from a local file (`weights`, then
    $VISIONBENCH_WEIGHTS_DIR, then torch's hub cache); nothing is downloaded.
    `input_size` builds the model for square images of that size (default: the spec's).
    """
    from models import torch_models

    spec = get_spec(name)
    size = input_size or spec.input_size
    check_input_size(spec, size)
    model = torch_models.build_torch_model(spec, size)
    metadata = get_model_info(name)
    metadata["input_size"] = size
    metadata["input_shape"] = (3, size, size)
    if pretrained:
        metadata["weights_file"] = str(torch_models.load_pretrained(model, spec, weights)[0])
    if device is not None:
        model = model.to(device)
    return model, torch_models.make_torch_preprocess(spec), (3, size, size), metadata


def check_input_size(spec: ModelSpec, input_size: int) -> None:
    """Raise ValueError with the family's reason when `spec` cannot take square images of `input_size`."""
    reason = get_family(spec.family).size_reason(spec, input_size)
    if reason:
        raise ValueError(reason)


def get_flax_model(
    name: str,
    input_shape: tuple[int, ...] | None = None,
    rng_key: Any = None,
    num_classes: int | None = None,
    torch_model: Any = None,
    dtype: Any = None,
) -> tuple[Any, Any, Any, dict[str, Any]]:
    """`(apply_fn, variables, preprocess, metadata)` for the native Flax `name`.

    With `torch_model` the variables hold its weights, ported and checked; otherwise they
    are initialised from `rng_key` under `jax.jit`. `apply_fn(variables, x_nhwc)` returns
    logits. `input_shape` is one image, HWC, or a batch, NHWC (default: batch 1 at the
    spec's size); `num_classes` defaults to the spec's.
    """
    import jax
    import jax.numpy as jnp

    from models import flax_models

    spec = get_spec(name)
    shape = _nhwc_input_shape(spec, input_shape)
    check_input_size(spec, shape[1])
    module = flax_models.build_flax_module(spec, dtype or jnp.float32, num_classes, input_size=shape[1])
    if torch_model is not None:
        variables = flax_models.port_torch_model(spec, module, torch_model, shape)
    else:
        variables = flax_models.init_variables(module, shape, rng_key if rng_key is not None else jax.random.PRNGKey(0))
    metadata = get_model_info(name)
    metadata["module"] = module
    return module.apply, variables, flax_models.make_flax_preprocess(spec), metadata


def _nhwc_input_shape(spec: ModelSpec, input_shape: Any) -> tuple[int, int, int, int]:
    """`input_shape` given as HWC or NHWC, as NHWC; ValueError naming the expected forms otherwise."""
    size = spec.input_size
    if input_shape is None:
        return (1, size, size, 3)
    try:
        shape = tuple(operator.index(d) for d in input_shape)
    except TypeError:
        shape = ()
    if len(shape) == 3:
        shape = (1, *shape)  # (H, W, C) -> (1, H, W, C)
    if len(shape) != 4 or shape[-1] != 3 or min(shape) < 1:
        raise ValueError(
            f"input_shape: expected (H, W, C) or (N, H, W, C) with C = 3 (channels last), got {input_shape!r}; "
            f"e.g. {(size, size, 3)} for {spec.name}"
        )
    return shape
