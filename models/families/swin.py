"""Swin Transformer v1 and v2: torchvision's `SwinTransformer` (shifted-window attention, patch merging).

Two families in one file, because they share the torch builder, the Flax twin
(`models/flax_swin.py`), the port rules and the attention hooks, but differ in every block
(v2: cosine attention with a clamped logit scale, a continuous position-bias MLP, the norm
after each residual branch, reduction before norm in patch merging). As two families each
has its own tiny test-only variant exercising all of its code paths, and `--model swin_v2`
selects the v2 models.

Both accept any square input of at least one patch (4 pixels), as torchvision does: the
feature map is padded to whole windows before the cyclic shift, odd maps are padded before
patch merging, and the shift is dropped where one window covers the padded map.
`params` are torchvision's `num_params`; `macs` what torch's FlopCounterMode counts at the
spec's size (224 for v1, 256 for v2, the sizes of torchvision's weights), equal to the
published `_ops`.
"""

from __future__ import annotations

from typing import Any, Callable

from models.registry import Family, ModelSpec, register_family

V1, V2 = "swin", "swin_v2"
PATCH = 4


def _spec(family: str, name: str, embed_dim: int, depths: tuple[int, ...], heads: tuple[int, ...], window: int,
          depth_prob: float, input_size: int, params: int, macs: int, weights: str | None, **kwargs: Any) -> ModelSpec:
    config = {"patch_size": kwargs.pop("patch_size", PATCH), "embed_dim": embed_dim, "depths": depths,
              "num_heads": heads, "window_size": window, "stochastic_depth_prob": depth_prob}
    return ModelSpec(name=name, family=family, config=config, input_size=input_size, params=params, macs=macs,
                     torchvision_weights=weights, **kwargs)


T, SB = (2, 2, 6, 2), (2, 2, 18, 2)
HEADS_TS, HEADS_B = (3, 6, 12, 24), (4, 8, 16, 32)

V1_VARIANTS = (
    _spec(V1, "swin_t", 96, T, HEADS_TS, 7, 0.2, 224, 28_288_354, 4_490_566_656, "Swin_T_Weights.IMAGENET1K_V1"),
    _spec(V1, "swin_s", 96, SB, HEADS_TS, 7, 0.3, 224, 49_606_258, 8_740_875_264, "Swin_S_Weights.IMAGENET1K_V1"),
    _spec(V1, "swin_b", 128, SB, HEADS_B, 7, 0.5, 224, 87_768_224, 15_430_946_816, "Swin_B_Weights.IMAGENET1K_V1"),
    # Test-only, 10 classes at 52x52: a 13x13 map padded to 15 for window 5 and shifted by 2 (mask),
    # an odd map padded before merging (13 -> 7), padding and shift again at 7x7, and at 4x4 the
    # shift forced to 0 (the window covers the padded 5x5 map).
    _spec(V1, "swin_tiny_test", 8, (2, 2, 2), (2, 2, 4), 5, 0.1, 52, 38_562, 1_703_776, None, num_classes=10,
          test_only=True),
)

V2_VARIANTS = (
    _spec(V2, "swin_v2_t", 96, T, HEADS_TS, 8, 0.2, 256, 28_351_570, 5_939_690_496, "Swin_V2_T_Weights.IMAGENET1K_V1"),
    _spec(V2, "swin_v2_s", 96, SB, HEADS_TS, 8, 0.3, 256, 49_737_442, 11_545_857_024,
          "Swin_V2_S_Weights.IMAGENET1K_V1"),
    _spec(V2, "swin_v2_b", 128, SB, HEADS_B, 8, 0.5, 256, 87_930_848, 20_325_134_336,
          "Swin_V2_B_Weights.IMAGENET1K_V1"),
    # Test-only, 10 classes at 64x64: 16x16 and 8x8 maps in shifted 4x4 windows (mask), and at 4x4 the
    # shift forced to 0. No padding at this size: torchvision's v2 gives NaN in float16 on padded
    # maps (F.normalize of the zero keys of padded tokens), so padding is tested at 44 in float32
    # and bfloat16 (tests/test_swin.py), not by the registry's float16 parity.
    _spec(V2, "swin_v2_tiny_test", 8, (2, 2, 2), (2, 2, 4), 4, 0.1, 64, 54_594, 2_275_648, None, num_classes=10,
          test_only=True),
)


def _builder(v2: bool) -> Callable[[ModelSpec, int], Any]:
    def build_torch(spec: ModelSpec, input_size: int) -> Any:
        """torchvision's `SwinTransformer` for `spec` (any input size: windows pad)."""
        from torchvision.models import swin_transformer as tv

        c = spec.config
        blocks = {"block": tv.SwinTransformerBlockV2, "downsample_layer": tv.PatchMergingV2} if v2 else {}
        return tv.SwinTransformer(
            patch_size=[c["patch_size"]] * 2, embed_dim=c["embed_dim"], depths=list(c["depths"]),
            num_heads=list(c["num_heads"]), window_size=[c["window_size"]] * 2,
            stochastic_depth_prob=c["stochastic_depth_prob"], num_classes=spec.num_classes, **blocks,
        )

    return build_torch


# torch outputs that are channels-first: the patch conv, and the head's permute and pool.
# Every other Swin output (blocks, merging, norms, cpb_mlp on the 4-D coordinates table) is NHWC.
_NCHW_MODULES = frozenset({"features.0.0", "permute", "avgpool"})


def layout(torch_module: str, ndim: int) -> str:
    """The layout of a torch output: NCHW for the patch conv and the head's permute/pool, else channels-last."""
    return "NCHW" if ndim == 4 and torch_module in _NCHW_MODULES else "same"


def size_reason(spec: ModelSpec, input_size: int) -> str | None:
    """The patch convolution needs at least one patch; any larger size pads to whole windows."""
    patch = spec.config["patch_size"]
    if input_size < patch:
        return f"{spec.name} needs an input of at least {patch} pixels (one patch), got {input_size}"
    return None


def residual_gains(model: Any) -> list[Any]:
    """v2's post-norm scales (norm1, norm2 end each residual branch); v1's branches end in a Linear: none."""
    from torchvision.models.swin_transformer import SwinTransformerBlockV2

    return [n.weight for m in model.modules() if isinstance(m, SwinTransformerBlockV2) for n in (m.norm1, m.norm2)]


def _block_index(count: int, layer_idx: int, what: str) -> int:
    if not -count <= layer_idx < count:
        raise IndexError(f"layer_idx {layer_idx} is out of range: {what} has {count} attention blocks "
                         f"(use {-count}..{count - 1}; -1 is the last)")
    return layer_idx % count


def window_attention_weights(attn: Any, x: Any) -> Any:
    """Softmax weights `[B * windows, heads, N, N]` of torchvision's `ShiftedWindowAttention(V2)` on its input `x`.

    Recomputes `torchvision.models.swin_transformer.shifted_window_attention` up to its softmax
    from the module's own weights and position bias, so the model's forward stays untouched.
    """
    import math

    import torch
    import torch.nn.functional as F

    window, heads = list(attn.window_size), attn.num_heads
    b, h, w, c = x.shape
    x = F.pad(x, (0, 0, 0, (window[1] - w % window[1]) % window[1], 0, (window[0] - h % window[0]) % window[0]))
    _, pad_h, pad_w, _ = x.shape
    shift = [0 if window[0] >= pad_h else attn.shift_size[0], 0 if window[1] >= pad_w else attn.shift_size[1]]
    if sum(shift) > 0:
        x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
    num_windows = (pad_h // window[0]) * (pad_w // window[1])
    n = window[0] * window[1]
    # (B, pH, pW, C) -> (B, nH, wh, nW, ww, C) -> (B * windows, N, C)
    x = x.view(b, pad_h // window[0], window[0], pad_w // window[1], window[1], c).permute(0, 1, 3, 2, 4, 5)
    x = x.reshape(b * num_windows, n, c)
    logit_scale = getattr(attn, "logit_scale", None)
    bias = attn.qkv.bias
    if logit_scale is not None and bias is not None:
        bias = bias.clone()
        bias[c: 2 * c] = 0  # v2 has no key bias
    qkv = F.linear(x, attn.qkv.weight, bias).reshape(b * num_windows, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    q, k = qkv[0], qkv[1]
    if logit_scale is not None:
        scores = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        scores = scores * torch.clamp(logit_scale, max=math.log(100.0)).exp()
    else:
        scores = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1)
    scores = scores + attn.get_relative_position_bias()
    if sum(shift) > 0:
        region = x.new_zeros((pad_h, pad_w))  # the regions the shift brought together, as torchvision numbers them
        count = 0
        for h0, h1 in ((0, -window[0]), (-window[0], -shift[0]), (-shift[0], None)):
            for w0, w1 in ((0, -window[1]), (-window[1], -shift[1]), (-shift[1], None)):
                region[h0:h1, w0:w1] = count
                count += 1
        region = region.view(pad_h // window[0], window[0], pad_w // window[1], window[1]).permute(0, 2, 1, 3)
        region = region.reshape(num_windows, n)  # (windows, N)
        mask = (region[:, None, :] != region[:, :, None]).to(scores.dtype) * -100.0  # (windows, N, N)
        scores = (scores.view(b, num_windows, heads, n, n) + mask[None, :, None]).view(-1, heads, n, n)
    return F.softmax(scores, dim=-1)


def attention_torch(model: Any, x_nchw: Any, layer_idx: int) -> Any:
    """Softmax attention `[batch * windows, heads, N, N]` of block `layer_idx` (over all stages), as numpy."""
    import torch
    from torchvision.models.swin_transformer import SwinTransformerBlock

    blocks = [m for m in model.modules() if isinstance(m, SwinTransformerBlock)]  # V2 blocks subclass it
    attn = blocks[_block_index(len(blocks), layer_idx, type(model).__name__)].attn
    captured = {}

    class _Reached(Exception):
        pass

    def grab_input(_module: Any, args: tuple) -> None:
        captured["x"] = args[0]
        raise _Reached  # the rest of the forward is not needed

    handle = attn.register_forward_pre_hook(grab_input)
    try:
        with torch.no_grad():
            model(x_nchw)
    except _Reached:
        pass
    finally:
        handle.remove()
    with torch.no_grad():
        return window_attention_weights(attn, captured["x"]).float().cpu().numpy()


def attention_flax(module: Any, variables: Any, x_nhwc: Any, layer_idx: int) -> Any:
    """Softmax attention `[batch * windows, heads, N, N]` of block `layer_idx`, sown by a separate apply."""
    from models.flax_swin import attention_weights

    names = module.block_names()
    block = names[_block_index(len(names), layer_idx, type(module).__name__)]
    return attention_weights(module, variables, x_nhwc, block)


def _family(name: str, variants: tuple[ModelSpec, ...], v2: bool, description: str) -> Family:
    return Family(
        name=name,
        variants=variants,
        build_torch=_builder(v2),
        flax_module="models.flax_swin:SwinTransformerV2" if v2 else "models.flax_swin:SwinTransformer",
        torch_renames=(
            (r"^features\.(\d+)\.(\d+)", r"features_\1_\2"),  # features.1.0 -> features_1_0 (blocks, patch embedding)
            (r"^features\.(\d+)", r"features_\1"),  # features.2.reduction -> features_2.reduction (patch merging)
            (r"mlp\.(\d+)", r"mlp_\1"),  # mlp.0 -> mlp_0, cpb_mlp.0 -> cpb_mlp_0
        ),
        # Recomputed by the Flax twin (models.flax_swin.relative_position_index / relative_coords_table).
        dropped_keys=(r"\.relative_position_index$", r"\.relative_coords_table$"),
        residual_gains=residual_gains,
        layout=layout,
        size_reason=size_reason,
        attention_torch=attention_torch,
        attention_flax=attention_flax,
        description=description,
    )


register_family(_family(V1, V1_VARIANTS, False, "Swin Transformer as torchvision builds it: shifted windows with a "
                        "relative position bias table, pre-norm blocks, patch merging"))
register_family(_family(V2, V2_VARIANTS, True, "Swin Transformer V2 as torchvision builds it: cosine window attention "
                        "with a clamped logit scale, continuous position bias MLP, post-norm blocks, PatchMergingV2"))
