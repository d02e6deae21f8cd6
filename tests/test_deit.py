"""DeiT specifics: timm's named models are what the registry builds, any patch multiple works, weights from a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from models import check_input_size, get_flax_model, get_torch_model
from models.registry import get_family, get_spec, list_models
from models.torch_models import WEIGHTS_ENV, build_torch_model, randomize_weights, unwrap_checkpoint
from validation.suite import PortedPair, check, port, random_pair, random_torch_model

REAL = [n for n in list_models() if get_spec(n).family == "deit"]


def test_the_zoo_has_the_six_deit_models() -> None:
    assert REAL == sorted(f"deit_{size}_{kind}patch16_224" for size in ("tiny", "small", "base")
                          for kind in ("", "distilled_"))


@pytest.mark.parametrize("name", REAL)
def test_registry_config_builds_timms_named_model(name: str) -> None:
    # The config's overrides must equal the entry point's own architecture (built on the meta device: no memory, no init).
    with torch.device("meta"):
        ours = build_torch_model(get_spec(name))
        theirs = timm.create_model(name, pretrained=False)
    assert type(ours) is type(theirs)
    assert type(ours).__name__ == ("VisionTransformerDistilled" if "distilled" in name else "VisionTransformer")
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert ours.blocks[0].norm1.eps == 1e-6 and ours.blocks[0].attn.qkv.bias is not None


@pytest.mark.parametrize("name, size", [("deit_tiny_distilled_patch16_224", 160), ("deit_tiny_distilled_patch16_224", 288),
                                        ("deit_test_distilled", 48), ("deit_test_distilled", 24)])
def test_parity_holds_at_other_input_sizes(name: str, size: int) -> None:
    pair = random_pair(name, input_size=size)
    prefix = 2
    assert pair.variables["params"]["pos_embed"].shape[1] == (size // get_spec(name).config["patch_size"]) ** 2 + prefix
    result = check(pair, "float32", "cpu", batch=2)
    assert result.passed, result.message()


def test_parity_holds_on_timms_fused_and_unfused_attention_paths() -> None:
    # timm picks F.scaled_dot_product_attention or its explicit softmax by a global flag.
    # Query and key weights x6 (std 0.02 -> 0.12): timm's random attention is otherwise so
    # near-uniform that a 10% error in the scale stays within float32's bound.
    model = random_torch_model("deit_test_distilled")
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight[: 2 * block.attn.qkv.weight.shape[0] // 3] *= 6
    pair = port("deit_test_distilled", model)
    attentions = [m for m in model.modules() if hasattr(m, "fused_attn")]
    assert attentions and all(m.fused_attn for m in attentions)
    for fused in (True, False):
        for m in attentions:
            m.fused_attn = fused
        result = check(pair, "float32", "cpu", batch=4)
        assert result.passed, f"fused_attn={fused}: {result.message()}"


@pytest.mark.parametrize("size", [100, 8])
def test_sizes_that_do_not_tile_into_patches_are_refused_in_both_frameworks(size: int) -> None:
    message = f"deit_small_patch16_224 needs an input size that is a multiple of its 16-pixel patch, got {size}"
    with pytest.raises(ValueError, match=message):
        check_input_size(get_spec("deit_small_patch16_224"), size)
    with pytest.raises(ValueError, match=message):
        get_torch_model("deit_small_patch16_224", input_size=size)
    with pytest.raises(ValueError, match=message):
        get_flax_model("deit_small_patch16_224", input_shape=(1, size, size, 3))


def test_random_weights_leave_no_degenerate_token() -> None:
    # timm initialises the class token at std 1e-6: a port that dropped it would match on it.
    model = random_torch_model("deit_test_distilled")
    for token in (model.cls_token, model.dist_token, model.pos_embed):
        assert float(token.detach().abs().max()) > 1e-2


def test_weights_file_is_the_published_checkpoints_name() -> None:
    family = get_family("deit")
    assert family.weights_file(get_spec("deit_small_patch16_224")) == "deit_small_patch16_224-cd65a155.pth"
    assert family.weights_file(get_spec("deit_base_distilled_patch16_224")) == "deit_base_distilled_patch16_224-df68dfff.pth"
    assert family.weights_file(get_spec("deit_test_distilled")) == "deit_test_distilled.pth"


def test_checkpoint_wrapping_is_unwrapped_and_a_bare_state_dict_kept() -> None:
    state = {"w": torch.zeros(2)}
    assert unwrap_checkpoint({"model": state, "epoch": 3}) is state
    assert unwrap_checkpoint({"state_dict": state}) is state
    assert unwrap_checkpoint(state) is state
    assert unwrap_checkpoint({"model": torch.zeros(1)})["model"].shape == (1,)  # a tensor named 'model' is a weight


@pytest.fixture
def weights_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$VISIONBENCH_WEIGHTS_DIR under tmp, and an empty torch hub cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "weights"))
    (tmp_path / "weights").mkdir()
    return tmp_path / "weights"


def _save_checkpoint(name: str, path: Path) -> dict[str, torch.Tensor]:
    """A random state_dict of `name` saved as Facebook's DeiT checkpoints are: under 'model'."""
    state = randomize_weights(build_torch_model(get_spec(name)), seed=5).state_dict()
    torch.save({"model": state}, path)
    return state


def test_pretrained_loads_a_wrapped_checkpoint_from_the_weights_dir_and_flax_gets_it(weights_dir: Path) -> None:
    spec = get_spec("deit_test_distilled")
    path = weights_dir / get_family("deit").weights_file(spec)
    saved = _save_checkpoint(spec.name, path)
    torch_model, _, _, metadata = get_torch_model(spec.name, pretrained=True)
    assert metadata["weights_file"] == str(path)
    for key, tensor in torch_model.state_dict().items():
        torch.testing.assert_close(tensor, saved[key], rtol=0, atol=0)
    _, variables, _, _ = get_flax_model(spec.name, torch_model=torch_model)
    np.testing.assert_array_equal(np.asarray(variables["params"]["dist_token"]), saved["dist_token"].numpy())
    np.testing.assert_array_equal(np.asarray(variables["params"]["head_dist"]["kernel"]), saved["head_dist.weight"].numpy().T)
    result = check(PortedPair(spec, torch_model, variables), "float32", "cpu", batch=2)
    assert result.passed, result.message()


def test_pretrained_real_model_is_found_under_its_published_name_in_the_hub_cache(weights_dir: Path, tmp_path: Path) -> None:
    name = "deit_tiny_patch16_224"
    cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    saved = _save_checkpoint(name, cache / "deit_tiny_patch16_224-a1311bcf.pth")
    torch_model, _, _, metadata = get_torch_model(name, pretrained=True)
    assert metadata["weights_file"] == str(cache / "deit_tiny_patch16_224-a1311bcf.pth")
    torch.testing.assert_close(torch_model.cls_token, saved["cls_token"], rtol=0, atol=0)


def test_missing_weights_say_which_file_to_put_where(weights_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"put deit_small_distilled_patch16_224-649709d9.pth in {weights_dir}") as info:
        get_torch_model("deit_small_distilled_patch16_224", pretrained=True)
    assert "\n" not in str(info.value)
