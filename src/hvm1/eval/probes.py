"""Probes on frozen embeddings: logistic regression (full-batch L-BFGS in torch) and k-nearest neighbours.

Both take the files `hvm1 embed` writes for a labelled train and test set, optionally keep only `shots`
training videos per class (drawn with `seed`), and score the test set with the metrics `hvm1 evaluate`
reports, so a few-shot study needs no finetuning of the whole network.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F

from hvm1.data import select_shots

from .predictions import Predictions
from .store import Embeddings

logger = logging.getLogger(__name__)

METHODS = ("linear", "knn")


def fit_linear(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, weight_decay: float = 1e-4, max_iter: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression on (N, D) features: weights (D, classes) and bias (classes,)
    minimising mean cross-entropy + `weight_decay` * |weights|^2, full-batch L-BFGS in float64 from zeros
    (deterministic).

    Args:
        features: (N, D).
        labels: (N,) class indices.
        num_classes: the number of classes.
        weight_decay: the L2 penalty's weight.
        max_iter: L-BFGS iterations at most.

    Returns:
        `(weights, bias)`: (D, classes) and (classes,).
    """
    features, labels = features.double(), labels.long()
    weight = torch.zeros(features.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(features @ weight + bias, labels) + weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def knn_scores(
    train: torch.Tensor,
    labels: torch.Tensor,
    test: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
) -> torch.Tensor:
    """Log class probabilities (N_test, classes) from the `k` most cosine-similar training examples, each
    voting for its class with weight exp(similarity / temperature), the votes normalised to sum to 1.

    Args:
        train: training features (N_train, D).
        labels: their class indices (N_train,).
        test: test features (N_test, D).
        num_classes: the number of classes.
        k: neighbours that vote.
        temperature: the votes' temperature.

    Returns:
        Log probabilities (N_test, classes).
    """
    similarity = F.normalize(test.double(), dim=1) @ F.normalize(train.double(), dim=1).T  # (N_test, N_train)
    top = similarity.topk(min(k, train.shape[0]), dim=1)
    votes = torch.zeros(test.shape[0], num_classes, dtype=torch.float64)
    votes.scatter_add_(1, labels.long()[top.indices], (top.values / temperature).exp())
    return (votes / votes.sum(dim=1, keepdim=True)).clamp_min(1e-12).log()


def probe(
    train: Embeddings,
    test: Embeddings,
    *,
    method: str = "linear",
    shots: int | None = None,
    seed: int = 0,
    k: int = 20,
    weight_decay: float = 1e-4,
) -> Predictions:
    """Fit a probe on labelled training embeddings and score the test ones (both pooled per video).

    Args:
        train: the training embeddings (labelled).
        test: the test embeddings (labelled), from the same model, pooling and classes.
        method: 'linear' (logistic regression on features standardised with the training mean and std) or
            'knn' (`k` nearest neighbours by cosine similarity).
        shots: keep that many training videos per class, drawn with `seed` as `hvm1 finetune --shots --seed`
            draws them (the same videos of the same listing); None keeps all.
        seed: the seed of the shots' draw.
        k: the neighbours of the kNN probe.
        weight_decay: the linear probe's L2 penalty.

    Returns:
        The test set's `Predictions` (scores per class, labels, metrics).

    Raises:
        ValueError: unlabelled rows, token embeddings, or files from other models, poolings, widths or class
            lists.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    check_pair(train, test)
    if shots is not None:
        train = train.select(select_shots(train.labels.tolist(), shots, seed))
    num_classes = len(train.classes) if train.classes else int(max(train.labels.max(), test.labels.max())) + 1
    x_train, y_train = torch.from_numpy(train.embeddings).double(), torch.from_numpy(train.labels)
    x_test = torch.from_numpy(test.embeddings).double()
    if method == "linear":
        mean, std = x_train.mean(dim=0), x_train.std(dim=0, correction=0).clamp_min(1e-6)
        weight, bias = fit_linear((x_train - mean) / std, y_train, num_classes, weight_decay)
        logits = ((x_test - mean) / std) @ weight + bias
    else:
        logits = knn_scores(x_train, y_train, x_test, num_classes, k)
    settings: dict[str, Any] = {
        "method": method,
        "shots": shots,
        "seed": seed if shots is not None else None,
        "train_videos": len(train),
        "num_classes": num_classes,
        "model": train.settings.get("model"),
        "pool": train.settings.get("pool"),
        **({"weight_decay": weight_decay} if method == "linear" else {"k": k}),
    }
    logger.info("%s probe: %d training videos, %d test videos, %d classes", method, len(train), len(test), num_classes)
    return Predictions.score(test.paths, test.labels, logits.numpy(), classes=test.classes, settings=settings)


def check_pair(train: Embeddings, test: Embeddings, tokens: bool = False) -> None:
    """Raise ValueError unless `train` and `test` are labelled embeddings of one kind that a probe can compare:
    one vector per video, or with `tokens` one token set per video (`--pool tokens`)."""
    for name, rows in (("train", train), ("test", test)):
        if len(rows) == 0:
            raise ValueError(f"the {name} embeddings hold no video")
        if tokens and rows.embeddings.ndim != 3:
            raise ValueError(
                f"the {name} embeddings are one {rows.embeddings.shape[1:]} vector per video; an attentive probe "
                f"takes tokens (embed with --pool tokens)"
            )
        if not tokens and rows.embeddings.ndim != 2:
            raise ValueError(
                f"the {name} embeddings are {rows.embeddings.shape[1:]} tokens per video; a probe takes one "
                f"vector per video (embed with --pool cls or mean)"
            )
        if unlabelled := int((rows.labels < 0).sum()):
            raise ValueError(
                f"{unlabelled} of the {len(rows)} {name} videos have no label (-1): embed a folder of class "
                f"subfolders or a CSV manifest"
            )
    if train.embeddings.shape[-1] != test.embeddings.shape[-1]:
        raise ValueError(f"train embeddings are {train.embeddings.shape[-1]} wide, test {test.embeddings.shape[-1]}")
    for key in ("model", "pool"):
        if train.settings.get(key) != test.settings.get(key):
            raise ValueError(
                f"train and test embeddings differ in {key}: {train.settings.get(key)!r} vs {test.settings.get(key)!r}"
            )
    if train.classes is not None and test.classes is not None and train.classes != test.classes:
        raise ValueError(f"train and test have different classes: {train.classes} vs {test.classes}")
