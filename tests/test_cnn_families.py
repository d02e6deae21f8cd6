"""EfficientNet and ConvNeXt: built as torchvision builds them, ported at any size, BatchNorm momentum kept.

Registry-parametrized tests (parity, counts, layer pairing) cover these families too;
these check what is particular to them.
"""

from __future__ import annotations

import copy

import jax
import numpy as np
import pytest
import torch
import torchvision

from models import check_input_size, select_models
from models.flax_models import build_flax_module, make_flax_preprocess
from models.registry import get_family, get_spec, list_models
from models.torch_models import make_torch_preprocess
from validation.compare import parity_images
from validation.suite import check, random_pair, random_torch_model, port

REAL = [n for n in list_models() if get_spec(n).family in ("efficientnet", "convnext")]


@pytest.mark.parametrize("name", REAL)
def test_torch_builder_is_torchvisions_own(name: str) -> None:
    # The module tree's repr carries every conv's kernel, stride, padding and groups, every
    # norm's eps and momentum, dropout and stochastic-depth rates: B5-B7's BatchNorm(eps=1e-3,
    # momentum=0.01) included. Built on the meta device: shapes and settings, no weights.
    spec = get_spec(name)
    with torch.device("meta"):
        ours = get_family(spec.family).build_torch(spec, spec.input_size)
        theirs = getattr(torchvision.models, name)()
    assert repr(ours) == repr(theirs)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in theirs.state_dict().items()]


@pytest.mark.parametrize("name, size", [("efficientnet_b0", 160), ("convnext_tiny", 160),
                                        ("efficientnet_tiny", 33), ("convnext_mini", 37)])
def test_parity_holds_at_an_input_size_other_than_the_models_own(name: str, size: int) -> None:
    # Odd sizes: torch floors stride-2 outputs; a port padding like flax's "SAME" would not.
    assert size != get_spec(name).input_size
    pair = random_pair(name, input_size=size)
    result = check(pair, "float32", "cpu", batch=2)
    assert result.passed, result.message()
    assert result.max_abs <= 1e-4


def test_flax_batch_norm_momentum_is_torchs_in_train_mode() -> None:
    # torch's momentum is the new batch's weight, flax's the running average's: a port that
    # copies the number (0.01 -> 0.01) moves the statistics 99x too fast. The stem's norm
    # runs before any dropout or stochastic depth, so both frameworks see the same batch.
    name = "efficientnet_tiny"
    spec = get_spec(name)
    assert spec.config["norm_momentum"] == 0.01
    torch_model = random_torch_model(name)
    pair = port(name, torch_model)
    images = parity_images(4, spec.input_size, spec.input_size, seed=3)
    trained = copy.deepcopy(torch_model).train()
    with torch.no_grad():
        trained(make_torch_preprocess(spec)(images))
    stem = trained.features[0][1]
    module = build_flax_module(spec)
    _, state = module.apply(pair.variables, make_flax_preprocess(spec)(images), train=True, mutable=["batch_stats"],
                            rngs={"dropout": jax.random.PRNGKey(0)})
    before = pair.variables["batch_stats"]["features_0_1"]
    after = state["batch_stats"]["features_0_1"]
    assert not np.allclose(after["mean"], before["mean"], rtol=1e-3)  # the statistics did move
    np.testing.assert_allclose(after["mean"], stem.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    # torch folds in the unbiased batch variance, flax the biased one: n / (n - 1) apart
    # with n = 4 x 16 x 16 pixels, 1e-5 of the running variance at momentum 0.01.
    np.testing.assert_allclose(after["var"], stem.running_var.numpy(), rtol=1e-4)


def test_input_size_limits_follow_the_strides() -> None:
    check_input_size(get_spec("convnext_tiny"), 32)
    with pytest.raises(ValueError, match="convnext_tiny needs an input of at least 32 pixels"):
        check_input_size(get_spec("convnext_tiny"), 31)
    check_input_size(get_spec("convnext_mini"), 16)  # two downsamplings: 4 x 2 x 2
    with pytest.raises(ValueError, match="at least 16 pixels"):
        check_input_size(get_spec("convnext_mini"), 15)
    check_input_size(get_spec("efficientnet_b7"), 1)  # every conv is padded, as torchvision's min_size 1


def test_patterns_for_real_models_leave_the_test_only_variants_out() -> None:
    assert select_models(["convnext*"]) == ["convnext_base", "convnext_small", "convnext_tiny"]
    assert select_models(["efficientnet"]) == [f"efficientnet_b{i}" for i in range(8)]
    assert select_models(["efficientnet_b[0-3]"]) == [f"efficientnet_b{i}" for i in range(4)]
    assert select_models(["convnext_mini", "efficientnet_t*"]) == ["convnext_mini", "efficientnet_tiny"]


@pytest.mark.parametrize("name", ["efficientnet_tiny", "convnext_mini"])
def test_tiny_variant_exercises_every_block_kind(name: str) -> None:
    # The planted-bug and half-precision tests run on these: they must hold every code path.
    model = get_family(get_spec(name).family).build_torch(get_spec(name), 32)
    if name == "efficientnet_tiny":
        from torchvision.models.efficientnet import MBConv

        blocks = [m for m in model.modules() if isinstance(m, MBConv)]
        kinds = {(len(b.block) == 4, b.use_res_connect, b.block[-3][0].kernel_size[0], b.block[-3][0].stride[0])
                 for b in blocks}  # (expands, residual, depthwise kernel, stride)
        assert {(False, False, 3, 1), (False, True, 3, 1), (True, False, 5, 2), (True, True, 5, 1),
                (True, False, 3, 2)} <= kinds
        assert model.features[0][1].eps == 1e-3  # B5-B7's BatchNorm: a port ignoring norm_eps fails here
    else:
        downsamplings = [m for m in model.features if isinstance(m, torch.nn.Sequential) and len(m) == 2
                         and isinstance(m[1], torch.nn.Conv2d)]
        assert len(downsamplings) == 2
        assert max(len(stage) for stage in model.features[1::2]) >= 2
