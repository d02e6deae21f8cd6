"""Native Flax DeiT that reproduces timm's `VisionTransformer` / `VisionTransformerDistilled` exactly, in NHWC.

Names mirror timm's keys: `patch_embed/proj`, `cls_token`, `dist_token`, `pos_embed`,
`blocks_{i}/{norm1, attn/{qkv, proj}, norm2, mlp/{fc1, fc2}}`, `norm`, `head`, `head_dist`.
`pos_drop` (rate 0, as timm's) is named for its output: the assembled, embedded tokens.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from models.attention import ATTENTION_COLLECTION

Dtype = Any

# timm's DeiT uses LayerNorm(eps=1e-6) everywhere.
LN_EPS = 1e-6


def assemble_tokens(prefix: Sequence[jnp.ndarray], patches: jnp.ndarray, pos_embed: jnp.ndarray) -> jnp.ndarray:
    """[class, (distillation,) patches] along the sequence, then the position embedding added to all of them."""
    n, _, d = patches.shape
    tokens = [jnp.broadcast_to(t, (n, 1, d)) for t in prefix]
    return jnp.concatenate(tokens + [patches], axis=1) + pos_embed  # timm: concat, then add (no_embed_class=False)


def attention_scale(head_dim: int) -> float:
    """The factor on q before q k^T: 1 / sqrt(head_dim), as timm's `Attention.scale`."""
    return head_dim**-0.5


def combine_heads(logits: jnp.ndarray, logits_dist: jnp.ndarray) -> jnp.ndarray:
    """A distilled model's eval output: the mean of the class and distillation heads."""
    return (logits + logits_dist) / 2


class Attention(nn.Module):
    """timm `Attention`: fused qkv Linear with bias, softmax(q k^T / sqrt(head_dim)), output `proj`."""

    num_heads: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        n, s, d = x.shape
        head_dim = d // self.num_heads
        qkv = nn.Dense(3 * d, dtype=self.dtype, name="qkv")(x)
        qkv = qkv.reshape(n, s, 3, self.num_heads, head_dim)  # (N, S, 3D) -> (N, S, 3, H, Dh), timm's order
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # each (N, S, H, Dh)
        scores = jnp.einsum("nqhd,nkhd->nhqk", q * jnp.asarray(attention_scale(head_dim), self.dtype), k)
        weights = jax.nn.softmax(scores.astype(jnp.float32), axis=-1)
        if not self.is_initializing():  # init makes every collection mutable: keep the weights out of the variables
            self.sow(ATTENTION_COLLECTION, "weights", weights)  # a no-op unless the collection is mutable
        out = jnp.einsum("nhqk,nkhd->nqhd", weights.astype(self.dtype), v).reshape(n, s, d)  # (N, S, H, Dh) -> (N, S, D)
        return nn.Dense(d, dtype=self.dtype, name="proj")(out)


class Mlp(nn.Module):
    """timm `Mlp`: fc1, exact GELU, fc2."""

    hidden_dim: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        d = x.shape[-1]
        y = nn.Dense(self.hidden_dim, dtype=self.dtype, name="fc1")(x)
        y = nn.gelu(y, approximate=False)  # torch nn.GELU() is the exact erf form
        return nn.Dense(d, dtype=self.dtype, name="fc2")(y)


class Block(nn.Module):
    """timm `Block`: pre-norm attention and MLP, each with a residual (no layer scale, no drop path in DeiT)."""

    num_heads: int
    mlp_dim: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        x = x + Attention(self.num_heads, self.dtype, name="attn")(nn.LayerNorm(LN_EPS, dtype=self.dtype, name="norm1")(x))
        return x + Mlp(self.mlp_dim, self.dtype, name="mlp")(nn.LayerNorm(LN_EPS, dtype=self.dtype, name="norm2")(x))


class PatchEmbed(nn.Module):
    """timm `PatchEmbed`: a patch-sized, patch-strided conv, flattened to tokens row by row."""

    patch_size: int
    embed_dim: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        p = self.patch_size
        x = nn.Conv(self.embed_dim, (p, p), (p, p), padding="VALID", dtype=self.dtype, name="proj")(x)
        n, h, w, d = x.shape
        return x.reshape(n, h * w, d)  # (N, H/p, W/p, D) -> (N, S, D), row-major like torch's flatten(2).transpose(1, 2)


class DeiT(nn.Module):
    """timm's DeiT: the plain ViT (class token, one head) or the distilled one (two tokens, mean of two heads)."""

    image_size: int = 224
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    distilled: bool = False
    num_classes: int = 1000
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        d = self.embed_dim
        x = PatchEmbed(self.patch_size, d, self.dtype, name="patch_embed")(x.astype(self.dtype))
        num_prefix = 2 if self.distilled else 1
        cls = self.param("cls_token", nn.initializers.normal(1e-6), (1, 1, d))
        prefix = [cls] + ([self.param("dist_token", nn.initializers.normal(0.02), (1, 1, d))] if self.distilled else [])
        pos = self.param("pos_embed", nn.initializers.normal(0.02), (1, (self.image_size // self.patch_size) ** 2 + num_prefix, d))
        x = assemble_tokens([t.astype(self.dtype) for t in prefix], x, pos.astype(self.dtype))
        x = nn.Dropout(0.0, name="pos_drop")(x, deterministic=not train)  # timm's pos_drop_rate is 0
        for i in range(self.depth):
            x = Block(self.num_heads, int(d * self.mlp_ratio), self.dtype, name=f"blocks_{i}")(x)
        x = nn.LayerNorm(LN_EPS, dtype=self.dtype, name="norm")(x)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x[:, 0])
        if not self.distilled:
            return logits
        return combine_heads(logits, nn.Dense(self.num_classes, dtype=self.dtype, name="head_dist")(x[:, 1]))
