"""Paired violation-of-expectation evaluation: does a video with an impossible event surprise more than its twin?

The intuitive-physics benchmarks (IntPhys, GRASP, InfLevel, and V-JEPA's reading of them) show a model pairs
of videos that differ only in whether something impossible happens, and ask whether its surprise is higher
for the impossible one. The figures, for one surprise score per video:

- **relative accuracy**: the share of pairs whose impossible video has the higher score, a tie counting half;
  with a percentile bootstrap confidence interval over pairs (seeded: the same seed, the same interval);
- **AUROC**: how well the score separates the impossible videos from the possible ones over all videos at once
  (each video once, however many pairs name it): the probability that an impossible video scores higher than
  a possible one, a tie counting half (the Mann-Whitney statistic).

Relative accuracy compares within a pair, so a difference between scenes that both videos of a pair share
cancels out; AUROC does not, and is lower when scenes differ more than the events do.

A pairs file is CSV with the rows `possible,impossible[,group]` (no header, or the header
`possible,impossible[,group]`), paths relative to the file's folder; blank lines and lines starting with `#`
are left out.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: How a video's per-window scores become its one surprise score.
AGGREGATIONS = ("max", "mean")
#: Bootstrap resamples `pair_figures` draws unless told otherwise.
DEFAULT_RESAMPLES = 10_000
PAIR_HEADER = ("possible", "impossible", "group")


@dataclass(frozen=True)
class Pair:
    """Two videos that differ in whether something impossible happens; `group` names the kind of event."""

    possible: Path
    impossible: Path
    group: str = ""


@dataclass(frozen=True)
class Interval:
    """A confidence interval [`low`, `high`] at `confidence` (e.g. 0.95)."""

    low: float
    high: float
    confidence: float


@dataclass(frozen=True)
class PairFigures:
    """The paired figures of one method (a model or a baseline) under one aggregation over windows.

    `outcomes` holds, per pair in the pairs' order, 1.0 where the impossible video scored higher, 0.5 on a
    tie, 0.0 otherwise; `accuracy` is their mean and `interval` its bootstrap confidence interval; `auroc`
    separates the impossible videos from the possible ones; `groups` is the relative accuracy per group
    (where the pairs name groups).
    """

    method: str
    aggregation: str
    pairs: int
    accuracy: float
    interval: Interval
    auroc: float
    outcomes: tuple[float, ...]
    groups: dict[str, float]


def read_pairs(path: str | os.PathLike) -> list[Pair]:
    """The pairs of a pairs file (see the module doc), paths resolved against the file's folder.

    Raises:
        OSError: the file cannot be read.
        ValueError: a row that is not `possible,impossible[,group]`, naming the file and line.
    """
    path = Path(path)
    folder = path.parent
    pairs = []
    with open(path, newline="") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            cells = [cell.strip() for cell in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if line == 1 and tuple(cells) == PAIR_HEADER[: len(cells)] and len(cells) >= 2:
                continue
            if len(cells) not in (2, 3) or not cells[0] or not cells[1]:
                raise ValueError(f"{path}, line {line}: expected possible,impossible[,group], got {row!r}")
            group = cells[2] if len(cells) == 3 else ""
            pairs.append(Pair(folder / cells[0], folder / cells[1], group))
    if not pairs:
        raise ValueError(f"{path}: no pairs (rows possible,impossible[,group])")
    return pairs


def pair_outcome(possible: float, impossible: float) -> float:
    """1.0 when `impossible` is the higher score, 0.5 on a tie, 0.0 otherwise.

    Raises:
        ValueError: a score that is not a number (NaN).
    """
    if math.isnan(possible) or math.isnan(impossible):
        raise ValueError(f"surprise scores must be numbers, got {possible} and {impossible}")
    return 1.0 if impossible > possible else 0.5 if impossible == possible else 0.0


def relative_accuracy(possible: Sequence[float], impossible: Sequence[float]) -> float:
    """The share of pairs (`possible[k]`, `impossible[k]`) whose impossible score is higher, a tie counting half.

    Raises:
        ValueError: the sequences differ in length or are empty.
    """
    if len(possible) != len(impossible) or not possible:
        raise ValueError(
            f"need as many possible as impossible scores, at least one; got {len(possible)} and {len(impossible)}"
        )
    return math.fsum(pair_outcome(p, i) for p, i in zip(possible, impossible)) / len(possible)


def auroc(negatives: Sequence[float], positives: Sequence[float]) -> float:
    """The area under the ROC curve of a score separating `positives` from `negatives`.

    Equal to the probability that a positive scores higher than a negative, a tie counting half (computed from
    mid-ranks, so in O(n log n)).

    Raises:
        ValueError: either side is empty, or a score is NaN.
    """
    if not negatives or not positives:
        raise ValueError(f"AUROC needs scores on both sides, got {len(negatives)} and {len(positives)}")
    scores = np.asarray([*negatives, *positives], dtype=np.float64)
    if np.isnan(scores).any():
        raise ValueError("AUROC of NaN scores")
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Tied scores share the mean of the ranks (1-based) they span.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + 1 + end) / 2
    n_neg, n_pos = len(negatives), len(positives)
    rank_sum = ranks[n_neg:].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bootstrap_interval(
    values: Sequence[float], *, confidence: float = 0.95, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> Interval:
    """A percentile bootstrap confidence interval of the mean of `values`.

    Draws `resamples` resamples of `values` with replacement (numpy's default generator seeded with `seed`:
    the same seed gives the same interval) and returns the (1 - confidence) / 2 and (1 + confidence) / 2
    quantiles of their means.

    Raises:
        ValueError: no values, a confidence outside (0, 1), or fewer than one resample.
    """
    if not values:
        raise ValueError("a bootstrap interval needs at least one value")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    data = np.asarray(values, dtype=np.float64)
    generator = np.random.default_rng(seed)
    means = data[generator.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(float(low), float(high), confidence)


def pair_figures(
    pairs: Sequence[Pair],
    scores: Mapping[Path, float],
    *,
    method: str = "",
    aggregation: str = "",
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> PairFigures:
    """The paired figures of one surprise score per video (`scores`, by path) over `pairs`.

    Every pair's two videos must have a score (leave out the pairs with an unread video first). `method` and
    `aggregation` only label the result.

    Raises:
        ValueError: no pairs, or a video of a pair without a score.
    """
    if not pairs:
        raise ValueError("no pairs to evaluate")
    for pair in pairs:
        for video in (pair.possible, pair.impossible):
            if video not in scores:
                raise ValueError(f"{video} has no surprise score")
    outcomes = tuple(pair_outcome(scores[pair.possible], scores[pair.impossible]) for pair in pairs)
    groups: dict[str, list[float]] = {}
    for pair, outcome in zip(pairs, outcomes):
        if pair.group:
            groups.setdefault(pair.group, []).append(outcome)
    possible = list(dict.fromkeys(pair.possible for pair in pairs))
    impossible = list(dict.fromkeys(pair.impossible for pair in pairs))
    return PairFigures(
        method=method,
        aggregation=aggregation,
        pairs=len(pairs),
        accuracy=math.fsum(outcomes) / len(outcomes),
        interval=bootstrap_interval(outcomes, confidence=confidence, resamples=resamples, seed=seed),
        auroc=auroc([scores[v] for v in possible], [scores[v] for v in impossible]),
        outcomes=outcomes,
        groups={name: math.fsum(values) / len(values) for name, values in groups.items()},
    )
