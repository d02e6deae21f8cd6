"""The parity suite's cases: random reference weights, their port, and one check per model x dtype x device.

Shared by validation/test_parity.py, tools/parity_table.py and benchmarks/parity.py, so
the table printed and the check recorded are the check the tests run.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
from typing import Any

from models.registry import ModelSpec, get_spec
from validation.compare import ParityResult, compare_models, parity_images
from validation.precision import float32_precision

DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("cpu", "cuda")
SEED = 0
CALIBRATION_BATCH = 4  # images whose statistics the random model is fitted to


@dataclasses.dataclass
class PortedPair:
    """A torch model (CPU, float32, eval) and the Flax variables ported from it."""

    spec: ModelSpec
    torch_model: Any
    variables: Any
    input_size: int = 0  # the square input the pair was built for; 0: the spec's own

    def __post_init__(self) -> None:
        self.input_size = self.input_size or self.spec.input_size


def random_torch_model(name: str, seed: int = SEED, input_size: int | None = None) -> Any:
    """The torch `name` (at `input_size`) with random weights everywhere, fitted to parity-like images."""
    import torch

    from models import get_torch_model

    # Seeded: randomize_weights keeps the builder's conv and linear kernels, which torch draws
    # from its global generator; unseeded, every process would check different weights.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch_model, _, _, _ = get_torch_model(name, input_size=input_size)
    return randomize_and_fit(torch_model, get_spec(name), seed, input_size)


def randomize_and_fit(torch_model: Any, spec: ModelSpec, seed: int = SEED, input_size: int | None = None) -> Any:
    """`torch_model` with random weights everywhere, its norms and head fitted to parity-like images, in place.

    torchvision's init zeroes biases, norm statistics, ViT's class token and head, which
    would let a broken port pass; fitting keeps the random model's activations O(1).
    """
    from models.torch_models import calibrate_to_data, make_torch_preprocess, randomize_weights

    from models.registry import get_family

    randomize_weights(torch_model, seed)
    # Fitted to images like the ones parity feeds, from another draw.
    size = input_size or spec.input_size
    images = parity_images(CALIBRATION_BATCH, size, size, seed + 1)
    return calibrate_to_data(torch_model, make_torch_preprocess(spec)(images), get_family(spec.family))


def port(name: str, torch_model: Any, input_size: int | None = None) -> PortedPair:
    """`torch_model`'s weights ported to the Flax `name` (at `input_size`), in float32 (cast per dtype later)."""
    from models import get_flax_model

    spec = get_spec(name)
    size = input_size or spec.input_size
    _, variables, _, _ = get_flax_model(name, input_shape=(1, size, size, 3), torch_model=torch_model)
    return PortedPair(spec, torch_model, variables, size)


def random_pair(name: str, seed: int = SEED, input_size: int | None = None) -> PortedPair:
    """A randomly weighted torch `name` (at `input_size`) and its Flax port."""
    return port(name, random_torch_model(name, seed, input_size), input_size)


def batch_size(spec: ModelSpec, dtype: str, device: str) -> int:
    """The parity batch for one case, sized to keep the CPU suite to about a minute.

    On a CPU a real model costs ~3-5 s per float32 batch of 2 and as much per half
    precision image (XLA:CPU emulates float16), so real models check 2 images in float32
    and 1 in half precision; the tiny variants and any GPU check 10 (one top-1 flip
    of a near-tie still meets the half-precision 90% agreement).
    """
    if device == "cuda" or spec.test_only:
        return 10
    return 2 if dtype == "float32" else 1


@functools.lru_cache(maxsize=32)
def compiled_apply(module: Any) -> Any:
    """`jax.jit(module.apply)`, one per module configuration, so each shape compiles once per process."""
    import jax

    return jax.jit(module.apply)


def forget_compiled() -> None:
    """Drop every cached compilation, e.g. after monkeypatching a Flax module's code."""
    import jax

    from validation.layers import capture_fn

    compiled_apply.cache_clear()
    capture_fn.cache_clear()
    jax.clear_caches()


def cuda_unavailable_reason() -> str | None:
    """Why a CUDA parity check cannot run here, or None when torch and JAX both see a GPU."""
    import torch

    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    import jax

    try:
        jax.devices("gpu")
    except RuntimeError:
        return "JAX sees no GPU (install jax[cuda])"
    return None


def check(
    pair: PortedPair,
    dtype: str,
    device: str,
    precision: str = "highest",
    batch: int | None = None,
    seed: int = SEED,
) -> ParityResult:
    """Parity of `pair` cast to `dtype` on `device` under the spec's tolerance for that tier.

    float32 runs at `precision` ('highest': TF32 off on both sides; 'default': TF32
    allowed in both, checked against the spec's default-precision tier).
    """
    import jax
    import jax.numpy as jnp
    import torch

    from models.flax_models import build_flax_module, make_flax_preprocess
    from models.torch_models import make_torch_preprocess

    spec = pair.spec
    batch = batch or batch_size(spec, dtype, device)
    torch_model = copy.deepcopy(pair.torch_model).to(device=device, dtype=getattr(torch, dtype))
    module = build_flax_module(spec, getattr(jnp, dtype), input_size=pair.input_size)
    jax_device = jax.devices("gpu" if device == "cuda" else "cpu")[0]
    variables = jax.device_put(jax.tree_util.tree_map(lambda a: jnp.asarray(a, getattr(jnp, dtype)), pair.variables), jax_device)
    tolerance = spec.tolerance(dtype, default_precision=precision == "default")
    context = float32_precision(precision) if dtype == "float32" else contextlib.nullcontext()
    with context:
        return compare_models(
            spec.name, torch_model, make_torch_preprocess(spec), compiled_apply(module), variables, make_flax_preprocess(spec),
            (3, pair.input_size, pair.input_size), (pair.input_size, pair.input_size, 3), batch, tolerance, seed=seed,
        )
