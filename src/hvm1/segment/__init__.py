"""Semi-supervised video object segmentation with a frozen ViT: label propagation and DAVIS-2017 scoring.

`propagate(model, frames, first_mask)` segments a video's frames from its first mask (the published
algorithm, `hvm1.segment.propagation`); `propagate_davis` runs it over a DAVIS-2017 folder and scores it as
the DAVIS evaluation does (`hvm1.segment.davis`); `propagate_video` runs it over one video file.
"""

from .davis import (
    DavisSequence,
    ObjectScore,
    boundary_f_measure,
    davis_palette,
    davis_sequence,
    davis_sequence_names,
    davis_sequences,
    global_scores,
    read_mask,
    region_similarity,
    score_sequence,
    statistics,
    without_void,
    write_indexed_png,
    write_score_tables,
)
from .propagation import PropagationConfig, frame_features, frame_size, prepare_frame, propagate, propagate_labels
from .runs import PropagationReport, propagate_davis, propagate_video

__all__ = [
    "DavisSequence",
    "ObjectScore",
    "PropagationConfig",
    "PropagationReport",
    "boundary_f_measure",
    "davis_palette",
    "davis_sequence",
    "davis_sequence_names",
    "davis_sequences",
    "frame_features",
    "frame_size",
    "global_scores",
    "prepare_frame",
    "propagate",
    "propagate_davis",
    "propagate_labels",
    "propagate_video",
    "read_mask",
    "region_similarity",
    "score_sequence",
    "statistics",
    "without_void",
    "write_indexed_png",
    "write_score_tables",
]
