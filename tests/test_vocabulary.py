"""The benchmark id: one definition, and a parser that inverts it for every dimension."""

import itertools

import pytest

from reports.vocabulary import Combination, canonical_framework, parse_id


@pytest.mark.parametrize(
    "case",
    [
        Combination(model, framework, device, batch, dtype, mode, size, config)
        for model, framework, device, batch, dtype, mode, size, config in itertools.product(
            ("resnet50", "efficientnet_b0", "deit_small_patch16_224"), ("torch", "jax"), ("cpu", "cuda"), (1, 128),
            ("float32", "bfloat16"), ("inference", "train"), (None, 288), ("eager", "compile-max"),
        )
    ][::7],  # a spread of the product, every field varied
)
def test_parse_id_inverts_the_id(case):
    assert parse_id(case.id) == case
    assert parse_id(f"test_forward[{case.id}]") == case


def test_defaults_keep_the_short_id():
    assert Combination("resnet50", "jax", "cpu", 8, "float32").id == "resnet50-jax-cpu-bs8-float32"
    full = Combination("swin_t", "torch", "cuda", 1, "bfloat16", "train", 288, "compile-max")
    assert full.id == "swin_t-torch-cuda-bs1-bfloat16-288px-train+compile-max"


def test_not_an_id_is_one_clear_error():
    with pytest.raises(ValueError, match="not a benchmark id: 'resnet50-jax'"):
        parse_id("resnet50-jax")


def test_pytorch_is_torch():
    assert canonical_framework("pytorch") == canonical_framework("PyTorch") == "torch"
    assert canonical_framework("jax") == "jax"
