"""Attention maps for the Attention page: the zoo's `models.get_attention_maps`, where this checkout has it.

Images come from a bundled sample (matplotlib's sample photograph, shipped with a
dependency) or an upload, checked here: anything that is not a readable image, or is over
the size limits, is `BadUpload` with one line saying what and how to fix it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

MAX_UPLOAD_BYTES = 5 * 2**20
MAX_IMAGE_PIXELS = 40_000_000  # larger images are refused before they are decoded (decompression bombs)
MAX_LAYERS = 256  # layers are probed one index at a time; no model has more
THUMB = 160
BIG = 360
SAMPLE_NAME = "sample"


class BadUpload(ValueError):
    """An uploaded file the page cannot use; the message says why and what to upload instead."""


def attention_function() -> Callable[..., Any] | None:
    """`models.get_attention_maps`, or None where this checkout does not have it yet."""
    import models

    return getattr(models, "get_attention_maps", None)


def rollout_function() -> Callable[..., Any] | None:
    """`models.attention.attention_rollout`, or None where this checkout does not have it."""
    try:
        from models.attention import attention_rollout
    except ImportError:
        return None
    return attention_rollout


def family_has_attention(name: str) -> bool:
    """Whether `name`'s family declares attention hooks (the index and model pages link only those)."""
    from models.registry import family_of

    family = family_of(name)
    return attention_function() is not None and (family.attention_torch is not None or family.attention_flax is not None)


def sample_image() -> Any:
    """The bundled sample photograph, as an RGB PIL image."""
    import matplotlib.cbook

    return decode_image(open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), "rb").read())


def decode_image(data: bytes) -> Any:
    """`data` as an RGB PIL image, or BadUpload saying why not."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise BadUpload("the upload is empty; choose a PNG or JPEG image file")
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadUpload(f"the upload is {len(data):,} bytes, over the {MAX_UPLOAD_BYTES // 2**20} MiB limit; "
                        "upload a smaller image")
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise BadUpload(f"the image is {image.width}x{image.height} pixels, over the {MAX_IMAGE_PIXELS:,}-pixel "
                            "limit; upload a smaller image")
        image.load()
    except UnidentifiedImageError:
        raise BadUpload("the upload is not an image this server can read; upload a PNG, JPEG, GIF, BMP or WebP file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, BadUpload):
            raise
        raise BadUpload(f"the image could not be decoded ({exc}); upload an intact PNG or JPEG file") from None
    image = image.convert("RGB")
    image.thumbnail((1024, 1024))  # keeps what is held per upload small
    return image


def image_key(image: Any) -> str:
    """A content hash naming an uploaded image in URLs."""
    return hashlib.sha256(np.asarray(image).tobytes() + repr(image.size).encode()).hexdigest()


def model_input(image: Any, size: int) -> np.ndarray:
    """The image centre-cropped to a square and resized: float (1, size, size, 3) in [0, 1]."""
    from PIL import Image

    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    square = image.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
    return (np.asarray(square, np.float32) / 255.0)[None]


def attention_weights(name: str, size: int) -> tuple[Any, str]:
    """The torch model whose weights both frameworks' maps use, and a label saying which weights they are."""
    from models import get_spec, get_torch_model
    from validation.suite import random_torch_model

    if size != get_spec(name).input_size:
        return random_torch_model(name, input_size=size), "random (pretrained weights are for the model's own input size)"
    try:
        model, _, _, meta = get_torch_model(name, pretrained=True)
        return model, f"pretrained ({Path(meta['weights_file']).name})"
    except (OSError, ValueError) as exc:  # no local weights file, or one that does not fit: said on the page
        return random_torch_model(name, input_size=size), f"random ({str(exc).splitlines()[0]})"


def all_layers(name: str, images: np.ndarray, framework: str, torch_model: Any) -> tuple[list[np.ndarray] | None, str]:
    """Every layer's maps `[batch, heads, tokens, tokens]`, or (None, why not).

    The zoo's API takes one layer index at a time: indices are tried from 0 until one
    fails, and the layers found are checked to end where index -1 (the last layer) does,
    so an error in a middle layer is raised, not mistaken for the end.
    """
    get_maps = attention_function()
    if get_maps is None:
        return None, "this checkout has no models.get_attention_maps (the transformer zoo adds it)"

    def layer(index: int) -> np.ndarray:
        maps = np.asarray(get_maps(name, images, layer_idx=index, framework=framework, torch_model=torch_model), np.float32)
        if maps.ndim != 4 or maps.shape[-1] != maps.shape[-2]:
            raise ValueError(f"models.get_attention_maps returned shape {list(maps.shape)}, not [batch, heads, tokens, tokens]")
        return maps

    try:
        last = layer(-1)
    except Exception as exc:  # e.g. a model without attention: the page says why
        return None, f"{type(exc).__name__}: {exc}"
    layers: list[np.ndarray] = []
    for index in range(MAX_LAYERS):
        try:
            layers.append(layer(index))
        except Exception as exc:
            if layers and layers[-1].shape == last.shape and np.allclose(layers[-1], last):
                break  # past the last layer
            raise RuntimeError(f"models.get_attention_maps({name!r}, layer_idx={index}) failed: {exc}") from exc
    return layers, ""


def rollout(layers: list[np.ndarray]) -> tuple[np.ndarray | None, str]:
    """The attention rollout over all layers from `models.attention.attention_rollout`, or (None, why not)."""
    helper = rollout_function()
    if helper is None:
        return None, "this checkout has no models.attention.attention_rollout"
    try:
        return np.asarray(helper(layers), np.float32), ""
    except Exception as exc:  # an unexpected signature or shape: the page says so instead of failing
        return None, f"attention_rollout failed: {type(exc).__name__}: {exc}"


def token_grid(tokens: int) -> tuple[int, int] | None:
    """(special tokens, grid side) when `tokens` is a few special tokens then a square grid of patches."""
    for special in (1, 2, 0):
        side = math.isqrt(tokens - special)
        if side * side == tokens - special and side > 0:
            return special, side
    return None


def query_map(matrix: np.ndarray) -> np.ndarray | None:
    """What the first token attends to over the patch grid (the class token's view), or None without a grid."""
    grid = token_grid(matrix.shape[-1])
    if grid is None:
        return None
    special, side = grid
    row = matrix[0, special:] if special else matrix.mean(axis=0)  # no class token: attention each patch receives
    return row.reshape(side, side)


def _colour(values: np.ndarray, cmap: str) -> np.ndarray:
    import matplotlib

    values = np.asarray(values, np.float32)
    lo, hi = float(np.min(values)), float(np.max(values))
    scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    return (matplotlib.colormaps[cmap](scaled)[..., :3] * 255).astype(np.uint8)


def png_data_uri(rgb: np.ndarray) -> str:
    """An RGB uint8 array as a data: URI holding a PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def matrix_png(matrix: np.ndarray, side: int = BIG) -> str:
    """A tokens x tokens attention matrix as a heat map PNG (queries down, keys across)."""
    from PIL import Image

    rgb = _colour(matrix, "viridis")
    scale = max(1, side // matrix.shape[0])
    return png_data_uri(np.asarray(Image.fromarray(rgb).resize((matrix.shape[1] * scale, matrix.shape[0] * scale), Image.NEAREST)))


def overlay_png(image: np.ndarray, grid: np.ndarray, side: int = BIG) -> str:
    """`grid` upsampled over the (1, H, W, 3) model input, as a PNG."""
    from PIL import Image

    photo = np.asarray(Image.fromarray((image[0] * 255).astype(np.uint8)).resize((side, side), Image.BILINEAR), np.float32)
    heat = _colour(np.asarray(Image.fromarray(grid.astype(np.float32)).resize((side, side), Image.BILINEAR)), "inferno")
    return png_data_uri((0.45 * photo + 0.55 * heat).astype(np.uint8))


def compute_maps(name: str, size: int, framework: str, image: Any, image_label: str) -> dict[str, Any]:
    """Every layer's maps of one image, the rollout and which weights made them (the page's costly part)."""
    images = model_input(image, size)
    if attention_function() is None:  # say so without building a model first
        torch_model, weights = None, ""
    else:
        torch_model, weights = attention_weights(name, size)
    layers, reason = all_layers(name, images, framework, torch_model)
    rolled, rollout_reason = rollout(layers) if layers else (None, "")
    if layers:  # kept for display only: half the memory (ViT-L/16 at 512 px holds 1.6 GB of float32 maps)
        layers = [maps.astype(np.float16) for maps in layers]
    return {"model": name, "size": size, "framework": framework, "image_label": image_label, "weights": weights,
            "images": images, "layers": layers, "reason": reason, "rollout": rolled, "rollout_reason": rollout_reason}


def attention_view(maps: dict[str, Any], layer: int | None, head: int | None) -> dict[str, Any]:
    """What the Attention page shows of `compute_maps`' result for one layer and head (PNG data URIs included)."""
    images, layers = maps["images"], maps["layers"]
    view: dict[str, Any] = {k: maps[k] for k in ("model", "size", "framework", "image_label", "weights")}
    view["input_png"] = png_data_uri((images[0] * 255).astype(np.uint8))
    if layers is None:
        return {**view, "available": False, "reason": maps["reason"]}
    layer = len(layers) - 1 if layer is None else layer
    if not -len(layers) <= layer < len(layers):
        raise IndexError(f"layer {layer} does not exist; {maps['model']} has layers 0..{len(layers) - 1}")
    layer %= len(layers)
    chosen = layers[layer]
    heads = chosen.shape[1]
    head = 0 if head is None else head
    if not 0 <= head < heads:
        raise IndexError(f"head {head} does not exist; layer {layer} of {maps['model']} has heads 0..{heads - 1}")
    one_image = chosen.shape[0] == images.shape[0]  # windowed maps hold one entry per window
    thumbs = []
    for h in range(heads):
        grid = query_map(chosen[0, h]) if one_image else None
        thumbs.append(overlay_png(images, grid, THUMB) if grid is not None else matrix_png(chosen[0, h], THUMB))
    matrix = chosen[0, head]
    grid = query_map(matrix) if one_image else None
    rollout_png, rollout_reason = _rollout_png(images, maps["rollout"], maps["rollout_reason"])
    return {
        **view, "available": True, "layers": len(layers), "layer": layer, "heads": heads, "head": head,
        "tokens": int(matrix.shape[-1]), "maps_shape": list(chosen.shape), "windows": None if one_image else int(chosen.shape[0]),
        "head_pngs": thumbs, "matrix_png": matrix_png(matrix), "overlay_png": overlay_png(images, grid) if grid is not None else None,
        "rollout_png": rollout_png, "rollout_reason": rollout_reason,
    }


def _rollout_png(images: np.ndarray, rolled: np.ndarray | None, reason: str) -> tuple[str | None, str]:
    """The rollout over the image: from a tokens x tokens matrix (class token's row) or a patch grid."""
    if rolled is None:
        return None, reason
    grid = None
    if rolled.ndim >= 2 and rolled.shape[-1] == rolled.shape[-2]:
        grid = query_map(rolled.reshape(-1, rolled.shape[-2], rolled.shape[-1])[0])
    if grid is None and rolled.size and math.isqrt(rolled.size) ** 2 == rolled.size:
        grid = rolled.reshape(math.isqrt(rolled.size), -1)
    if grid is None:
        return None, f"attention_rollout returned shape {list(rolled.shape)}, which is not a patch grid"
    return overlay_png(images, grid), ""
