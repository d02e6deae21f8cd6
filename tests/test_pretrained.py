"""Pretrained weights load from local files only, and the Flax twin gets the same weights ported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models import get_flax_model, get_torch_model
from models.registry import get_spec
from models.torch_models import (
    WEIGHTS_ENV,
    WeightsMismatchError,
    WeightsNotFoundError,
    build_torch_model,
    randomize_weights,
    torchvision_weights_file_name,
)
from validation.suite import PortedPair, check

RESNET50_FILE = "resnet50-0676ba61.pth"  # torchvision's name for ResNet50_Weights.IMAGENET1K_V1


@pytest.fixture(autouse=True)
def no_weights_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache under tmp and no $VISIONBENCH_WEIGHTS_DIR: nothing real is found."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def _save_random_state(name: str, path: Path, seed: int = 3) -> dict[str, torch.Tensor]:
    state = randomize_weights(build_torch_model(get_spec(name)), seed).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A real-size resnet50 state_dict (~100 MB) under torchvision's file name, written once."""
    path = tmp_path_factory.mktemp("weights") / RESNET50_FILE
    return path, _save_random_state("resnet50", path)


def test_torchvision_file_name_is_derived_without_network() -> None:
    assert torchvision_weights_file_name(get_spec("resnet50")) == RESNET50_FILE


@pytest.mark.parametrize("model", ["resnet_tiny", "vit_tiny"])
def test_explicit_weights_path_loads_for_any_model_and_flax_gets_them(model: str, tmp_path: Path) -> None:
    path = tmp_path / f"{model}.pth"
    saved = _save_random_state(model, path)
    torch_model, _, _, metadata = get_torch_model(model, pretrained=True, weights=path)
    assert metadata["weights_file"] == str(path)
    for key, tensor in torch_model.state_dict().items():
        torch.testing.assert_close(tensor, saved[key], rtol=0, atol=0)
    _, variables, _, _ = get_flax_model(model, torch_model=torch_model)
    head = "fc" if model == "resnet_tiny" else "heads_head"
    torch_head = "fc" if model == "resnet_tiny" else "heads.head"
    np.testing.assert_array_equal(np.asarray(variables["params"][head]["kernel"]), saved[f"{torch_head}.weight"].numpy().T)
    result = check(PortedPair(get_spec(model), torch_model, variables), "float32", "cpu", batch=2)
    assert result.passed, result.message()


def test_weights_dir_env_is_searched(tmp_path: Path, monkeypatch, resnet50_file, no_weights_folders) -> None:
    path, saved = resnet50_file
    monkeypatch.setenv(WEIGHTS_ENV, str(path.parent))
    torch_model, _, _, metadata = get_torch_model("resnet50", pretrained=True)
    assert metadata["weights_file"] == str(path)
    torch.testing.assert_close(torch_model.fc.weight, saved["fc.weight"], rtol=0, atol=0)


def test_torch_hub_cache_under_torch_home_is_searched(resnet50_file, no_weights_folders) -> None:
    path, saved = resnet50_file
    no_weights_folders.mkdir(parents=True)
    (no_weights_folders / RESNET50_FILE).symlink_to(path)
    torch_model, _, _, metadata = get_torch_model("resnet50", pretrained=True)
    assert metadata["weights_file"] == str(no_weights_folders / RESNET50_FILE)
    torch.testing.assert_close(torch_model.layer4[2].bn3.running_var, saved["layer4.2.bn3.running_var"], rtol=0, atol=0)
    _, variables, _, _ = get_flax_model("resnet50", torch_model=torch_model)
    np.testing.assert_array_equal(
        np.asarray(variables["batch_stats"]["layer4_2"]["bn3"]["var"]), saved["layer4.2.bn3.running_var"].numpy()
    )


def test_missing_file_is_one_line_naming_where_it_looked_and_which_file(tmp_path: Path, monkeypatch, no_weights_folders) -> None:
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "mine"))
    with pytest.raises(WeightsNotFoundError) as info:
        get_torch_model("resnet50", pretrained=True)
    message = str(info.value)
    assert "\n" not in message
    env_path, cache_path = str(tmp_path / "mine" / RESNET50_FILE), str(no_weights_folders / RESNET50_FILE)
    assert env_path in message and cache_path in message
    assert message.index(env_path) < message.index(cache_path), "$VISIONBENCH_WEIGHTS_DIR is searched first"
    assert f"put {RESNET50_FILE} in" in message


def test_missing_explicit_file_names_that_path(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match=f"{tmp_path / 'nope.pth'} does not exist"):
        get_torch_model("resnet_tiny", pretrained=True, weights=tmp_path / "nope.pth")


def test_model_without_torchvision_weights_asks_for_a_file() -> None:
    with pytest.raises(WeightsNotFoundError, match="'vit_tiny' has no torchvision weights to look for; pass a weights file"):
        get_torch_model("vit_tiny", pretrained=True)


def test_weights_of_another_model_are_refused_with_the_file_named(tmp_path: Path) -> None:
    path = tmp_path / "resnet_tiny.pth"
    _save_random_state("resnet_tiny", path)
    with pytest.raises(WeightsMismatchError) as info:
        get_torch_model("vit_tiny", pretrained=True, weights=path)
    message = str(info.value)
    assert message.startswith(f"weights file {path} is not a 'vit_tiny' state_dict")
    assert "conv_proj.weight" in message and "\n" not in message


def test_file_that_is_not_a_state_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.pth"
    path.write_text("not a checkpoint")
    with pytest.raises(WeightsMismatchError, match="is not a torch state_dict"):
        get_torch_model("resnet_tiny", pretrained=True, weights=path)
