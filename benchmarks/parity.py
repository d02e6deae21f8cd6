"""The parity block of JAX records: torch vs the benchmarked Flax port, once per model x dtype x device."""

from __future__ import annotations

import contextlib
import copy
import functools
from typing import Any, Iterator

from benchmarks import weights as shared_weights
from benchmarks.workload import BuildOptions, Combination
from models.registry import get_spec

PARITY_BATCH = 2


@contextlib.contextmanager
def exact_float32(device: str) -> Iterator[None]:
    """TF32 off on both sides, so float32 means float32 on Ampere and later GPUs."""
    import jax
    import torch

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        with jax.default_matmul_precision("highest"):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@functools.lru_cache(maxsize=None)
def _check(model: str, dtype: str, device: str, options: BuildOptions) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import torch

    from models import get_flax_model
    from models.torch_models import make_torch_preprocess, randomize_weights
    from validation.compare import compare_models

    spec = get_spec(model)
    reference, _ = shared_weights.reference_torch_model(spec, options)
    if not options.pretrained:
        # torchvision's init zeroes ViT's head and every norm statistic, which would let a
        # broken port pass; the check runs the same architecture and porting on random weights.
        reference = randomize_weights(copy.deepcopy(reference), options.seed)
    torch_dtype = getattr(torch, dtype)
    torch_model = copy.deepcopy(reference).to(device=device, dtype=torch_dtype)
    shape_nhwc = (PARITY_BATCH, spec.input_size, spec.input_size, 3)
    apply_fn, variables, flax_preprocess, _ = get_flax_model(model, shape_nhwc, torch_model=reference, dtype=getattr(jnp, dtype))
    jax_device = jax.devices("gpu" if device == "cuda" else "cpu")[0]
    variables = jax.device_put(jax.tree_util.tree_map(lambda a: a.astype(getattr(jnp, dtype)), variables), jax_device)
    with exact_float32(device) if dtype == "float32" else contextlib.nullcontext():
        result = compare_models(
            model, torch_model, make_torch_preprocess(spec), apply_fn, variables, flax_preprocess,
            spec.input_shape, shape_nhwc[1:], PARITY_BATCH, spec.tolerance(dtype), seed=options.seed,
        )
    weights = "pretrained" if options.pretrained else f"randomized(seed={options.seed})"
    precision = "highest" if dtype == "float32" else dtype
    return {**result.as_record(), "batch_size": PARITY_BATCH, "precision": precision, "weights": weights}


def cached_parity(combo: Combination, options: BuildOptions) -> dict[str, Any]:
    """Parity of `combo`'s model in its dtype on its device; a crash in the check is recorded."""
    try:
        return _check(combo.model, combo.dtype, combo.device, options)
    except Exception as exc:  # the check's own failure must not lose the measurement
        return {"status": "not_checked", "reason": f"{type(exc).__name__}: {exc}"}
