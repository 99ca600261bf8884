"""Pictures of what the models do: video completions (MAE) and CLS attention maps (ViT), as arrays and files.

Usable from a notebook: `complete_clip` + `completion_grid` on a clip tensor, `attention_maps` +
`attention_grid`; `complete_videos` / `attention_videos` run one loaded model over many video files.
"""

from .attention import attention_grid, attention_labels, attention_maps, heat_colours
from .completion import (
    DEFAULT_MASK_RATIOS,
    Completion,
    complete_clip,
    completion_fps,
    completion_frames,
    completion_grid,
    completion_labels,
    completion_tiles,
    default_mask_ratio,
)
from .grid import (
    add_colour_bar,
    label_grid,
    make_grid,
    mp4_encoder,
    save_jpeg,
    to_uint8,
    write_animation,
    write_gif,
    write_mp4,
)
from .runs import (
    RunReport,
    Written,
    attention_videos,
    complete_videos,
    output_stems,
)
from .sample import SAMPLE_NAME, make_sample_clip

__all__ = [
    "DEFAULT_MASK_RATIOS",
    "Completion",
    "RunReport",
    "SAMPLE_NAME",
    "Written",
    "add_colour_bar",
    "attention_grid",
    "attention_labels",
    "attention_maps",
    "attention_videos",
    "complete_clip",
    "complete_videos",
    "completion_fps",
    "completion_frames",
    "completion_grid",
    "completion_labels",
    "completion_tiles",
    "label_grid",
    "default_mask_ratio",
    "heat_colours",
    "make_grid",
    "make_sample_clip",
    "mp4_encoder",
    "output_stems",
    "save_jpeg",
    "to_uint8",
    "write_animation",
    "write_gif",
    "write_mp4",
]
