"""Parameter and FLOP counts: registry == torchvision model == Flax model, for every model."""

import pytest
import torchvision

from models import get_model_info, list_models
from models.flax_models import abstract_variables, build_flax_module, count_params
from models.registry import get_spec
from models.torch_models import build_torch_model

ALL_MODELS = list_models(include_test_only=True)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_torch_params_and_flops_match_registry(name):
    from benchmarks.backend_torch import flops_per_image

    spec = get_spec(name)
    model = build_torch_model(spec)
    assert sum(p.numel() for p in model.parameters()) == spec.params
    assert flops_per_image(name) == 2 * spec.macs == get_model_info(name)["flops"]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_flax_params_match_torch(name):
    spec = get_spec(name)
    module = build_flax_module(spec)
    shapes = abstract_variables(module, (1, spec.input_size, spec.input_size, 3))
    assert count_params(shapes) == spec.params


@pytest.mark.parametrize("name", [n for n in ALL_MODELS if get_spec(n).torchvision_weights])
def test_registry_counts_match_torchvision_published_figures(name):
    spec = get_spec(name)
    enum_name, member = spec.torchvision_weights.split(".")
    meta = getattr(getattr(torchvision.models, enum_name), member).meta
    assert spec.params == meta["num_params"]
    # torchvision's "_ops" is GFLOPS counted as multiply-adds, rounded to 3 decimals.
    assert spec.macs / 1e9 == pytest.approx(meta["_ops"], abs=5e-4)


def test_known_published_sizes():
    assert get_model_info("resnet50")["params"] == 25_557_032
    assert get_model_info("vit_b_16")["params"] == 86_567_656
    assert get_model_info("resnet50")["macs"] == pytest.approx(4.09e9, rel=1e-3)
    assert get_model_info("resnet50")["flops"] == 2 * get_model_info("resnet50")["macs"]
