"""Embeddings of videos, accuracy of finetuned models, and linear / kNN probes on embeddings."""

from hvm1.data import FileViews, LabelledFiles, labelled_files, list_files

from .embed import POOLS, EmbedResult, embed_videos, embedding_preset, pool_tokens
from .evaluation import DEFAULT_VIEWS, check_class_count, evaluate, parse_views
from .predictions import ClassificationMetrics, Predictions, classification_metrics
from .probes import METHODS, fit_linear, knn_scores, probe
from .store import Embeddings, load_embeddings, save_embeddings
from .timelines import Timeline, embedding_timelines, leading_classes, window_outputs, window_probabilities
from .views import run_views

__all__ = [
    "ClassificationMetrics",
    "DEFAULT_VIEWS",
    "EmbedResult",
    "Embeddings",
    "FileViews",
    "LabelledFiles",
    "METHODS",
    "POOLS",
    "Predictions",
    "Timeline",
    "check_class_count",
    "classification_metrics",
    "embed_videos",
    "embedding_preset",
    "embedding_timelines",
    "evaluate",
    "fit_linear",
    "knn_scores",
    "labelled_files",
    "leading_classes",
    "list_files",
    "load_embeddings",
    "parse_views",
    "pool_tokens",
    "probe",
    "run_views",
    "save_embeddings",
    "window_outputs",
    "window_probabilities",
]
