"""Flax layers that reproduce a torch layer's arithmetic where Flax's own differs.

`TorchBatchNorm` is `torch.nn.BatchNorm2d`: in training it normalises with the biased
batch variance but updates `running_var` with the unbiased one (n / (n - 1)), as torch
does and Flax's `nn.BatchNorm` does not; `momentum` has torch's meaning. Every Flax
twin of a torch model with BatchNorm uses it, so a train step updates the same statistics.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

Dtype = Any


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
        axes = tuple(range(x.ndim - 1))  # every axis but the channels: (N, H, W) of (N, H, W, C)
        scale = self.param("scale", nn.initializers.ones, (features,), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (features,), self.param_dtype)
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((features,), jnp.float32))
        if use_running_average:
            mean, var = ra_mean.value, ra_var.value
        else:
            xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
            mean = xf.mean(axes)
            var = jnp.square(xf - mean).mean(axes)  # biased: what the batch is normalised with
            if not self.is_initializing():
                n = x.size // features
                m = self.momentum
                ra_mean.value = (1 - m) * ra_mean.value + m * mean
                ra_var.value = (1 - m) * ra_var.value + m * unbiased(var, n)
        # (x - mean) * (rsqrt(var + eps) * scale) + bias, in float32, as Flax's own BatchNorm.
        y = (x - mean) * (jax.lax.rsqrt(var + self.epsilon) * scale) + bias
        return y.astype(self.dtype or x.dtype)
