"""Native Flax ViT that reproduces torchvision's `VisionTransformer` exactly, in NHWC.

Names mirror torchvision's keys: `conv_proj`, `class_token`, `encoder/pos_embedding`,
`encoder/layers/encoder_layer_{i}/{ln_1, self_attention/{in_proj, out_proj}, ln_2, mlp_0, mlp_3}`,
`encoder/ln`, `heads_head`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from models.attention import ATTENTION_COLLECTION

Dtype = Any

# torchvision's ViT uses LayerNorm(eps=1e-6) everywhere.
LN_EPS = 1e-6


class SelfAttention(nn.Module):
    """torch `nn.MultiheadAttention` with one packed input projection, as torchvision holds it."""

    num_heads: int
    hidden_dim: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        n, s, d = x.shape
        head_dim = d // self.num_heads
        qkv = nn.Dense(3 * d, dtype=self.dtype, name="in_proj")(x)  # (N, S, 3D)
        qkv = qkv.reshape(n, s, 3, self.num_heads, head_dim)  # (N, S, 3D) -> (N, S, 3, H, Dh)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # each (N, S, H, Dh)
        scores = jnp.einsum("nqhd,nkhd->nhqk", q, k) / jnp.sqrt(jnp.asarray(head_dim, self.dtype))
        weights = jax.nn.softmax(scores.astype(jnp.float32), axis=-1)
        if not self.is_initializing():  # init makes every collection mutable: keep the weights out of the variables
            self.sow(ATTENTION_COLLECTION, "weights", weights)  # a no-op unless the collection is mutable
        out = jnp.einsum("nhqk,nkhd->nqhd", weights.astype(self.dtype), v).reshape(n, s, d)  # (N, S, H, Dh) -> (N, S, D)
        return nn.Dense(d, dtype=self.dtype, name="out_proj")(out)


class EncoderBlock(nn.Module):
    """torchvision `EncoderBlock`: pre-norm attention and MLP, each with a residual."""

    num_heads: int
    hidden_dim: int
    mlp_dim: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        y = nn.LayerNorm(epsilon=LN_EPS, dtype=self.dtype, name="ln_1")(x)
        x = x + SelfAttention(self.num_heads, self.hidden_dim, self.dtype, name="self_attention")(y)
        y = nn.LayerNorm(epsilon=LN_EPS, dtype=self.dtype, name="ln_2")(x)
        y = nn.Dense(self.mlp_dim, dtype=self.dtype, name="mlp_0")(y)
        y = nn.gelu(y, approximate=False)  # torch nn.GELU() is the exact erf form
        y = nn.Dense(self.hidden_dim, dtype=self.dtype, name="mlp_3")(y)
        return x + y


class Encoder(nn.Module):
    """torchvision `Encoder`: add position embedding, run the blocks, final LayerNorm."""

    seq_length: int
    num_layers: int
    num_heads: int
    hidden_dim: int
    mlp_dim: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        pos = self.param("pos_embedding", nn.initializers.normal(0.02), (1, self.seq_length, self.hidden_dim))
        x = x + pos.astype(self.dtype)
        for i in range(self.num_layers):
            x = EncoderBlock(self.num_heads, self.hidden_dim, self.mlp_dim, self.dtype, name=f"encoder_layer_{i}")(x)
        return nn.LayerNorm(epsilon=LN_EPS, dtype=self.dtype, name="ln")(x)


class VisionTransformer(nn.Module):
    """torchvision `VisionTransformer` with the plain linear head."""

    image_size: int = 224
    patch_size: int = 16
    num_layers: int = 12
    num_heads: int = 12
    hidden_dim: int = 768
    mlp_dim: int = 3072
    num_classes: int = 1000
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        # `train` changes nothing: torchvision's ViT has dropout 0 and no norm statistics.
        x = x.astype(self.dtype)
        p = self.patch_size
        x = nn.Conv(self.hidden_dim, (p, p), (p, p), padding="VALID", dtype=self.dtype, name="conv_proj")(x)
        n, h, w, d = x.shape
        x = x.reshape(n, h * w, d)  # (N, H/p, W/p, D) -> (N, S, D), row-major like torch's flatten(2)
        cls = self.param("class_token", nn.initializers.zeros, (1, 1, d))
        x = jnp.concatenate([jnp.broadcast_to(cls.astype(self.dtype), (n, 1, d)), x], axis=1)  # class token first
        x = Encoder(h * w + 1, self.num_layers, self.num_heads, d, self.mlp_dim, self.dtype, name="encoder")(x)
        return nn.Dense(self.num_classes, dtype=self.dtype, name="heads_head")(x[:, 0])
