"""Native Flax Swin Transformer (v1 and v2) that reproduces torchvision's `SwinTransformer` exactly, in NHWC.

Names mirror torchvision's keys: `features.0.0` (patch conv) -> `features_0_0`, `features.0.2` (its
LayerNorm) -> `features_0_2`, block `features.{stage}.{i}` -> `features_{stage}_{i}` holding
`norm1`, `attn/{qkv, proj, relative_position_bias_table | logit_scale, cpb_mlp_0, cpb_mlp_2}`,
`norm2`, `mlp_0`, `mlp_3`; patch merging `features.{stage}` -> `features_{stage}/{reduction, norm}`;
then `norm` and `head`. The derived buffers (`relative_position_index`, `relative_coords_table`)
are recomputed here by `relative_position_index` and `relative_coords_table`.

The steps a port can get wrong are module-level functions and constants (the mask, the cyclic
shift, the index, patch merging's concat order, v2's bias activation and logit-scale clamp), so
tests can plant each mistake and prove parity catches it.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from models.flax_layers import stochastic_depth

Dtype = Any

LN_EPS = 1e-5  # torchvision: partial(nn.LayerNorm, eps=1e-5)
MASK_VALUE = -100.0  # torchvision fills masked (cross-region) pairs with -100, not -inf
LOGIT_SCALE_MAX = math.log(100.0)  # v2 clamps the cosine-attention logit scale at log(100)
CPB_HIDDEN = 512  # v2's continuous position bias MLP: Linear(2, 512), ReLU, Linear(512, heads)
# Patch merging concatenates the 2x2 neighbours in this (row, column) offset order:
# x0 = [0::2, 0::2], x1 = [1::2, 0::2], x2 = [0::2, 1::2], x3 = [1::2, 1::2].
MERGE_OFFSETS = ((0, 0), (1, 0), (0, 1), (1, 1))
ATTENTION_COLLECTION = "attention"  # where each attention module sows its softmax weights, on request


def relative_position_index(window: int) -> np.ndarray:
    """torchvision's `relative_position_index` buffer: (window^4,) indices into the (2w-1)^2 bias table."""
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)  # (2, N)
    relative = coords[:, :, None] - coords[:, None, :]  # (2, N, N): query minus key, per axis
    return ((relative[0] + window - 1) * (2 * window - 1) + relative[1] + window - 1).reshape(-1)


def relative_coords_table(window: int) -> np.ndarray:
    """Swin v2's `relative_coords_table` buffer: (1, 2w-1, 2w-1, 2) log-spaced offsets in float32."""
    offsets = np.arange(-(window - 1), window, dtype=np.float32)
    table = np.stack(np.meshgrid(offsets, offsets, indexing="ij"), axis=-1)[None]  # (1, 2w-1, 2w-1, 2)
    table = table / np.float32(window - 1) * np.float32(8)  # normalised to [-8, 8]
    return (np.sign(table) * np.log2(np.abs(table) + np.float32(1)) / np.float32(3)).astype(np.float32)


def shifted_window_mask(pad_h: int, pad_w: int, window: int, shift_h: int, shift_w: int) -> np.ndarray:
    """(windows, N, N) additive mask: MASK_VALUE between tokens that the cyclic shift brought from different regions."""
    region = np.zeros((pad_h, pad_w), np.float32)
    count = 0
    # The slices as torchvision writes them: a zero shift makes the last slice (0:) cover everything.
    for h0, h1 in ((0, -window), (-window, -shift_h), (-shift_h, None)):
        for w0, w1 in ((0, -window), (-window, -shift_w), (-shift_w, None)):
            region[h0:h1, w0:w1] = count
            count += 1
    # (pad_h, pad_w) -> (nH, w, nW, w) -> (nH, nW, w, w) -> (windows, N)
    region = region.reshape(pad_h // window, window, pad_w // window, window).transpose(0, 2, 1, 3)
    region = region.reshape(-1, window * window)
    differs = region[:, None, :] != region[:, :, None]  # (windows, N, N)
    return np.where(differs, MASK_VALUE, 0.0).astype(np.float32)


def cyclic_shift(x: jnp.ndarray, shifts: tuple[int, int]) -> jnp.ndarray:
    """Roll an (N, H, W, C) map by `shifts` rows and columns (negative: towards the top left)."""
    return jnp.roll(x, shifts, axis=(1, 2))


def continuous_position_bias(mlp_out: jnp.ndarray) -> jnp.ndarray:
    """v2 squashes the position-bias MLP's output into (0, 16)."""
    return 16 * jax.nn.sigmoid(mlp_out)


def key_bias_zeroed(qkv_bias: jnp.ndarray) -> jnp.ndarray:
    """v2 uses no key bias: torchvision zeroes the middle third of the packed q, k, v bias at every call."""
    length = qkv_bias.shape[0] // 3
    return qkv_bias.at[length:2 * length].set(0)


def merge_patches(x: jnp.ndarray) -> jnp.ndarray:
    """(N, H, W, C) -> (N, ceil(H/2), ceil(W/2), 4C): odd sizes padded at the bottom/right, neighbours concatenated."""
    _, h, w, _ = x.shape
    x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
    return jnp.concatenate([x[:, r::2, c::2] for r, c in MERGE_OFFSETS], axis=-1)


class PackedLinear(nn.Module):
    """The packed q, k, v projection (torch `attn.qkv`), whose key bias v2 zeroes at call time."""

    features: int
    zero_key_bias: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if self.zero_key_bias:
            bias = key_bias_zeroed(bias)
        return jnp.dot(x, kernel.astype(self.dtype)) + bias.astype(self.dtype)


class ShiftedWindowAttention(nn.Module):
    """torchvision `shifted_window_attention`: pad, shift, window, attend with position bias and mask, undo."""

    dim: int
    num_heads: int
    window_size: int
    shift_size: int
    v2: bool = False
    dtype: Dtype = jnp.float32

    def relative_position_bias(self) -> jnp.ndarray:
        """(heads, N, N) bias: v1 from its learned table, v2 from the continuous position bias MLP."""
        window, heads = self.window_size, self.num_heads
        if self.v2:
            table = jnp.asarray(relative_coords_table(window), self.dtype)
            table = nn.relu(nn.Dense(CPB_HIDDEN, dtype=self.dtype, name="cpb_mlp_0")(table))
            table = nn.Dense(heads, use_bias=False, dtype=self.dtype, name="cpb_mlp_2")(table)
            table = table.reshape(-1, heads)  # (1, 2w-1, 2w-1, heads) -> ((2w-1)^2, heads)
        else:
            table = self.param("relative_position_bias_table", nn.initializers.truncated_normal(0.02),
                               ((2 * window - 1) ** 2, heads)).astype(self.dtype)
        bias = table[relative_position_index(window)].reshape(window * window, window * window, heads)
        bias = bias.transpose(2, 0, 1)  # (N, N, heads) -> (heads, N, N)
        return continuous_position_bias(bias) if self.v2 else bias

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        b, h, w, c = x.shape
        window, heads = self.window_size, self.num_heads
        x = jnp.pad(x, ((0, 0), (0, -h % window), (0, -w % window), (0, 0)))  # to whole windows, before the shift
        pad_h, pad_w = x.shape[1:3]
        # No shift along a dimension that one window covers (torchvision: window >= padded size).
        shift_h = 0 if window >= pad_h else self.shift_size
        shift_w = 0 if window >= pad_w else self.shift_size
        shifted = shift_h + shift_w > 0
        if shifted:
            x = cyclic_shift(x, (-shift_h, -shift_w))
        num_h, num_w = pad_h // window, pad_w // window
        n = window * window
        # (B, pH, pW, C) -> (B, nH, w, nW, w, C) -> (B, nH, nW, w, w, C) -> (B * windows, N, C)
        x = x.reshape(b, num_h, window, num_w, window, c).transpose(0, 1, 3, 2, 4, 5).reshape(-1, n, c)

        qkv = PackedLinear(3 * c, zero_key_bias=self.v2, dtype=self.dtype, name="qkv")(x)
        qkv = qkv.reshape(-1, n, 3, heads, c // heads).transpose(2, 0, 3, 1, 4)  # -> (3, B*windows, heads, N, Dh)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if self.v2:  # cosine attention with a learned, clamped temperature per head
            q = q / jnp.maximum(jnp.linalg.norm(q, axis=-1, keepdims=True), 1e-12)  # F.normalize
            k = k / jnp.maximum(jnp.linalg.norm(k, axis=-1, keepdims=True), 1e-12)
            logit_scale = self.param("logit_scale", nn.initializers.constant(math.log(10.0)), (heads, 1, 1))
            scale = jnp.exp(jnp.minimum(logit_scale, LOGIT_SCALE_MAX)).astype(self.dtype)
            scores = jnp.matmul(q, k.swapaxes(-2, -1)) * scale
        else:
            scores = jnp.matmul(q * (c // heads) ** -0.5, k.swapaxes(-2, -1))  # (B*windows, heads, N, N)
        scores = scores + self.relative_position_bias()[None]
        if shifted:
            mask = jnp.asarray(shifted_window_mask(pad_h, pad_w, window, shift_h, shift_w), self.dtype)
            scores = scores.reshape(b, num_h * num_w, heads, n, n) + mask[None, :, None]
            scores = scores.reshape(-1, heads, n, n)
        weights = jax.nn.softmax(scores.astype(jnp.float32), axis=-1)
        if self.is_mutable_collection(ATTENTION_COLLECTION) and not self.is_initializing():
            self.sow(ATTENTION_COLLECTION, "weights", weights)  # a no-op in the benchmarked forward
        out = jnp.matmul(weights.astype(self.dtype), v)  # (B*windows, heads, N, Dh)
        out = out.transpose(0, 2, 1, 3).reshape(-1, n, c)  # -> (B*windows, N, C)
        out = nn.Dense(c, dtype=self.dtype, name="proj")(out)

        # (B*windows, N, C) -> (B, nH, nW, w, w, C) -> (B, nH, w, nW, w, C) -> (B, pH, pW, C)
        out = out.reshape(b, num_h, num_w, window, window, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, pad_h, pad_w, c)
        if shifted:
            out = cyclic_shift(out, (shift_h, shift_w))
        return out[:, :h, :w]


class SwinBlock(nn.Module):
    """torchvision `SwinTransformerBlock` (v1: pre-norm) or `SwinTransformerBlockV2` (v2: norm after each branch)."""

    dim: int
    num_heads: int
    window_size: int
    shift_size: int
    stochastic_depth_prob: float = 0.0
    mlp_ratio: float = 4.0
    v2: bool = False
    dtype: Dtype = jnp.float32

    def _drop(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        return stochastic_depth(self, x, self.stochastic_depth_prob, deterministic=not train)

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        norm1 = nn.LayerNorm(LN_EPS, dtype=self.dtype, use_fast_variance=False, name="norm1")
        norm2 = nn.LayerNorm(LN_EPS, dtype=self.dtype, use_fast_variance=False, name="norm2")
        attn = ShiftedWindowAttention(self.dim, self.num_heads, self.window_size, self.shift_size, self.v2, self.dtype,
                                      name="attn")

        def mlp(y: jnp.ndarray) -> jnp.ndarray:
            y = nn.Dense(int(self.dim * self.mlp_ratio), dtype=self.dtype, name="mlp_0")(y)
            y = nn.gelu(y, approximate=False)  # torch nn.GELU() is the exact erf form
            return nn.Dense(self.dim, dtype=self.dtype, name="mlp_3")(y)

        if self.v2:
            x = x + self._drop(norm1(attn(x)), train)
            return x + self._drop(norm2(mlp(x)), train)
        x = x + self._drop(attn(norm1(x)), train)
        return x + self._drop(mlp(norm2(x)), train)


class PatchMerging(nn.Module):
    """torchvision `PatchMerging` (v1: norm then reduction) or `PatchMergingV2` (v2: reduction then norm)."""

    dim: int
    v2: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        x = merge_patches(x)  # (N, H, W, C) -> (N, H/2, W/2, 4C)
        norm = nn.LayerNorm(LN_EPS, dtype=self.dtype, use_fast_variance=False, name="norm")
        reduction = nn.Dense(2 * self.dim, use_bias=False, dtype=self.dtype, name="reduction")
        return norm(reduction(x)) if self.v2 else reduction(norm(x))


class SwinTransformer(nn.Module):
    """torchvision `SwinTransformer` with v1 blocks and patch merging (swin_t, swin_s, swin_b)."""

    patch_size: int = 4
    embed_dim: int = 96
    depths: Sequence[int] = (2, 2, 6, 2)
    num_heads: Sequence[int] = (3, 6, 12, 24)
    window_size: int = 7
    stochastic_depth_prob: float = 0.2
    mlp_ratio: float = 4.0
    num_classes: int = 1000
    dtype: Dtype = jnp.float32
    v2 = False  # a class constant, not a field: SwinTransformerV2 flips it

    def block_names(self) -> list[str]:
        """Every attention block's module name, in execution order (stage by stage)."""
        return [f"features_{2 * s + 1}_{i}" for s, depth in enumerate(self.depths) for i in range(depth)]

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = x.astype(self.dtype)
        p = self.patch_size
        x = nn.Conv(self.embed_dim, (p, p), (p, p), padding="VALID", dtype=self.dtype, name="features_0_0")(x)
        x = nn.LayerNorm(LN_EPS, dtype=self.dtype, use_fast_variance=False, name="features_0_2")(x)
        total = sum(self.depths)
        block_id = 0
        for stage, (depth, heads) in enumerate(zip(self.depths, self.num_heads)):
            dim = self.embed_dim * 2 ** stage
            for i in range(depth):
                # torchvision: the drop rate grows linearly with the block's index over all stages.
                rate = self.stochastic_depth_prob * block_id / (total - 1)
                shift = 0 if i % 2 == 0 else self.window_size // 2
                x = SwinBlock(dim, heads, self.window_size, shift, rate, self.mlp_ratio, self.v2, self.dtype,
                              name=f"features_{2 * stage + 1}_{i}")(x, train)
                block_id += 1
            if stage < len(self.depths) - 1:
                x = PatchMerging(dim, self.v2, self.dtype, name=f"features_{2 * stage + 2}")(x)
        x = nn.LayerNorm(LN_EPS, dtype=self.dtype, use_fast_variance=False, name="norm")(x)
        x = x.mean(axis=(1, 2))  # torch: permute to NCHW, AdaptiveAvgPool2d(1), flatten
        return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)


class SwinTransformerV2(SwinTransformer):
    """torchvision `SwinTransformer` with v2 blocks (cosine attention, continuous bias, post-norm), PatchMergingV2."""

    v2 = True


@functools.lru_cache(maxsize=8)
def attention_apply(module: SwinTransformer) -> Any:
    """`module.apply` jitted to also return every block's softmax attention weights (collection 'attention')."""
    return jax.jit(functools.partial(module.apply, mutable=[ATTENTION_COLLECTION]))


def attention_weights(module: SwinTransformer, variables: Any, x_nhwc: Any, block: str) -> np.ndarray:
    """Softmax weights `[batch * windows, heads, N, N]` of the attention in `block` (a name from `block_names`)."""
    _, state = attention_apply(module)(variables, jnp.asarray(x_nhwc))
    return np.asarray(state[ATTENTION_COLLECTION][block]["attn"]["weights"][0], np.float32)
