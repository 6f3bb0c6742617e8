"""The significance table on constructed data whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tuneflow.analysis.significance import (
    Finalist,
    holm,
    paired_p_value,
    significance_table,
    t_interval,
    wilson_interval,
)

RANGES = ("2014-01-01..2014-04-01", "2014-04-01..2014-07-01", "2014-07-01..2014-10-01")


def finalist(label: str, base: dict[str, float], gap: float, seeds: int, rng: np.random.Generator,
             noise: float = 0.05, n_examples: int | None = None) -> Finalist:
    """Scores = the range's difficulty + a configuration gap + seed noise."""
    return Finalist(
        label,
        {(seed, name): base[name] + gap + noise * float(rng.standard_normal()) for seed in range(seeds)
         for name in base},
        n_examples,
    )


def test_a_known_gap_is_called_real_and_wins_every_range() -> None:
    rng = np.random.default_rng(1)
    difficulty = {name: 2.0 + i for i, name in enumerate(RANGES)}  # ranges differ far more than configs
    good = finalist("trial 7", difficulty, 0.0, seeds=5, rng=rng)
    worse = finalist("trial 3", difficulty, 0.3, seeds=5, rng=rng)
    table = significance_table([worse, good], "minimize")
    first, second = table.rows
    assert (first.label, second.label) == ("trial 7", "trial 3")
    assert first.comparison is not None and first.comparison.p_adjusted < 1e-6
    assert first.comparison.mean_difference == pytest.approx(-0.3, abs=0.05)
    assert first.comparison.wins_every_range
    assert first.verdict == "better than #2 at 95%"
    assert second.verdict == "worse than #1 at 95%"
    assert table.verdict == "#1 (trial 7) is better than #2 (trial 3) at 95%"
    # The interval of each is over its 5 repeats and holds its mean.
    assert first.n_repeats == 5 and first.ci[0] < first.mean < first.ci[1]


def test_identical_configurations_are_not_distinguishable() -> None:
    scores = {(seed, name): 1.0 + 0.1 * seed for seed in range(4) for name in RANGES}
    table = significance_table([Finalist("trial 1", scores), Finalist("trial 2", dict(scores))], "minimize")
    assert table.rows[0].comparison is not None and table.rows[0].comparison.p_value == 1.0
    assert table.rows[0].verdict == "not distinguishable from #2"
    assert "not distinguishable from #2" in table.verdict


def test_the_paired_test_keeps_its_false_alarm_rate_and_finds_real_gaps() -> None:
    """Over many simulated studies: identical configurations (independent noise) are called different
    about 5% of the time, a gap of two noise standard deviations nearly always (power ~0.99 at
    15 pairs; at one standard deviation it is ~0.7, as the t distribution predicts)."""
    rng = np.random.default_rng(0)
    difficulty = {name: float(i) for i, name in enumerate(RANGES)}

    def called_different(gap: float) -> bool:
        a = finalist("a", difficulty, 0.0, seeds=5, rng=rng, noise=0.1)
        b = finalist("b", difficulty, gap, seeds=5, rng=rng, noise=0.1)
        return significance_table([a, b], "minimize").rows[0].comparison.better is not None  # type: ignore[union-attr]

    false_alarms = sum(called_different(0.0) for _ in range(300)) / 300
    detections = sum(called_different(0.2) for _ in range(100)) / 100
    assert false_alarms < 0.09
    assert detections > 0.9


def test_a_gain_inside_the_test_set_noise_is_not_called_real() -> None:
    """The seed teams' case: 0.09 points of accuracy on 10,000 images, consistent over seeds."""
    seeds = range(5)
    a = Finalist("trial 1", {(s, "holdout"): 0.9810 + 0.0001 * s for s in seeds}, n_examples=10_000)
    b = Finalist("trial 2", {(s, "holdout"): 0.9801 + 0.0001 * s for s in seeds}, n_examples=10_000)
    table = significance_table([a, b], "maximize")
    leader = table.rows[0]
    assert leader.label == "trial 1"
    assert leader.comparison is not None and leader.comparison.p_value == 0.0  # the seeds agree perfectly...
    assert not leader.comparison.beyond_test_set_noise  # ...but 0.0009 < the Wilson half-width (~0.0027)
    assert leader.verdict == "not distinguishable from #2"
    assert leader.wilson is not None and leader.wilson[0] < 0.9801 < leader.wilson[1]
    assert any("test-set noise" in note for note in table.notes)
    # The same gap on 1,000,000 images is beyond the test-set noise.
    big = [Finalist(f.label, f.scores, n_examples=1_000_000) for f in (a, b)]
    assert significance_table(big, "maximize").rows[0].verdict == "better than #2 at 95%"


def test_the_leader_can_beat_one_finalist_and_tie_another() -> None:
    rng = np.random.default_rng(3)
    difficulty = {name: 0.8 for name in RANGES}
    best = finalist("trial 4", difficulty, 0.10, seeds=6, rng=rng, noise=0.01)
    close = finalist("trial 9", difficulty, 0.10, seeds=6, rng=rng, noise=0.01)
    far = finalist("trial 2", difficulty, 0.0, seeds=6, rng=rng, noise=0.01)
    table = significance_table([far, close, best], "maximize")
    labels = [row.label for row in table.rows]
    assert labels[2] == "trial 2"
    assert table.rows[2].verdict == "worse than #1 at 95%"
    assert table.rows[1].verdict == "not distinguishable from #1"
    assert table.verdict == f"#1 ({labels[0]}) is better than #3 (trial 2) at 95%; not distinguishable from #2 ({labels[1]})"


def test_wins_every_range_is_false_when_the_leader_loses_one_range() -> None:
    a = Finalist("a", {(s, r): (0.0 if r != RANGES[2] else 1.2) for s in range(3) for r in RANGES})
    b = Finalist("b", {(s, r): 1.0 for s in range(3) for r in RANGES})
    leader = significance_table([a, b], "minimize").rows[0]
    assert leader.label == "a" and leader.comparison is not None
    assert not leader.comparison.wins_every_range


def test_one_finalist_or_none() -> None:
    only = significance_table([Finalist("trial 0", {(1, "holdout"): 0.5, (2, "holdout"): 0.6})], "minimize")
    assert only.rows[0].verdict == "only finalist" and "only finalist" in only.verdict
    assert significance_table([Finalist("x", {})], "minimize").rows == []


def test_intervals_and_adjustment_match_textbook_values() -> None:
    low, high = t_interval([1.0, 2.0, 3.0])
    assert (low, high) == pytest.approx((2 - 4.302653 / math.sqrt(3), 2 + 4.302653 / math.sqrt(3)))
    assert all(math.isnan(v) for v in t_interval([1.0]))
    assert wilson_interval(0.5, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert paired_p_value([1.0, 2.0], [1.5, 2.5]) == 0.0  # a constant gap with no noise at all
    with pytest.raises(ValueError, match="same length"):
        paired_p_value([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="direction"):
        significance_table([], "lower")
