"""ConvNeXt: torchvision's `ConvNeXt` (patchify stem, 7x7 depthwise blocks with layer scale).

Variants are data: `block_setting` holds torchvision's `CNBlockConfig`s as (input
channels, output channels or None for the last stage, blocks). Inside a block torch
runs LayerNorm and the two Linears channels-last, after a `Permute`: `layout` says so,
so first-diverging-layer pairing compares those outputs without a transpose.
"""

from __future__ import annotations

import re
from typing import Any

from models.registry import Family, ModelSpec, register_family

FAMILY = "convnext"


def _spec(name: str, block_setting: tuple, stochastic_depth: float, params: int, macs: int, weights: str | None,
          **kwargs: Any) -> ModelSpec:
    config = {"block_setting": block_setting, "stochastic_depth_prob": stochastic_depth}
    return ModelSpec(name=name, family=FAMILY, config=config, input_size=kwargs.pop("input_size", 224), params=params,
                     macs=macs, torchvision_weights=weights, **kwargs)


VARIANTS = (
    _spec("convnext_tiny", ((96, 192, 3), (192, 384, 3), (384, 768, 9), (768, None, 3)), 0.1, 28_589_128, 4_455_531_264,
          "ConvNeXt_Tiny_Weights.IMAGENET1K_V1"),
    _spec("convnext_small", ((96, 192, 3), (192, 384, 3), (384, 768, 27), (768, None, 3)), 0.4, 50_223_688, 8_683_712_256,
          "ConvNeXt_Small_Weights.IMAGENET1K_V1"),
    _spec("convnext_base", ((128, 256, 3), (256, 512, 3), (512, 1024, 27), (1024, None, 3)), 0.5, 88_591_464, 15_354_729_472,
          "ConvNeXt_Base_Weights.IMAGENET1K_V1"),
    # Test-only, 32x32, 10 classes: three stages (two downsamplings), one with two blocks.
    # Not "convnext_tiny", which torchvision's real ConvNeXt-T is called.
    _spec("convnext_mini", ((8, 16, 1), (16, 32, 2), (32, None, 1)), 0.1, 20_434, 228_800, None, input_size=32,
          num_classes=10, test_only=True),
)


def build_torch(spec: ModelSpec, input_size: int) -> Any:
    """torchvision's `ConvNeXt` for `spec` (any input size the strides allow: the pool is adaptive)."""
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    setting = [CNBlockConfig(*stage) for stage in spec.config["block_setting"]]
    return ConvNeXt(setting, stochastic_depth_prob=spec.config["stochastic_depth_prob"], num_classes=spec.num_classes)


def residual_gains(model: Any) -> list[Any]:
    """The layer scale of every block: the (C, 1, 1) gain on each residual branch."""
    from torchvision.models.convnext import CNBlock

    return [m.layer_scale for m in model.modules() if isinstance(m, CNBlock)]


_CHANNELS_LAST = re.compile(r"\.block\.[2-5]$")  # between CNBlock's two Permutes: LayerNorm, Linear, GELU, Linear


def layout(torch_module: str, ndim: int) -> str:
    """torch's layout of a captured output: NHWC inside a block's MLP, NCHW for other 4-D outputs."""
    return "NCHW" if ndim == 4 and not _CHANNELS_LAST.search(torch_module) else "same"


def total_stride(spec: ModelSpec) -> int:
    """The stem's stride 4 times 2 per downsampling."""
    return 4 * 2 ** sum(out is not None for _, out, _ in spec.config["block_setting"])


def size_reason(spec: ModelSpec, input_size: int) -> str | None:
    """The stem and the downsamplings are unpadded: the input must cover the total stride."""
    stride = total_stride(spec)
    if input_size < stride:
        return f"{spec.name} needs an input of at least {stride} pixels (its total stride), got {input_size}"
    return None


register_family(Family(
    name=FAMILY,
    variants=VARIANTS,
    build_torch=build_torch,
    flax_module="models.flax_convnext:ConvNeXt",
    torch_renames=(
        (r"^features\.(\d+)\.(\d+)", r"features_\1_\2"),  # features.1.0 -> features_1_0 (stem, block, downsampling)
        (r"block\.(\d+)", r"block_\1"),  # block.3 -> block_3 (a layer of a block's nn.Sequential)
        (r"^classifier\.(\d+)", r"classifier_\1"),
    ),
    leaf_transforms=((r"\.layer_scale$", "vector"),),  # (C, 1, 1) -> (C,): Flax scales channels-last
    residual_gains=residual_gains,
    layout=layout,
    size_reason=size_reason,
    description="ConvNeXt as torchvision builds it: 4x4 patchify stem, 7x7 depthwise blocks with LayerNorm, "
                "GELU MLP and layer scale",
))
