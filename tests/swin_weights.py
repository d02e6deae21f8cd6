"""Trained-like Swin weights for tests: random weights leave attention near uniform and the position bias tiny.

torchvision initialises qkv and v1's bias table with std 0.02 and `randomize_weights` keeps such
non-zero matrices, so a random Swin attends almost uniformly and a transposed bias index or a
missing `16 * sigmoid` moves the logits by ~1e-5, at the float32 bound. Trained models attend
sharply, with O(1) biases; these weights do too, and put v2's logit scales on both sides of the
clamp at log(100) (random ones stay near 1, where a missing clamp changes nothing).
"""

from __future__ import annotations

from typing import Any


def trained_like(model: Any, seed: int = 7) -> Any:
    """`model` (a torchvision Swin v1 or v2) with sharp attention and O(1) position biases, in place."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if name.endswith("attn.qkv.weight"):
                tensor.mul_(4.0)
            elif name.endswith("relative_position_bias_table"):  # v1: std 1 instead of 0.02
                tensor.copy_(torch.randn(tensor.shape, generator=generator))
            elif name.endswith("cpb_mlp.2.weight"):  # v2: pre-sigmoid biases of O(1)
                tensor.mul_(50.0)
            elif name.endswith("logit_scale"):  # v2, (heads, 1, 1): alternate heads below and above log(100)
                heads = tensor.shape[0]
                above = torch.arange(heads).remainder(2).float().view(heads, 1, 1)
                tensor.copy_(3.5 + 2.5 * above + 0.3 * torch.rand(tensor.shape, generator=generator))
    return model


def trained_like_torch_model(name: str, seed: int = 0, input_size: int | None = None) -> Any:
    """The torch `name` with random weights made trained-like, its head then fitted to parity-like images."""
    from models import get_torch_model
    from models.registry import get_family, get_spec
    from models.torch_models import calibrate_to_data, make_torch_preprocess, randomize_weights
    from validation.compare import parity_images
    from validation.suite import CALIBRATION_BATCH

    spec = get_spec(name)
    size = input_size or spec.input_size
    model = trained_like(randomize_weights(get_torch_model(name, input_size=size)[0], seed), seed + 7)
    images = parity_images(CALIBRATION_BATCH, size, size, seed + 1)
    return calibrate_to_data(model, make_torch_preprocess(spec)(images), get_family(spec.family))
