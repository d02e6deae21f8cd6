"""The one set of weights and the one input batch that both frameworks use in a run."""

from __future__ import annotations

import functools

import numpy as np

from benchmarks.workload import BuildOptions
from models.registry import ModelSpec


@functools.lru_cache(maxsize=None)
def _reference(name: str, pretrained: bool, weights: str | None, seed: int, input_size: int | None):
    import torch

    from models import get_torch_model

    torch.manual_seed(seed)
    model, _, _, metadata = get_torch_model(name, pretrained=pretrained, weights=weights, input_size=input_size)
    label = f"pretrained:{metadata['weights_file']}" if pretrained else f"torchvision-init(seed={seed})"
    return model, label


def reference_torch_model(spec: ModelSpec, options: BuildOptions, input_size: int | None = None):
    """`(model, label)`: the CPU float32 torch model whose weights every workload of `spec` uses.

    Built once per run and input size; callers copy it before casting or moving it.
    """
    return _reference(spec.name, options.pretrained, options.weights, options.seed, input_size or spec.input_size)


def input_batch(spec: ModelSpec, batch_size: int, seed: int, input_size: int | None = None) -> np.ndarray:
    """A normalised-looking random batch in torch layout (N, C, H, W), float32."""
    size = input_size or spec.input_size
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch_size, 3, size, size), dtype=np.float32)
