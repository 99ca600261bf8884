"""Everything that turns a video file (or an image) into the normalised (C, T, H, W) tensor a model takes."""

from hvm1.data import transforms
from hvm1.data.datasets import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Batch,
    ClipDataset,
    LabelledFiles,
    Sample,
    collate,
    find_files,
    find_images,
    find_videos,
    labelled_files,
    list_files,
    select_videos,
)
from hvm1.data.failures import Skipped, read_or_skip, skipped_for
from hvm1.data.sampling import file_generator, sample_generator, select_files, select_shots
from hvm1.data.transforms import (
    ImagePreset,
    ImageTrainPreset,
    VideoPreset,
    image_eval_preset,
    random_erasing,
    video_eval_preset,
    video_train_preset,
    visualisation_preset,
)
from hvm1.data.video import Clip, VideoError, clip_instants, read_clip, read_image, video_duration

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Batch",
    "Clip",
    "ClipDataset",
    "ImagePreset",
    "ImageTrainPreset",
    "LabelledFiles",
    "Sample",
    "Skipped",
    "VideoError",
    "VideoPreset",
    "clip_instants",
    "collate",
    "file_generator",
    "find_files",
    "find_images",
    "find_videos",
    "image_eval_preset",
    "labelled_files",
    "list_files",
    "random_erasing",
    "read_clip",
    "read_image",
    "read_or_skip",
    "sample_generator",
    "select_files",
    "select_shots",
    "select_videos",
    "skipped_for",
    "transforms",
    "video_duration",
    "video_eval_preset",
    "video_train_preset",
    "visualisation_preset",
]
