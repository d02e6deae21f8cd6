"""The gate's decision rule on plain numbers: synthetic log-normal call times, with and without a slowdown."""

import math

import numpy as np
import pytest

from reports import gate_stats as gs

RESOLUTION_S = 1e-9


def rounds(rng, n_rounds, calls=10, median_s=0.01, sigma=0.05):
    """Per-call seconds of `n_rounds` rounds, log-normal around `median_s`."""
    return [list(rng.lognormal(math.log(median_s), sigma, calls)) for _ in range(n_rounds)]


def verdicts(shift, repeats=100, n_rounds=gs.ROUNDS, sigma=0.05, seed=0):
    rng = np.random.default_rng(seed)
    out = [gs.evaluate(rounds(rng, n_rounds, sigma=sigma), rounds(rng, n_rounds, median_s=0.01 * shift, sigma=sigma),
                       RESOLUTION_S).verdict for _ in range(repeats)]
    return {v: out.count(v) for v in (gs.PASS, gs.REGRESSION, gs.INVALID)}


def test_no_change_never_fails():
    assert verdicts(1.0) == {gs.PASS: 100, gs.REGRESSION: 0, gs.INVALID: 0}


def test_ten_percent_slowdown_is_always_caught_with_default_rounds():
    assert verdicts(1.10) == {gs.PASS: 0, gs.REGRESSION: 100, gs.INVALID: 0}


def test_significant_but_small_slowdown_passes_the_minimum_effect():
    counts = verdicts(1.02, sigma=0.01)
    assert counts[gs.PASS] == 100
    rng = np.random.default_rng(1)
    verdict = gs.evaluate(rounds(rng, 20, sigma=0.01), rounds(rng, 20, median_s=0.0102, sigma=0.01), RESOLUTION_S)
    assert verdict.p_value < gs.ALPHA and verdict.slowdown == pytest.approx(0.02, abs=0.005)
    assert "under the 5% threshold" in verdict.reasons[0]


def test_speedup_is_not_a_regression():
    assert verdicts(0.8)[gs.PASS] == 100


def test_ten_rounds_is_the_fewest_that_can_reach_p_below_one_in_a_thousand():
    assert gs.min_rounds(0.001) == 10  # exact one-sided signed-rank: min p = 2**-n; 2**-10 < 0.001 <= 2**-9
    assert gs.min_rounds(2.0**-10) == 11  # p < alpha is strict
    rng = np.random.default_rng(0)
    nine = gs.evaluate(rounds(rng, 9), rounds(rng, 9, median_s=0.02), RESOLUTION_S)
    assert nine.verdict == gs.INVALID and "only 9 rounds; p < 0.001 needs >= 10" in nine.reasons
    ten = gs.evaluate(rounds(rng, 10), rounds(rng, 10, median_s=0.02), RESOLUTION_S)
    assert ten.verdict == gs.REGRESSION and ten.p_value == pytest.approx(2.0**-10)


def test_noisy_side_is_invalid_but_keeps_its_figures():
    rng = np.random.default_rng(0)
    verdict = gs.evaluate(rounds(rng, 20), rounds(rng, 20, median_s=0.011, sigma=0.5), RESOLUTION_S)
    assert verdict.verdict == gs.INVALID
    assert any(r.startswith("candidate: coefficient of variation") and "> 20%" in r for r in verdict.reasons)
    assert verdict.candidate_cv > 0.2 and verdict.p_value is not None


def test_calls_under_the_timer_resolution_are_invalid():
    rng = np.random.default_rng(0)
    verdict = gs.evaluate(rounds(rng, 20, median_s=5e-7), rounds(rng, 20, median_s=5e-7), 1e-9)
    assert verdict.verdict == gs.INVALID
    assert any("under 1000 timer ticks" in r for r in verdict.reasons)


@pytest.mark.parametrize("bad", [math.nan, 0.0, -0.001])
def test_impossible_times_are_invalid(bad):
    rng = np.random.default_rng(0)
    candidate = rounds(rng, 20)
    candidate[3][0] = bad
    verdict = gs.evaluate(rounds(rng, 20), candidate, RESOLUTION_S)
    assert verdict.verdict == gs.INVALID and "candidate: a time is not a finite number > 0" in verdict.reasons


def test_unpaired_rounds_are_invalid():
    rng = np.random.default_rng(0)
    verdict = gs.evaluate(rounds(rng, 20), rounds(rng, 19), RESOLUTION_S)
    assert verdict.verdict == gs.INVALID and verdict.reasons[0].startswith("unpaired")


def test_identical_medians_pass_with_p_one():
    same = [[0.01, 0.011, 0.012]] * 20
    verdict = gs.evaluate(same, same, RESOLUTION_S)
    assert (verdict.verdict, verdict.p_value, verdict.slowdown) == (gs.PASS, 1.0, 0.0)


def test_log_ratio_is_of_medians_per_round():
    d = gs.log_ratios([[1.0, 2.0, 100.0], [4.0, 4.0, 4.0]], [[2.0, 4.0, 1.0], [2.0, 2.0, 2.0]])
    assert d == pytest.approx([0.0, math.log(0.5)])


def test_rounds_alternate_abba_so_drift_cancels():
    assert gs.abba_order(4) == [("A", "B"), ("B", "A"), ("A", "B"), ("B", "A")]
    calls = []
    a, b = gs.interleaved_rounds(lambda: calls.append("A") or len(calls), lambda: calls.append("B") or len(calls), 4)
    assert "".join(calls) == "ABBAABBA"
    assert (a, b) == ([1, 4, 5, 8], [2, 3, 6, 7])


def test_linear_drift_does_not_look_like_a_regression():
    # The machine slows 1% per side-run; interleaving must not turn that into a verdict.
    clock = iter(range(1000))
    timer = lambda: [0.01 * (1 + 0.01 * next(clock))] * 5  # noqa: E731
    a, b = gs.interleaved_rounds(timer, timer, 20)
    assert gs.evaluate(a, b, RESOLUTION_S).verdict == gs.PASS


def test_only_a_regression_is_remeasured_and_regression_outranks_invalid():
    rng = np.random.default_rng(0)
    regression = gs.evaluate(rounds(rng, 20), rounds(rng, 20, median_s=0.012), RESOLUTION_S)
    passing = gs.evaluate(rounds(rng, 20), rounds(rng, 20), RESOLUTION_S)
    invalid = gs.evaluate(rounds(rng, 3), rounds(rng, 3), RESOLUTION_S)
    assert [gs.needs_remeasure(v) for v in (regression, passing, invalid)] == [True, False, False]
    assert gs.overall({"a": passing, "b": invalid, "c": regression}) == gs.REGRESSION
    assert gs.overall({"a": passing, "b": invalid}) == gs.INVALID
    assert gs.overall({"a": passing}) == gs.PASS


def test_verdict_json_has_no_nan():
    rng = np.random.default_rng(0)
    doc = gs.evaluate(rounds(rng, 20), rounds(rng, 20), RESOLUTION_S).as_json()
    assert doc["verdict"] == gs.PASS and len(doc["log_ratios"]) == 20
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in doc.values())
