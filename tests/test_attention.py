"""Attention maps: torch and JAX agree, rows are distributions, the timed forward is untouched; rollout."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch

from models import (
    AttentionReader,
    attention,
    attention_rollout,
    class_token_grid,
    flax_deit,
    get_attention_maps,
    get_flax_model,
    get_spec,
)
from models.attention import LayerIndexError, run_until
from validation.compare import parity_images
from validation.suite import forget_compiled, random_torch_model

# (model, heads, tokens at the spec's 32 px: prefix tokens + (32 / 8)^2 patches, layers)
MODELS = {"vit_tiny": (2, 1 + 16, 2), "deit_test_distilled": (2, 2 + 16, 2)}
MAPS_ATOL = 1e-5  # float32: measured <= 3e-7 apart on these models


def _sharpen(model: torch.nn.Module, std: float = 0.12) -> torch.nn.Module:
    """Rescale the query and key rows of every packed q, k, v projection to weights of `std`.

    timm's random qkv weights (std 0.02) give near-uniform maps, on which a wrong scale or
    head order would hardly show; 0.12 is about torchvision's xavier scale at width 32
    (vit_tiny's own), which leaves its maps far from uniform but not one-hot.
    """
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if name.endswith(("attn.qkv.weight", "in_proj_weight")):
                rows = 2 * weight.shape[0] // 3
                factor = std / float(weight[:rows].std())
                weight[:rows] *= factor
                bias = dict(model.named_parameters())[name[: -len("weight")] + "bias"]
                bias[:rows] *= factor
    return model


@pytest.fixture(scope="module")
def torch_models() -> dict[str, torch.nn.Module]:
    """One random-weight, sharpened torch model per tiny variant."""
    return {name: _sharpen(random_torch_model(name)) for name in MODELS}


def _both(name: str, images: np.ndarray, layer: int, torch_model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    return (get_attention_maps(name, images, layer, "torch", torch_model),
            get_attention_maps(name, images, layer, "jax", torch_model))


@pytest.mark.parametrize("name", list(MODELS))
def test_torch_and_jax_maps_agree_and_rows_are_distributions(name: str, torch_models) -> None:
    heads, tokens, layers = MODELS[name]
    images = parity_images(3, 32, 32, seed=4)
    for layer in range(layers):
        maps_torch, maps_jax = _both(name, images, layer, torch_models[name])
        assert maps_torch.shape == maps_jax.shape == (3, heads, tokens, tokens)
        assert maps_torch.dtype == maps_jax.dtype == np.float32
        np.testing.assert_allclose(maps_jax, maps_torch, rtol=0, atol=MAPS_ATOL)
        np.testing.assert_allclose(maps_torch.sum(-1), 1.0, atol=1e-5)
        assert maps_torch.min() >= 0
        # Far from uniform: a wrong scale or head order would show (see the planted bugs below).
        assert np.abs(maps_torch - 1 / tokens).max() * tokens > 1.0
    assert not np.allclose(*[get_attention_maps(name, images, i, "torch", torch_models[name]) for i in range(2)])


@pytest.mark.parametrize("name", list(MODELS))
def test_layer_index_counts_from_the_end_and_out_of_range_names_the_range(name: str, torch_models) -> None:
    images = parity_images(1, 32, 32)
    layers = MODELS[name][2]
    reader = AttentionReader(name, "torch", torch_models[name])
    np.testing.assert_array_equal(reader.get_attention_maps(images, -1), reader.get_attention_maps(images, layers - 1))
    for framework in ("torch", "jax"):
        with pytest.raises(LayerIndexError, match=rf"layer_idx {layers} is out of range: the model has {layers} "
                                                  rf"attention layers, use -{layers}..{layers - 1}"):
            get_attention_maps(name, images, layers, framework, torch_models[name])
    assert len(reader.attention_maps_per_layer(images)) == layers


def test_without_a_torch_model_both_frameworks_use_the_same_weights_at_any_size() -> None:
    images = parity_images(2, 48, 48, seed=1)  # 6 x 6 patches of 8 px: 38 tokens
    maps_torch = get_attention_maps("deit_test_distilled", images, framework="torch")
    maps_jax = get_attention_maps("deit_test_distilled", images, framework="jax")
    assert maps_torch.shape == (2, 2, 38, 38)
    np.testing.assert_allclose(maps_jax, maps_torch, rtol=0, atol=MAPS_ATOL)
    np.testing.assert_array_equal(get_attention_maps("deit_test_distilled", images, framework="torch"), maps_torch)


def test_one_hwc_image_is_a_batch_of_one(torch_models) -> None:
    image = parity_images(1, 32, 32)[0]
    reader = AttentionReader("vit_tiny", torch_model=torch_models["vit_tiny"])
    assert reader.get_attention_maps(image).shape == (1, 2, 17, 17)


@pytest.mark.parametrize("name", list(MODELS))
def test_reading_maps_leaves_the_benchmarked_torch_forward_untouched(name: str, torch_models) -> None:
    model = torch_models[name]
    x = torch.from_numpy(parity_images(2, 32, 32)).permute(0, 3, 1, 2)
    fused = {n: m.fused_attn for n, m in model.named_modules() if hasattr(m, "fused_attn")}
    model.train()  # a user's model in training mode gets it back
    with torch.no_grad():
        before = model.eval()(x)
    model.train()
    get_attention_maps(name, parity_images(2, 32, 32), 0, "torch", model)
    assert model.training and all(m.training for m in model.modules())
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
    assert {n: m.fused_attn for n, m in model.named_modules() if hasattr(m, "fused_attn")} == fused
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), before, rtol=0, atol=0)


@pytest.mark.parametrize("name", list(MODELS))
def test_flax_forward_returns_logits_only_and_variables_hold_no_maps(name: str, torch_models) -> None:
    apply_fn, variables, preprocess, _ = get_flax_model(name, torch_model=torch_models[name])
    assert set(variables) == {"params"}
    x = preprocess(parity_images(1, 32, 32))
    closed = jax.make_jaxpr(apply_fn)(variables, x)
    assert len(closed.out_avals) == 1 and closed.out_avals[0].shape == (1, get_spec(name).num_classes)


def test_run_until_returns_the_module_output_and_refuses_a_module_never_called() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    x = torch.randn(5, 3)
    inputs, output = run_until(model, x, model[1])
    torch.testing.assert_close(output, torch.relu(model[0](x)))
    torch.testing.assert_close(inputs[0], model[0](x))
    with pytest.raises(RuntimeError, match="never called Linear"):
        run_until(model, x, torch.nn.Linear(1, 1))
    assert not any(m._forward_hooks for m in model.modules())


def _deit_scale_one_over_head_dim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flax_deit, "attention_scale", lambda head_dim: 1.0 / head_dim)


def _vit_heads_reversed(monkeypatch: pytest.MonkeyPatch) -> None:
    # A head-order slip when reading the sown weights: [batch, heads, ...] with heads reversed.
    sown = attention.sown_attention
    monkeypatch.setattr(attention, "sown_attention",
                        lambda *args: jax.tree_util.tree_map(lambda w: w[:, ::-1], sown(*args)))


@pytest.mark.parametrize("name, plant", [("deit_test_distilled", _deit_scale_one_over_head_dim),
                                         ("vit_tiny", _vit_heads_reversed)])
def test_planted_bug_makes_the_maps_disagree(name: str, plant, torch_models, monkeypatch, request) -> None:
    plant(monkeypatch)
    forget_compiled()
    attention._sowing_apply.cache_clear()
    request.addfinalizer(attention._sowing_apply.cache_clear)
    request.addfinalizer(forget_compiled)
    maps_torch, maps_jax = _both(name, parity_images(2, 32, 32), -1, torch_models[name])
    assert np.abs(maps_jax - maps_torch).max() > 100 * MAPS_ATOL


@pytest.mark.parametrize("images, message", [
    (np.full((1, 32, 32, 3), 255.0, np.float32), r"images must be floats in \[0, 1\], got float32 in \[255.0, 255.0\]"),
    (np.zeros((1, 32, 32, 3), np.uint8), "images must be floats in"),
    (np.zeros((1, 32, 40, 3), np.float32), "images must be square, got 32x40"),
    (np.zeros((1, 36, 36, 3), np.float32), "needs an input size that is a multiple of its 8-pixel patch, got 36"),
    (np.zeros((1, 3, 32, 32), np.float32), r"images must be \(N, H, W, 3\) or \(H, W, 3\), got shape \(1, 3, 32, 32\)"),
])
def test_bad_images_are_one_line_naming_the_problem(images: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        get_attention_maps("deit_test_distilled", images)
    assert "\n" not in str(info.value)


def test_bad_framework_and_model_without_attention_are_refused() -> None:
    with pytest.raises(ValueError, match="framework must be one of torch, jax, got 'flax'"):
        AttentionReader("vit_tiny", "flax")
    with pytest.raises(ValueError, match=r"resnet_tiny \(resnet family\) has no attention layers"):
        AttentionReader("resnet_tiny")


def _row_stochastic(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    maps = rng.random(shape)
    return maps / maps.sum(-1, keepdims=True)


def test_rollout_of_one_layer_averages_heads_and_adds_the_residual() -> None:
    maps = _row_stochastic(np.random.default_rng(0), (2, 3, 5, 5))
    np.testing.assert_allclose(attention_rollout([maps]), (maps.mean(1) + np.eye(5)) / 2, atol=1e-12)


def test_rollout_multiplies_later_layers_on_the_left() -> None:
    rng = np.random.default_rng(1)
    first, second = _row_stochastic(rng, (1, 2, 4, 4)), _row_stochastic(rng, (1, 2, 4, 4))
    a, b = (first.mean(1) + np.eye(4)) / 2, (second.mean(1) + np.eye(4)) / 2
    rollout = attention_rollout([first, second])
    np.testing.assert_allclose(rollout, b @ a, atol=1e-12)
    assert not np.allclose(rollout, a @ b)  # the order matters for these maps
    np.testing.assert_allclose(rollout.sum(-1), 1.0, atol=1e-12)


def test_rollout_of_self_attention_only_is_the_identity() -> None:
    maps = np.broadcast_to(np.eye(6), (2, 3, 6, 6))
    np.testing.assert_allclose(attention_rollout([maps, maps, maps]), np.broadcast_to(np.eye(6), (2, 6, 6)))


def test_rollout_refuses_no_layers_and_mismatched_layers() -> None:
    with pytest.raises(ValueError, match="at least one layer"):
        attention_rollout([])
    with pytest.raises(ValueError, match=r"layer 1: maps of shape \(1, 2, 3, 3\) do not follow"):
        attention_rollout([np.ones((1, 2, 4, 4)) / 4, np.ones((1, 2, 3, 3)) / 3])


def test_rollout_of_a_model_is_row_stochastic_and_gives_a_patch_grid(torch_models) -> None:
    reader = AttentionReader("deit_test_distilled", "jax", torch_models["deit_test_distilled"])
    rollout = attention_rollout(reader.attention_maps_per_layer(parity_images(2, 32, 32)))
    assert rollout.shape == (2, 18, 18)
    np.testing.assert_allclose(rollout.sum(-1), 1.0, atol=1e-6)
    grid = class_token_grid(rollout)  # 18 tokens: 2 prefix tokens and 4 x 4 patches
    assert grid.shape == (2, 4, 4)
    np.testing.assert_allclose(grid.reshape(2, 16), rollout[:, 0, 2:] / rollout[:, 0, 2:].sum(-1, keepdims=True))


def test_class_token_grid_reads_the_class_row_row_major() -> None:
    rollout = np.zeros((1, 17, 17))
    rollout[0, 0, 1:] = np.arange(1, 17)  # the class token's attention to patches 0..15
    rollout[0, 1:, 1:] = 99.0  # other rows must not leak in
    grid = class_token_grid(rollout)
    np.testing.assert_allclose(grid[0], np.arange(1, 17).reshape(4, 4) / np.arange(1, 17).sum())
    assert class_token_grid(np.ones((1, 198, 198))).shape == (1, 14, 14)  # DeiT distilled at 224
    with pytest.raises(ValueError, match="17 tokens with 2 prefix tokens leave no square grid"):
        class_token_grid(rollout, num_prefix_tokens=2)
