"""The parity block of JAX records: torch vs the benchmarked Flax port, once per model x dtype x device.

The check is validation's (validation.suite): the same tolerance tiers, batch sizes and,
on failure, the first diverging layer. float32 is gated at the precision the run used
(exact unless --tf32); on a GPU the other float32 tier is recorded beside it.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from typing import Any

from benchmarks import weights as shared_weights
from benchmarks.workload import BuildOptions, Combination
from models.registry import get_spec


def _tier(result: Any, precision: str) -> dict[str, Any]:
    return {**result.as_record(), "precision": precision, "tolerance": dataclasses.asdict(result.tolerance)}


@functools.lru_cache(maxsize=None)
def _check(model: str, dtype: str, device: str, options: BuildOptions, input_size: int | None = None) -> dict[str, Any]:
    from validation import suite

    spec = get_spec(model)
    reference, _ = shared_weights.reference_torch_model(spec, options, input_size)
    if not options.pretrained:
        # The run's torchvision-init weights would hide a broken port (zero biases, norm
        # statistics, class token); the check runs the same architecture and porting on random ones.
        reference = suite.randomize_and_fit(copy.deepcopy(reference), spec, options.seed, input_size)
    pair = suite.port(model, reference, input_size)
    gate = "default" if options.tf32 else "highest"
    batch = suite.batch_size(spec, dtype, device)
    result = suite.check(pair, dtype, device, gate, batch=batch, seed=options.seed)
    record = {
        **_tier(result, gate if dtype == "float32" else dtype),
        "batch_size": batch,
        "weights": "pretrained" if options.pretrained else f"randomized(seed={options.seed})",
    }
    if dtype == "float32" and device == "cuda":
        other = "highest" if gate == "default" else "default"
        record["other_precision"] = _tier(suite.check(pair, dtype, device, other, batch=batch, seed=options.seed), other)
    return record


@functools.lru_cache(maxsize=None)
def _train_check(model: str, device: str, options: BuildOptions, input_size: int | None = None) -> dict[str, Any]:
    """Train-step parity (validation.train_parity) of the run's step settings, float32, on random or pretrained weights."""
    from validation import suite
    from validation.train_parity import compare_train_step

    spec = get_spec(model)
    reference, _ = shared_weights.reference_torch_model(spec, options, input_size)
    if not options.pretrained:
        reference = suite.randomize_and_fit(copy.deepcopy(reference), spec, options.seed, input_size)
    batch = suite.batch_size(spec, "float32", device)
    result = compare_train_step(model, options.train.optimizer, steps=3, batch_size=batch, freeze=options.train.freeze,
                                torch_model=reference, seed=options.seed, device=device, input_size=input_size)
    return {
        **result.as_record(),
        "dtype": "float32",  # the step's arithmetic; half precision policies differ by design and are not compared
        "weights": "pretrained" if options.pretrained else f"randomized(seed={options.seed})",
    }


def cached_parity(combo: Combination, options: BuildOptions) -> dict[str, Any]:
    """Parity of `combo`'s model in its dtype on its device (train mode: its train step); a crash in the check is recorded."""
    try:
        if combo.mode == "train":
            return _train_check(combo.model, combo.device, options, combo.input_size)
        return _check(combo.model, combo.dtype, combo.device, options, combo.input_size)
    except Exception as exc:  # the check's own failure must not lose the measurement
        return {"status": "not_checked", "reason": f"{type(exc).__name__}: {exc}"}
