"""A wrong EfficientNet or ConvNeXt port fails parity, and the report names the layer where it went wrong.

The pattern of tests/test_wrong_port.py: each bug is planted with monkeypatch into the
Flax twin or porting's tables, on random weights everywhere, at batch sizes 1 and 5; the
tiny variants keep it fast. Bugs whose shapes would not fit are caught earlier, by
porting, and the last tests check that porting names the tensor.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from models import flax_convnext, flax_efficientnet, porting
from models.porting import PortingError
from validation.suite import PortedPair, check, forget_compiled, port, random_torch_model

BATCH_SIZES = (1, 5)
MODELS = ("efficientnet_tiny", "convnext_mini")


@pytest.fixture(scope="module")
def torch_models() -> dict[str, object]:
    """One random-weight torch model per tiny variant, shared by the module."""
    return {name: random_torch_model(name) for name in MODELS}


@pytest.fixture
def recompile(request: pytest.FixtureRequest) -> None:
    """Patched module code must not reuse the correct module's compilations, nor leave its own behind."""
    forget_compiled()
    request.addfinalizer(forget_compiled)


def _conv_with(padding_for_depthwise: str):
    """`_ConvNorm.conv` with `padding_for_depthwise` on grouped convs, torchvision's padding elsewhere."""
    correct = flax_efficientnet._ConvNorm.conv

    def conv(self, features, k, name, stride=1, groups=1):
        if groups == 1:
            return correct(self, features, k, name, stride, groups)
        return nn.Conv(features, (k, k), (stride, stride), padding=padding_for_depthwise, feature_group_count=groups,
                       use_bias=False, dtype=self.dtype, name=name)

    return conv


def _depthwise_same_padding(monkeypatch: pytest.MonkeyPatch) -> None:
    # Flax's "SAME" pads a stride-2 conv (0, 1) for k=3 and (1, 2) for k=5 where torch pads
    # (k - 1) // 2 on both sides: same shapes, a grid shifted by one pixel. At stride 1 the
    # two agree, so the first wrong layer is the first stride-2 depthwise conv.
    monkeypatch.setattr(flax_efficientnet._ConvNorm, "conv", _conv_with("SAME"))


def _squeeze_excitation_without_sigmoid(monkeypatch: pytest.MonkeyPatch) -> None:
    # The gate multiplies by fc2's raw output: fc2 still matches, the gated output does not.
    monkeypatch.setattr(flax_efficientnet.nn, "sigmoid", lambda x: x)


def _batch_norm_default_eps(monkeypatch: pytest.MonkeyPatch) -> None:
    # nn.BatchNorm2d's eps 1e-5 where the variant asks for 1e-3 (torchvision's B5-B7; the tiny
    # variant uses their settings).
    def norm(self, name, train):
        batch_norm = nn.BatchNorm(use_running_average=not train, momentum=1.0 - self.norm_momentum, epsilon=1e-5,
                                  dtype=self.dtype, name=name)
        return lambda x: batch_norm(x.astype(jnp.float32))

    monkeypatch.setattr(flax_efficientnet._ConvNorm, "norm", norm)


def _layer_scale_lost_in_port(monkeypatch: pytest.MonkeyPatch) -> None:
    # The key is "ported", so the key check passes, but the gain is left at one.
    monkeypatch.setitem(porting.TRANSFORMS, "vector", lambda w: np.ones(w.size, w.dtype))


def _layer_norm_eps_1e5(monkeypatch: pytest.MonkeyPatch) -> None:
    # nn.LayerNorm's default eps where torchvision's ConvNeXt passes 1e-6: about 4x the float32
    # logits bound on these weights (the stem's LayerNorm sees a variance of ~0.03).
    monkeypatch.setattr(flax_convnext, "LAYER_NORM_EPS", 1e-5)


# bug id -> (model, how to plant it, first diverging torch layer in float32, bfloat16 verdict):
# "named": bfloat16 fails too and names the same layer; "fails": bfloat16 fails but the first
# layer out of half precision's looser per-layer bound is a later one; "passes": within its rounding.
BUGS = {
    "depthwise_same_padding": ("efficientnet_tiny", _depthwise_same_padding, "features.2.0.block.1.0", "named"),
    "squeeze_excitation_without_sigmoid": ("efficientnet_tiny", _squeeze_excitation_without_sigmoid,
                                           "features.1.0.block.1", "named"),
    "batch_norm_default_eps": ("efficientnet_tiny", _batch_norm_default_eps, "features.0.1", "fails"),
    "layer_scale_lost_in_port": ("convnext_mini", _layer_scale_lost_in_port, "features.1.0", "fails"),
    "layer_norm_eps_1e-5": ("convnext_mini", _layer_norm_eps_1e5, "features.0.1", "passes"),
}


@pytest.mark.parametrize("model", MODELS)
def test_correct_port_passes_at_each_batch_size(model: str, torch_models) -> None:
    # The control: the same models, batches and tolerances pass when nothing is broken.
    pair = port(model, torch_models[model])
    for batch in BATCH_SIZES:
        result = check(pair, "float32", "cpu", batch=batch)
        assert result.passed, result.message()
    assert check(pair, "bfloat16", "cpu", batch=max(BATCH_SIZES)).passed


@pytest.mark.parametrize("bug", list(BUGS))
def test_wrong_port_fails_parity_and_names_the_first_wrong_layer(bug: str, torch_models, monkeypatch, recompile) -> None:
    model, plant, layer, half = BUGS[bug]
    plant(monkeypatch)
    pair = port(model, torch_models[model])
    for batch in BATCH_SIZES:
        result = check(pair, "float32", "cpu", batch=batch)
        assert not result.passed, f"{bug} passed float32 parity at batch {batch}: {result.message()}"
        assert result.first_diverging_layer == layer, result.message()
        assert f"first diverging layer: {layer}" in result.message()
    result = check(pair, "bfloat16", "cpu", batch=max(BATCH_SIZES))
    assert result.passed == (half == "passes"), result.message()
    if half == "named":
        assert result.first_diverging_layer == layer, result.message()


def test_depthwise_conv_without_groups_is_refused_by_porting_naming_the_tensor(monkeypatch, torch_models, recompile) -> None:
    # feature_group_count=1 wants a (k, k, C, C) kernel where torch holds (C, 1, k, k).
    def dense_conv(self, features, k, name, stride=1, groups=1):
        return nn.Conv(features, (k, k), (stride, stride), padding=flax_efficientnet._pad(k), use_bias=False,
                       dtype=self.dtype, name=name)

    monkeypatch.setattr(flax_efficientnet._ConvNorm, "conv", dense_conv)
    with pytest.raises(PortingError, match=r"wrong shape: features\.1\.0\.block\.0\.0\.weight: expected shape "
                                           r"\(16, 16, 3, 3\), found \(16, 1, 3, 3\)"):
        port("efficientnet_tiny", torch_models["efficientnet_tiny"])


def test_skipped_squeeze_excitation_is_refused_by_porting_naming_the_tensor(monkeypatch, torch_models, recompile) -> None:
    # A twin that never calls the block has no fc1/fc2: torch's weights have nowhere to go.
    monkeypatch.setattr(flax_efficientnet.SqueezeExcitation, "__call__", lambda self, x: x)
    with pytest.raises(PortingError, match=r"unexpected: features\.1\.0\.block\.1\.fc1\.weight"):
        port("efficientnet_tiny", torch_models["efficientnet_tiny"])


@pytest.mark.parametrize("model, module_path, torch_name", [
    # Inside a ConvNeXt block torch is channels-last: named there only if `layout` says so
    # (read as NCHW, the block's LayerNorm before it would mismatch in shape and be named).
    ("convnext_mini", ("features_3_1", "block_3"), "features.3.1.block.3"),
    ("efficientnet_tiny", ("features_2_1", "block_2", "fc1"), "features.2.1.block.2.fc1"),
])
def test_corrupted_weight_deep_in_a_block_is_named(model: str, module_path: tuple, torch_name: str, torch_models) -> None:
    pair = port(model, torch_models[model])
    params = jax.tree_util.tree_map(lambda x: x, pair.variables["params"])  # new containers, same leaves
    node = params
    for key in module_path:
        node[key] = dict(node[key])
        node = node[key]
    node["kernel"] = node["kernel"] + 0.05 * jax.random.normal(jax.random.PRNGKey(1), node["kernel"].shape)
    result = check(PortedPair(pair.spec, pair.torch_model, {**pair.variables, "params": params}), "float32", "cpu",
                   batch=2)
    assert not result.passed
    assert result.first_diverging_layer == torch_name, result.message()
    assert result.flax_layer == "/".join(module_path)
