"""A state_dict that does not fit the Flax model is refused before anything is copied, and the message says why."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import porting
from models.flax_models import abstract_variables, build_flax_module
from models.registry import get_family
from models.registry import get_spec
from models.torch_models import build_torch_model


def _port(state_dict: dict, model: str) -> dict:
    spec = get_spec(model)
    expected = abstract_variables(build_flax_module(spec), (1, spec.input_size, spec.input_size, 3))
    return porting.torch_to_flax(state_dict, expected, get_family(spec.family), model)


@pytest.fixture(scope="module")
def resnet_tiny_state() -> dict:
    """resnet_tiny's state_dict, as numpy arrays (the porter takes either)."""
    return {k: v.numpy() for k, v in build_torch_model(get_spec("resnet_tiny")).state_dict().items()}


def test_matching_state_dict_ports_every_weight(resnet_tiny_state) -> None:
    variables = _port(resnet_tiny_state, "resnet_tiny")
    np.testing.assert_array_equal(variables["params"]["fc"]["kernel"], resnet_tiny_state["fc.weight"].T)
    np.testing.assert_array_equal(variables["batch_stats"]["bn1"]["var"], resnet_tiny_state["bn1.running_var"])


def test_missing_key_names_the_weight_and_its_expected_shape(resnet_tiny_state) -> None:
    state = dict(resnet_tiny_state)
    del state["layer2.0.conv2.weight"]
    with pytest.raises(porting.PortingError) as info:
        _port(state, "resnet_tiny")
    message = str(info.value)
    assert "1 problem(s)" in message
    assert "missing: params/layer2_0/conv2/kernel: expected shape (3, 3, 128, 128)" in message


def test_extra_key_names_the_key_and_its_shape(resnet_tiny_state) -> None:
    state = dict(resnet_tiny_state, **{"layer1.0.conv9.weight": np.zeros((64, 64, 3, 3), np.float32)})
    with pytest.raises(porting.PortingError) as info:
        _port(state, "resnet_tiny")
    message = str(info.value)
    assert "unexpected: layer1.0.conv9.weight (64, 64, 3, 3)" in message
    assert "params/layer1_0/conv9/kernel" in message


def test_misshaped_key_names_the_key_the_expected_and_the_found_shape(resnet_tiny_state) -> None:
    state = dict(resnet_tiny_state, **{"fc.weight": np.zeros((7, 2048), np.float32), "fc.bias": np.zeros(7, np.float32)})
    with pytest.raises(porting.PortingError) as info:
        _port(state, "resnet_tiny")
    message = str(info.value)
    assert "2 problem(s)" in message
    # Shapes in torch's layout first (what the checkpoint holds), then the Flax side.
    assert "wrong shape: fc.weight: expected shape (10, 2048), found (7, 2048)" in message
    assert "fc/kernel expects (2048, 10)" in message
    assert "wrong shape: fc.bias: expected shape (10,), found (7,)" in message


def test_misshaped_conv_kernel_reports_torch_layout(resnet_tiny_state) -> None:
    state = dict(resnet_tiny_state, **{"conv1.weight": np.zeros((64, 3, 3, 3), np.float32)})
    with pytest.raises(porting.PortingError, match=r"conv1.weight: expected shape \(64, 3, 7, 7\), found \(64, 3, 3, 3\)"):
        _port(state, "resnet_tiny")


def test_vit_state_dict_into_resnet_says_it_is_another_model() -> None:
    vit_state = build_torch_model(get_spec("vit_tiny")).state_dict()
    with pytest.raises(porting.PortingError) as info:
        _port(vit_state, "resnet_tiny")
    message = str(info.value)
    assert message.startswith("this state_dict is not a 'resnet_tiny' model")
    assert f"its {len(vit_state)} tensors fill only 0 of the" in message
    assert "\n" not in message


def test_resnet18_state_dict_into_resnet50_says_it_is_another_model() -> None:
    from torchvision.models import resnet18

    state = resnet18().state_dict()  # basic blocks, 2 per stage: same family, other depth
    with pytest.raises(porting.PortingError) as info:
        _port(state, "resnet50")
    message = str(info.value)
    assert message.startswith("this state_dict is not a 'resnet50' model")
    assert "layer1.0.conv1.weight: expected shape (64, 64, 1, 1), found (64, 64, 3, 3)" in message


def test_long_problem_lists_are_cut_and_counted(resnet_tiny_state, monkeypatch) -> None:
    monkeypatch.setattr(porting, "MAX_LISTED", 5)
    state = {k: v for k, v in resnet_tiny_state.items() if not k.startswith("layer4")}
    with pytest.raises(porting.PortingError) as info:
        _port(state, "resnet_tiny")
    lines = str(info.value).splitlines()
    assert lines[0] == "cannot port state_dict to 'resnet_tiny': 20 problem(s)"
    assert len(lines) == 1 + 5 + 1
    assert lines[-1] == "  ... and 15 more"
    assert lines[-1].startswith("  ... and ") and lines[-1].endswith(" more")


def test_torch_tensors_port_like_numpy_arrays(resnet_tiny_state) -> None:
    state = {k: torch.from_numpy(v) for k, v in resnet_tiny_state.items()}
    variables = _port(state, "resnet_tiny")
    np.testing.assert_array_equal(variables["params"]["conv1"]["kernel"], np.transpose(resnet_tiny_state["conv1.weight"], (2, 3, 1, 0)))
