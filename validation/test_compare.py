"""The verdict on two sets of logits: each bound of a tier fails when it should, and only then."""

from __future__ import annotations

import numpy as np
import pytest

from models.registry import Tolerance
from validation.compare import FLOAT32_LAYER_THRESHOLD, HALF_LAYER_THRESHOLD, compare_logits, layer_threshold

LOGITS = np.array([[4.0, 1.0, -2.0, 0.5], [0.0, 3.0, 2.0, -1.0]])


def test_identical_logits_pass_every_bound() -> None:
    result = compare_logits("m", LOGITS, LOGITS, Tolerance(max_abs=1e-6, max_rel=1e-6, min_cosine=1.0, min_top1=1.0))
    assert result.passed and result.failures == []
    assert result.max_abs == 0 and result.cosine == pytest.approx(1.0)
    assert result.logit_scale == 4.0 and result.top1_margin == 1.0


def test_element_wise_bound_fails_on_one_element() -> None:
    actual = LOGITS.copy()
    actual[1, 3] += 2e-4
    result = compare_logits("m", LOGITS, actual, Tolerance(max_abs=1e-4))
    assert not result.passed
    assert result.failures == ["max abs error 0.0002 > 0.0001"]
    assert result.max_rel == pytest.approx(2e-4 / 4.0)


def test_nan_fails_even_without_bounds() -> None:
    actual = LOGITS.copy()
    actual[0, 0] = np.nan
    result = compare_logits("m", LOGITS, actual, Tolerance())
    assert not result.passed and "NaN" in result.failures[0]


def test_cosine_bound_catches_a_wrong_direction() -> None:
    actual = LOGITS[:, ::-1].copy()
    result = compare_logits("m", LOGITS, actual, Tolerance(min_cosine=0.99))
    assert not result.passed and result.failures[0].startswith("cosine similarity")


def test_top1_flip_is_excused_only_within_the_tie_budget() -> None:
    expected = np.array([[2.00, 1.99, 0.0], [3.0, 0.0, 1.0]])
    flipped = np.array([[1.99, 2.00, 0.0], [3.0, 0.0, 1.0]])  # first image flips a 0.01 near-tie
    tied = compare_logits("m", expected, flipped, Tolerance(min_top1=1.0, top1_tie_rel=0.01))  # tie = 0.03
    assert tied.passed and tied.top1_agreement == 1.0 and tied.top1_strict == 0.5
    strict = compare_logits("m", expected, flipped, Tolerance(min_top1=1.0))
    assert not strict.passed and strict.top1_agreement == 0.5
    decisive = np.array([[0.0, 2.0, 0.0], [3.0, 0.0, 1.0]])  # torch's 2.0 vs 0.0 is no tie
    assert not compare_logits("m", expected[:, [0, 2, 1]], decisive, Tolerance(min_top1=1.0, top1_tie_rel=0.01)).passed


def test_layer_threshold_follows_the_tier() -> None:
    assert layer_threshold(Tolerance(max_abs=1e-4)) == FLOAT32_LAYER_THRESHOLD
    assert layer_threshold(Tolerance(max_rel=1e-2)) == 1e-2
    assert layer_threshold(Tolerance(min_cosine=0.99)) == HALF_LAYER_THRESHOLD


def test_shape_mismatch_is_an_error_not_a_verdict() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        compare_logits("m", LOGITS, LOGITS[:, :3], Tolerance())
