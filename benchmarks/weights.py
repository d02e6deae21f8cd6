"""The one set of weights and the one input batch that both frameworks use in a run."""

from __future__ import annotations

import functools
import os

import numpy as np

from benchmarks.workload import BuildOptions, DataOptions
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


def input_batch(spec: ModelSpec, batch_size: int, seed: int, input_size: int | None = None,
                data: DataOptions | None = None) -> np.ndarray:
    """The timed batch in torch layout (N, C, H, W), float32: normalised-looking random numbers, or with
    `data` the first images of the dataset's 'val' split as the weights' evaluation transform makes
    them (repeated in order when the split holds fewer)."""
    size = input_size or spec.input_size
    if data is not None:
        return _dataset_batch(spec.name, batch_size, size, os.path.realpath(data.source)).copy()
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch_size, 3, size, size), dtype=np.float32)


@functools.lru_cache(maxsize=8)
def _dataset_batch(model: str, batch_size: int, size: int, source: str) -> np.ndarray:
    from benchmarks.data_runs import dataset
    from benchmarks.pipeline import make_loader, preprocessing
    from models.registry import get_spec

    spec = get_spec(model)
    info = dataset(source)
    steps = -(-batch_size // info.size("val"))  # whole passes of a small split needed
    loader = make_loader(info, "val", preprocessing(spec, size), min(batch_size, info.size("val")), train=False,
                         layout="NCHW", workers=0, seed=0, steps=None)
    images = [batch.images[:batch.valid] for batch in loader]
    tiled = np.concatenate(images * max(1, steps))[:batch_size]
    return tiled
