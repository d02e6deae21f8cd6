"""The gate's statistics: paired rounds in, PASS / REGRESSION / INVALID out. Pure: no I/O.

Design (DESIGN.md, "The gate"): baseline A and candidate B are timed in interleaved rounds
(A B, B A, A B, ... so drift cancels); per round the log of the ratio of medians
log(median B / median A); a one-sided Wilcoxon signed-rank test for "B is slower" and a
minimum effect. A regression needs p < alpha AND a slowdown >= threshold. The exact
one-sided signed-rank p of n rounds is at least 2**-n, so fewer rounds than
`min_rounds(alpha)` could never show a regression and are INVALID, as are noisy samples
(coefficient of variation over 20%) and calls too short for the timer.

Re-measurement (issue 11): two worker processes running the same code can differ by a few
percent for the whole of their life (where their memory landed, which core they got), so a
REGRESSION is measured again with fresh workers before it counts, and so is a PASS whose
slowdown already reaches half the threshold (a true slowdown that this pair of workers
happened to hide). The final verdict is then on both measurements' rounds together:
requiring the second measurement to pass on its own would square the detection rate
(0.95 -> 0.90), while pooling halves a worker pair's bias and doubles the rounds.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, Sequence, TypeVar

import numpy as np
from scipy import stats

from reports.schema import MAX_CV, MIN_TICKS

PASS, REGRESSION, INVALID = "PASS", "REGRESSION", "INVALID"

ALPHA = 0.001
THRESHOLD = 0.05  # a 5% slowdown is the smallest that counts; a 10% one is then caught
ROUNDS = 20
SUSPECT = 0.5  # a PASS slower by >= SUSPECT x threshold is measured again, like a REGRESSION

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class GateConfig:
    """The decision rule's settings."""

    alpha: float = ALPHA
    threshold: float = THRESHOLD
    max_cv: float = MAX_CV
    min_ticks: int = MIN_TICKS
    suspect: float = SUSPECT


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome for one benchmark, with the figures it rests on."""

    verdict: str
    reasons: tuple[str, ...]
    rounds: int
    p_value: float | None = None
    slowdown: float | None = None  # exp(median log-ratio) - 1; 0.10 means B takes 10% longer
    log_ratios: tuple[float, ...] = ()
    baseline_median_s: float | None = None
    candidate_median_s: float | None = None
    baseline_cv: float | None = None
    candidate_cv: float | None = None

    def as_json(self) -> dict[str, Any]:
        """The verdict as plain JSON values (no NaN)."""
        out = dataclasses.asdict(self)
        out["reasons"] = list(self.reasons)
        out["log_ratios"] = list(self.log_ratios)
        return out


def min_rounds(alpha: float = ALPHA) -> int:
    """The fewest rounds whose exact one-sided signed-rank p (at least 2**-n) can be < alpha."""
    n = 1
    while 2.0**-n >= alpha:
        n += 1
    return n


def abba_order(rounds: int) -> list[tuple[str, str]]:
    """Which side runs first in each round: A B, B A, A B, ... (ABBA ABBA over the run)."""
    return [("A", "B") if i % 2 == 0 else ("B", "A") for i in range(rounds)]


def interleaved_rounds(time_a: Callable[[], T], time_b: Callable[[], T], rounds: int) -> tuple[list[T], list[T]]:
    """Call the two sides' timers `rounds` times each in ABBA order; their results in round order."""
    results: dict[str, list[T]] = {"A": [], "B": []}
    timers = {"A": time_a, "B": time_b}
    for order in abba_order(rounds):
        for side in order:
            results[side].append(timers[side]())
    return results["A"], results["B"]


def within_round_cv(rounds: Sequence[Sequence[float]]) -> float:
    """Typical spread of one side's calls: the median over rounds of each round's CV."""
    cvs = [float(np.std(r, ddof=1) / np.mean(r)) for r in rounds if len(r) > 1]
    return float(np.median(cvs)) if cvs else 0.0


def log_ratios(baseline: Sequence[Sequence[float]], candidate: Sequence[Sequence[float]]) -> np.ndarray:
    """Per round, log(median candidate / median baseline): above 0 means the candidate was slower."""
    return np.array([math.log(np.median(b) / np.median(a)) for a, b in zip(baseline, candidate)])


def _unusable(baseline: Sequence[Sequence[float]], candidate: Sequence[Sequence[float]], alpha: float) -> list[str]:
    """Why no verdict can be computed from these rounds at all."""
    reasons = []
    need = min_rounds(alpha)
    if len(baseline) != len(candidate):
        reasons.append(f"unpaired: {len(baseline)} baseline rounds vs {len(candidate)} candidate rounds")
    if min(len(baseline), len(candidate)) < need:
        reasons.append(f"only {min(len(baseline), len(candidate))} rounds; p < {alpha:g} needs >= {need}")
    for side, rounds in (("baseline", baseline), ("candidate", candidate)):
        values = np.array([s for r in rounds for s in r], dtype=float)
        if any(len(r) == 0 for r in rounds):
            reasons.append(f"{side}: a round has no samples")
        elif not np.all(np.isfinite(values)) or np.any(values <= 0):
            reasons.append(f"{side}: a time is not a finite number > 0")
    return reasons


def _untrustworthy(baseline: Sequence[Sequence[float]], candidate: Sequence[Sequence[float]], resolution_s: float,
                   config: GateConfig) -> list[str]:
    """Why the figures, though computable, cannot be trusted: noise or calls too short to time."""
    reasons = []
    for side, rounds in (("baseline", baseline), ("candidate", candidate)):
        cv = within_round_cv(rounds)
        if cv > config.max_cv:
            reasons.append(f"{side}: coefficient of variation {cv:.0%} > {config.max_cv:.0%} (noisy machine?)")
        fastest = min(min(r) for r in rounds)
        if fastest < config.min_ticks * resolution_s:
            reasons.append(f"{side}: fastest call {fastest:.2e} s is under {config.min_ticks} timer ticks "
                           f"of {resolution_s:.1e} s; time a bigger workload")
    return reasons


def evaluate(baseline: Sequence[Sequence[float]], candidate: Sequence[Sequence[float]], resolution_s: float,
             config: GateConfig = GateConfig()) -> Verdict:
    """The verdict on paired rounds of per-call seconds (`baseline[i]` and `candidate[i]` are round i)."""
    unusable = _unusable(baseline, candidate, config.alpha)
    if unusable:
        return Verdict(INVALID, tuple(unusable), min(len(baseline), len(candidate)))
    d = log_ratios(baseline, candidate)
    if np.all(d == 0):
        p = 1.0  # identical medians every round: no evidence of anything (scipy refuses all-zero input)
    else:
        p = float(stats.wilcoxon(d, alternative="greater").pvalue)
    slowdown = math.expm1(float(np.median(d)))
    untrustworthy = _untrustworthy(baseline, candidate, resolution_s, config)
    if untrustworthy:
        verdict, reasons = INVALID, tuple(untrustworthy)
    elif p < config.alpha and slowdown >= config.threshold:
        verdict, reasons = REGRESSION, (f"slower by {slowdown:.1%} (>= {config.threshold:.0%}), p = {p:.2g} < {config.alpha:g}",)
    elif p < config.alpha:
        verdict, reasons = PASS, (f"slower by {slowdown:.1%}, significant (p = {p:.2g}) but under the {config.threshold:.0%} threshold",)
    else:
        verdict, reasons = PASS, (f"change {slowdown:+.1%}, p = {p:.2g}: no evidence of a slowdown at {config.alpha:g}",)
    return Verdict(
        verdict, reasons, len(d), p, slowdown, tuple(float(x) for x in d),
        _median_of_medians(baseline), _median_of_medians(candidate), within_round_cv(baseline), within_round_cv(candidate),
    )


def _median_of_medians(rounds: Sequence[Sequence[float]]) -> float:
    return float(np.median([np.median(r) for r in rounds]))

def needs_remeasure(verdict: Verdict, config: GateConfig = GateConfig()) -> bool:
    """Whether to measure again: a REGRESSION before it counts, a PASS already slower by half the threshold."""
    if verdict.verdict == REGRESSION:
        return True
    return verdict.verdict == PASS and verdict.slowdown is not None and verdict.slowdown >= config.suspect * config.threshold


def confirm(first: tuple[Sequence[Sequence[float]], Sequence[Sequence[float]]],
            second: tuple[Sequence[Sequence[float]], Sequence[Sequence[float]]], resolution_s: float,
            config: GateConfig = GateConfig()) -> Verdict:
    """The verdict on both measurements' paired rounds together (first's rounds, then second's)."""
    return evaluate([*first[0], *second[0]], [*first[1], *second[1]], resolution_s, config)


def overall(verdicts: Mapping[str, Verdict]) -> str:
    """The run's verdict: REGRESSION if any benchmark regressed, else INVALID if any was, else PASS."""
    found = {v.verdict for v in verdicts.values()}
    for verdict in (REGRESSION, INVALID):
        if verdict in found:
            return verdict
    return PASS


BOOTSTRAP_RESAMPLES = 4000


def median_ratio_interval(d: Sequence[float], confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """exp of the median of per-round log-ratios `d`, and its bootstrap percentile interval.

    `d` as from `log_ratios`: per round, log(median B / median A). The interval resamples
    the rounds with replacement (seeded, so a report is reproducible); it needs at least
    two rounds, and with few rounds it is wide, as it should be.
    """
    values = np.asarray(d, dtype=float)
    if values.size < 2 or not np.all(np.isfinite(values)):
        raise ValueError(f"a ratio interval needs at least 2 finite per-round ratios, got {values.size}")
    rng = np.random.default_rng(seed)
    resampled = np.median(values[rng.integers(0, values.size, size=(BOOTSTRAP_RESAMPLES, values.size))], axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled, [tail, 1.0 - tail])
    return math.exp(float(np.median(values))), math.exp(float(low)), math.exp(float(high))
