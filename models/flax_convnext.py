"""Native Flax ConvNeXt that reproduces torchvision's `ConvNeXt` exactly, in NHWC.

Submodule names mirror torchvision's state_dict keys: `features.1.0.block.3` (a block's
first Linear) is `features_1_0/block_3`, `features.1.0.layer_scale` the parameter
`features_1_0/layer_scale`. torchvision's `LayerNorm2d` normalises the channels of an
NCHW map; channels-last, that is a plain LayerNorm over the last axis.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp
from flax import linen as nn

from models.flax_layers import stochastic_depth

Dtype = Any
LAYER_NORM_EPS = 1e-6  # torchvision: partial(nn.LayerNorm, eps=1e-6) and partial(LayerNorm2d, eps=1e-6)
LAYER_SCALE_INIT = 1e-6  # torchvision's `ConvNeXt(layer_scale=1e-6)`


def _layer_norm(name: str, dtype: Dtype) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=LAYER_NORM_EPS, dtype=dtype, name=name)


class CNBlock(nn.Module):
    """torchvision `CNBlock`: 7x7 depthwise conv, LayerNorm, Linear 4x, GELU, Linear, layer scale, + input."""

    dim: int
    stochastic_depth_prob: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        y = nn.Conv(self.dim, (7, 7), padding=((3, 3), (3, 3)), feature_group_count=self.dim, dtype=self.dtype,
                    name="block_0")(x)
        y = _layer_norm("block_2", self.dtype)(y)
        y = nn.Dense(4 * self.dim, dtype=self.dtype, name="block_3")(y)
        y = nn.gelu(y, approximate=False)  # torch's nn.GELU() is the exact erf form
        y = nn.Dense(self.dim, dtype=self.dtype, name="block_5")(y)
        gain = self.param("layer_scale", nn.initializers.constant(LAYER_SCALE_INIT), (self.dim,))  # torch: (C, 1, 1)
        y = y * gain.astype(self.dtype)
        return stochastic_depth(self, y, self.stochastic_depth_prob, deterministic=not train) + x


class ConvNeXt(nn.Module):
    """torchvision `ConvNeXt`: 4x4 stride-4 stem, stages of CNBlocks with 2x2 stride-2 downsampling, head."""

    block_setting: Sequence[Sequence[Any]] = ()  # (input channels, output channels or None, blocks)
    stochastic_depth_prob: float = 0.0
    num_classes: int = 1000
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = x.astype(self.dtype)
        x = nn.Conv(self.block_setting[0][0], (4, 4), (4, 4), padding="VALID", dtype=self.dtype, name="features_0_0")(x)
        x = _layer_norm("features_0_1", self.dtype)(x)
        total_blocks = sum(stage[2] for stage in self.block_setting)
        block_id, index = 0, 1
        for in_channels, out_channels, blocks in self.block_setting:
            for j in range(blocks):
                # torchvision grows the rate linearly from 0 at the first block to the full rate at the last
                rate = self.stochastic_depth_prob * block_id / (total_blocks - 1.0) if total_blocks > 1 else 0.0
                x = CNBlock(in_channels, rate, dtype=self.dtype, name=f"features_{index}_{j}")(x, train)
                block_id += 1
            index += 1
            if out_channels is not None:
                x = _layer_norm(f"features_{index}_0", self.dtype)(x)
                x = nn.Conv(out_channels, (2, 2), (2, 2), padding="VALID", dtype=self.dtype, name=f"features_{index}_1")(x)
                index += 1
        x = jnp.mean(x, axis=(1, 2), keepdims=True)  # (N, H, W, C) -> (N, 1, 1, C), as torch's (N, C, 1, 1)
        x = _layer_norm("classifier_0", self.dtype)(x)
        x = x.reshape(x.shape[0], -1)  # (N, 1, 1, C) -> (N, C)
        return nn.Dense(self.num_classes, dtype=self.dtype, name="classifier_2")(x)
