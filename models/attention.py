"""Attention maps in both frameworks, outside the benchmarked forward pass, and attention rollout.

`get_attention_maps(name, images, layer_idx)` returns one layer's softmax attention
weights as numpy, `[batch, num_heads, num_tokens, num_tokens]` for global-attention
models (ViT, DeiT: the class and distillation tokens first, then the patches row by
row), `[batch * num_windows, num_heads, window_tokens, window_tokens]` for windowed ones
(Swin). Each family computes them through its `Family.attention_torch` /
`Family.attention_flax` hooks: the torch hooks run the model once with a temporary hook
that is removed before they return, the Flax twins `sow` the weights into the
`ATTENTION_COLLECTION` collection, which is mutable only here, so the benchmarked forward
of either framework computes nothing extra.

Importing this module imports neither torch nor jax.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import numpy as np

from models.registry import get_family, get_spec

# The Flax collection attention weights are sown into; `apply` without it mutable drops them.
ATTENTION_COLLECTION = "attention"
FRAMEWORKS = ("torch", "jax")


class LayerIndexError(IndexError):
    """A `layer_idx` outside the model's attention layers; the message gives the valid range."""


def layer_index(layer_idx: int, num_layers: int) -> int:
    """`layer_idx` (negative counts from the last layer, as in Python) as an index in [0, num_layers)."""
    if not isinstance(layer_idx, (int, np.integer)) or isinstance(layer_idx, bool):
        raise TypeError(f"layer_idx must be an integer, got {layer_idx!r}")
    if not -num_layers <= layer_idx < num_layers:
        raise LayerIndexError(
            f"layer_idx {layer_idx} is out of range: the model has {num_layers} attention layers, "
            f"use {-num_layers}..{num_layers - 1}"
        )
    return int(layer_idx) % num_layers


class _Reached(Exception):
    """Raised by `run_until`'s hook to stop the forward pass once the module has run."""


def run_until(model: Any, x: Any, module: Any) -> tuple[tuple[Any, ...], Any]:
    """`(inputs, output)` of `module`'s first call in `model(x)`; the rest of the forward is skipped.

    The model runs in eval mode without gradients; the hook is removed and the mode
    restored before this returns, whatever happens.
    """
    import torch

    captured: list[tuple[tuple[Any, ...], Any]] = []

    def grab(_module: Any, inputs: tuple[Any, ...], output: Any) -> None:
        captured.append((tuple(i.detach() if hasattr(i, "detach") else i for i in inputs),
                         output.detach() if hasattr(output, "detach") else output))
        raise _Reached

    was_training = model.training
    handle = module.register_forward_hook(grab)
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    except _Reached:
        pass
    finally:
        handle.remove()
        model.train(was_training)
    if not captured:
        raise RuntimeError(f"the forward pass of {type(model).__name__} never called {type(module).__name__}")
    return captured[0]


@functools.lru_cache(maxsize=8)
def _sowing_apply(module: Any) -> Any:
    import jax

    return jax.jit(functools.partial(module.apply, mutable=[ATTENTION_COLLECTION]))


def sown_attention(module: Any, variables: Any, x_nhwc: Any) -> dict[str, Any]:
    """The attention weights a Flax module sows, as a tree of float32 numpy arrays (one forward pass)."""
    import jax

    _, state = _sowing_apply(module)(variables, x_nhwc)
    # `sow` keeps a tuple of values per name, one per call; each attention module is called once.
    return jax.tree_util.tree_map(lambda calls: np.asarray(calls[0], np.float32), state[ATTENTION_COLLECTION],
                                  is_leaf=lambda node: isinstance(node, tuple))


class AttentionReader:
    """A registered model whose attention maps can be read, in torch or in JAX.

    The comparison guide's `model.get_attention_maps(image, layer_idx=-1)`. With
    `torch_model`, both frameworks use its weights (the Flax twin gets them ported);
    without, the torch model is the registry's at torch's default init under seed 0 (so
    separate calls agree) and the Flax twin its port. Models are built on first use, per
    input size, and kept; images given with `torch_model` must have the size it was built for.
    """

    def __init__(self, name: str, framework: str = "torch", torch_model: Any = None) -> None:
        if framework not in FRAMEWORKS:
            raise ValueError(f"framework must be one of {', '.join(FRAMEWORKS)}, got {framework!r}")
        self.spec = get_spec(name)
        self.family = get_family(self.spec.family)
        if self.family.attention_torch is None or self.family.attention_flax is None:
            raise ValueError(f"{name} ({self.spec.family} family) has no attention layers to read maps from")
        self.framework = framework
        self._given_torch_model = torch_model
        self._torch_models: dict[int, Any] = {}
        self._flax_models: dict[int, tuple[Any, Any]] = {}

    def get_attention_maps(self, images: Any, layer_idx: int = -1) -> np.ndarray:
        """Layer `layer_idx`'s attention weights for float images in [0, 1], (N, H, W, 3) or one (H, W, 3)."""
        images = self._checked_images(images)
        size = images.shape[1]
        if self.framework == "torch":
            model = self._torch_model(size)
            first = next(model.parameters())
            x = self._torch_preprocess(images).to(device=first.device, dtype=first.dtype)
            was_training = model.training
            try:
                maps = self.family.attention_torch(model.eval(), x, layer_idx)
            finally:
                model.train(was_training)
        else:
            module, variables = self._flax_model(size)
            maps = self.family.attention_flax(module, variables, self._flax_preprocess(images), layer_idx)
        return np.asarray(maps, np.float32)

    def attention_maps_per_layer(self, images: Any) -> list[np.ndarray]:
        """Every attention layer's weights for `images`, first layer first."""
        maps = []
        while True:
            try:
                maps.append(self.get_attention_maps(images, len(maps)))
            except LayerIndexError:
                return maps

    def _checked_images(self, images: Any) -> np.ndarray:
        array = np.asarray(images)
        if array.ndim == 3:
            array = array[None]  # one (H, W, C) image
        if array.ndim != 4 or array.shape[-1] != 3:
            raise ValueError(f"images must be (N, H, W, 3) or (H, W, 3), got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.floating) or array.size and (array.min() < 0 or array.max() > 1):
            low, high = (array.min(), array.max()) if array.size else (0, 0)
            raise ValueError(f"images must be floats in [0, 1], got {array.dtype} in [{low}, {high}]; "
                             "divide 8-bit images by 255")
        if array.shape[1] != array.shape[2]:
            raise ValueError(f"images must be square, got {array.shape[1]}x{array.shape[2]}; crop or resize them")
        from models import check_input_size

        check_input_size(self.spec, array.shape[1])
        return array.astype(np.float32)

    def _torch_model(self, size: int) -> Any:
        if self._given_torch_model is not None:
            return self._given_torch_model
        if size not in self._torch_models:
            import torch

            from models.torch_models import build_torch_model

            with torch.random.fork_rng():
                torch.manual_seed(0)
                self._torch_models[size] = build_torch_model(self.spec, size)
        return self._torch_models[size]

    def _flax_model(self, size: int) -> tuple[Any, Any]:
        if size not in self._flax_models:
            from models import get_flax_model

            _, variables, _, metadata = get_flax_model(self.spec.name, input_shape=(1, size, size, 3),
                                                       torch_model=self._torch_model(size))
            self._flax_models[size] = (metadata["module"], variables)
        return self._flax_models[size]

    def _torch_preprocess(self, images: np.ndarray) -> Any:
        from models.torch_models import make_torch_preprocess

        return make_torch_preprocess(self.spec)(images)

    def _flax_preprocess(self, images: np.ndarray) -> Any:
        from models.flax_models import make_flax_preprocess

        return make_flax_preprocess(self.spec)(images)


def get_attention_maps(name: str, images: Any, layer_idx: int = -1, framework: str = "torch",
                       torch_model: Any = None) -> np.ndarray:
    """Layer `layer_idx`'s softmax attention weights of model `name` for float NHWC `images` in [0, 1].

    The model's preprocessing is applied here. Returns float32 numpy
    `[batch, num_heads, num_tokens, num_tokens]` (ViT: class token, then patches; DeiT
    distilled: class, distillation, patches), or for windowed attention (Swin)
    `[batch * num_windows, num_heads, window_tokens, window_tokens]` of that layer. With
    `torch_model` both frameworks use its weights (ported to Flax); without, both use the
    registry's model at torch's default init under seed 0. Rows sum to 1.
    """
    return AttentionReader(name, framework, torch_model).get_attention_maps(images, layer_idx)


def attention_rollout(maps_per_layer: Sequence[np.ndarray]) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020) over layers, first layer first: [batch, tokens, tokens].

    Each layer's maps `[batch, heads, tokens, tokens]` are averaged over heads, the
    identity is added for the residual connection and rows are renormalised to sum to 1;
    the layers are then multiplied, later layers on the left. Row i says how much each
    input token flows into output token i. Meant for global attention (ViT, DeiT), not
    for Swin's windows, whose tokens differ from layer to layer.
    """
    if not len(maps_per_layer):
        raise ValueError("attention_rollout needs the maps of at least one layer")
    rollout = None
    for index, maps in enumerate(maps_per_layer):
        maps = np.asarray(maps, np.float64)
        if maps.ndim != 4 or maps.shape[-1] != maps.shape[-2]:
            raise ValueError(f"layer {index}: maps must be [batch, heads, tokens, tokens], got shape {maps.shape}")
        joint = maps.mean(axis=1) + np.eye(maps.shape[-1])  # (N, H, T, T) -> (N, T, T), plus the residual
        joint /= joint.sum(axis=-1, keepdims=True)
        if rollout is not None and rollout.shape != joint.shape:
            raise ValueError(f"layer {index}: maps of shape {maps.shape} do not follow the previous layers' {rollout.shape}")
        rollout = joint if rollout is None else joint @ rollout
    return rollout


def class_token_grid(rollout: np.ndarray, num_prefix_tokens: int | None = None) -> np.ndarray:
    """The class token's row of a rollout (or of one layer's head-averaged maps) over the patches: [batch, gh, gw].

    Tokens are `num_prefix_tokens` (class first; DeiT distilled: 2) followed by a square grid
    of patches, row by row. Without `num_prefix_tokens` it is the fewest that leave a
    square grid (1 for 197 tokens, 2 for 198). Rows renormalised over the patches.
    """
    rollout = np.asarray(rollout)
    tokens = rollout.shape[-1]
    if num_prefix_tokens is None:
        num_prefix_tokens = tokens - math.isqrt(tokens - 1) ** 2
    side = math.isqrt(tokens - num_prefix_tokens)
    if num_prefix_tokens < 1 or side * side != tokens - num_prefix_tokens:
        raise ValueError(f"{tokens} tokens with {num_prefix_tokens} prefix tokens leave no square grid of patches")
    row = rollout[..., 0, num_prefix_tokens:]  # (N, T, T) -> (N, gh * gw): the class token's attention to patches
    row = row / row.sum(axis=-1, keepdims=True)
    return row.reshape(*row.shape[:-1], side, side)  # row-major, as the patches were flattened
