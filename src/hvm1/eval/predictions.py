"""Classification results: the metrics `hvm1 evaluate` and `hvm1 probe` report, and the files they write."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hvm1.data import Skipped

PREDICTIONS_FILE = "predictions.csv"
PER_CLASS_FILE = "per_class.csv"
SUMMARY_FILE = "summary.json"
#: How many of the most confused (true, predicted) pairs a summary lists.
CONFUSED_PAIRS = 10


@dataclass(frozen=True)
class ClassificationMetrics:
    """Top-1 and top-5 accuracy and mean per-class top-1 accuracy (over the classes present), in percent,
    and the mean cross-entropy loss (nats), over `count` examples."""

    count: int
    top1: float
    top5: float
    mean_class_accuracy: float
    loss: float


@dataclass
class ClassificationTally:
    """Running sums of a classification, batch by batch: the summed cross-entropy (nats), the top-1 and top-5
    hits (top-k for fewer than 5 classes) and the examples. Tallies add (`+`), and `as_tensor` /
    `from_tensor` carry them through a sum over ranks."""

    loss_sum: float = 0.0
    top1_hits: int = 0
    top5_hits: int = 0
    count: int = 0

    def add(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Count a batch, computed in the dtype of `logits`.

        Args:
            logits: (N, classes).
            labels: (N,) class indices.

        Returns:
            (N,) whether each example's top class is its label.

        Raises:
            ValueError: when the shapes do not match.
        """
        if logits.dim() != 2 or labels.shape != logits.shape[:1]:
            raise ValueError(
                f"expected logits (N, classes) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}"
            )
        labels = labels.long()
        hits = logits.topk(min(5, logits.shape[1]), dim=1).indices == labels[:, None]  # (N, 5)
        self.loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        self.top1_hits += int(hits[:, 0].sum().item())
        self.top5_hits += int(hits.any(dim=1).sum().item())
        self.count += len(labels)
        return hits[:, 0]

    def __add__(self, other: ClassificationTally) -> ClassificationTally:
        return ClassificationTally(
            self.loss_sum + other.loss_sum,
            self.top1_hits + other.top1_hits,
            self.top5_hits + other.top5_hits,
            self.count + other.count,
        )

    @property
    def top1(self) -> float:
        """Top-1 accuracy in percent (0 with no examples)."""
        return 100 * self.top1_hits / max(self.count, 1)

    @property
    def top5(self) -> float:
        """Top-5 accuracy in percent (0 with no examples)."""
        return 100 * self.top5_hits / max(self.count, 1)

    @property
    def loss(self) -> float:
        """Mean cross-entropy in nats (0 with no examples)."""
        return self.loss_sum / max(self.count, 1)

    def as_tensor(self) -> torch.Tensor:
        """The sums as a float64 tensor (loss, top-1 hits, top-5 hits, count), to sum over ranks.

        Returns:
            A (4,) float64 tensor.
        """
        return torch.tensor([self.loss_sum, self.top1_hits, self.top5_hits, self.count], dtype=torch.float64)

    @classmethod
    def from_tensor(cls, sums: torch.Tensor) -> ClassificationTally:
        """The tally of an `as_tensor` tensor (summed over ranks or not).

        Args:
            sums: (4,) loss, top-1 hits, top-5 hits, count.

        Returns:
            The tally.
        """
        loss_sum, top1_hits, top5_hits, count = sums.tolist()
        return cls(float(loss_sum), round(top1_hits), round(top5_hits), round(count))


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor) -> ClassificationMetrics:
    """The metrics of `logits` (N, classes) against integer `labels` (N,) in float64; top-5 is top-k for fewer
    classes.

    Args:
        logits: (N, classes).
        labels: (N,) class indices.

    Returns:
        The `ClassificationMetrics`: top-1, top-5, mean per-class accuracy and loss.

    Raises:
        ValueError: for mismatched shapes or no examples.
    """
    tally = ClassificationTally()
    labels = labels.long()
    correct = tally.add(logits.double(), labels).double()  # checks the shapes
    if tally.count == 0:
        raise ValueError("no examples to score")
    per_class = torch.stack([correct[labels == label].mean() for label in labels.unique()])
    return ClassificationMetrics(
        count=tally.count,
        top1=tally.top1,
        top5=tally.top5,
        mean_class_accuracy=100 * per_class.mean().item(),
        loss=tally.loss,
    )


@dataclass(frozen=True)
class ClassAccuracy:
    """Top-1 accuracy (%) on the `count` examples of class `index` (`name`, '' when unnamed)."""

    index: int
    name: str
    count: int
    top1: float


@dataclass(frozen=True)
class Confusion:
    """`count` examples of class `true` (named `true_name`) predicted as class `predicted` (`predicted_name`)."""

    true: int
    true_name: str
    predicted: int
    predicted_name: str
    count: int


@dataclass
class Predictions:
    """Per-example class scores and their metrics: `logits` (N, classes), averaged over views for a video;
    `labels` (N,); the `paths`; the `classes` labels index (None when unnamed); files `skipped` as
    unreadable; `settings` that made them (written into the summary)."""

    paths: list[str]
    labels: np.ndarray
    logits: np.ndarray
    metrics: ClassificationMetrics
    classes: list[str] | None = None
    skipped: list[Skipped] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def score(cls, paths: list[str], labels: np.ndarray, logits: np.ndarray, **details: Any) -> Predictions:
        """Predictions with their metrics computed; `details` are the other fields."""
        metrics = classification_metrics(torch.from_numpy(logits), torch.from_numpy(labels))
        return cls(paths, labels, logits, metrics, **details)

    def class_name(self, index: int) -> str:
        """The name of class `index`, '' when the classes are unnamed.

        Args:
            index: a class index.

        Returns:
            Its name, or ''.
        """
        names = self.classes or []
        return names[index] if 0 <= index < len(names) else ""

    def per_class(self) -> list[ClassAccuracy]:
        """Top-1 accuracy of each class that has examples, in class order."""
        predicted = self.logits.argmax(axis=1)
        rows = []
        for label in np.unique(self.labels):
            chosen = self.labels == label
            rows.append(
                ClassAccuracy(
                    int(label),
                    self.class_name(int(label)),
                    int(chosen.sum()),
                    100 * float((predicted[chosen] == label).mean()),
                )
            )
        return rows

    def confused_pairs(self, limit: int = CONFUSED_PAIRS) -> list[Confusion]:
        """The `limit` (true, predicted) pairs of different classes seen most often, most first (ties in class
        order).

        Args:
            limit: how many pairs.

        Returns:
            The `Confusion`s: true class, predicted class and count.
        """
        predicted = self.logits.argmax(axis=1)
        wrong = predicted != self.labels
        pairs, counts = np.unique(np.stack([self.labels[wrong], predicted[wrong]], axis=1), axis=0, return_counts=True)
        order = sorted(range(len(counts)), key=lambda i: (-counts[i], *pairs[i]))[:limit]
        return [
            Confusion(
                int(pairs[i][0]),
                self.class_name(int(pairs[i][0])),
                int(pairs[i][1]),
                self.class_name(int(pairs[i][1])),
                int(counts[i]),
            )
            for i in order
        ]

    def summary(self) -> dict[str, Any]:
        """Settings, metrics, the most confused pairs of classes, and the skipped files, as the JSON summary
        holds them."""
        return {
            **self.settings,
            **asdict(self.metrics),
            "most_confused": [asdict(pair) for pair in self.confused_pairs()],
            "skipped": [{"path": item.path, "reason": item.reason} for item in self.skipped],
        }

    def write(self, out_dir: str | Path) -> tuple[Path, Path, Path]:
        """Write `predictions.csv` (one row per example: path, label, prediction, their class names, the
        predicted probability, the top-5 classes), `per_class.csv` (each class with examples: index, name,
        examples, top-1 %) and `summary.json` into `out_dir`; returns the three paths.

        Args:
            out_dir: the folder.

        Returns:
            The paths of `predictions.csv`, `per_class.csv` and `summary.json`.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        probabilities = torch.from_numpy(self.logits).double().softmax(dim=1)
        top = probabilities.topk(min(5, probabilities.shape[1]), dim=1)
        name = self.class_name
        predictions = out_dir / PREDICTIONS_FILE
        with open(predictions, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "label_name", "prediction", "prediction_name", "probability", "top5"])
            for row, path in enumerate(self.paths):
                label, predicted = int(self.labels[row]), int(top.indices[row, 0])
                writer.writerow(
                    [
                        path,
                        label,
                        name(label),
                        predicted,
                        name(predicted),
                        f"{top.values[row, 0].item():.6f}",
                        " ".join(str(int(index)) for index in top.indices[row]),
                    ]
                )
        per_class = out_dir / PER_CLASS_FILE
        with open(per_class, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["class", "name", "examples", "top1"])
            for accuracy in self.per_class():
                writer.writerow([accuracy.index, accuracy.name, accuracy.count, f"{accuracy.top1:.2f}"])
        summary = out_dir / SUMMARY_FILE
        summary.write_text(json.dumps(self.summary(), indent=2, ensure_ascii=False) + "\n")
        return predictions, per_class, summary
