"""ResNet, ResNeXt and Wide ResNet: torchvision's `ResNet` (v1.5, stride on the 3x3 conv).

Variants are data: `block`, `layers`, `groups` and `width_per_group` are the keyword
arguments of both torchvision's `ResNet` and the Flax twin (`models/flax_resnet.py`).
`params` and `macs` are torchvision's published figures (weights metadata `num_params`
and `_ops`, GFLOPS there meaning multiply-adds); tests re-count them in both frameworks.
"""

from __future__ import annotations

import re
from typing import Any

from models.registry import Family, ModelSpec, register_family

FAMILY = "resnet"


def _spec(name: str, block: str, layers: tuple[int, ...], params: int, macs: int, weights: str | None,
          groups: int = 1, width_per_group: int = 64, **kwargs: Any) -> ModelSpec:
    config = {"block": block, "layers": layers, "groups": groups, "width_per_group": width_per_group}
    return ModelSpec(name=name, family=FAMILY, config=config, input_size=kwargs.pop("input_size", 224), params=params,
                     macs=macs, torchvision_weights=weights, **kwargs)


VARIANTS = (
    _spec("resnet18", "basic", (2, 2, 2, 2), 11_689_512, 1_814_073_344, "ResNet18_Weights.IMAGENET1K_V1"),
    _spec("resnet34", "basic", (3, 4, 6, 3), 21_797_672, 3_663_761_408, "ResNet34_Weights.IMAGENET1K_V1"),
    _spec("resnet50", "bottleneck", (3, 4, 6, 3), 25_557_032, 4_089_184_256, "ResNet50_Weights.IMAGENET1K_V1"),
    _spec("resnet101", "bottleneck", (3, 4, 23, 3), 44_549_160, 7_801_405_440, "ResNet101_Weights.IMAGENET1K_V1"),
    _spec("resnet152", "bottleneck", (3, 8, 36, 3), 60_192_808, 11_513_626_624, "ResNet152_Weights.IMAGENET1K_V1"),
    _spec("resnext50_32x4d", "bottleneck", (3, 4, 6, 3), 25_028_904, 4_230_479_872,
          "ResNeXt50_32X4D_Weights.IMAGENET1K_V1", groups=32, width_per_group=4),
    _spec("resnext101_32x8d", "bottleneck", (3, 4, 23, 3), 88_791_336, 16_414_015_488,
          "ResNeXt101_32X8D_Weights.IMAGENET1K_V1", groups=32, width_per_group=8),
    _spec("wide_resnet50_2", "bottleneck", (3, 4, 6, 3), 68_883_240, 11_398_021_120,
          "Wide_ResNet50_2_Weights.IMAGENET1K_V1", width_per_group=128),
    # Test-only: one block per stage at 32x32, 10 classes; counts are what the builders give.
    _spec("resnet_tiny", "bottleneck", (1, 1, 1, 1), 8_036_426, 29_954_048, None, input_size=32, num_classes=10,
          test_only=True),
)


def build_torch(spec: ModelSpec, input_size: int) -> Any:
    """torchvision's `ResNet` for `spec` (any input size: the pool is adaptive)."""
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

    block = {"bottleneck": Bottleneck, "basic": BasicBlock}[spec.config["block"]]
    return ResNet(block, list(spec.config["layers"]), num_classes=spec.num_classes, groups=spec.config["groups"],
                  width_per_group=spec.config["width_per_group"])


def residual_gains(model: Any) -> list[Any]:
    """The last BatchNorm weight of every residual branch (torchvision's `zero_init_residual` targets)."""
    from torchvision.models.resnet import BasicBlock, Bottleneck

    last = {Bottleneck: "bn3", BasicBlock: "bn2"}
    return [getattr(m, last[type(m)]).weight for m in model.modules() if type(m) in last]


def size_reason(spec: ModelSpec, input_size: int) -> str | None:
    """Five stride-2 stages need at least 32 pixels (a 1x1 map before the pool)."""
    return None if input_size >= 32 else f"{spec.name} needs an input of at least 32 pixels, got {input_size}"


def stage_of(spec: ModelSpec, torch_key: str) -> int:
    """`layerK.*` is stage K; the stem (`conv1`, `bn1`) belongs to stage 1."""
    match = re.match(r"layer(\d+)\.", torch_key)
    return int(match.group(1)) if match else 1


register_family(Family(
    name=FAMILY,
    variants=VARIANTS,
    build_torch=build_torch,
    flax_module="models.flax_resnet:ResNet",
    torch_renames=(
        (r"^(layer\d)\.(\d+)", r"\1_\2"),  # layer1.0 -> layer1_0
        (r"downsample\.(\d)", r"downsample_\1"),  # downsample.0 -> downsample_0
    ),
    residual_gains=residual_gains,
    size_reason=size_reason,
    num_stages=lambda spec: len(spec.config["layers"]),
    stage_of=stage_of,
    head_keys=(r"^fc\.",),
    description="ResNet v1.5, ResNeXt (grouped 3x3 convs) and Wide ResNet, as torchvision builds them",
))
