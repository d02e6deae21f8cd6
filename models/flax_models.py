"""Flax module construction from a family record, and variables built by porting or under `jax.jit`."""

from __future__ import annotations

import functools
from importlib import import_module
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from models.porting import torch_to_flax
from models.registry import ModelSpec, get_family


@functools.lru_cache(maxsize=None)
def flax_module_class(family_name: str) -> type[nn.Module]:
    """The Flax module class a family names as "module:Class"."""
    module_name, _, class_name = get_family(family_name).flax_module.partition(":")
    return getattr(import_module(module_name), class_name)


def build_flax_module(spec: ModelSpec, dtype: Any = jnp.float32, num_classes: int | None = None,
                      input_size: int | None = None) -> nn.Module:
    """The Flax module for `spec` at `input_size` (default: the spec's), computing in `dtype`.

    `train` is an argument of the module's `__call__` (BatchNorm statistics, dropout), as
    in Flax's own examples: `module.apply(variables, x, train=False)`.
    """
    family = get_family(spec.family)
    kwargs = family.flax_kwargs(spec, input_size or spec.input_size)
    return flax_module_class(spec.family)(num_classes=num_classes or spec.num_classes, dtype=dtype, **kwargs)


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
    expected = abstract_variables(module, input_shape_nhwc)
    ported = torch_to_flax(torch_model.state_dict(), expected, get_family(spec.family), spec.name)
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
