"""DAVIS-2017: the folder layout, indexed-PNG masks with the DAVIS palette, and the semi-supervised scores.

Layout: `JPEGImages/480p/SEQ/NNNNN.jpg`, `Annotations/480p/SEQ/NNNNN.png` (indexed PNGs: pixel = object
id, 0 = background), `ImageSets/2017/val.txt` (one sequence name a line).

Scores as the DAVIS-2017 semi-supervised evaluation defines them, per object (ids 1..the largest id of the
first annotation) and frame, leaving out the first and the last frame; void pixels (id 255, `VOID_ID`) of
an annotation are background, as the official evaluation sets them:
- J, region similarity: intersection over union of the two masks (1 when both are empty);
- F, boundary F-measure: a mask's boundary is the set of pixels that differ from their right, lower or
  lower-right neighbour (the last row and column compared along the border only); a boundary pixel
  matches when the other boundary lies within ceil(0.008 * image diagonal) pixels (dilation by a disk of
  that radius); precision P and recall R are the matched fractions, F = 2PR / (P + R) (0 when both are 0;
  P = R = 1 when both boundaries are empty, P = 1, R = 0 when only the prediction's is, and the reverse);
- per object: mean, recall (the fraction of frames above 0.5) and decay: the frames are cut into 4 bins at
  round(linspace(1, n, 5)) - 1, bin i running from cut i to cut i + 1 inclusive, and decay is the mean of
  the first bin minus the mean of the last;
- J&F-Mean = (J-Mean + F-Mean) / 2, each the mean over all objects of all sequences.

Where the official evaluation gives NaN, an object with no scored frame (a sequence of one or two frames),
these functions leave that object out of the means and the tables instead (`ObjectScore.scored`): the
caller names it (`hvm1.segment.propagate_davis` reports it as unscored).
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from hvm1.data import VideoError
from hvm1.data.video import read_image

logger = logging.getLogger(__name__)

#: DAVIS's CSV layouts.
GLOBAL_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
SEQUENCE_COLUMNS = ("Sequence", "J-Mean", "F-Mean")
BOUNDARY_THRESHOLD = 0.008
#: The annotation id of void pixels (unlabelled, ambiguous): background for scoring, as in the official code.
VOID_ID = 255


def davis_palette() -> np.ndarray:
    """The DAVIS (and PASCAL VOC) palette, (256, 3) uint8: id 0 black, 1 (128, 0, 0), 2 (0, 128, 0), ...

    Colour of id i: bit b of i (from the lowest, in threes for red, green, blue) sets bit 7 - b // 3.
    """
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value, colour = index, [0, 0, 0]
        for shift in range(7, -1, -1):
            for channel in range(3):
                colour[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
        palette[index] = colour
    return palette


def write_indexed_png(mask: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an (H, W) uint8 id mask as an indexed PNG with the DAVIS palette, creating its folder.

    Args:
        mask: (H, W) uint8 object ids.
        path: the file to write.

    Returns:
        The path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="P")
    image.putpalette(davis_palette().tobytes())
    image.save(path, format="PNG")
    return path


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """An object-id mask (H, W) uint8 from an image: an indexed (P) or greyscale PNG gives its pixel values;
    an RGB image gives each colour of the DAVIS palette its id (any other colour is an error); a
    one-bit image gives 0/1.

    Args:
        path: the image file.

    Returns:
        The mask, (H, W) uint8 object ids.

    Raises:
        VideoError: the file cannot be read, or an RGB colour outside the DAVIS palette (the file named).
    """
    path = Path(path)
    if not path.is_file():
        raise VideoError(path, "no such mask file")
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode in ("P", "L"):
                return np.asarray(image).astype(np.uint8)
            if mode == "1":
                return np.asarray(image).astype(np.uint8)
            rgb = np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as error:
        raise VideoError(path, f"not a mask image Pillow can read ({error})") from error
    codes = {tuple(int(c) for c in colour): index for index, colour in enumerate(davis_palette())}
    flat = rgb.reshape(-1, 3)
    colours, inverse = np.unique(flat, axis=0, return_inverse=True)
    unknown = [tuple(int(c) for c in colour) for colour in colours if tuple(int(c) for c in colour) not in codes]
    if unknown:
        raise VideoError(path, f"RGB mask colours {unknown[:4]} are not DAVIS palette colours; use an indexed PNG")
    ids = np.array([codes[tuple(int(c) for c in colour)] for colour in colours], dtype=np.uint8)
    return ids[inverse.reshape(-1)].reshape(rgb.shape[:2])


@dataclass(frozen=True)
class DavisSequence:
    """One sequence of a DAVIS folder: its frames in order and the annotations there are (the first at least)."""

    name: str
    frames: tuple[Path, ...]
    annotations: tuple[Path, ...]

    @property
    def fully_annotated(self) -> bool:
        """Whether every frame has an annotation of the same name, so the sequence can be scored."""
        return [p.stem for p in self.annotations] == [p.stem for p in self.frames]

    def read_frames(self) -> list[torch.Tensor]:
        """Every frame as (3, H, W) uint8 RGB."""
        return [read_image(path) for path in self.frames]


def davis_sequence_names(root: str | os.PathLike, split: str = "val", names: Sequence[str] | None = None) -> list[str]:
    """The sequence names of a DAVIS-2017 folder: those of `ImageSets/2017/{split}.txt` (or `names`), in that
    order, each once however often it is listed (the official evaluation runs each once too).

    Raises:
        ValueError: when `names` is None and the folder has no such split file.

    Args:
        root: the DAVIS-2017 folder.
        split: the split file's name.
        names: the sequences to take instead of the split's.

    Returns:
        The names.
    """
    root = Path(root)
    if names is None:
        listing = root / "ImageSets" / "2017" / f"{split}.txt"
        if not listing.is_file():
            raise ValueError(f"{root} is not a DAVIS-2017 folder: no {listing.relative_to(root)}")
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        logger.warning("listed more than once, run once: %s", ", ".join(repeated))
    return list(dict.fromkeys(names))  # each name once, in the order first listed


def davis_sequence(root: str | os.PathLike, name: str, resolution: str = "480p") -> DavisSequence:
    """One sequence of a DAVIS-2017 folder: its frames and annotations in order.

    Raises:
        ValueError: naming what is missing: the sequence's frames, or its first frame's annotation.

    Args:
        root: the DAVIS-2017 folder.
        name: the sequence.
        resolution: the folder of that resolution ('480p' or 'Full-Resolution').

    Returns:
        The `DavisSequence`.
    """
    root = Path(root)
    frames = tuple(sorted((root / "JPEGImages" / resolution / name).glob("*.jpg")))
    annotations = tuple(sorted((root / "Annotations" / resolution / name).glob("*.png")))
    if not frames:
        raise ValueError(f"sequence {name!r}: no frames in {root / 'JPEGImages' / resolution / name}")
    if not annotations or annotations[0].stem != frames[0].stem:
        raise ValueError(
            f"sequence {name!r}: no first-frame annotation "
            f"{root / 'Annotations' / resolution / name / (frames[0].stem + '.png')}"
        )
    return DavisSequence(name, frames, annotations)


def davis_sequences(
    root: str | os.PathLike, split: str = "val", resolution: str = "480p", names: Sequence[str] | None = None
) -> list[DavisSequence]:
    """The sequences of a DAVIS-2017 folder (`davis_sequence_names`, each read by `davis_sequence`).

    Raises:
        ValueError: naming what is missing: the split file, a sequence's frames, its first annotation.

    Args:
        root: the DAVIS-2017 folder.
        split: the split file's name.
        resolution: the folder of that resolution.
        names: the sequences to take instead of the split's.

    Returns:
        The `DavisSequence`s.
    """
    return [davis_sequence(root, name, resolution) for name in davis_sequence_names(root, split, names)]


def without_void(mask: np.ndarray) -> np.ndarray:
    """An annotation with its void pixels (`VOID_ID`) set to background (0), as the official evaluation reads it.

    Args:
        mask: the annotation (H, W) uint8.

    Returns:
        The mask without void pixels.
    """
    return np.where(mask == VOID_ID, 0, mask).astype(np.uint8)


def region_similarity(truth: np.ndarray, prediction: np.ndarray) -> float:
    """J: intersection over union of two boolean masks; 1 when both are empty.

    Args:
        truth: the true mask (H, W) bool.
        prediction: the predicted mask (H, W) bool.

    Returns:
        J, in [0, 1].
    """
    truth, prediction = truth.astype(bool), prediction.astype(bool)
    union = np.logical_or(truth, prediction).sum()
    return 1.0 if union == 0 else float(np.logical_and(truth, prediction).sum() / union)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a boolean mask: those that differ from the right, lower or lower-right
    neighbour; along the last row only the right one counts, along the last column only the lower one."""
    seg = mask.astype(bool)
    right = np.zeros_like(seg)
    below = np.zeros_like(seg)
    diagonal = np.zeros_like(seg)
    right[:, :-1] = seg[:, 1:]
    below[:-1, :] = seg[1:, :]
    diagonal[:-1, :-1] = seg[1:, 1:]
    boundary = (seg ^ right) | (seg ^ below) | (seg ^ diagonal)
    boundary[-1, :] = seg[-1, :] ^ right[-1, :]
    boundary[:, -1] = seg[:, -1] ^ below[:, -1]
    boundary[-1, -1] = False
    return boundary


def _dilate(boundary: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a disk of `radius` (offsets with dy^2 + dx^2 <= radius^2)."""
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    disk = ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius**2).to(torch.float32)
    image = torch.from_numpy(boundary.astype(np.float32))[None, None]
    return (F.conv2d(image, disk[None, None], padding=radius)[0, 0] > 0.5).numpy()


def boundary_f_measure(truth: np.ndarray, prediction: np.ndarray, threshold: float = BOUNDARY_THRESHOLD) -> float:
    """F: the boundary F-measure of two boolean masks, matching within ceil(threshold * diagonal) pixels
    (a `threshold` >= 1 is the pixel distance itself).

    Args:
        truth: the true mask (H, W) bool.
        prediction: the predicted mask (H, W) bool.
        threshold: the matching distance, as a fraction of the diagonal (or pixels when >= 1).

    Returns:
        F, in [0, 1].
    """
    radius = int(threshold if threshold >= 1 else math.ceil(threshold * math.hypot(*truth.shape)))
    truth_boundary, predicted_boundary = boundary_map(truth), boundary_map(prediction)
    n_truth, n_predicted = int(truth_boundary.sum()), int(predicted_boundary.sum())
    if n_truth == 0 or n_predicted == 0:
        precision = 1.0 if n_predicted == 0 else 0.0
        recall = 1.0 if n_truth == 0 else 0.0
    else:
        precision = float((predicted_boundary & _dilate(truth_boundary, radius)).sum() / n_predicted)
        recall = float((truth_boundary & _dilate(predicted_boundary, radius)).sum() / n_truth)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def statistics(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, recall, decay) of per-frame values, as DAVIS computes them (see the module docstring).

    Args:
        values: per-frame J or F values.

    Returns:
        `(mean, recall, decay)`.
    """
    array = np.asarray(values, dtype=np.float64)
    if len(array) == 0:
        return math.nan, math.nan, math.nan
    cuts = (np.round(np.linspace(1, len(array), 5) + 1e-10) - 1).astype(int)
    bins = [array[cuts[i] : cuts[i + 1] + 1] for i in range(4)]
    return float(array.mean()), float((array > 0.5).mean()), float(bins[0].mean() - bins[3].mean())


@dataclass(frozen=True)
class ObjectScore:
    """One object's scores over a sequence; `name` is DAVIS's `SEQ_ID`, `j`/`f` the per-frame values."""

    name: str
    j: tuple[float, ...]
    f: tuple[float, ...]

    @property
    def scored(self) -> bool:
        """Whether any frame was scored (a sequence of one or two frames has none: its first and last are left
        out); an unscored object has no statistics and stays out of the means and the tables."""
        return len(self.j) > 0

    @property
    def j_stats(self) -> tuple[float, float, float]:
        return statistics(self.j)

    @property
    def f_stats(self) -> tuple[float, float, float]:
        return statistics(self.f)


def score_sequence(name: str, truth: Sequence[np.ndarray], predicted: Sequence[np.ndarray]) -> list[ObjectScore]:
    """Each object's J and F per frame, the first and last frames left out; objects are ids 1..the largest
    id of the first true mask. `truth` and `predicted` are (H, W) id masks, one per frame; void pixels of
    `truth` (`VOID_ID`) are background. A sequence of one or two frames gives objects with no frame scored
    (`ObjectScore.scored` False).

    Args:
        name: the sequence's name.
        truth: the true id masks, one per frame.
        predicted: the predicted id masks, one per frame.

    Returns:
        One `ObjectScore` per object.
    """
    if len(truth) != len(predicted):
        raise ValueError(f"sequence {name!r}: {len(truth)} annotations but {len(predicted)} predicted masks")
    truth = [without_void(mask) for mask in truth]
    objects = int(np.max(truth[0])) if len(truth) else 0
    scores = []
    for obj in range(1, objects + 1):
        j, f = [], []
        for true_mask, mask in list(zip(truth, predicted))[1:-1]:
            if true_mask.shape != mask.shape:
                raise ValueError(f"sequence {name!r}: a {mask.shape} mask for a {true_mask.shape} annotation")
            j.append(region_similarity(true_mask == obj, mask == obj))
            f.append(boundary_f_measure(true_mask == obj, mask == obj))
        scores.append(ObjectScore(f"{name}_{obj}", tuple(j), tuple(f)))
    return scores


def global_scores(scores: Sequence[ObjectScore]) -> dict[str, float]:
    """The row of `global_results-val.csv`: each statistic averaged over the objects with scored frames.

    Raises:
        ValueError: when no object has a scored frame (there is no mean to give).

    Args:
        scores: every object's scores.

    Returns:
        The statistics by column name (`J&F-Mean`, `J-Mean`, ...).
    """
    scored = [score for score in scores if score.scored]
    if not scored:
        raise ValueError(f"none of {len(scores)} objects has a scored frame: no global scores")
    j_mean, j_recall, j_decay = np.array([s.j_stats for s in scored]).mean(axis=0)
    f_mean, f_recall, f_decay = np.array([s.f_stats for s in scored]).mean(axis=0)
    values = ((j_mean + f_mean) / 2, j_mean, j_recall, j_decay, f_mean, f_recall, f_decay)
    return {column: float(value) for column, value in zip(GLOBAL_COLUMNS, values)}


def write_score_tables(
    scores: Sequence[ObjectScore], out_dir: str | os.PathLike, split: str = "val"
) -> tuple[Path, Path]:
    """Write `global_results-{split}.csv` and `per-sequence_results-{split}.csv` in DAVIS's layout
    (three decimals and LF line ends, as its evaluation writes them); objects without a scored frame are
    left out of both. Returns both paths.

    Raises:
        ValueError: when no object has a scored frame (see `global_scores`), before anything is written.

    Args:
        scores: every object's scores.
        out_dir: the folder.
        split: the split named in the files' names.

    Returns:
        The paths of both files.
    """
    summary = global_scores(scores)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    global_path = out_dir / f"global_results-{split}.csv"
    sequence_path = out_dir / f"per-sequence_results-{split}.csv"
    with open(global_path, "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(GLOBAL_COLUMNS)
        writer.writerow([f"{value:.3f}" for value in summary.values()])
    with open(sequence_path, "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(SEQUENCE_COLUMNS)
        for score in scores:
            if score.scored:
                writer.writerow([score.name, f"{score.j_stats[0]:.3f}", f"{score.f_stats[0]:.3f}"])
    return global_path, sequence_path
