"""The registry: names, duplicates, lookups, and no framework imports."""

import subprocess
import sys
from pathlib import Path

import pytest

from models import UnknownModelError, get_model_info, get_spec, list_models
from models.registry import ModelSpec, register


def test_duplicate_registration_raises():
    spec = get_spec("resnet50")
    with pytest.raises(ValueError, match="registered twice"):
        register(spec)


def test_unknown_model_lists_known_names():
    with pytest.raises(UnknownModelError) as info:
        get_spec("resnet5")
    assert str(info.value) == "unknown model 'resnet5'; known models: " + ", ".join(list_models())


def test_test_only_variants_are_hidden_from_list_models():
    assert "resnet_tiny" not in list_models()
    assert {"resnet_tiny", "vit_tiny"} <= set(list_models(include_test_only=True))
    assert {"resnet50", "vit_b_16"} <= set(list_models())


def test_model_info_has_the_documented_keys():
    info = get_model_info("vit_b_16")
    assert info["input_shape"] == (3, 224, 224)
    assert info["flops"] == 2 * info["macs"]
    assert {"name", "params", "input_shape", "flops"} <= set(info)


def test_spec_is_frozen():
    with pytest.raises(AttributeError):
        get_spec("resnet50").params = 1  # type: ignore[misc]


def test_tolerance_tiers():
    spec = get_spec("resnet50")
    assert spec.tolerance("float32").max_abs == 1e-4
    assert spec.tolerance("float32", default_precision=True).max_abs is None
    assert spec.tolerance("bfloat16").max_abs is None and spec.tolerance("bfloat16").min_cosine >= 0.99


def test_models_package_imports_neither_torch_nor_jax():
    code = "import models, sys; models.list_models(); models.get_model_info('resnet50'); " \
           "print(sorted(m for m in ('torch', 'jax', 'flax') if m in sys.modules))"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_modelspec_input_shape_is_chw():
    spec = ModelSpec(name="x", family="resnet", config={}, input_size=64, params=1, macs=1)
    assert spec.input_shape == (3, 64, 64) and spec.flops == 2
