"""Native Flax ResNet that reproduces torchvision's `ResNet` exactly, in NHWC.

Submodule names mirror torchvision's state_dict keys (`layer1.0.conv1` -> `layer1_0/conv1`)
so the port rules in `models/families/resnet.py` read like a dictionary. `train` is a
call argument: BatchNorm uses batch statistics and updates `batch_stats` when it is True
(`TorchBatchNorm`: the running variance takes the unbiased batch variance, as torch's).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp
from flax import linen as nn

from models.flax_layers import TorchBatchNorm

Dtype = Any


def _pad(k: int) -> tuple[tuple[int, int], tuple[int, int]]:
    # torch pads k // 2 on both sides; flax's "SAME" pads asymmetrically for stride 2.
    return ((k // 2, k // 2), (k // 2, k // 2))


class _ConvNorm(nn.Module):
    """Helpers to build torchvision-equivalent conv and BatchNorm layers."""

    dtype: Dtype = jnp.float32

    def conv(self, features: int, k: int, stride: int = 1, name: str | None = None, groups: int = 1) -> nn.Conv:
        return nn.Conv(features, (k, k), (stride, stride), padding=_pad(k), use_bias=False, feature_group_count=groups,
                       dtype=self.dtype, name=name)

    def norm(self, name: str, train: bool) -> TorchBatchNorm:
        # torch's BatchNorm2d defaults (momentum 0.1, eps 1e-5), running variance unbiased as in torch.
        return TorchBatchNorm(use_running_average=not train, momentum=0.1, epsilon=1e-5, dtype=self.dtype, name=name)


class BasicBlock(_ConvNorm):
    """torchvision `BasicBlock`: two 3x3 convs."""

    features: int = 64
    stride: int = 1
    downsample: bool = False
    groups: int = 1
    width_per_group: int = 64
    expansion = 1

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        identity = x
        y = nn.relu(self.norm("bn1", train)(self.conv(self.features, 3, self.stride, "conv1")(x)))
        y = self.norm("bn2", train)(self.conv(self.features, 3, 1, "conv2")(y))
        if self.downsample:
            identity = self.norm("downsample_1", train)(self.conv(self.features, 1, self.stride, "downsample_0")(x))
        return nn.relu(y + identity)


class Bottleneck(_ConvNorm):
    """torchvision `Bottleneck` (ResNet v1.5: the stride sits on the grouped 3x3 conv)."""

    features: int = 64
    stride: int = 1
    downsample: bool = False
    groups: int = 1
    width_per_group: int = 64
    expansion = 4

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        identity = x
        width = int(self.features * (self.width_per_group / 64.0)) * self.groups  # torchvision's formula
        y = nn.relu(self.norm("bn1", train)(self.conv(width, 1, 1, "conv1")(x)))
        y = nn.relu(self.norm("bn2", train)(self.conv(width, 3, self.stride, "conv2", groups=self.groups)(y)))
        y = self.norm("bn3", train)(self.conv(self.features * 4, 1, 1, "conv3")(y))
        if self.downsample:
            identity = self.norm("downsample_1", train)(self.conv(self.features * 4, 1, self.stride, "downsample_0")(x))
        return nn.relu(y + identity)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(_ConvNorm):
    """torchvision `ResNet`: stem, four stages, global average pool, linear head."""

    block: str = "bottleneck"
    layers: Sequence[int] = (3, 4, 6, 3)
    groups: int = 1
    width_per_group: int = 64
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = x.astype(self.dtype)
        x = self.conv(64, 7, 2, "conv1")(x)
        x = nn.relu(self.norm("bn1", train)(x))
        # torch pads the max-pool with -inf; flax's max_pool pads with its init value -inf too.
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        block_cls = BLOCKS[self.block]
        in_features = 64
        for stage, num_blocks in enumerate(self.layers):
            features = 64 * 2**stage
            for index in range(num_blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                out_features = features * block_cls.expansion
                x = block_cls(
                    features=features,
                    stride=stride,
                    downsample=index == 0 and (stride != 1 or in_features != out_features),
                    groups=self.groups,
                    width_per_group=self.width_per_group,
                    dtype=self.dtype,
                    name=f"layer{stage + 1}_{index}",
                )(x, train)
                in_features = out_features
        x = jnp.mean(x, axis=(1, 2))  # (N, H, W, C) -> (N, C)
        x = nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(x)
        return x
