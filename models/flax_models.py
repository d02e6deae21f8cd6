"""Flax module construction per family, and variables built by porting or under `jax.jit`."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from models import flax_resnet, flax_vit
from models.porting import torch_to_flax
from models.registry import ModelSpec

# family -> (Flax module class, torch->Flax module renames). Every family exposes the same
# names, so code above this table never branches on the family.
FLAX_FAMILIES: dict[str, tuple[type[nn.Module], list[tuple[str, str]]]] = {
    "resnet": (flax_resnet.ResNet, flax_resnet.TORCH_RENAMES),
    "vit": (flax_vit.VisionTransformer, flax_vit.TORCH_RENAMES),
}


def build_flax_module(spec: ModelSpec, dtype: Any = jnp.float32, num_classes: int | None = None, train: bool = False) -> nn.Module:
    """The Flax module for `spec`, computing in `dtype`."""
    module_cls, _ = FLAX_FAMILIES[spec.family]
    kwargs = dict(spec.config)
    if spec.family == "vit":
        kwargs["image_size"] = spec.input_size
    return module_cls(num_classes=num_classes or spec.num_classes, dtype=dtype, train=train, **kwargs)


def abstract_variables(module: nn.Module, input_shape_nhwc: tuple[int, ...]) -> Any:
    """The variable tree's shapes and dtypes, without computing anything."""
    dummy = jax.ShapeDtypeStruct(input_shape_nhwc, jnp.float32)
    return jax.eval_shape(module.init, jax.random.PRNGKey(0), dummy)


def init_variables(module: nn.Module, input_shape_nhwc: tuple[int, ...], rng_key: jax.Array) -> Any:
    """Randomly initialised variables, built under `jax.jit` (eager init is ~30x slower)."""
    dummy = jnp.zeros(input_shape_nhwc, jnp.float32)
    return jax.jit(module.init)(rng_key, dummy)


def port_torch_model(spec: ModelSpec, module: nn.Module, torch_model: Any, input_shape_nhwc: tuple[int, ...]) -> Any:
    """Flax variables holding `torch_model`'s weights, checked key by key and shape by shape."""
    _, renames = FLAX_FAMILIES[spec.family]
    expected = abstract_variables(module, input_shape_nhwc)
    ported = torch_to_flax(torch_model.state_dict(), expected, renames, spec.name)
    return jax.tree_util.tree_map(jnp.asarray, ported)


def make_flax_preprocess(spec: ModelSpec) -> Callable:
    """A function from float images in [0, 1], (N, H, W, C), to normalised NHWC arrays."""
    mean = np.asarray(spec.mean, np.float32)
    std = np.asarray(spec.std, np.float32)

    def preprocess(images) -> jnp.ndarray:
        return (jnp.asarray(images, jnp.float32) - mean) / std

    return preprocess


def count_params(variables: Any) -> int:
    """Trainable parameters (the `params` collection), as torch counts them."""
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(variables["params"])))
