"""torchvision builders for every family, and pretrained weights from local files only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Collection

import torch
from torch import nn

from models.registry import Family, ModelSpec, get_family

WEIGHTS_ENV = "VISIONBENCH_WEIGHTS_DIR"


class WeightsNotFoundError(FileNotFoundError):
    """A pretrained weights file is not on disk; the message says where to put it."""


def build_torch_model(spec: ModelSpec, input_size: int | None = None) -> nn.Module:
    """A freshly initialised torch model for `spec` at `input_size` (default: the spec's), in eval mode, on the CPU."""
    return get_family(spec.family).build_torch(spec, input_size or spec.input_size).eval()


def weights_search_paths(spec: ModelSpec, weights: str | os.PathLike | None = None) -> list[Path]:
    """Where pretrained weights for `spec` are looked for, in order: `weights`, else the folders."""
    if weights is not None:
        return [Path(weights)]  # any registered model, tiny test variants included
    family = get_family(spec.family)
    file_name = family.weights_file(spec) if family.weights_file else torchvision_weights_file_name(spec)
    paths = []
    if os.environ.get(WEIGHTS_ENV):
        paths.append(Path(os.environ[WEIGHTS_ENV]) / file_name)
    paths.append(Path(torch.hub.get_dir()) / "checkpoints" / file_name)
    return paths


def torchvision_weights_file_name(spec: ModelSpec) -> str:
    """The file name torchvision's download would give `spec`'s pretrained weights."""
    if spec.torchvision_weights is None:
        raise WeightsNotFoundError(
            f"model {spec.name!r} has no torchvision weights to look for; pass a weights file "
            "(weights=PATH, --weights PATH) or use pretrained=False"
        )
    import torchvision.models as tvm

    enum_name, member = spec.torchvision_weights.split(".")
    url = getattr(getattr(tvm, enum_name), member).url
    return url.rsplit("/", 1)[-1]


class WeightsMismatchError(ValueError):
    """A weights file that is not `spec`'s state_dict; the message names the file and the keys."""


def find_weights_file(spec: ModelSpec, weights: str | os.PathLike | None = None) -> Path:
    """The local weights file for `spec`, or WeightsNotFoundError saying where to put it."""
    candidates = weights_search_paths(spec, weights)
    for path in candidates:
        if path.is_file():
            return path
    if weights is not None:
        raise WeightsNotFoundError(f"no weights file for {spec.name!r}: {candidates[0]} does not exist")
    looked = ", ".join(str(p) for p in candidates)
    folders = " or ".join(str(p.parent) for p in candidates)
    raise WeightsNotFoundError(
        f"no weights file for {spec.name!r}: looked for {looked}; put {candidates[-1].name} in {folders} "
        f"(${WEIGHTS_ENV} is searched first), or pass --weights PATH"
    )


def load_pretrained(model: nn.Module, spec: ModelSpec, weights: str | os.PathLike | None = None,
                    fresh: Collection[str] = ()) -> tuple[Path, set[str]]:
    """Load `spec`'s torchvision weights into `model` from a local file; never downloads.

    Keys in `fresh` (a new head) may be missing from the file or of another shape there;
    those keep `model`'s own values. Returns the file and the keys that kept them.
    """
    path = find_weights_file(spec, weights)
    state_dict = _read_state_dict(path, spec, model, fresh)
    expected = model.state_dict()
    kept = {k for k in fresh if k not in state_dict or tuple(state_dict[k].shape) != tuple(expected[k].shape)}
    model.load_state_dict({**expected, **{k: v for k, v in state_dict.items() if k not in kept}})
    return path, kept


def _read_state_dict(path: Path, spec: ModelSpec, model: nn.Module, fresh: Collection[str] = ()) -> dict[str, torch.Tensor]:
    """The state_dict in `path`, checked against `model`'s key by key and shape by shape (`fresh` keys excepted)."""
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and weights_only errors alike
        raise WeightsMismatchError(f"weights file {path} is not a torch state_dict: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(state_dict, dict):
        raise WeightsMismatchError(f"weights file {path} holds a {type(state_dict).__name__}, not a state_dict")
    state_dict = unwrap_checkpoint(state_dict)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and k not in fresh]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and k not in fresh and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or misshaped:
        raise WeightsMismatchError(
            f"weights file {path} is not a {spec.name!r} state_dict: {len(missing)} keys missing "
            f"(e.g. {', '.join(missing[:3]) or '-'}), {len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3]) or '-'}), "
            f"{len(misshaped)} of another shape (e.g. {', '.join(misshaped[:3]) or '-'})"
        )
    return state_dict


# Where training checkpoints keep the model's state_dict (Facebook's DeiT: 'model').
CHECKPOINT_STATE_KEYS = ("model", "state_dict")


def unwrap_checkpoint(checkpoint: dict) -> dict:
    """The state_dict inside a training checkpoint ({'model': state_dict, ...}); a bare state_dict as is."""
    if any(hasattr(v, "shape") for v in checkpoint.values()):
        return checkpoint
    for key in CHECKPOINT_STATE_KEYS:
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint


def make_torch_preprocess(spec: ModelSpec) -> Callable:
    """A function from float images in [0, 1] to normalised (N, C, H, W) tensors on the images' device.

    Images are (N, H, W, C), as the Flax preprocess takes them, or already (N, C, H, W)
    (the model-zoo doc passes `torch.randn(1, *input_shape)`); the layout is read off
    where the 3 channels are.
    """
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)

    def preprocess(images) -> torch.Tensor:
        x = torch.as_tensor(images, dtype=torch.float32)
        if x.dim() != 4 or 3 not in (x.shape[1], x.shape[-1]):
            raise ValueError(f"preprocess: expected images (N, H, W, 3) or (N, 3, H, W), got shape {tuple(x.shape)}")
        if x.shape[-1] == 3:  # channels last (also for the ambiguous 3x3 images: the documented layout)
            x = x.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
        return (x - mean.to(x.device)) / std.to(x.device)

    return preprocess


def randomize_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and buffer of `model` random, non-degenerate values, in place.

    torchvision initialises norm scales to one, biases, norm statistics, ViT's class token
    and head to zero: a port that swaps BatchNorm mean and var, or drops the class token,
    would still match on such weights. Random weights leave no such blind spot.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(t: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return torch.rand(t.shape, generator=generator) * (high - low) + low

    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if not tensor.is_floating_point():
                continue  # num_batches_tracked
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "running_var" or (tensor.dim() == 1 and leaf == "weight"):
                tensor.copy_(uniform(tensor, 0.5, 1.5))
            elif tensor.dim() == 1 or leaf == "running_mean":
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            elif float(tensor.abs().max()) < 1e-4:  # zero or near-zero init: head, class token (timm: std 1e-6)
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.02)
            elif tensor.numel() > 1 and bool((tensor == tensor.flatten()[0]).all()):  # constant: layer scales
                # Gains around one, like a norm's weight: kept at their init's scale (ConvNeXt's
                # 1e-6), the branches they gate would vanish from the logits and a wrong block pass.
                tensor.copy_(uniform(tensor, 0.5, 1.5))
    return model


def calibrate_to_data(model: nn.Module, images: torch.Tensor, family: Family, residual_scale: float = 0.2) -> nn.Module:
    """Fit a randomly weighted `model` to `images` (N, C, H, W), in place, like a data-dependent init.

    The family's residual gains (the last norm of each residual branch, a layer scale) are
    scaled by `residual_scale` (trained networks keep them small; torchvision's
    `zero_init_residual` zeroes them), every BatchNorm's running statistics become those
    of `images`, and the head is scaled to unit-variance logits. Without this a random
    ResNet's activations grow block by block (resnet50's logits reach ~1e3) and rounding
    errors grow with them, so a logits bound would measure the random weights rather than
    the port. The statistics stay non-degenerate (mean != 0, var != 1), so a port that
    swaps them still fails.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum) for m in norms]
    was_training = model.training
    with torch.no_grad():
        for gain in family.residual_gains(model):
            gain.mul_(residual_scale)
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one batch sets the statistics exactly
        if norms:
            # Only the norms in training mode: they take the batch's statistics, while
            # dropout and stochastic depth stay off.
            model.eval()
            for m in norms:
                m.train()
            model(images)
        for m, momentum in saved:
            m.momentum = momentum
        model.eval()
        heads = family.heads(model) if family.heads else [[m for m in model.modules() if isinstance(m, nn.Linear)][-1]]
        scale = 1.0 / float(model(images).std())
        for head in heads:
            head.weight.mul_(scale)
            if head.bias is not None:
                head.bias.mul_(scale)
    model.train(was_training)
    return model
