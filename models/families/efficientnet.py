"""EfficientNet-B0..B7: torchvision's `EfficientNet` (MBConv blocks with squeeze-excitation, SiLU).

Variants are data: `stages` is the B0 table of the paper (expand ratio, kernel, stride,
input and output channels, layers per stage), scaled by `width_mult` (channels, rounded
by torchvision's `_make_divisible` to multiples of 8) and `depth_mult` (layers, rounded
up), exactly as torchvision's `MBConvConfig` does. `norm_eps` and `norm_momentum` are
the BatchNorm settings torchvision gives each variant: B0-B4 use `nn.BatchNorm2d`'s
defaults (1e-5, 0.1), B5-B7 `partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)`.

Input sizes are the crop sizes of torchvision's weights (`EfficientNet_B*_Weights.
IMAGENET1K_V1.transforms`), the size its published `_ops` is counted at. For B2 that is
288, not the 260 of the paper: counted at 260, B2 has 0.994 GMACs against the published
1.088; at 288 it has 1.0875 (`python /tmp/counts.py efficientnet_b2`).
"""

from __future__ import annotations

import math
from typing import Any

from models.registry import Family, ModelSpec, register_family

FAMILY = "efficientnet"

# (expand ratio, kernel, stride, input channels, output channels, layers): the paper's Table 1,
# torchvision's `_efficientnet_conf("efficientnet_b*")`.
B0_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
TORCH_BN = (1e-5, 0.1)  # nn.BatchNorm2d's defaults: B0-B4
B5_BN = (1e-3, 0.01)  # torchvision's partial(nn.BatchNorm2d, eps=0.001, momentum=0.01): B5-B7


def _spec(name: str, width: float, depth: float, dropout: float, size: int, params: int, macs: int,
          weights: str | None, norm: tuple[float, float] = TORCH_BN, stages: tuple = B0_STAGES,
          **kwargs: Any) -> ModelSpec:
    config = {"stages": stages, "width_mult": width, "depth_mult": depth, "dropout": dropout,
              "norm_eps": norm[0], "norm_momentum": norm[1]}
    return ModelSpec(name=name, family=FAMILY, config=config, input_size=size, params=params, macs=macs,
                     torchvision_weights=weights, **kwargs)


VARIANTS = (
    _spec("efficientnet_b0", 1.0, 1.0, 0.2, 224, 5_288_548, 385_814_752, "EfficientNet_B0_Weights.IMAGENET1K_V1"),
    _spec("efficientnet_b1", 1.0, 1.1, 0.2, 240, 7_794_184, 686_802_832, "EfficientNet_B1_Weights.IMAGENET1K_V1"),
    _spec("efficientnet_b2", 1.1, 1.2, 0.3, 288, 9_109_994, 1_087_529_456, "EfficientNet_B2_Weights.IMAGENET1K_V1"),
    _spec("efficientnet_b3", 1.2, 1.4, 0.3, 300, 12_233_232, 1_827_141_392, "EfficientNet_B3_Weights.IMAGENET1K_V1"),
    _spec("efficientnet_b4", 1.4, 1.8, 0.4, 380, 19_341_616, 4_393_771_024, "EfficientNet_B4_Weights.IMAGENET1K_V1"),
    _spec("efficientnet_b5", 1.6, 2.2, 0.4, 456, 30_389_784, 10_266_384_752, "EfficientNet_B5_Weights.IMAGENET1K_V1", B5_BN),
    _spec("efficientnet_b6", 1.8, 2.6, 0.5, 528, 43_040_704, 19_067_593_536, "EfficientNet_B6_Weights.IMAGENET1K_V1", B5_BN),
    _spec("efficientnet_b7", 2.0, 3.1, 0.5, 600, 66_347_960, 37_745_884_192, "EfficientNet_B7_Weights.IMAGENET1K_V1", B5_BN),
    # Test-only, 32x32, 10 classes: an expand-1 block without and with the residual, an
    # expand-4 5x5 stride-2 block, an expand-4 residual block, a 3x3 stride-2 block; every
    # block has squeeze-excitation. B5-B7's BatchNorm settings, so a port that ignores
    # `norm_eps` fails here (B0-B4's defaults are covered by the real variants).
    _spec("efficientnet_tiny", 1.0, 1.0, 0.2, 32, 15_034, 736_480, None, B5_BN,
          stages=((1, 3, 1, 16, 8, 2), (4, 5, 2, 8, 16, 2), (4, 3, 2, 16, 24, 1)), num_classes=10, test_only=True),
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """`value` rounded to a multiple of `divisor`, never below it nor 10% below `value` (torchvision's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def stage_table(config: dict[str, Any]) -> list[tuple[int, int, int, int, int, int]]:
    """The scaled stages: (expand ratio, kernel, stride, input channels, output channels, layers)."""
    width, depth = config["width_mult"], config["depth_mult"]
    return [(e, k, s, make_divisible(cin * width), make_divisible(cout * width), int(math.ceil(n * depth)))
            for e, k, s, cin, cout, n in config["stages"]]


def build_torch(spec: ModelSpec, input_size: int) -> Any:
    """torchvision's `EfficientNet` for `spec` (any input size: the pool is adaptive)."""
    from functools import partial

    from torch import nn
    from torchvision.models.efficientnet import EfficientNet, MBConvConfig

    config = spec.config
    setting = [MBConvConfig(*stage, width_mult=config["width_mult"], depth_mult=config["depth_mult"])
               for stage in config["stages"]]
    norm = partial(nn.BatchNorm2d, eps=config["norm_eps"], momentum=config["norm_momentum"])
    return EfficientNet(setting, config["dropout"], num_classes=spec.num_classes, norm_layer=norm)


def residual_gains(model: Any) -> list[Any]:
    """The projection BatchNorm weight of every MBConv block with a residual connection."""
    from torchvision.models.efficientnet import MBConv

    return [m.block[-1][1].weight for m in model.modules() if isinstance(m, MBConv) and m.use_res_connect]


def size_reason(spec: ModelSpec, input_size: int) -> str | None:
    """Every conv is padded and the pool adaptive: torchvision's `min_size` is 1x1."""
    return None if input_size >= 1 else f"{spec.name} needs an input of at least 1 pixel, got {input_size}"


register_family(Family(
    name=FAMILY,
    variants=VARIANTS,
    build_torch=build_torch,
    flax_module="models.flax_efficientnet:EfficientNet",
    torch_renames=(
        (r"^features\.(\d+)\.(\d+)", r"features_\1_\2"),  # features.2.0 -> features_2_0 (stem, blocks, last conv)
        (r"block\.(\d+)\.(\d+)", r"block_\1_\2"),  # block.1.0 -> block_1_0 (a conv or norm of a block)
        (r"block\.(\d+)", r"block_\1"),  # block.2 -> block_2 (squeeze-excitation)
        (r"^classifier\.(\d+)", r"classifier_\1"),
    ),
    residual_gains=residual_gains,
    size_reason=size_reason,
    description="EfficientNet-B0..B7 as torchvision builds them: MBConv with squeeze-excitation, SiLU, "
                "stochastic depth (off in eval)",
))
