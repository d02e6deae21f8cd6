"""Flax layers that several families' twins share, where Flax's own differ from torch's.

`TorchBatchNorm` is `torch.nn.BatchNorm2d`: in training it normalises with the biased
batch variance but updates `running_var` with the unbiased one (n / (n - 1)), as torch
does and Flax's `nn.BatchNorm` does not; `momentum` has torch's meaning. Every Flax
twin of a torch model with BatchNorm uses it, so a train step updates the same statistics.
`stochastic_depth` is torchvision's `StochasticDepth(rate, "row")`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import Any, Iterator

import jax
import jax.numpy as jnp
from flax import linen as nn


_STOCHASTIC = contextvars.ContextVar("visionbench_stochastic_layers", default=True)


@contextlib.contextmanager
def stochastic_layers_off() -> Iterator[None]:
    """While tracing inside this block, stochastic depth is identity even with train=True (a train step without randomness)."""
    token = _STOCHASTIC.set(False)
    try:
        yield
    finally:
        _STOCHASTIC.reset(token)


def stochastic_depth(module: nn.Module, x: jnp.ndarray, rate: float, deterministic: bool) -> jnp.ndarray:
    """torchvision's `StochasticDepth(rate, "row")`: drop whole samples, rescale survivors; identity in eval."""
    if deterministic or rate == 0.0 or not _STOCHASTIC.get():
        return x
    survival = 1.0 - rate
    keep = jax.random.bernoulli(module.make_rng("dropout"), survival, (x.shape[0],) + (1,) * (x.ndim - 1))
    keep = keep.astype(x.dtype)
    return x * keep / survival if survival > 0.0 else x * keep  # torchvision divides only when survival > 0


Dtype = Any


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_normalize(x: jnp.ndarray, scale: jnp.ndarray, bias: jnp.ndarray, epsilon: float) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """(y, mean, biased var) of a training BatchNorm over every axis but the last, in x's (float32) dtype.

    Its gradient is torch's closed form, dx = invstd * (dy' - mean(dy') - xhat * mean(dy' * xhat))
    with dy' = dy * scale, rather than autodiff's sum of three chain-rule terms: the terms
    nearly cancel over a small batch, and the same formula keeps the rounding close to torch's.
    """
    y, mean, var, _ = _bn_forward(x, scale, bias, epsilon)
    return y, mean, var


def _bn_forward(x, scale, bias, epsilon):
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axes)
    var = jnp.square(x - mean).mean(axes)  # two-pass, biased: what the batch is normalised with
    invstd = jax.lax.rsqrt(var + epsilon)
    y = (x - mean) * (invstd * scale) + bias
    return y, mean, var, invstd


def _bn_fwd(x, scale, bias, epsilon):
    y, mean, var, invstd = _bn_forward(x, scale, bias, epsilon)
    return (y, mean, var), (x, mean, invstd, scale)


def _bn_bwd(epsilon, residuals, cotangents):
    x, mean, invstd, scale = residuals
    dy = cotangents[0]  # the statistics feed only the running averages, which are not differentiated
    axes = tuple(range(x.ndim - 1))
    xhat = (x - mean) * invstd
    dscale = jnp.sum(dy * xhat, axes)
    dbias = jnp.sum(dy, axes)
    dyhat = dy * scale
    dx = invstd * (dyhat - dyhat.mean(axes) - xhat * jnp.mean(dyhat * xhat, axes))
    return dx, dscale, dbias


batch_normalize.defvjp(_bn_fwd, _bn_bwd)


def unbiased(var: jnp.ndarray, n: int) -> jnp.ndarray:
    """The unbiased variance from a biased one over `n` values (torch's running-variance update)."""
    return var * (n / max(n - 1, 1))


class TorchBatchNorm(nn.Module):
    """torch's BatchNorm over the last (channel) axis, with `scale`/`bias` params and `mean`/`var` batch_stats.

    `momentum` is torch's: running = (1 - momentum) * running + momentum * batch statistic.
    Statistics are computed in float32 (two-pass variance, as torch's); the output has `dtype`.
    """

    use_running_average: bool | None = None
    momentum: float = 0.1
    epsilon: float = 1e-5
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, use_running_average: bool | None = None) -> jnp.ndarray:
        use_running_average = nn.merge_param("use_running_average", self.use_running_average, use_running_average)
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (features,), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (features,), self.param_dtype)
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((features,), jnp.float32))
        if use_running_average:
            mean, var = ra_mean.value, ra_var.value
            # (x - mean) * (rsqrt(var + eps) * scale) + bias, as Flax's own BatchNorm.
            y = (x - mean) * (jax.lax.rsqrt(var + self.epsilon) * scale) + bias
            return y.astype(self.dtype or x.dtype)
        xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))  # statistics in float32 at least
        y, mean, var = batch_normalize(xf, scale.astype(xf.dtype), bias.astype(xf.dtype), self.epsilon)
        if not self.is_initializing():
            n = x.size // features
            m = self.momentum
            ra_mean.value = (1 - m) * ra_mean.value + m * jax.lax.stop_gradient(mean)
            ra_var.value = (1 - m) * ra_var.value + m * unbiased(jax.lax.stop_gradient(var), n)
        return y.astype(self.dtype or x.dtype)
