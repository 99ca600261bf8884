"""Classification results: the metrics `hvm1 evaluate` and `hvm1 probe` report, and the files they write."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hvm1.data import Skipped

PREDICTIONS_FILE = "predictions.csv"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class ClassificationMetrics:
    """Top-1 and top-5 accuracy and mean per-class top-1 accuracy (over the classes present), in percent,
    and the mean cross-entropy loss (nats), over `count` examples."""

    count: int
    top1: float
    top5: float
    mean_class_accuracy: float
    loss: float


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor) -> ClassificationMetrics:
    """The metrics of `logits` (N, classes) against integer `labels` (N,); top-5 is top-k for fewer classes."""
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"expected logits (N, classes) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    if len(labels) == 0:
        raise ValueError("no examples to score")
    logits, labels = logits.double(), labels.long()
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices  # (N, 5)
    hits = top == labels[:, None]
    correct = hits[:, 0].double()
    present = labels.unique()
    per_class = torch.stack([correct[labels == label].mean() for label in present])
    return ClassificationMetrics(
        count=len(labels),
        top1=100 * correct.mean().item(),
        top5=100 * hits.any(dim=1).double().mean().item(),
        mean_class_accuracy=100 * per_class.mean().item(),
        loss=F.cross_entropy(logits, labels).item(),
    )


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

    def summary(self) -> dict[str, Any]:
        """Settings, metrics, and the skipped files, as the JSON summary holds them."""
        return {
            **self.settings, **asdict(self.metrics),
            "skipped": [{"path": item.path, "reason": item.reason} for item in self.skipped],
        }

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write `predictions.csv` (one row per example: path, label, prediction, their class names, the
        predicted probability, the top-5 classes) and `summary.json` into `out_dir`; returns both paths."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        probabilities = torch.from_numpy(self.logits).double().softmax(dim=1)
        top = probabilities.topk(min(5, probabilities.shape[1]), dim=1)
        names = self.classes or []

        def name(index: int) -> str:
            return names[index] if 0 <= index < len(names) else ""

        predictions = out_dir / PREDICTIONS_FILE
        with open(predictions, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "label_name", "prediction", "prediction_name", "probability", "top5"])
            for row, path in enumerate(self.paths):
                label, predicted = int(self.labels[row]), int(top.indices[row, 0])
                writer.writerow([
                    path, label, name(label), predicted, name(predicted), f"{top.values[row, 0].item():.6f}",
                    " ".join(str(int(index)) for index in top.indices[row]),
                ])
        summary = out_dir / SUMMARY_FILE
        summary.write_text(json.dumps(self.summary(), indent=2) + "\n")
        return predictions, summary


def new_folder(parent: str | Path, *names: str) -> Path:
    """A folder under `parent` named after `names` (reduced to safe characters) that does not exist yet:
    `a_b`, else `a_b-2`, `a_b-3`, ..."""
    stem = "_".join(re.sub(r"[^A-Za-z0-9_@.+-]+", "-", name).strip("-.") or "x" for name in names)
    parent = Path(parent)
    candidate, number = parent / stem, 1
    while candidate.exists():
        number += 1
        candidate = parent / f"{stem}-{number}"
    return candidate
