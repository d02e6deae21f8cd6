"""Vision Transformer: torchvision's `VisionTransformer` (class token first, then position embedding).

The architecture is built at any input size that is a multiple of the patch: both
frameworks then hold a position embedding of (size / patch)^2 + 1 tokens.
"""

from __future__ import annotations

import re
from typing import Any

from models.registry import Family, ModelSpec, register_family

FAMILY = "vit"


def _spec(name: str, patch: int, layers: int, heads: int, hidden: int, mlp: int, params: int, macs: int,
          weights: str | None, **kwargs: Any) -> ModelSpec:
    config = {"patch_size": patch, "num_layers": layers, "num_heads": heads, "hidden_dim": hidden, "mlp_dim": mlp}
    return ModelSpec(name=name, family=FAMILY, config=config, input_size=kwargs.pop("input_size", 224), params=params,
                     macs=macs, torchvision_weights=weights, **kwargs)


VARIANTS = (
    _spec("vit_b_16", 16, 12, 12, 768, 3072, 86_567_656, 17_563_828_224, "ViT_B_16_Weights.IMAGENET1K_V1"),
    _spec("vit_b_32", 32, 12, 12, 768, 3072, 88_224_232, 4_409_186_304, "ViT_B_32_Weights.IMAGENET1K_V1"),
    _spec("vit_l_16", 16, 24, 16, 1024, 4096, 304_326_632, 61_554_712_576, "ViT_L_16_Weights.IMAGENET1K_V1"),
    _spec("vit_l_32", 32, 24, 16, 1024, 4096, 306_535_400, 15_377_539_072, "ViT_L_32_Weights.IMAGENET1K_V1"),
    # Test-only: 2 layers of width 32 on 32x32 images in 8x8 patches, 10 classes.
    _spec("vit_tiny", 8, 2, 2, 32, 64, 24_234, 414_144, None, input_size=32, num_classes=10, test_only=True),
)


def build_torch(spec: ModelSpec, input_size: int) -> Any:
    """torchvision's `VisionTransformer` for `spec` at `input_size`."""
    from torchvision.models.vision_transformer import VisionTransformer

    return VisionTransformer(image_size=input_size, num_classes=spec.num_classes, **spec.config)


def flax_kwargs(spec: ModelSpec, input_size: int) -> dict[str, Any]:
    """The Flax twin's arguments: the config plus the image size (it sizes the position embedding)."""
    return {**spec.config, "image_size": input_size}


def size_reason(spec: ModelSpec, input_size: int) -> str | None:
    """The image must tile into whole patches."""
    patch = spec.config["patch_size"]
    if input_size % patch:
        return f"{spec.name} needs an input size that is a multiple of its {patch}-pixel patch, got {input_size}"
    return None


def attention_torch(model: Any, x_nchw: Any, layer_idx: int) -> Any:
    """Layer `layer_idx`'s softmax weights [batch, heads, tokens, tokens], recomputed by its own attention module.

    torchvision's `EncoderBlock` calls `nn.MultiheadAttention` with `need_weights=False`;
    the block's `ln_1` output is captured and fed to the same module asking for the
    per-head weights.
    """
    import torch

    from models.attention import layer_index, run_until

    blocks = list(model.encoder.layers)
    block = blocks[layer_index(layer_idx, len(blocks))]
    _, y = run_until(model, x_nchw, block.ln_1)
    with torch.no_grad():
        _, weights = block.self_attention(y, y, y, need_weights=True, average_attn_weights=False)
    return weights.float().cpu().numpy()


def attention_flax(module: Any, variables: Any, x_nhwc: Any, layer_idx: int) -> Any:
    """Layer `layer_idx`'s softmax weights [batch, heads, tokens, tokens], as the Flax twin sows them."""
    from models.attention import layer_index, sown_attention

    sown = sown_attention(module, variables, x_nhwc)["encoder"]
    return sown[f"encoder_layer_{layer_index(layer_idx, module.num_layers)}"]["self_attention"]["weights"]

def stage_of(spec: ModelSpec, torch_key: str) -> int:
    """Encoder layer i is stage i + 1; the patch embedding, class token and position embedding
    belong to stage 1, the final LayerNorm to the last stage."""
    match = re.match(r"encoder\.layers\.encoder_layer_(\d+)\.", torch_key)
    if match:
        return int(match.group(1)) + 1
    return spec.config["num_layers"] if torch_key.startswith("encoder.ln.") else 1


register_family(Family(
    name=FAMILY,
    variants=VARIANTS,
    build_torch=build_torch,
    flax_module="models.flax_vit:VisionTransformer",
    flax_kwargs=flax_kwargs,
    torch_renames=(
        (r"^encoder\.layers\.", "encoder."),  # the blocks' nn.Sequential has no Flax twin
        (r"mlp\.(\d)", r"mlp_\1"),  # mlp.0 -> mlp_0
        (r"^heads\.head", "heads_head"),
    ),
    size_reason=size_reason,
    attention_torch=attention_torch,
    attention_flax=attention_flax,

    num_stages=lambda spec: spec.config["num_layers"],
    stage_of=stage_of,
    head_keys=(r"^heads\.",),
    description="ViT as torchvision builds it: patch conv, class token, learned position embedding, pre-norm blocks",
))
