"""Is the best configuration really better than the runner-up? Pure statistics over repeats.

Each finalist was re-trained with the same new seeds on every date range (``tuneflow repeat``): its
scores are keyed by ``(seed, range)`` units. For each finalist this module gives

- the mean and a 95% **t interval** over its repeats. One repeat is one seed; its score is the mean over
  the ranges, as in the study, so a hard range does not count as noise;
- for an accuracy measured on a fixed validation set of known size, a 95% **Wilson interval** too: the
  spread that comes from which examples happen to be in that set, which no number of seeds reduces;
- a **paired t-test** (``scipy.stats.ttest_rel``) against the leader (the leader against the runner-up),
  paired over the ``(seed, range)`` units both have. Pairing removes what the two share (a hard range,
  a lucky seed). The t-test, not Wilcoxon's signed-rank test: a few seeds are the usual budget, and with
  n <= 5 pairs no Wilcoxon p-value can go below 0.05 (the exact two-sided minimum is 2/2^n), so it could
  never call any gap real. The leader's comparisons are Holm-adjusted, since it is tested against
  every other finalist;
- whether it wins on every range, and a plain verdict.

A gap is called real ("better than #2 at 95%") only when the paired test says so and, for accuracies on a
fixed set, the leader's mean also lies outside the runner-up's Wilson interval (a gain smaller than the
test-set noise is not one). Repeats use new seeds, never the study's own trial: that trial won partly by
luck, and scoring it again would count the luck twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean

#: One repeat unit: (seed, range name). Tabular data has the single range ``holdout``.
Unit = tuple[int, str]


@dataclass(frozen=True)
class Finalist:
    """One configuration and its repeat scores."""

    #: How tables name it, e.g. ``trial 12``.
    label: str
    #: Objective per (seed, range) unit.
    scores: Mapping[Unit, float]
    #: Validation examples per repeat, when the objective is an accuracy on a fixed set (else None).
    n_examples: int | None = None
    #: The objective of each repeat as the study computes it over ranges (mean, median or worst:
    #: ``data.objective_over_ranges``); None = the mean of its range scores.
    seed_objectives: Mapping[int, float] | None = None

    def per_seed(self) -> dict[int, float]:
        """The objective of each repeat."""
        if self.seed_objectives is not None:
            return dict(sorted(self.seed_objectives.items()))
        by_seed: dict[int, list[float]] = {}
        for (seed, _), value in self.scores.items():
            by_seed.setdefault(seed, []).append(value)
        return {seed: fmean(values) for seed, values in sorted(by_seed.items())}

    def per_range(self) -> dict[str, float]:
        """The mean of each range over seeds."""
        by_range: dict[str, list[float]] = {}
        for (_, name), value in self.scores.items():
            by_range.setdefault(name, []).append(value)
        return {name: fmean(values) for name, values in sorted(by_range.items())}

    @property
    def mean(self) -> float:
        seeds = self.per_seed()
        return fmean(seeds.values()) if seeds else math.nan


@dataclass(frozen=True)
class Comparison:
    """A paired test of ``finalist`` against ``other``."""

    other: str
    n_pairs: int
    #: mean(finalist - other) over the shared units, in the objective's units.
    mean_difference: float
    p_value: float
    #: Holm-adjusted p-value (the leader is compared with every other finalist).
    p_adjusted: float
    #: Whether the finalist is better than ``other`` on every range (mean over seeds).
    wins_every_range: bool
    #: Whether the gap exceeds the test-set noise (Wilson); True when that does not apply.
    beyond_test_set_noise: bool
    #: The test says the finalist is better / worse (None: not distinguishable).
    better: bool | None


@dataclass(frozen=True)
class Row:
    rank: int
    label: str
    n_repeats: int
    mean: float
    ci: tuple[float, float]
    #: Wilson interval of an accuracy on a fixed set; None when the objective is not one.
    wilson: tuple[float, float] | None
    comparison: Comparison | None
    verdict: str


@dataclass(frozen=True)
class Table:
    rows: list[Row]
    #: One sentence about the leader, e.g. ``#1 (trial 12) is better than #2 (trial 3) at 95%``.
    verdict: str
    direction: str
    confidence: float = 0.95
    test: str = "paired t-test (scipy.stats.ttest_rel) over (seed, range) units, Holm-adjusted"
    notes: list[str] = field(default_factory=list)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean; (nan, nan) for fewer than two values."""
    from scipy import stats

    if len(values) < 2:
        return math.nan, math.nan
    mean = fmean(values)
    spread = stats.sem(values)
    if spread == 0:
        return mean, mean
    low, high = stats.t.interval(confidence, len(values) - 1, loc=mean, scale=spread)
    return float(low), float(high)


def wilson_interval(proportion: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of an accuracy ``proportion`` measured on ``n`` examples."""
    from scipy import stats

    if n < 1 or not 0.0 <= proportion <= 1.0:
        raise ValueError(f"a Wilson interval needs 0 <= proportion <= 1 and n >= 1, got {proportion}, {n}")
    successes = round(proportion * n)
    interval = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def paired_p_value(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided paired t-test p-value. Identical scores give 1; a constant nonzero gap (training
    that does not depend on the seed) gives 0: there is no noise for it to hide in."""
    from scipy import stats

    if len(a) != len(b):
        raise ValueError(f"paired samples must have the same length, got {len(a)} and {len(b)}")
    differences = [x - y for x, y in zip(a, b)]
    if len(differences) < 2:
        return math.nan
    if max(differences) == min(differences):
        return 1.0 if differences[0] == 0 else 0.0
    return float(stats.ttest_rel(a, b).pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and is not counted)."""
    finite = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for position, (p, index) in enumerate(finite):
        running = max(running, min(1.0, (len(finite) - position) * p))
        adjusted[index] = running
    return adjusted


def is_better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "maximize" else a < b


def rank(finalists: Sequence[Finalist], direction: str) -> list[Finalist]:
    """Best mean over repeats first (not the study's value: that one was selected for its luck)."""
    scored = [f for f in finalists if f.scores]
    return sorted(scored, key=lambda f: f.mean, reverse=direction == "maximize")


def beyond_test_set_noise(finalist: Finalist, other: Finalist, confidence: float) -> bool:
    """For accuracies on a fixed set: does ``finalist``'s mean lie outside ``other``'s Wilson interval?
    (Always True when the objective is not such an accuracy.)"""
    if not (finalist.n_examples and other.n_examples):
        return True
    low, high = wilson_interval(other.mean, other.n_examples, confidence)
    return not low <= finalist.mean <= high


def compare(
    finalist: Finalist, other: Finalist, direction: str, *, p_value: float, p_adjusted: float, significant: bool,
    beyond_noise: bool = True,
) -> Comparison:
    """``finalist`` against ``other`` over the units both have; ``significant`` is the test's decision."""
    shared = sorted(set(finalist.scores) & set(other.scores))
    mean_difference = fmean(finalist.scores[u] - other.scores[u] for u in shared) if shared else math.nan
    ranges_mine, ranges_theirs = finalist.per_range(), other.per_range()
    wins = bool(ranges_mine) and all(
        name in ranges_theirs and is_better(value, ranges_theirs[name], direction)
        for name, value in ranges_mine.items()
    )
    better = None
    if significant and mean_difference != 0 and not math.isnan(mean_difference):
        better = is_better(mean_difference, 0.0, direction)
    return Comparison(other.label, len(shared), mean_difference, p_value, p_adjusted, wins, beyond_noise, better)


def significance_table(
    finalists: Sequence[Finalist], direction: str, confidence: float = 0.95
) -> Table:
    """Rank finalists by their repeat mean, test the leader against every other one, and say it plainly."""
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction is {direction!r}, but must be minimize or maximize")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence is {confidence}, but must be between 0 and 1")
    ranked = rank(finalists, direction)
    if not ranked:
        return Table([], "no finalist has repeats yet: run tuneflow repeat STUDY", direction, confidence)
    leader, followers = ranked[0], ranked[1:]
    raw = [_paired_p(leader, other) for other in followers]
    adjusted = holm(raw)
    noise = [beyond_test_set_noise(leader, other, confidence) for other in followers]
    significant = [not math.isnan(p) and p < 1.0 - confidence and n for p, n in zip(adjusted, noise)]
    leader_vs = [
        compare(leader, other, direction, p_value=p, p_adjusted=p_adj, significant=s, beyond_noise=n)
        for other, p, p_adj, s, n in zip(followers, raw, adjusted, significant, noise)
    ]
    percent = f"{confidence:.0%}"
    rows = [_row(1, leader, leader_vs[0] if leader_vs else None, confidence,
                 _leader_verdict(leader_vs[0], percent) if leader_vs else "only finalist")]
    for position, (other, p, p_adj, s, n) in enumerate(zip(followers, raw, adjusted, significant, noise)):
        against_leader = compare(other, leader, direction, p_value=p, p_adjusted=p_adj, significant=s, beyond_noise=n)
        rows.append(_row(position + 2, other, against_leader, confidence, _follower_verdict(against_leader, percent)))
    return Table(rows, overall_verdict(ranked, leader_vs, percent), direction, confidence,
                 notes=_notes(ranked, leader_vs, confidence))


def _row(number: int, finalist: Finalist, comparison: Comparison | None, confidence: float, verdict: str) -> Row:
    per_seed = list(finalist.per_seed().values())
    wilson = wilson_interval(finalist.mean, finalist.n_examples, confidence) if finalist.n_examples else None
    return Row(number, finalist.label, len(per_seed), finalist.mean, t_interval(per_seed, confidence), wilson,
               comparison, verdict)


def _paired_p(a: Finalist, b: Finalist) -> float:
    shared = sorted(set(a.scores) & set(b.scores))
    return paired_p_value([a.scores[u] for u in shared], [b.scores[u] for u in shared])


def _leader_verdict(comparison: Comparison, percent: str) -> str:
    # The leader has the best mean, so a significant paired gap can only be in its favour.
    if comparison.better:
        return f"better than #2 at {percent}"
    return "not distinguishable from #2"


def _follower_verdict(comparison: Comparison, percent: str) -> str:
    if comparison.better is False:
        return f"worse than #1 at {percent}"
    if comparison.better:
        return f"better than #1 at {percent}"
    return "not distinguishable from #1"


def overall_verdict(ranked: Sequence[Finalist], comparisons: Sequence[Comparison], percent: str) -> str:
    leader = f"#1 ({ranked[0].label})"
    if not comparisons:
        return f"{leader} is the only finalist with repeats; nothing to compare"
    better = [f"#{i + 2} ({c.other})" for i, c in enumerate(comparisons) if c.better]
    tied = [f"#{i + 2} ({c.other})" for i, c in enumerate(comparisons) if not c.better]
    parts = []
    if better:
        parts.append(f"better than {', '.join(better)} at {percent}")
    if tied:
        parts.append(f"not distinguishable from {', '.join(tied)}")
    return f"{leader} is " + "; ".join(parts)


def _notes(ranked: Sequence[Finalist], comparisons: Sequence[Comparison], confidence: float) -> list[str]:
    notes = []
    for index, comparison in enumerate(comparisons):
        if comparison.n_pairs < 2:
            notes.append(f"#{index + 2} shares fewer than 2 (seed, range) units with #1: no test possible")
        elif not comparison.beyond_test_set_noise and comparison.p_adjusted < 1.0 - confidence:
            notes.append(f"#1 vs #{index + 2}: the seeds agree, but the gap is inside the Wilson interval "
                         "of the validation set (test-set noise)")
    if any(len(f.per_seed()) < 3 for f in ranked):
        notes.append("fewer than 3 repeats for some finalist: intervals are wide; add --seeds")
    return notes
