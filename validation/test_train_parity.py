"""Train-step parity: torch and JAX train steps agree, for every family, both optimizers, with and without freezing.

Parametrized from the registry (one tiny test-only variant per family), so a newly merged
family is covered with no new test code. Batches of 8: a BatchNorm over two images of a
1x1 map (resnet_tiny's last stage) normalises every value to +-1, and its gradient is then
rounding noise in any float32 implementation.
"""

from __future__ import annotations

import pytest

from models.registry import get_spec, list_families, list_models
from validation.train_parity import UPDATE_TOLERANCE, compare_train_step

BATCH = 8


def _tiny_per_family() -> list[str]:
    tiny = [n for n in list_models(include_test_only=True) if get_spec(n).test_only]
    return [next(n for n in tiny if get_spec(n).family == family) for family in list_families()
            if any(get_spec(n).family == family for n in tiny)]


TINY = _tiny_per_family()
# (optimizer, freeze): both optimizers unfrozen, and each with one kind of freezing.
SETTINGS = [("sgd", 0), ("adamw", 0), ("sgd", 1), ("adamw", "backbone")]


@pytest.mark.parametrize("optimizer, freeze", SETTINGS, ids=[f"{o}-freeze{f}" for o, f in SETTINGS])
@pytest.mark.parametrize("model", TINY)
def test_train_step_matches_torch(model: str, optimizer: str, freeze) -> None:
    result = compare_train_step(model, optimizer, steps=3, batch_size=BATCH, freeze=freeze)
    assert result.passed, result.message()
    assert result.first_diverging_param is None
    assert result.loss_rel <= 1e-5, result.message()
    # The check has teeth: float32's noise widened at most half of the bounds beyond 10x the
    # nominal one (the planted bugs of tests/test_wrong_train_step.py are 1e-3 and up).
    step1 = [t for t in result.tensors if t.step == 1 and t.kind != "frozen"]
    tight = [t for t in step1 if t.bound <= 10 * UPDATE_TOLERANCE]
    assert len(tight) >= len(step1) / 2, f"{len(step1) - len(tight)} of {len(step1)} bounds widened: {result.message()}"
    frozen = [t for t in result.tensors if t.kind == "frozen"]
    if freeze == 0:
        assert not frozen
    else:
        assert frozen and all(t.error == 0.0 for t in frozen), "a frozen parameter moved"
        total = sum(t.kind != "statistic" for t in result.tensors if t.step == 1)
        assert 0 < result.trainable_params and len([t for t in frozen if t.step == 1]) < total


def test_every_family_has_a_tiny_variant_for_train_parity() -> None:
    assert {get_spec(n).family for n in TINY} == set(list_families())


@pytest.mark.slow
def test_resnet50_one_sgd_step_matches_torch() -> None:
    # A real model, kept cheap: one step of two images.
    result = compare_train_step("resnet50", "sgd", steps=1, batch_size=2)
    assert result.passed, result.message()
    assert result.param_max_rel <= 1e-4 or result.widened, result.message()
