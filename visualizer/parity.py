"""Per-layer parity of a model's Flax port on random weights, for the colour scale of the model page.

The same pipeline as the parity suite's first-diverging-layer check (validation/): random
weights everywhere, fitted so activations stay O(1), ported to Flax; both frameworks run
the same random images; torch forward hooks and Flax `capture_intermediates` outputs are
paired by the family's renames and compared by max relative error.
"""

from __future__ import annotations

import math
import time
from typing import Any

BATCH = 2
SEED = 0


def layer_parity(name: str, input_size: int, batch: int = BATCH, seed: int = SEED) -> dict[str, Any]:
    """Each paired layer's relative error, the threshold, and the first layer over it, as JSON-ready data."""
    from models.flax_models import build_flax_module, make_flax_preprocess
    from models.registry import get_family, get_spec
    from models.torch_models import make_torch_preprocess
    from validation import layers
    from validation.compare import FLOAT32_LAYER_THRESHOLD, parity_images
    from validation.precision import float32_precision
    from validation.suite import random_pair

    started = time.perf_counter()
    spec = get_spec(name)
    pair = random_pair(name, seed=seed, input_size=input_size)
    images = parity_images(batch, input_size, input_size, seed)
    torch_outputs = layers.torch_layer_outputs(pair.torch_model, make_torch_preprocess(spec)(images))
    module = build_flax_module(spec, input_size=input_size)
    with float32_precision("highest"):  # JAX on a GPU would otherwise use TF32
        flax_outputs = layers.flax_layer_outputs(module.apply, pair.variables, make_flax_preprocess(spec)(images))
    errors = layers.layer_errors(torch_outputs, flax_outputs, get_family(spec.family))
    threshold = FLOAT32_LAYER_THRESHOLD
    by_layer: dict[str, dict[str, Any]] = {}
    for error in errors:
        torch_name = "" if error.torch_name == "(output)" else error.torch_name
        value = error.error if math.isfinite(error.error) else None
        known = by_layer.get(torch_name)
        # A module called several times shows its worst call; a non-finite error is the worst.
        if known is None or (known["error"] is not None and (value is None or value > known["error"])):
            by_layer[torch_name] = {
                "flax": "" if error.flax_path == "(output)" else error.flax_path,
                "error": value,
                "detail": error.detail or ("" if value is not None else "not finite"),
            }
    first = layers.first_diverging_layer(errors, threshold)
    finite = [e.error for e in errors if math.isfinite(e.error)]
    return {
        "model": name,
        "input_size": input_size,
        "weights": f"random everywhere, fitted to O(1) activations (validation.suite.random_pair, seed {seed})",
        "images": f"{batch} random images, uniform in [0, 1] (validation.compare.parity_images, seed {seed})",
        "threshold": threshold,
        "layers": by_layer,
        "max_error": max(finite) if len(finite) == len(errors) and finite else None,
        "first_diverging": None if first is None else {
            "torch": "" if first.torch_name == "(output)" else first.torch_name,
            "flax": first.flax_path,
            "error": first.error if math.isfinite(first.error) else None,
        },
        "seconds": round(time.perf_counter() - started, 2),
    }
