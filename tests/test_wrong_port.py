"""A wrong port fails parity, and the report names the layer where it went wrong.

Each bug is planted with pytest's monkeypatch into porting's tables or the Flax module,
on random weights everywhere (validation.suite.random_torch_model), at several batch
sizes of random, non-constant images. Every bug is a plausible porting mistake that
torchvision's own init would hide (zero biases, zero class token, mean 0 / var 1).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from tests.planted import zero_a_ported_leaf

from models import flax_vit, porting
from validation.compare import parity_images
from validation.suite import check, forget_compiled, port, random_torch_model

BATCH_SIZES = (1, 5)


@pytest.fixture(scope="module")
def torch_models() -> dict[str, object]:
    """One random-weight torch model per tiny variant, shared by the module."""
    return {name: random_torch_model(name) for name in ("resnet_tiny", "vit_tiny")}


def _swap_batch_norm_mean_and_var(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    monkeypatch.setitem(porting._NORM_LEAVES, "running_mean", ("batch_stats", "var"))
    monkeypatch.setitem(porting._NORM_LEAVES, "running_var", ("batch_stats", "mean"))


def _transpose_conv_kernels_spatially(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    # (O, I, kH, kW) -> (kW, kH, I, O): the right shape for square kernels, the wrong kernel.
    monkeypatch.setitem(porting.TRANSFORMS, "conv", lambda w: np.transpose(w, (3, 2, 1, 0)))


def _drop_class_token(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    zero_a_ported_leaf(monkeypatch, "class_token")


def _use_tanh_gelu(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    # torch's nn.GELU() is the exact erf form; the tanh approximation differs by up to ~5e-4.
    monkeypatch.setattr(flax_vit.nn, "gelu", lambda x, approximate=False: jax.nn.gelu(x, approximate=True))
    forget_compiled()  # the correct module's compilations must not be reused,
    request.addfinalizer(forget_compiled)  # nor this one's by later tests


# bug id -> (model, how to plant it, first diverging torch layer, caught in half precision too)
BUGS = {
    "bn_mean_var_swapped": ("resnet_tiny", _swap_batch_norm_mean_and_var, "bn1", True),
    "conv_kernel_transposed_resnet": ("resnet_tiny", _transpose_conv_kernels_spatially, "conv1", True),
    "conv_kernel_transposed_vit": ("vit_tiny", _transpose_conv_kernels_spatially, "conv_proj", True),
    "class_token_dropped": ("vit_tiny", _drop_class_token, "encoder.layers.encoder_layer_0.ln_1", True),
    # Within half precision's own rounding: only the float32 tier can see it.
    "tanh_gelu": ("vit_tiny", _use_tanh_gelu, "encoder.layers.encoder_layer_0.mlp.3", False),
}


@pytest.mark.parametrize("model", ["resnet_tiny", "vit_tiny"])
def test_correct_port_passes_at_each_batch_size(model: str, torch_models) -> None:
    # The control: the same models, batches and tolerances pass when nothing is broken.
    pair = port(model, torch_models[model])
    for batch in BATCH_SIZES:
        for dtype in ("float32", "bfloat16"):
            result = check(pair, dtype, "cpu", batch=batch)
            assert result.passed, result.message()
            assert result.first_diverging_layer is None


@pytest.mark.parametrize("bug", list(BUGS))
def test_wrong_port_fails_parity_and_names_the_first_wrong_layer(bug: str, torch_models, monkeypatch, request) -> None:
    model, plant, layer, caught_in_half = BUGS[bug]
    plant(monkeypatch, request)
    pair = port(model, torch_models[model])
    for batch in BATCH_SIZES:
        result = check(pair, "float32", "cpu", batch=batch)
        assert not result.passed, f"{bug} passed float32 parity at batch {batch}: {result.message()}"
        assert result.first_diverging_layer == layer, result.message()
        assert f"first diverging layer: {layer}" in result.message()
    if caught_in_half:
        result = check(pair, "bfloat16", "cpu", batch=max(BATCH_SIZES))
        assert not result.passed, f"{bug} passed bfloat16 parity: {result.message()}"
        assert result.first_diverging_layer == layer, result.message()


def test_parity_images_differ_between_pixels_and_images() -> None:
    # Constant inputs would let a wrong kernel layout or a swapped statistic cancel out.
    images = parity_images(3, 8, 8, seed=0)
    assert images.shape == (3, 8, 8, 3)
    assert np.unique(images).size == images.size
    assert not np.allclose(images[0], images[1])
    assert images.min() >= 0.0 and images.max() <= 1.0
