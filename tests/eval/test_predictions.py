"""The classification tally that evaluate, the probes and finetuning validation share."""

import math

import pytest
import torch

from hvm1.eval.predictions import ClassificationTally, classification_metrics

# Every row ranks the 6 classes 0 > 1 > ... > 5 (logits 5, 4, ..., 0): label i is hit at rank i + 1 and costs
# i + log(sum_j e^-j) nats of cross-entropy.
RANKED = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]] * 3)
LOG_PARTITION = math.log(sum(math.exp(-j) for j in range(6)))


def test_a_tally_counts_hits_and_loss_batch_by_batch():
    labels = torch.tensor([0, 5, 4])  # top-1 hit; missed; in the top 5 only
    tally = ClassificationTally()
    first = tally.add(RANKED[:2], labels[:2])
    tally.add(RANKED[2:], labels[2:])
    assert first.tolist() == [True, False]
    assert (tally.top1_hits, tally.top5_hits, tally.count) == (1, 2, 3)
    assert tally.top1 == pytest.approx(100 / 3) and tally.top5 == pytest.approx(200 / 3)
    assert tally.loss == pytest.approx((0 + 5 + 4 + 3 * LOG_PARTITION) / 3)


def test_tallies_add_and_survive_a_sum_over_ranks():
    one, other = ClassificationTally(), ClassificationTally()
    one.add(RANKED[:1], torch.tensor([0]))
    other.add(RANKED[:2], torch.tensor([1, 1]))
    summed = ClassificationTally.from_tensor(one.as_tensor() + other.as_tensor())
    assert summed == one + other
    assert (summed.top1_hits, summed.top5_hits, summed.count) == (1, 3, 3)
    assert summed.loss == pytest.approx((0 + 1 + 1 + 3 * LOG_PARTITION) / 3)


def test_an_empty_tally_reads_zero_and_bad_shapes_are_named():
    empty = ClassificationTally()
    assert (empty.top1, empty.top5, empty.loss, empty.count) == (0.0, 0.0, 0.0, 0)
    with pytest.raises(ValueError, match=r"expected logits \(N, classes\) and labels \(N,\), got \(3, 6\) and \(2,\)"):
        empty.add(RANKED, torch.tensor([0, 1]))


def test_classification_metrics_agree_with_the_tally_and_add_the_class_mean():
    labels = torch.tensor([0, 5, 0])  # class 0: both right; class 5: wrong -> mean per-class 50 %
    metrics = classification_metrics(RANKED, labels)
    assert (metrics.count, metrics.top1, metrics.top5) == (3, pytest.approx(200 / 3), pytest.approx(200 / 3))
    assert metrics.mean_class_accuracy == pytest.approx(50.0)
    assert metrics.loss == pytest.approx((0 + 5 + 0 + 3 * LOG_PARTITION) / 3)
    with pytest.raises(ValueError, match="no examples to score"):
        classification_metrics(torch.zeros(0, 6), torch.zeros(0))
