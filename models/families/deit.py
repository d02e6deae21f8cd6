"""DeiT (Touvron et al. 2021, arXiv:2012.12877) as timm builds it, plain and distilled.

The torch side is timm's `VisionTransformer` (DeiT-Ti/S/B) and `VisionTransformerDistilled`
(the `_distilled_` variants), built with `timm.create_model(..., pretrained=False)`: no
network. A distilled model holds the tokens [class, distillation, patches], adds its
position embedding after that concat, and in eval returns the mean of its two heads
(`head` on the class token, `head_dist` on the distillation token).

The architecture is built at any input size that is a multiple of the patch (timm's
`img_size=`): both frameworks then hold a position embedding of (size / patch)^2 + 1 or
+ 2 tokens.

`params` are counted from the built model (timm publishes no metadata of torchvision's
kind) and `macs` by torch's FlopCounterMode, as for the other families (/tmp/counts.py).
Cross-check against timm's results table (results/benchmark-infer-amp-nchw-pt240-cu124-
rtx4090.csv, another counter, 2 decimals), GMACs at 224 ours vs timm's: Ti 1.254 vs 1.26,
S 4.599 vs 4.61, B 17.564 vs 17.58; distilled Ti 1.261 vs 1.27, S 4.624 vs 4.63, B 17.657
vs 17.68. Params equal timm's 5.72M, 22.05M, 86.57M and 5.91M, 22.44M, 87.34M.
deit_base_patch16_224 is ViT-B/16's architecture: the same 86,567,656 parameters and
17,563,828,224 MACs as vit_b_16.
"""

from __future__ import annotations

from typing import Any

from models.registry import Family, ModelSpec, register_family

FAMILY = "deit"


def _spec(name: str, embed_dim: int, heads: int, params: int, macs: int, distilled: bool, patch: int = 16,
          depth: int = 12, timm_model: str | None = None, **kwargs: Any) -> ModelSpec:
    # `timm_model`: the timm entry point whose model class (plain or distilled) is built;
    # the other keys override its architecture, so test-only variants reuse a real entry.
    config = {"timm_model": timm_model or name, "patch_size": patch, "embed_dim": embed_dim, "depth": depth,
              "num_heads": heads, "distilled": distilled}
    return ModelSpec(name=name, family=FAMILY, config=config, input_size=kwargs.pop("input_size", 224), params=params,
                     macs=macs, **kwargs)


VARIANTS = (
    _spec("deit_tiny_patch16_224", 192, 3, 5_717_416, 1_253_683_200, False),
    _spec("deit_small_patch16_224", 384, 6, 22_050_664, 4_598_882_304, False),
    _spec("deit_base_patch16_224", 768, 12, 86_567_656, 17_563_828_224, False),
    _spec("deit_tiny_distilled_patch16_224", 192, 3, 5_910_800, 1_261_003_776, True),
    _spec("deit_small_distilled_patch16_224", 384, 6, 22_436_432, 4_624_140_288, True),
    _spec("deit_base_distilled_patch16_224", 768, 12, 87_338_192, 17_656_811_520, True),
    # Test-only: distilled (both prefix tokens, both heads), 2 blocks of width 32 on 32x32
    # images in 8x8 patches, 10 classes. The plain path is what the real models run.
    _spec("deit_test_distilled", 32, 2, 32_948, 582_784, True, patch=8, depth=2,
          timm_model="deit_tiny_distilled_patch16_224", input_size=32, num_classes=10, test_only=True),
)


def _architecture(spec: ModelSpec) -> dict[str, Any]:
    """The config keys that are architecture arguments of both timm and the Flax twin."""
    return {k: v for k, v in spec.config.items() if k not in ("timm_model", "distilled")}


def build_torch(spec: ModelSpec, input_size: int) -> Any:
    """timm's DeiT for `spec` at `input_size`, randomly initialised (nothing is downloaded)."""
    import timm

    return timm.create_model(spec.config["timm_model"], pretrained=False, img_size=input_size,
                             num_classes=spec.num_classes, **_architecture(spec))


def flax_kwargs(spec: ModelSpec, input_size: int) -> dict[str, Any]:
    """The Flax twin's arguments: the architecture, the distillation switch and the image size."""
    return {**_architecture(spec), "distilled": spec.config["distilled"], "image_size": input_size}


def heads(model: Any) -> list[Any]:
    """The classifier(s) whose outputs make the logits: `head`, and `head_dist` when distilled."""
    return [model.head] + ([model.head_dist] if hasattr(model, "head_dist") else [])


def size_reason(spec: ModelSpec, input_size: int) -> str | None:
    """The image must tile into whole patches."""
    patch = spec.config["patch_size"]
    if input_size < patch or input_size % patch:
        return f"{spec.name} needs an input size that is a multiple of its {patch}-pixel patch, got {input_size}"
    return None


def weights_file(spec: ModelSpec) -> str:
    """The file name of the published checkpoint (its download URL's last part), else `<name>.pth`.

    Facebook's DeiT checkpoints, e.g. deit_small_patch16_224-cd65a155.pth, hold the
    state_dict under 'model'; loading unwraps it.
    """
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(spec.name) if not spec.test_only else None
    url = getattr(cfg, "url", None) or ""
    return url.rsplit("/", 1)[-1] if url else f"{spec.name}.pth"


def attention_torch(model: Any, x_nchw: Any, layer_idx: int) -> Any:
    """Block `layer_idx`'s softmax weights [batch, heads, tokens, tokens], from timm's own unfused path.

    timm computes them only when `fused_attn` is off (F.scaled_dot_product_attention hides
    them); it is switched off for this one pass and restored, and the weights are read
    where timm applies `attn_drop` to them (identity in eval).
    """
    from models.attention import layer_index, run_until

    attn = model.blocks[layer_index(layer_idx, len(model.blocks))].attn
    fused = attn.fused_attn
    attn.fused_attn = False
    try:
        _, weights = run_until(model, x_nchw, attn.attn_drop)
    finally:
        attn.fused_attn = fused
    return weights.float().cpu().numpy()


def attention_flax(module: Any, variables: Any, x_nhwc: Any, layer_idx: int) -> Any:
    """Block `layer_idx`'s softmax weights [batch, heads, tokens, tokens], as the Flax twin sows them."""
    from models.attention import layer_index, sown_attention

    sown = sown_attention(module, variables, x_nhwc)
    return sown[f"blocks_{layer_index(layer_idx, module.depth)}"]["attn"]["weights"]


register_family(Family(
    name=FAMILY,
    variants=VARIANTS,
    build_torch=build_torch,
    flax_module="models.flax_deit:DeiT",
    flax_kwargs=flax_kwargs,
    torch_renames=(
        (r"^blocks\.(\d+)", r"blocks_\1"),  # blocks.0 -> blocks_0: the nn.Sequential has no Flax twin
    ),
    heads=heads,
    size_reason=size_reason,
    weights_file=weights_file,
    attention_torch=attention_torch,
    attention_flax=attention_flax,
    description="DeiT as timm builds it: ViT with a distillation token and head (distilled variants), "
                "eval logits the mean of both heads",
))
