"""When parity fails, the report names the first layer whose output left the tolerance."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from models.flax_models import build_flax_module, make_flax_preprocess
from models.registry import get_family, get_spec, list_models
from models.torch_models import make_torch_preprocess
from validation import layers
from validation.compare import FLOAT32_LAYER_THRESHOLD, parity_images
from validation.precision import float32_precision
from validation.suite import PortedPair, check

# (model, Flax parameter path to corrupt, the torch module that must be named)
CORRUPTIONS = [
    ("resnet_tiny", ("params", "layer2_0", "conv2", "kernel"), "layer2.0.conv2"),
    ("vit_tiny", ("params", "encoder", "encoder_layer_1", "mlp_0", "kernel"), "encoder.layers.encoder_layer_1.mlp.0"),
]


def _with_noise(variables: dict, path: tuple[str, ...], scale: float = 0.05) -> dict:
    """A copy of `variables` whose leaf at `path` carries Gaussian noise."""
    leaf = variables
    for key in path:
        leaf = leaf[key]
    noise = scale * jax.random.normal(jax.random.PRNGKey(1), leaf.shape, jnp.float32)
    noisy = jax.tree_util.tree_map(lambda x: x, variables)  # new containers, same leaves
    node = noisy
    for key in path[:-1]:
        node[key] = dict(node[key])
        node = node[key]
    node[path[-1]] = leaf + noise
    return noisy


@pytest.mark.parametrize("model, path, torch_name", CORRUPTIONS)
def test_corrupted_weight_is_named_as_first_diverging_layer(model: str, path, torch_name: str, ported) -> None:
    pair = ported(model)
    broken = PortedPair(pair.spec, pair.torch_model, _with_noise(pair.variables, path))
    result = check(broken, "float32", "cpu", batch=2)
    assert not result.passed
    assert result.first_diverging_layer == torch_name, result.message()
    assert result.flax_layer == "/".join(path[1:-1])
    assert result.layer_error > result.layer_threshold
    assert f"first diverging layer: {torch_name}" in result.message()
    assert result.as_record()["first_diverging_layer"] == torch_name


TINY_MODELS = [n for n in list_models(include_test_only=True) if get_spec(n).test_only]


@pytest.mark.parametrize("model", TINY_MODELS)
def test_every_torch_layer_with_weights_has_a_flax_twin_within_noise(model: str, ported) -> None:
    # Pairing by the family's renames and layouts must match every conv, norm and
    # linear layer; an unpaired or mis-laid-out layer would hide where a port breaks.
    pair = ported(model)
    images = parity_images(2, pair.spec.input_size, pair.spec.input_size)
    module = build_flax_module(pair.spec)
    torch_outputs = layers.torch_layer_outputs(pair.torch_model, make_torch_preprocess(pair.spec)(images))
    with float32_precision("highest"):  # JAX on a GPU would otherwise use TF32
        flax_outputs = layers.flax_layer_outputs(module.apply, pair.variables, make_flax_preprocess(pair.spec)(images))
    errors = layers.layer_errors(torch_outputs, flax_outputs, get_family(pair.spec.family))
    paired = {e.torch_name for e in errors}
    # A layer whose weights its parent reads without calling it has no output to pair
    # (nn.MultiheadAttention's out_proj, Swin's attn.qkv and attn.proj): the parent's output covers it.
    called = {name for name, _, _ in torch_outputs}
    weighted = {
        name for name, m in pair.torch_model.named_modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.LayerNorm, torch.nn.Linear)) and name in called
    }
    assert weighted <= paired, f"layers without a Flax twin: {sorted(weighted - paired)}"
    worst = max(errors, key=lambda e: e.error)
    assert worst.error < FLOAT32_LAYER_THRESHOLD, worst
    assert [e.torch_name for e in errors][-1] == "(output)"


def test_first_diverging_layer_is_first_in_execution_order() -> None:
    errors = [
        layers.LayerError("conv1", "conv1", 1e-7),
        layers.LayerError("layer1.0.conv1", "layer1_0/conv1", 3e-2),
        layers.LayerError("layer1.0", "layer1_0", 5e-1),
    ]
    assert layers.first_diverging_layer(errors, 1e-4).torch_name == "layer1.0.conv1"
    assert layers.first_diverging_layer(errors, 1.0) is None
    nan = [layers.LayerError("bn1", "bn1", float("nan"))]
    assert layers.first_diverging_layer(nan, 1e-4).torch_name == "bn1"


def test_flax_activations_are_compared_in_torch_layout() -> None:
    nhwc = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    assert layers.to_torch_layout(nhwc).shape == (2, 5, 3, 4)
    assert layers.to_torch_layout(nhwc)[1, 2, 0, 3] == nhwc[1, 0, 3, 2]
    tokens = np.ones((2, 17, 32), np.float32)
    assert layers.to_torch_layout(tokens) is tokens
    assert layers.to_torch_layout(nhwc, "same") is nhwc  # a family's channels-last torch output
    assert layers.relative_error(np.ones((2, 3)), np.ones((3, 2))) == float("inf")


def test_torch_names_map_to_flax_paths_through_the_family_renames() -> None:
    resnet = get_family("resnet").torch_renames
    vit = get_family("vit").torch_renames
    assert layers.torch_name_to_flax_path("layer1.0.downsample.0", resnet) == ("layer1_0", "downsample_0")
    assert layers.torch_name_to_flax_path("encoder.layers.encoder_layer_1.mlp.0", vit) == ("encoder", "encoder_layer_1", "mlp_0")
    assert layers.torch_name_to_flax_path("", vit) == ()
