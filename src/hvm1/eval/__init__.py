"""Embeddings of videos, accuracy of finetuned models, and linear / kNN probes on embeddings."""

from hvm1.data import FileViews, LabelledFiles, labelled_files, list_files

from .embed import POOLS, EmbedResult, embed_videos, embedding_preset, pool_tokens
from .evaluate import DEFAULT_VIEWS, check_class_count, default_out_dir, evaluate, parse_views
from .predictions import ClassificationMetrics, Predictions, classification_metrics
from .probe import METHODS, fit_linear, knn_scores, probe
from .store import Embeddings, load_embeddings, save_embeddings
from .timelines import Timeline, embedding_timelines, window_outputs
from .views import run_views

__all__ = [
    "DEFAULT_VIEWS", "METHODS", "POOLS", "ClassificationMetrics", "EmbedResult", "Embeddings", "FileViews",
    "LabelledFiles", "Predictions", "Timeline", "check_class_count", "classification_metrics", "default_out_dir",
    "embed_videos", "embedding_timelines", "embedding_preset", "evaluate", "fit_linear", "knn_scores", "labelled_files", "list_files",
    "load_embeddings", "parse_views", "pool_tokens", "probe", "run_views", "save_embeddings",
    "window_outputs",
]
