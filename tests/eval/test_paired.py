"""Paired evaluation: relative accuracy, AUROC and the bootstrap interval on values worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvm1.eval.paired import Pair, auroc, bootstrap_interval, pair_figures, read_pairs, relative_accuracy


def test_relative_accuracy_counts_a_tie_as_half():
    # pairs: 1 < 2 right, 2 = 2 tie, 3 > 1 wrong, 4 < 5 right: (1 + 0.5 + 0 + 1) / 4
    assert relative_accuracy([1, 2, 3, 4], [2, 2, 1, 5]) == 0.625
    assert relative_accuracy([0.0], [1.0]) == 1.0
    with pytest.raises(ValueError, match="as many"):
        relative_accuracy([1, 2], [3])
    with pytest.raises(ValueError, match="NaN|numbers"):
        relative_accuracy([float("nan")], [1.0])


def test_auroc_counts_ties_as_half():
    negatives = [0.1, 0.4, 0.35, 0.8]
    positives = [0.35, 0.8, 0.9]
    # 0.35 beats 0.1 and ties 0.35: 1.5; 0.8 beats three and ties one: 3.5; 0.9 beats all four: 4 -> 9 / 12
    assert auroc(negatives, positives) == pytest.approx(0.75, abs=1e-15)
    assert auroc([1, 2], [3, 4]) == 1.0
    assert auroc([3, 4], [1, 2]) == 0.0
    assert auroc([5, 5, 5], [5, 5]) == 0.5  # all tied: chance
    with pytest.raises(ValueError, match="both sides"):
        auroc([], [1.0])


def test_bootstrap_of_two_values_follows_the_binomial_distribution_of_the_resampled_mean():
    # The mean of two draws from {0, 1} is 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4.
    wide = bootstrap_interval([0.0, 1.0], confidence=0.95, seed=0)
    assert (wide.low, wide.high, wide.confidence) == (0.0, 1.0, 0.95)
    narrow = bootstrap_interval([0.0, 1.0], confidence=0.4, seed=0)  # the 30% and 70% quantiles
    assert (narrow.low, narrow.high) == (0.5, 0.5)
    # Three draws from {0, 0, 3}: the mean is k ~ Binomial(3, 1/3), P(k <= 1) = 20/27, P(k <= 2) = 26/27.
    interval = bootstrap_interval([0.0, 0.0, 3.0], confidence=0.9, seed=1)
    assert (interval.low, interval.high) == (0.0, 2.0)


def test_bootstrap_is_seeded_and_constant_values_give_a_point():
    values = [((7 * k) % 11) / 10 for k in range(20)]
    assert bootstrap_interval(values, seed=3) == bootstrap_interval(values, seed=3)
    assert bootstrap_interval(values, seed=3) != bootstrap_interval(values, seed=4)
    point = bootstrap_interval([0.5] * 6, seed=0)
    assert (point.low, point.high) == (0.5, 0.5)
    for bad in ({"confidence": 1.0}, {"resamples": 0}):
        with pytest.raises(ValueError):
            bootstrap_interval(values, **bad)


def test_pair_figures_per_pair_and_per_group(tmp_path: Path):
    a, b, c, d = (tmp_path / name for name in "abcd")
    pairs = [Pair(a, b, "vanish"), Pair(c, d, "jump"), Pair(a, d, "jump")]
    scores = {a: 1.0, b: 2.0, c: 3.0, d: 2.5}
    figures = pair_figures(pairs, scores, method="m", aggregation="max", seed=0)
    assert figures.outcomes == (1.0, 0.0, 1.0)
    assert figures.accuracy == pytest.approx(2 / 3)
    assert figures.groups == {"vanish": 1.0, "jump": 0.5}
    # possible {a: 1, c: 3}, impossible {b: 2, d: 2.5}: b beats a, d beats a -> 2 of 4
    assert figures.auroc == 0.5
    assert figures.interval.low <= figures.accuracy <= figures.interval.high
    with pytest.raises(ValueError, match="no surprise score"):
        pair_figures(pairs, {a: 1.0, b: 2.0}, seed=0)


def test_read_pairs_resolves_paths_against_the_file(tmp_path: Path):
    folder = tmp_path / "set"
    folder.mkdir()
    text = "possible,impossible,group\n# a comment\nx/p1.mp4,x/i1.mp4,vanish\n\np2.mp4, i2.mp4\n"
    (folder / "pairs.csv").write_text(text)
    pairs = read_pairs(folder / "pairs.csv")
    assert pairs == [
        Pair(folder / "x/p1.mp4", folder / "x/i1.mp4", "vanish"),
        Pair(folder / "p2.mp4", folder / "i2.mp4"),
    ]
    (folder / "bad.csv").write_text("p.mp4,i.mp4\nonly-one.mp4\n")
    with pytest.raises(ValueError, match=r"bad\.csv, line 2"):
        read_pairs(folder / "bad.csv")
    (folder / "empty.csv").write_text("# nothing\n")
    with pytest.raises(ValueError, match="no pairs"):
        read_pairs(folder / "empty.csv")
