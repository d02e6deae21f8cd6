"""Swin v1/v2 specifics: derived buffers, input sizes (padding, forced-zero shift), layouts, attention hooks.

Registry-wide parity, counts and layer pairing cover the default sizes (validation/, tests/test_model_counts.py);
this file covers what those cannot: sizes that pad, the attention-map hooks of both frameworks, and
the torchvision behaviour the tiny variants were sized around.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import check_input_size, flax_swin
from models.flax_models import abstract_variables, build_flax_module, make_flax_preprocess
from models.registry import get_family, get_spec
from models.torch_models import make_torch_preprocess
from tests.swin_weights import trained_like_torch_model
from validation.compare import parity_images
from validation.suite import check, port, random_pair

TINY = ("swin_tiny_test", "swin_v2_tiny_test")


def stage_maps(name: str, size: int) -> list[int]:
    """The square feature map of each stage at input `size` (torch: floor by the patch conv, ceil by merging)."""
    config = get_spec(name).config
    maps = [size // config["patch_size"]]
    for _ in config["depths"][1:]:
        maps.append((maps[-1] + 1) // 2)
    return maps


def pads(name: str, size: int) -> list[bool]:
    """Per stage: is the map padded to whole windows?"""
    window = get_spec(name).config["window_size"]
    return [m % window != 0 for m in stage_maps(name, size)]


def shift_forced_to_zero(name: str, size: int) -> list[bool]:
    """Per stage: does one window cover the padded map, so the shifted blocks do not shift?"""
    window = get_spec(name).config["window_size"]
    return [window >= m + (-m % window) for m in stage_maps(name, size)]


@pytest.mark.parametrize("window", [3, 4, 5, 7, 8])
def test_recomputed_buffers_equal_torchvisions(window: int) -> None:
    from torchvision.models.swin_transformer import ShiftedWindowAttentionV2

    attn = ShiftedWindowAttentionV2(8, [window, window], [window // 2] * 2, 2)
    np.testing.assert_array_equal(flax_swin.relative_position_index(window), attn.relative_position_index.numpy())
    np.testing.assert_array_equal(flax_swin.relative_coords_table(window), attn.relative_coords_table.numpy())


def test_tiny_variants_reach_shift_mask_merging_and_forced_zero_shift() -> None:
    # The tiny variants are the planted-bug and half-precision models: their default size must take
    # each path. Both shift (with the mask) in stage 1 and have the shift forced to 0 in the last
    # stage; v1 also pads to whole windows and pads an odd map before merging (v2 cannot pad at its
    # own size, see test_torchvision_swin_v2_is_nan_in_float16_on_padded_maps).
    for name in TINY:
        size = get_spec(name).input_size
        assert shift_forced_to_zero(name, size) == [False, False, True], name
        assert all(depth >= 2 for depth in get_spec(name).config["depths"])  # every stage has a shifted block
    v1 = get_spec("swin_tiny_test").input_size
    assert pads("swin_tiny_test", v1) == [True, True, True]
    assert stage_maps("swin_tiny_test", v1)[0] % 2 == 1  # 13x13 merges through a pad to 7x7
    assert pads("swin_v2_tiny_test", get_spec("swin_v2_tiny_test").input_size) == [False, False, False]


# (model, input size, dtypes): sizes that pad at some stage; a map smaller than the window.
SIZES = [
    ("swin_tiny_test", 4, ("float32",)),  # a 1x1 map, padded to one window in every stage
    ("swin_tiny_test", 37, ("float32",)),  # not a multiple of the patch: the conv floors (9x9)
    ("swin_v2_tiny_test", 44, ("float32", "bfloat16")),  # 11x11 padded to 12, odd merge, 3x3 padded to 4
]
# Real models at sizes that are not multiples of 32 x window: every stage pads.
REAL_SIZES = [
    ("swin_t", 160, ("float32",)),  # 40, 20, 10, 5: the last stage's shift forced to 0
    ("swin_t", 288, ("float32",)),  # 72, 36, 18, 9: the last stage still shifts (9 -> 14)
    ("swin_v2_t", 200, ("float32",)),  # 50, 25, 13, 7 in 8-windows
]


@pytest.mark.parametrize("name, size, dtypes", SIZES + [pytest.param(*case, marks=pytest.mark.slow) for case in REAL_SIZES])
def test_parity_at_sizes_that_pad(name: str, size: int, dtypes: tuple[str, ...]) -> None:
    assert any(pads(name, size)), f"{name} at {size} does not pad: the case tests nothing new"
    if get_spec(name).test_only:  # sharp attention and O(1) biases make a wrong pad or shift visible
        pair = port(name, trained_like_torch_model(name, input_size=size), size)
    else:
        pair = random_pair(name, input_size=size)
    for dtype in dtypes:
        result = check(pair, dtype, "cpu")
        assert result.passed, f"{size}px: {result.message()}"


def test_torchvision_swin_v2_is_nan_in_float16_on_padded_maps() -> None:
    # Why swin_v2_tiny_test runs at 64 (no padding): padded tokens have zero keys (v2 zeroes the
    # key bias), and F.normalize's eps (1e-12) is 0 in float16, so 0/0 poisons the window (the Flax
    # twin computes the same 0/0). Real v2 models at their 256 pixels never pad.
    from validation.suite import random_torch_model

    spec = get_spec("swin_v2_tiny_test")
    model = random_torch_model(spec.name).to(torch.float16)
    with torch.no_grad():
        for size, finite in ((64, True), (44, False)):
            x = make_torch_preprocess(spec)(parity_images(1, size, size)).to(torch.float16)
            assert bool(torch.isfinite(model(x)).all()) == finite, size
    assert not any(pads("swin_v2_t", 256))


def test_sizes_below_one_patch_are_refused_with_the_reason() -> None:
    family = get_family("swin")
    assert family.size_reason(get_spec("swin_t"), 4) is None
    assert family.size_reason(get_spec("swin_t"), 37) is None  # torchvision takes it: the conv floors
    with pytest.raises(ValueError, match="at least 4 pixels"):
        check_input_size(get_spec("swin_v2_t"), 3)


def test_only_channels_first_torch_outputs_are_transposed() -> None:
    layout = get_family("swin").layout
    assert layout("features.0.0", 4) == "NCHW"  # the patch conv, before Permute
    for name in ("features.0.2", "features.1.0", "features.1.0.attn", "features.2", "features.2.norm", "norm",
                 "features.1.0.attn.cpb_mlp.0"):  # cpb_mlp runs on the (1, 2w-1, 2w-1, 2) table
        assert layout(name, 4) == "same", name
    assert get_family("swin_v2").layout("features.0.0", 4) == "NCHW"


# --- attention maps ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_pairs() -> dict[str, object]:
    """The tiny variants with trained-like weights, ported: random ones attend almost uniformly."""
    return {name: port(name, trained_like_torch_model(name)) for name in TINY}


def _maps(pair, layer_idx: int, batch: int = 2, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    spec, size = pair.spec, pair.input_size
    family = get_family(spec.family)
    images = parity_images(batch, size, size, seed)
    torch_maps = family.attention_torch(pair.torch_model, make_torch_preprocess(spec)(images), layer_idx)
    flax_maps = family.attention_flax(build_flax_module(spec), pair.variables, make_flax_preprocess(spec)(images),
                                      layer_idx)
    return torch_maps, flax_maps


# (model, layer_idx, expected shape for batch 2): block 1 is shifted (and padded in v1); -1 is the last
# block, whose shift is forced to 0 (one window).
ATTENTION_CASES = [
    ("swin_tiny_test", 0, (2 * 9, 2, 25, 25)),
    ("swin_tiny_test", 1, (2 * 9, 2, 25, 25)),
    ("swin_tiny_test", -1, (2 * 1, 4, 25, 25)),
    ("swin_v2_tiny_test", 1, (2 * 16, 2, 16, 16)),
    ("swin_v2_tiny_test", 3, (2 * 4, 2, 16, 16)),
    ("swin_v2_tiny_test", -1, (2 * 1, 4, 16, 16)),
]


@pytest.mark.parametrize("name, layer_idx, shape", ATTENTION_CASES)
def test_attention_maps_agree_between_frameworks(name: str, layer_idx: int, shape, tiny_pairs) -> None:
    torch_maps, flax_maps = _maps(tiny_pairs[name], layer_idx)
    assert torch_maps.shape == flax_maps.shape == shape
    assert torch_maps.dtype == flax_maps.dtype == np.float32
    np.testing.assert_allclose(torch_maps.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(flax_maps, torch_maps, rtol=0, atol=1e-5)
    assert torch_maps.std() > 0.2 * torch_maps.mean()  # far from uniform: bias and content shape the maps


@pytest.mark.parametrize("name", TINY)
def test_attention_of_a_shifted_block_is_masked_across_regions(name: str) -> None:
    # Plain random weights: torchvision masks with -100, not -inf, so with trained-like v2 logit
    # scales (cosine x 100) a masked pair can keep a weight of ~1e-5; here the scores span < 30.
    pair = random_pair(name)
    window = pair.spec.config["window_size"]
    side = stage_maps(name, pair.input_size)[0]
    padded = side + (-side % window)
    mask = flax_swin.shifted_window_mask(padded, padded, window, window // 2, window // 2)  # (windows, N, N)
    masked = np.broadcast_to(mask[None] != 0, (2, *mask.shape)).reshape(-1, 1, *mask.shape[1:])
    masked = np.broadcast_to(masked, (masked.shape[0], pair.spec.config["num_heads"][0], *mask.shape[1:]))
    assert masked.any() and not masked.all()
    for maps in _maps(pair, 1):
        assert maps[masked].max() < 1e-20  # ~exp(-100) relative to the unmasked entries
        assert maps[~masked].min() > 0


@pytest.mark.parametrize("name", TINY)
def test_torch_attention_hook_is_torchvisions_own_softmax(name: str, tiny_pairs, monkeypatch) -> None:
    # The hook recomputes torchvision's attention from the block's input; record the softmax that
    # torchvision itself computes in a plain forward and compare, block by block.
    import torch.nn.functional as F

    pair = tiny_pairs[name]
    images = parity_images(2, pair.input_size, pair.input_size, seed=5)
    x = make_torch_preprocess(pair.spec)(images)
    recorded = []
    softmax = F.softmax

    def recording(*args, **kwargs):
        out = softmax(*args, **kwargs)
        recorded.append(out.detach().numpy().copy())
        return out

    monkeypatch.setattr(F, "softmax", recording)
    with torch.no_grad():
        pair.torch_model(x)
    monkeypatch.setattr(F, "softmax", softmax)
    family = get_family(pair.spec.family)
    assert len(recorded) == sum(pair.spec.config["depths"])
    for layer_idx, expected in enumerate(recorded):
        np.testing.assert_allclose(family.attention_torch(pair.torch_model, x, layer_idx), expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", TINY)
def test_attention_hooks_leave_the_benchmarked_forward_untouched(name: str, tiny_pairs) -> None:
    import jax

    pair = tiny_pairs[name]
    spec, size = pair.spec, pair.input_size
    x = make_torch_preprocess(spec)(parity_images(1, size, size))
    with torch.no_grad():
        before = pair.torch_model(x)
    _maps(pair, -1)
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in pair.torch_model.modules())
    with torch.no_grad():
        assert torch.equal(pair.torch_model(x), before)
    module = build_flax_module(spec)
    assert set(abstract_variables(module, (1, size, size, 3))) == {"params"}  # init sows nothing
    out = jax.eval_shape(module.apply, pair.variables, jax.ShapeDtypeStruct((1, size, size, 3), np.float32))
    assert out.shape == (1, spec.num_classes)  # logits only: no attention collection in the plain apply


@pytest.mark.parametrize("framework", ["torch", "flax"])
def test_layer_idx_out_of_range_names_the_block_count(framework: str, tiny_pairs) -> None:
    with pytest.raises(IndexError, match=r"has 6 attention blocks \(use -6\.\.5"):
        if framework == "torch":
            get_family("swin").attention_torch(tiny_pairs["swin_tiny_test"].torch_model, torch.zeros(1, 3, 52, 52), 6)
        else:
            pair = tiny_pairs["swin_tiny_test"]
            get_family("swin").attention_flax(build_flax_module(pair.spec), pair.variables, np.zeros((1, 52, 52, 3)), -7)
