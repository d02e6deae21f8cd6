"""Native Flax EfficientNet that reproduces torchvision's `EfficientNet` exactly, in NHWC.

Submodule names mirror torchvision's state_dict keys: `features.2.0.block.1.0` (the
depthwise conv of the first block of stage 2) is `features_2_0/block_1_0`, the
squeeze-excitation `features.2.0.block.2` is `features_2_0/block_2` with `fc1` and `fc2`.
A block without expansion (expand ratio 1) has no expand conv, so its depthwise conv is
`block_0_*` and the rest shift down by one, as in torchvision's `nn.Sequential`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax.numpy as jnp
from flax import linen as nn

from models.families.efficientnet import make_divisible, stage_table
from models.flax_layers import TorchBatchNorm, stochastic_depth

Dtype = Any


def _pad(k: int) -> tuple[tuple[int, int], tuple[int, int]]:
    # torchvision's Conv2dNormActivation pads (k - 1) // 2 on every side; flax's "SAME" pads
    # a stride-2 conv asymmetrically (0 before, 1 after for k=3), which shifts the grid.
    p = (k - 1) // 2
    return ((p, p), (p, p))


class _ConvNorm(nn.Module):
    """torchvision's `Conv2dNormActivation` pieces: a bias-free conv and a BatchNorm."""

    norm_eps: float = 1e-5
    norm_momentum: float = 0.1  # torch's convention: the weight of the new batch
    dtype: Dtype = jnp.float32

    def conv(self, features: int, k: int, name: str, stride: int = 1, groups: int = 1) -> nn.Conv:
        return nn.Conv(features, (k, k), (stride, stride), padding=_pad(k), feature_group_count=groups, use_bias=False,
                       dtype=self.dtype, name=name)

    def norm(self, name: str, train: bool) -> Callable[[jnp.ndarray], jnp.ndarray]:
        # torch's BatchNorm (momentum in torch's sense; running_var updated with the unbiased batch variance).
        batch_norm = TorchBatchNorm(use_running_average=not train, momentum=self.norm_momentum, epsilon=self.norm_eps,
                                    dtype=self.dtype, name=name)
        # Normalise in float32 and round once to `dtype`, as torch's BatchNorm kernels do for
        # half inputs; flax would otherwise subtract, scale and shift in bfloat16, five roundings
        # that compound over B5-B7's 39-55 blocks (logits 2-3x further from float32 than torch's).
        return lambda x: batch_norm(x.astype(jnp.float32))


class SqueezeExcitation(nn.Module):
    """torchvision `SqueezeExcitation`: mean pool, 1x1 conv, SiLU, 1x1 conv, sigmoid gate on the input."""

    squeeze_channels: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        scale = jnp.mean(x, axis=(1, 2), keepdims=True)  # (N, H, W, C) -> (N, 1, 1, C)
        scale = nn.Conv(self.squeeze_channels, (1, 1), dtype=self.dtype, name="fc1")(scale)
        scale = nn.silu(scale)  # EfficientNet passes SiLU; SqueezeExcitation's default would be ReLU
        scale = nn.Conv(x.shape[-1], (1, 1), dtype=self.dtype, name="fc2")(scale)
        return x * nn.sigmoid(scale)


class MBConv(_ConvNorm):
    """torchvision `MBConv`: [1x1 expand] -> kxk depthwise -> squeeze-excitation -> 1x1 project [+ input]."""

    in_channels: int = 32
    out_channels: int = 16
    expand_ratio: float = 1.0
    kernel: int = 3
    stride: int = 1
    stochastic_depth_prob: float = 0.0

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        expanded = make_divisible(self.in_channels * self.expand_ratio)
        y, index = x, 0
        if expanded != self.in_channels:
            y = nn.silu(self.norm("block_0_1", train)(self.conv(expanded, 1, "block_0_0")(y)))
            index = 1
        y = self.conv(expanded, self.kernel, f"block_{index}_0", self.stride, groups=expanded)(y)
        y = nn.silu(self.norm(f"block_{index}_1", train)(y))
        y = SqueezeExcitation(max(1, self.in_channels // 4), dtype=self.dtype, name=f"block_{index + 1}")(y)
        y = self.norm(f"block_{index + 2}_1", train)(self.conv(self.out_channels, 1, f"block_{index + 2}_0")(y))
        if self.stride == 1 and self.in_channels == self.out_channels:
            y = stochastic_depth(self, y, self.stochastic_depth_prob, deterministic=not train) + x
        return y


class EfficientNet(_ConvNorm):
    """torchvision `EfficientNet` (v1): 3x3 stem, MBConv stages, 1x1 head conv, mean pool, dropout, linear."""

    stages: Sequence[Sequence[float]] = ()
    width_mult: float = 1.0
    depth_mult: float = 1.0
    dropout: float = 0.2
    stochastic_depth_prob: float = 0.2
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        table = stage_table({"stages": self.stages, "width_mult": self.width_mult, "depth_mult": self.depth_mult})
        bn = {"norm_eps": self.norm_eps, "norm_momentum": self.norm_momentum, "dtype": self.dtype}
        x = x.astype(self.dtype)
        x = self.conv(table[0][3], 3, "features_0_0", stride=2)(x)
        x = nn.silu(self.norm("features_0_1", train)(x))
        total_blocks = sum(stage[5] for stage in table)
        block_id = 0
        for stage_index, (expand, kernel, stride, cin, cout, layers) in enumerate(table):
            for index in range(layers):
                x = MBConv(
                    in_channels=cin if index == 0 else cout,
                    out_channels=cout,
                    expand_ratio=expand,
                    kernel=kernel,
                    stride=stride if index == 0 else 1,
                    # torchvision grows the rate linearly with the block's position in the network
                    stochastic_depth_prob=self.stochastic_depth_prob * block_id / total_blocks,
                    name=f"features_{stage_index + 1}_{index}",
                    **bn,
                )(x, train)
                block_id += 1
        last = len(table) + 1
        x = self.conv(4 * table[-1][4], 1, f"features_{last}_0")(x)
        x = nn.silu(self.norm(f"features_{last}_1", train)(x))
        x = jnp.mean(x, axis=(1, 2))  # (N, H, W, C) -> (N, C)
        x = nn.Dropout(self.dropout, deterministic=not train, name="classifier_0")(x)
        return nn.Dense(self.num_classes, dtype=self.dtype, name="classifier_1")(x)
