"""Flax layers that several families' twins share (torchvision's `torchvision.ops` counterparts)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn


def stochastic_depth(module: nn.Module, x: jnp.ndarray, rate: float, deterministic: bool) -> jnp.ndarray:
    """torchvision's `StochasticDepth(rate, "row")`: drop whole samples, rescale survivors; identity in eval."""
    if deterministic or rate == 0.0:
        return x
    survival = 1.0 - rate
    keep = jax.random.bernoulli(module.make_rng("dropout"), survival, (x.shape[0],) + (1,) * (x.ndim - 1))
    keep = keep.astype(x.dtype)
    return x * keep / survival if survival > 0.0 else x * keep  # torchvision divides only when survival > 0
